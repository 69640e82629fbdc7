"""cfn-lint, run once over a whole tree laid out like templates/, with .cfnlintrc.yaml.

Files, not strings: E3043 (nested-stack parameters match the child) runs only when the root
has a file name and its children are readable beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from karematch_cfn.tree import REPO

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


def lint_files(paths: list[Path], config_file: Path = CONFIG_FILE) -> list[Finding]:
    """Lint the given files in one cfn-lint run; every finding, informational ones included."""
    from cfnlint.config import ConfigMixIn  # slow import (~0.4 s): only when linting
    from cfnlint.runner import Runner

    files = [str(p) for p in paths]
    cfg = ConfigMixIn(cli_args=[*_cli_args(config_file), "--", *files])
    findings = []
    for m in Runner(cfg).run():
        findings.append(Finding(m.rule.id, m.rule.severity, m.filename or "", m.linenumber, m.message))
    return sorted(findings, key=lambda f: (f.filename, f.line, f.rule))


def lint_dir(directory: Path, config_file: Path = CONFIG_FILE) -> list[Finding]:
    return lint_files(sorted(directory.glob("*.yaml")), config_file)
