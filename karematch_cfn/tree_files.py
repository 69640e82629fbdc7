"""Every file build.py generates, as one mapping (repository path -> text): from a fresh render
or as it is on disk. The lint cache key and the no-change check cover all of it. No heavy
imports here: the no-change path reads the disk without loading troposphere."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path


def generated(templates: Mapping[str, str], docs: Mapping[str, str] | None = None) -> dict[str, str]:
    """The generated files of a fresh render: templates (file name -> text) under
    ``templates/``, and the generated docs (``gendocs.render_docs``, repository path -> text)."""
    return {**{f"templates/{name}": text for name, text in templates.items()}, **(docs or {})}


def generated_on_disk(
    templates_dir: Path, *, docs_root: Path | None = None, doc_paths: Iterable[str] = ()
) -> dict[str, str]:
    """The same mapping, read from what build.py last wrote: the templates in ``templates_dir``
    and the generated docs ``doc_paths`` under ``docs_root`` (a missing one is left out)."""
    out: dict[str, str] = {}
    if templates_dir.is_dir():
        out = {
            f"templates/{p.name}": p.read_text(encoding="utf-8") for p in sorted(templates_dir.glob("*.yaml"))
        }
    for rel in doc_paths if docs_root is not None else ():
        path = docs_root / rel
        if path.is_file():
            out[rel] = path.read_text(encoding="utf-8")
    return out


def output_dir_problem(directory: Path) -> str | None:
    """Why ``directory`` cannot be written (created if missing), or None: checked before any
    slow step, so a bad ``--out`` fails first rather than after the lint or an upload."""
    if directory.exists():
        if not directory.is_dir():
            return "exists and is not a directory"
        return None if os.access(directory, os.W_OK | os.X_OK) else "directory is not writable"
    parent = directory.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot be created: {parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be created: {parent} is not writable"
    return None
