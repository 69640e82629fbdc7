"""The app secret (spec section 7): ``karematch-app-secrets-<env>-<account>``, the JSON the
backend reads (DATABASE_URL, ENCRYPTION_KEY, SESSION_SECRET, AWS_REGION).

It is assembled from the generated secrets with dynamic references inside ``Fn::Sub``, so no
value ever appears in a template, a parameter or an Output. CloudFormation resolves the
references only when this resource's properties change: after rotating the database password,
follow docs/runbooks/rotate-database-password.md.

DATABASE_URL embeds the master password verbatim (CloudFormation cannot URL-encode), which is
why secrets.yaml generates it alphanumeric. TLS is ``sslmode=verify-full&sslrootcert=<path>``:
the parameter group forces SSL, and verify-full with the RDS CA bundle is the one setting that
libpq and node-postgres both read as "encrypt and authenticate the server"
(docs/backend-image.md).

Parameters:
    EnvironmentName: dev | staging | prod.
    DatabaseCaBundlePath: where the image keeps the RDS CA bundle (URL-safe path).
    DatabaseSecretArn, EncryptionKeySecretArn, SessionSecretArn: the generated secrets.
    DatabaseEndpointAddress, DatabaseEndpointPort: the RDS endpoint.

Outputs:
    AppSecretArn: the secret's ARN (container secrets, IAM).
    AppSecretName: the secret's name (the AWS_SECRET_NAME environment variable).
"""

from __future__ import annotations

import json

from troposphere import Ref, Sub, Template
from troposphere.secretsmanager import Secret

from karematch_cfn import names, render
from karematch_cfn.lib import policies, tags
from karematch_cfn.stacks import secrets

APP_SECRET = "AppSecret"


def _resolve(secret_arn_param: str, json_key: str | None = None) -> str:
    """A dynamic reference (inside Fn::Sub) to a secret's value or one of its JSON keys."""
    tail = f":{json_key}" if json_key else ""
    return f"{{{{resolve:secretsmanager:${{{secret_arn_param}}}:SecretString{tail}}}}}"


def database_url() -> str:
    user = _resolve(names.DATABASE_SECRET_ARN, secrets.USERNAME_KEY)
    password = _resolve(names.DATABASE_SECRET_ARN, secrets.PASSWORD_KEY)
    host = f"${{{names.DATABASE_ENDPOINT_ADDRESS}}}:${{{names.DATABASE_ENDPOINT_PORT}}}"
    # verify-full: encrypt (the server forces SSL, rds.force_ssl=1) and check RDS's certificate
    # and host name against the CA bundle at sslrootcert. libpq reads "require" as "do not verify"
    # while node-postgres 8.x reads it as verify-full against Node's CA list (no RDS CA): only
    # verify-full with sslrootcert means the same to both.
    tls = f"sslmode=verify-full&sslrootcert=${{{names.DATABASE_CA_BUNDLE_PATH}}}"
    return f"postgresql://{user}:{password}@{host}/{names.DATABASE_NAME}?{tls}"


def secret_document() -> str:
    """The Fn::Sub pattern of the app secret's JSON (keys in the spec's order)."""
    return json.dumps(
        {
            "DATABASE_URL": database_url(),
            "ENCRYPTION_KEY": _resolve(names.ENCRYPTION_KEY_SECRET_ARN),
            "SESSION_SECRET": _resolve(names.SESSION_SECRET_ARN),
            "AWS_REGION": "${AWS::Region}",
        }
    )


def declare_inputs(t: Template) -> None:
    """The Parameters, read only through the secret document's Fn::Sub placeholders."""
    names.declare(t, names.ENVIRONMENT_NAME)
    names.declare(t, names.DATABASE_CA_BUNDLE_PATH)
    for pname, description in (
        (names.DATABASE_SECRET_ARN, "ARN of the master-credentials secret (username, password)"),
        (names.ENCRYPTION_KEY_SECRET_ARN, "ARN of the generated ENCRYPTION_KEY secret"),
        (names.SESSION_SECRET_ARN, "ARN of the generated SESSION_SECRET secret"),
        (names.DATABASE_ENDPOINT_ADDRESS, "Host name of the RDS endpoint"),
        (names.DATABASE_ENDPOINT_PORT, "Port of the RDS endpoint"),
        (names.DATA_KEY_ARN, "ARN of the environment's customer-managed KMS key (foundation.yaml)"),
    ):
        names.declare(t, pname, description)


def build() -> Template:
    t = render.new_template("KareMatch app secret: the backend's JSON secret, from generated values")
    declare_inputs(t)
    secret = Secret(
        APP_SECRET,
        Name=Sub(names.APP_SECRET),
        KmsKeyId=Ref(names.DATA_KEY_ARN),
        Description="KareMatch backend configuration: DATABASE_URL, ENCRYPTION_KEY, SESSION_SECRET, "
        "AWS_REGION",
        SecretString=Sub(secret_document()),
        Tags=tags.standard(),
    )
    t.add_resource(policies.retain_except_on_create(secret))
    render.add_outputs(
        t,
        {names.APP_SECRET_ARN: Ref(secret), names.APP_SECRET_NAME: Sub(names.APP_SECRET)},
    )
    return t
