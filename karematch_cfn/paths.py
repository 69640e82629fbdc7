"""Where the repository keeps its inputs and generated files (no heavy imports: build.py's
no-change path reads these without loading troposphere)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = REPO / "templates"
PARAMETERS_DIR = REPO / "parameters"
# What build.py's output is made from: the code and its data files (prices for the generated
# cost page), build.py, and the parameter files the generated docs resolve the templates with.
# With the same files and installed versions, rendering again gives the same bytes (build.py's
# and the deployer's no-change paths).
SOURCES = (REPO / "karematch_cfn", REPO / "build.py", PARAMETERS_DIR)
