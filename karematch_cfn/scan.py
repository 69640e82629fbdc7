"""The security scan: checkov on what each environment will really create.

checkov runs from its own virtual environment (``.venv-checkov``, installed by ``make`` from
``requirements-checkov.lock``: its pins clash with the project's). It never sees the raw
templates: for dev, staging and prod it reads the tree resolved for that environment
(``resolved.resolve_tree``: Conditions and parameters evaluated, so an ``Fn::If`` branch an
environment never creates is not judged and the one it creates is), plus ``bootstrap.yaml``.
Every template is written as JSON under ``<dir>/<env>/`` so a finding names its environment.

A check that fails by design is skipped in that resource's ``Metadata`` (checkov's
``checkov.skip`` list, each entry with the reason in ``comment``), never globally; a skip that
applies only outside prod is an ``Fn::If`` on IsProduction, which the resolved rendering turns
into the environment's own list. ``suppressions`` reads them back for the HIPAA map.

Usage: ``python -m karematch_cfn.scan`` (``make scan``): exit 0 when no check fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from karematch_cfn import names, resolved

REPO = Path(__file__).resolve().parent.parent
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
BOOTSTRAP_FILE = "bootstrap.yaml"
BOOTSTRAP_DIR = "bootstrap"  # the scan directory of the standalone bootstrap template


@dataclass(frozen=True)
class Finding:
    """One failed check: where (environment directory, file, resource) and which check."""

    scope: str  # dev | staging | prod | bootstrap
    file: str
    resource: str  # checkov's "AWS::Type.LogicalId"
    check_id: str
    check_name: str

    def line(self) -> str:
        return f"{self.scope}/{self.file}: {self.resource}: {self.check_id} {self.check_name}"


@dataclass(frozen=True)
class Suppression:
    """One check skipped in a resource's Metadata, with its reason."""

    file: str
    logical_id: str
    resource_type: str
    check_id: str
    reason: str


def trees(templates: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """What the scan reads, by scope: each environment's resolved tree, and the bootstrap."""
    out: dict[str, dict[str, dict[str, Any]]] = {
        env: resolved.resolve_tree(templates, env) for env in names.ENVIRONMENTS
    }
    out[BOOTSTRAP_DIR] = {BOOTSTRAP_FILE: dict(templates[BOOTSTRAP_FILE])}
    return out


def write(scopes: Mapping[str, Mapping[str, Mapping[str, Any]]], directory: Path) -> None:
    """``<directory>/<scope>/<template>.json`` for every template of every scope."""
    for scope, templates in scopes.items():
        folder = directory / scope
        folder.mkdir(parents=True, exist_ok=True)
        for filename, body in templates.items():
            target = folder / (Path(filename).stem + ".json")
            target.write_text(json.dumps(body, indent=1, sort_keys=True, default=str), encoding="utf-8")


def run_checkov(directory: Path, checkov: Path = CHECKOV) -> list[Finding]:
    """Every failed check under ``directory`` (offline: ``--skip-download``)."""
    if not checkov.is_file():
        raise FileNotFoundError(
            f"{checkov} not found: run `make` (it installs checkov from requirements-checkov.lock)"
        )
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    env.pop("BC_API_KEY", None)
    proc = subprocess.run(
        [
            str(checkov),
            "--directory",
            str(directory),
            "--framework",
            "cloudformation",
            "--skip-download",
            "--output",
            "json",
            "--quiet",
            "--compact",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    # 0: no failure, 1: failures; anything else (or no JSON) is checkov itself failing.
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise RuntimeError(f"checkov failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    data = json.loads(proc.stdout)
    reports = data if isinstance(data, list) else [data]
    findings = []
    for report in reports:
        for failed in report.get("results", {}).get("failed_checks", []):
            path = Path(failed["file_path"].lstrip("/"))
            findings.append(
                Finding(
                    scope=path.parent.name,
                    file=path.name,
                    resource=failed["resource"],
                    check_id=failed["check_id"],
                    check_name=failed["check_name"],
                )
            )
    return sorted(findings, key=lambda f: (f.scope, f.file, f.resource, f.check_id))


def scan(templates: Mapping[str, Mapping[str, Any]], checkov: Path = CHECKOV) -> list[Finding]:
    """Write every scope's templates to a scratch directory and run checkov on them."""
    with tempfile.TemporaryDirectory(prefix="karematch-scan-") as tmp:
        write(trees(templates), Path(tmp))
        return run_checkov(Path(tmp), checkov)


def suppressions(template: Mapping[str, Any], filename: str) -> list[Suppression]:
    """The checks a (resolved) template skips in its resources' Metadata, with their reasons."""
    out = []
    for logical_id, body in template.get("Resources", {}).items():
        skips = body.get("Metadata", {}).get("checkov", {}).get("skip", [])
        for skip in skips:
            out.append(Suppression(filename, logical_id, body["Type"], skip["id"], skip.get("comment", "")))
    return out


def all_suppressions(scopes: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, list[Suppression]]:
    return {
        scope: [s for filename, t in sorted(ts.items()) for s in suppressions(t, filename)]
        for scope, ts in scopes.items()
    }


def report(findings: Iterable[Finding]) -> str:
    return "\n".join(f.line() for f in findings)


def main() -> int:
    from karematch_cfn import tree

    findings = scan(resolved.parse(tree.render_all()))
    if findings:
        print(report(findings), file=sys.stderr)
        print(f"checkov: {len(findings)} failed check(s)", file=sys.stderr)
        return 1
    print("checkov: no failed checks in dev, staging, prod and bootstrap")
    return 0


if __name__ == "__main__":
    sys.exit(main())
