"""Session, clients and identity, from ``--profile``/``--region`` and the usual environment.

botocore itself honours ``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``), the config
and credentials files, ``AWS_PROFILE``, ``AWS_REGION``/``AWS_DEFAULT_REGION``: the same code runs
against AWS and against a local emulator. Nothing here derives a TemplateURL from the endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.exceptions
import botocore.parsers
import botocore.session
from botocore.config import Config

from karematch_cfn.deploy.errors import AccessProblem, BadInput, DeployError, DeployFailed

ACCESS_ERROR_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "InvalidAccessKeyId",
        "AuthFailure",
        "403",
        "Forbidden",
    }
)
_LOADER: Any = None
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8}, user_agent_extra="karematch-cfn")


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        return str(err.get("Message") or err.get("Code") or exc)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def translate(exc: BaseException, doing: str) -> DeployError:
    """A botocore failure as the one-line error (and exit code) the user should see."""
    if isinstance(exc, DeployError):
        return exc
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return AccessProblem(
            f"{doing}: no AWS credentials found",
            "use --profile NAME, or set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "(in CI: the OIDC deploy role)",
        )
    if isinstance(exc, (botocore.exceptions.NoRegionError,)):
        return BadInput(f"{doing}: no AWS region; pass --region or set AWS_REGION")
    if isinstance(exc, botocore.exceptions.ProfileNotFound):
        return AccessProblem(f"{doing}: {exc}")
    if isinstance(
        exc, (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError)
    ):
        return AccessProblem(f"{doing}: cannot reach AWS: {exc}")
    if isinstance(exc, (botocore.exceptions.TokenRetrievalError, botocore.exceptions.SSOError)):
        return AccessProblem(
            f"{doing}: cannot get credentials: {exc}",
            "run `aws sso login` for the profile, or check the role",
        )
    if isinstance(exc, botocore.exceptions.ClientError):
        code = error_code(exc)
        if code in ACCESS_ERROR_CODES:
            return AccessProblem(f"{doing}: access denied ({code}): {error_message(exc)}")
        return DeployFailed(f"{doing}: {code}: {error_message(exc)}")
    if isinstance(exc, botocore.parsers.ResponseParserError):
        # A local emulator answering an unsupported call with an HTML 500 page.
        return DeployFailed(
            f"{doing}: unreadable response from the AWS endpoint ({str(exc).splitlines()[0]})"
        )
    return DeployFailed(f"{doing}: {exc}")


def call(doing: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call one AWS API, turning its failure into a one-line ``DeployError``."""
    try:
        return fn(*args, **kwargs)
    except (
        botocore.exceptions.BotoCoreError,
        botocore.exceptions.ClientError,
        botocore.parsers.ResponseParserError,
    ) as exc:
        raise translate(exc, doing) from None


@dataclass
class Aws:
    """The clients the deployer uses, made on first use from one session.

    Tests inject clients (botocore Stubber, or clients on a moto server) through ``clients``.
    """

    session: Any = None
    clients: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_options(cls, profile: str | None, region: str | None) -> Aws:
        global _LOADER
        try:
            core = botocore.session.Session()
            # The service models, read once per process. Creating the loader reads the config
            # (data_path), so AWS_PROFILE naming a missing profile fails here, not in boto3.
            if _LOADER is None:
                _LOADER = core.get_component("data_loader")
            else:
                core.register_component("data_loader", _LOADER)
            session = boto3.Session(botocore_session=core, profile_name=profile, region_name=region)
        except botocore.exceptions.ProfileNotFound as exc:
            where = f"--profile {profile}" if profile else "AWS_PROFILE"
            raise AccessProblem(f"{where}: {exc} (aws configure list-profiles lists them)") from None
        return cls(session=session)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            if self.session is None:
                raise RuntimeError(f"no client for {service} and no session")
            try:
                self.clients[service] = self.session.client(service, config=_CONFIG)
            except botocore.exceptions.NoRegionError:
                raise BadInput(
                    "no AWS region; pass --region or set AWS_REGION (or region in the profile)"
                ) from None
            except botocore.exceptions.ProfileNotFound as exc:
                raise AccessProblem(f"{exc}; see --profile and AWS_PROFILE") from None
        return self.clients[service]

    @property
    def cfn(self) -> Any:
        return self.client("cloudformation")

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def region(self) -> str:
        return self.cfn.meta.region_name

    @property
    def partition(self) -> str:
        return self.cfn.meta.partition


@dataclass(frozen=True)
class Identity:
    account: str
    arn: str


def identity(aws: Aws) -> Identity:
    """The first AWS call: who we are (and the account the artifacts bucket is named after)."""
    out = call("checking AWS credentials (sts:GetCallerIdentity)", aws.client("sts").get_caller_identity)
    return Identity(out["Account"], out["Arn"])
