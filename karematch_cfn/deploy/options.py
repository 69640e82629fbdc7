"""What a command was asked to do: frozen options built once at the CLI edge (``cli.py``).

Nothing below ``cli.py`` sees argparse: the deployer and the operating commands read these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Target:
    """Which environment and root stack, and the AWS session that reaches it."""

    env: str
    stack_name: str
    profile: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class Sources:
    """The templates and parameters to deploy, and where packaged templates go."""

    template_dir: Path | None = None  # None: the project's templates/
    parameter_file: Path | None = None  # None: parameters/ENV.json
    assignments: tuple[str, ...] = ()  # --parameter KEY=VALUE, in order
    artifact_bucket: str | None = None  # None: karematch-cfn-artifacts-ACCOUNT-REGION
    use_cache: bool = True  # False (--no-cache): render and lint even if build.py already did


@dataclass(frozen=True)
class DeployOptions:
    target: Target
    sources: Sources
    image_tag: str | None = None
    desired_count: int | None = None
    allow_replacement: tuple[str, ...] = ()
    cfn_role_arn: str | None = None
    yes: bool = False
    dry_run: bool = False
    poll_interval: float = 5.0
    smoke: bool = True  # --no-smoke: no smoke test after a successful deploy
    smoke_deadline: float = 120.0  # seconds the smoke test retries a failing check
    monitoring_minutes: int = 10  # rollback triggers' monitoring period (0: never armed)
    check_drift: bool = False  # also outside prod (prod always checks)
    allow_drift: bool = False  # deploy over drift (no check)


@dataclass(frozen=True)
class PackageOptions:
    target: Target
    sources: Sources
    out: Path
