"""cfn-lint over a whole tree laid out like templates/, with .cfnlintrc.yaml.

Files, not strings: E3043 (nested-stack parameters match the child) runs only when the root
has a file name and its children are readable beside it; every share of a parallel run lints
whole files in that one directory, so the root always sees its children.

Speed: cfn-lint's imports and rules (about a second) are loaded once, in a process that can be
started before the templates exist (``Warm``), and forked copies of it lint the files in
parallel. ``lint_cached`` answers from the remembered verdict (``lintcache``) when it can,
without importing cfn-lint.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from karematch_cfn import lintcache
from karematch_cfn.paths import REPO

CONFIG_FILE = REPO / ".cfnlintrc.yaml"


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    filename: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}: {self.rule} [{self.severity}] {self.message}"


def _cli_args(config_file: Path) -> list[str]:
    """The rc file as command-line arguments (append_rules resolved against the repo root)."""
    cfg = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    args: list[str] = []
    if cfg.get("regions"):
        args += ["--regions", *cfg["regions"]]
    if cfg.get("include_checks"):
        args += ["--include-checks", *cfg["include_checks"]]
    if cfg.get("ignore_checks"):
        args += ["--ignore-checks", *cfg["ignore_checks"]]
    for rules_dir in cfg.get("append_rules", []):
        args += ["--append-rules", str((config_file.parent / rules_dir).resolve())]
    return args


def _runner_config(config_file: Path, files: list[str]):
    from cfnlint.config import ConfigMixIn  # slow import (~0.8 s): only when linting

    return ConfigMixIn(cli_args=[*_cli_args(config_file), "--", *files])


def _lint_share(files: list[str], config_file: Path, rules) -> list[Finding]:
    from cfnlint.runner.template.runner import run_template_by_file_paths

    return [
        Finding(m.rule.id, m.rule.severity, m.filename or "", m.linenumber, m.message)
        for m in run_template_by_file_paths(_runner_config(config_file, files), rules)
    ]


def _shares(files: list[str], jobs: int) -> list[list[str]]:
    """Split the files into ``jobs`` shares of about equal size (lint time grows with size)."""
    shares: list[list[str]] = [[] for _ in range(max(1, min(jobs, len(files))))]
    load = [0] * len(shares)
    for f in sorted(files, key=lambda f: -Path(f).stat().st_size):
        i = load.index(min(load))
        shares[i].append(f)
        load[i] += Path(f).stat().st_size
    return shares


def _serve(conn, config_file: Path, jobs: int) -> None:
    """The warm process: load cfn-lint and its rules, wait for the files, lint them in ``jobs``
    forked processes that inherit the loaded rules (startup is paid once, not per process)."""
    try:
        from cfnlint.runner import Runner

        rules = Runner(_runner_config(config_file, [])).rules
        files = conn.recv()
        if files is None:  # not needed after all (a cache hit)
            return
        shares = _shares(files, jobs)
        children = []
        for share in shares[1:]:
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the forked worker
                os.close(read_end)
                code = 0
                try:
                    payload = pickle.dumps(("ok", _lint_share(share, config_file, rules)))
                except BaseException as exc:  # reported by the parent, with its message
                    payload, code = pickle.dumps(("error", f"{type(exc).__name__}: {exc}")), 1
                with os.fdopen(write_end, "wb") as fh:
                    fh.write(payload)
                os._exit(code)
            os.close(write_end)
            children.append((pid, read_end))
        findings = _lint_share(shares[0], config_file, rules)
        for pid, read_end in children:
            with os.fdopen(read_end, "rb") as fh:
                data = fh.read()
            os.waitpid(pid, 0)
            status, value = pickle.loads(data) if data else ("error", "a cfn-lint worker died")
            if status != "ok":
                raise RuntimeError(value)
            findings += value
        conn.send(("ok", findings))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Warm:
    """cfn-lint started ahead of need in its own process: it imports cfn-lint and loads the rules
    while the caller renders, then lints in parallel on ``jobs`` cores. Where ``fork`` is not
    available, linting happens in this process, one file after another."""

    def __init__(self, config_file: Path = CONFIG_FILE, jobs: int | None = None) -> None:
        self.config_file = config_file
        self.jobs = jobs or default_jobs()
        self._conn = self._proc = None
        if "fork" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("fork")
            self._conn, child = ctx.Pipe()
            self._proc = ctx.Process(target=_serve, args=(child, config_file, self.jobs), daemon=True)
            self._proc.start()
            child.close()

    def lint(self, paths: list[Path]) -> list[Finding]:
        files = [str(p) for p in paths]
        if self._proc is None:
            from cfnlint.runner import Runner

            findings = list(
                _lint_share(files, self.config_file, Runner(_runner_config(self.config_file, [])).rules)
            )
        else:
            try:
                self._conn.send(files)
                status, value = self._conn.recv()
            except (EOFError, OSError):
                status, value = "error", "the cfn-lint process died"
            finally:
                self.close()
            if status != "ok":
                raise RuntimeError(f"cfn-lint failed: {value}")
            findings = value
        return sorted(findings, key=lambda f: (f.filename, f.line, f.rule))

    def close(self) -> None:
        """Stop the process if it is still waiting (nothing to lint after all)."""
        if self._proc is None:
            return
        if self._proc.is_alive():
            with contextlib.suppress(OSError):  # it may have exited on its own
                self._conn.send(None)
            self._proc.join(timeout=5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()
        self._conn.close()
        self._proc = None


def lint_files(paths: list[Path], config_file: Path = CONFIG_FILE, jobs: int | None = None) -> list[Finding]:
    """Lint the given files (cross-template checks included); every finding, informational ones
    included."""
    return Warm(config_file, jobs).lint(paths)


def lint_dir(directory: Path, config_file: Path = CONFIG_FILE) -> list[Finding]:
    return lint_files(sorted(directory.glob("*.yaml")), config_file)


def lint_cached(
    paths: list[Path],
    *,
    base: Path,
    generated: Mapping[str, str],
    use_cache: bool = True,
    warm: Warm | None = None,
    config_file: Path = CONFIG_FILE,
) -> tuple[list[Finding], bool]:
    """Lint ``paths`` (files under ``base``) unless the cache holds the verdict for ``generated``
    (every generated file, path -> text) with today's toolchain. Returns the findings, with file
    names under ``base``, and whether they came from the cache (then cfn-lint is not imported)."""
    k = lintcache.key(generated, lintcache.Toolchain.current(config_file)) if use_cache else None
    hit = lintcache.lookup(k) if k else None
    if hit is not None:
        if warm is not None:
            warm.close()
        try:
            return [Finding(**{**f, "filename": str(base / f["filename"])}) for f in hit], True
        except (TypeError, KeyError):
            pass  # an entry from another version of this code: lint again
    findings = (warm or Warm(config_file)).lint(paths)
    if k:
        lintcache.store(
            k,
            [
                {**asdict(f), "filename": os.path.relpath(f.filename, base) if f.filename else ""}
                for f in findings
            ],
        )
    return findings, False
