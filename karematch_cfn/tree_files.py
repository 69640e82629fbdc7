"""Every file build.py generates, as one mapping (repository path -> text): from a fresh render
or as it is on disk. The lint cache key and the no-change check cover all of it. No heavy
imports here: the no-change path reads the disk without loading troposphere."""

from __future__ import annotations

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
