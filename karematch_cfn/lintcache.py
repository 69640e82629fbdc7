"""Remembered cfn-lint verdicts, shared by build.py and the deployer, kept outside the repository.

A verdict (the findings, an empty list when clean) is stored under a key made of everything that
can change it: the content of every generated file (templates, and the docs build.py writes),
cfn-lint's version and its data files (``cfn-lint --update-specs`` rewrites them without a
version change), ``.cfnlintrc.yaml``, the project's lint code and rules, the Python version, and
today's date (cfn-lint's runtime-deprecation rules compare with it). A hit never imports cfn-lint.

The cache lives in ``$KAREMATCH_CFN_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/karematch-cfn``,
else ``~/.cache/karematch-cfn``; ``--no-cache`` (build.py and the deployer) bypasses it, and
deleting the directory is always safe.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from karematch_cfn.paths import REPO

ENV_VAR = "KAREMATCH_CFN_CACHE_DIR"
KEEP_DAYS = 7  # verdicts older than this are deleted when a new one is stored
PACKAGE_DIR = Path(__file__).resolve().parent
# What rendering depends on besides the project's code (troposphere turns objects into data,
# PyYAML into bytes); a change of version re-renders.
RENDER_DISTRIBUTIONS = ("troposphere", "awacs", "cfn-flip", "PyYAML")
# The project's code that decides a verdict: how cfn-lint is run, and the project's own rules.
PROJECT_LINT_CODE = (PACKAGE_DIR / "lint.py", PACKAGE_DIR / "lintcache.py", PACKAGE_DIR / "lintrules")


def cache_dir() -> Path:
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "karematch-cfn"


def cfnlint_data_dir() -> Path | None:
    """cfn-lint's data directory (schemas, specs), found without importing cfn-lint."""
    spec = importlib.util.find_spec("cfnlint")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _files_under(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                out += [Path(root, f) for f in sorted(files)]
        elif p.is_file():
            out.append(p)
    return out


def _tree_stat(directory: Path) -> Iterator[str]:
    """Name, size and modification time of every file under ``directory``, in a fixed order."""
    for root, dirs, _files in os.walk(directory):
        dirs.sort()
        with os.scandir(root) as entries:
            for e in sorted(entries, key=lambda e: e.name):
                if e.is_file():
                    st = e.stat()
                    yield f"{os.path.relpath(e.path, directory)} {st.st_size} {st.st_mtime_ns}"


@dataclass(frozen=True)
class Toolchain:
    """Everything but the templates that can change cfn-lint's verdict."""

    cfnlint_version: str
    cfnlint_data: Path | None
    config_file: Path
    project_lint_code: tuple[Path, ...]
    python_version: str
    today: str
    cfnlint_requirements: tuple[str, ...] = ()  # name==version of what cfn-lint requires

    @classmethod
    def current(cls, config_file: Path) -> Toolchain:
        try:
            version = importlib.metadata.version("cfn-lint")
        except importlib.metadata.PackageNotFoundError:
            version = "absent"
        return cls(
            cfnlint_version=version,
            cfnlint_data=cfnlint_data_dir(),
            config_file=config_file,
            project_lint_code=PROJECT_LINT_CODE,
            python_version=sys.version,
            today=datetime.datetime.now(datetime.UTC).date().isoformat(),
            cfnlint_requirements=tuple(f"{d}=={_version(d)}" for d in _requirements("cfn-lint")),
        )

    def digest(self) -> hashlib._Hash:
        h = hashlib.sha256()
        h.update(f"cfn-lint {self.cfnlint_version}\0python {self.python_version}\0{self.today}\0".encode())
        for dist in self.cfnlint_requirements:
            h.update(f"requires {dist}\0".encode())
        if self.cfnlint_data is not None:
            # 2,000+ files (35 MB): name, size and modification time, not the bytes (about 20 ms).
            for line in _tree_stat(self.cfnlint_data):
                h.update(f"data {line}\0".encode())
        h.update(b"config\0" + self.config_file.read_bytes() + b"\0")
        for p in _files_under(self.project_lint_code):
            h.update(f"code {p.name}\0".encode() + p.read_bytes() + b"\0")
        return h


def key(generated: Mapping[str, str], toolchain: Toolchain) -> str:
    """The lint verdict's key: every generated file (path -> text) plus the toolchain."""
    h = toolchain.digest()
    h.update(content_digest(generated).encode())
    return h.hexdigest()


def content_digest(generated: Mapping[str, str]) -> str:
    """One digest of a mapping of generated files (path -> text)."""
    h = hashlib.sha256()
    for path in sorted(generated):
        h.update(f"file {path}\0".encode() + generated[path].encode("utf-8") + b"\0")
    return h.hexdigest()


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _requirements(dist: str) -> list[str]:
    """The names of what ``dist`` requires (any extra markers ignored)."""
    try:
        reqs = importlib.metadata.requires(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    return sorted({re.split(r"[\s;<>=!~\[(]", r, maxsplit=1)[0] for r in reqs if "extra ==" not in r})


def source_key(*, sources: Iterable[Path], parameters_dir: Path) -> str:
    """What build.py's output depends on: the code that renders and its data files, the parameter
    files it validates, the versions of what rendering uses (``RENDER_DISTRIBUTIONS``) and Python.
    With the same source key, rendering again gives the same bytes."""
    h = hashlib.sha256(f"python {sys.version}\0".encode())
    for dist in RENDER_DISTRIBUTIONS:
        h.update(f"dist {dist} {_version(dist)}\0".encode())
    for p in _files_under(sources):
        h.update(f"source {os.path.relpath(p, REPO)}\0".encode() + p.read_bytes() + b"\0")
    for p in sorted(parameters_dir.glob("*.json")) if parameters_dir.is_dir() else []:
        h.update(f"parameters {p.name}\0".encode() + p.read_bytes() + b"\0")
    return h.hexdigest()


def _entry(kind: str, k: str) -> Path:
    return cache_dir() / kind / f"{k}.json"


def _read(kind: str, k: str) -> dict | None:
    try:
        data = json.loads(_entry(kind, k).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def lookup(k: str) -> list[dict[str, object]] | None:
    """The remembered lint findings for ``k`` (``[]`` = clean), or None when there is none."""
    findings = (_read("lint", k) or {}).get("findings")
    return findings if isinstance(findings, list) else None


def store(k: str, findings: list[dict[str, object]]) -> None:
    """Remember a lint verdict."""
    _write("lint", k, {"findings": findings})


def lookup_build(k: str) -> dict | None:
    """What a build with source key ``k`` produced: {"outputs": content digest of every generated
    file, "sizes": the size table, "docs": the generated docs' repository paths}."""
    record = _read("build", k)
    if not record or not isinstance(record.get("outputs"), str) or not isinstance(record.get("docs"), list):
        return None
    return record


def store_build(k: str, *, outputs: str, sizes: str, docs: list[str]) -> None:
    _write("build", k, {"outputs": outputs, "sizes": sizes, "docs": docs})


def _write(kind: str, k: str, value: dict) -> None:
    """Best effort: a read-only or full disk only costs the next run its speed."""
    path = _entry(kind, k)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(value, fh)
        os.replace(tmp, path)
        cutoff = time.time() - KEEP_DAYS * 86400
        for old in path.parent.glob("*.json"):
            if old.stat().st_mtime < cutoff:
                old.unlink(missing_ok=True)
    except OSError:
        pass
