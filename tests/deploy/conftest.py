"""A moto server on 127.0.0.1 for the whole session, reset before each test, and the AWS
environment the real deploy command reads (AWS_ENDPOINT_URL pointing at it)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from karematch_cfn import cli

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
# Credential sources botocore would otherwise look at (some reach the network).
AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_url():
    """``moto_server`` as a subprocess bound to 127.0.0.1 at a free port."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto_server did not start on {url}")
            time.sleep(0.1)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def isolate_aws_environment(monkeypatch, tmp_path: Path) -> None:
    """No credentials, no profile, no instance metadata: nothing beyond this machine."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "empty-aws-file"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@dataclass
class Moto:
    url: str

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def pending_change_sets(self, stack: str) -> list[str]:
        """Change sets not executed (moto keeps executed ones listed; AWS removes them)."""
        out = self.client("cloudformation").list_change_sets(StackName=stack)["Summaries"]
        return [c["ChangeSetName"] for c in out if c.get("ExecutionStatus") == "AVAILABLE"]

    def parameters(self, stack: str) -> dict[str, str]:
        out = self.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        return {p["ParameterKey"]: p["ParameterValue"] for p in out["Parameters"]}

    def stacks(self) -> dict[str, str]:
        return {
            s["StackName"]: s["StackStatus"]
            for s in self.client("cloudformation").describe_stacks()["Stacks"]
        }


@pytest.fixture
def moto(moto_url, monkeypatch, tmp_path) -> Moto:
    """A clean moto and the environment a user would set to deploy into it."""
    req = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.load(resp) == {"status": "ok"}
    isolate_aws_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return Moto(moto_url)


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture
def karematch(capsys):
    """Run the real command line in-process: ``karematch("deploy", "--env", "dev", ...)``."""

    def run(*argv: str) -> Result:
        capsys.readouterr()
        code = cli.main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def tree_args(name: str, env: str = "dev", params: Path | None = None) -> list[str]:
    """``--template-dir`` and ``--parameters`` for a fixture tree."""
    return [
        "--env",
        env,
        "--template-dir",
        str(FIXTURES / name),
        "--parameters",
        str(params or FIXTURES / "params" / f"{env}.json"),
    ]
