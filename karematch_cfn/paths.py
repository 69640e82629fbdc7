"""Where the repository keeps its inputs and generated files (no heavy imports: build.py's
no-change path reads these without loading troposphere)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = REPO / "templates"
PARAMETERS_DIR = REPO / "parameters"
# The code whose output build.py writes: with the same code, parameter files and installed
# versions, rendering again gives the same bytes (build.py's and the deployer's no-change paths).
SOURCES = (REPO / "karematch_cfn", REPO / "build.py")
