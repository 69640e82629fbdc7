"""Every file build.py generates, as one mapping (repository path -> text): from a fresh render
or as it is on disk. The lint cache key and the no-change check cover all of it. No heavy
imports here: the no-change path reads the disk without loading troposphere."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def generated(templates: Mapping[str, str]) -> dict[str, str]:
    """The generated files for freshly rendered templates (file name -> text); generated docs
    join this mapping as build.py writes them."""
    return {f"templates/{name}": text for name, text in templates.items()}


def generated_on_disk(templates_dir: Path) -> dict[str, str]:
    """The same mapping, read from what build.py last wrote."""
    if not templates_dir.is_dir():
        return {}
    return generated({p.name: p.read_text(encoding="utf-8") for p in sorted(templates_dir.glob("*.yaml"))})
