"""secrets.yaml and appsecret.yaml do what spec section 7 says: generated values only (no value
in any file), the spec's names with the environment and account, the default KMS key, manual
rotation, a DB password that fits a URL and every value that fits the app secret's JSON, and an
app secret with exactly the spec's four keys, built from references."""

from __future__ import annotations

import json
import math
import re
import string
from typing import Any

import pytest

from karematch_cfn import names
from tests import helpers, spec

SECRETS = "7. Secrets"
SECRET_TYPE = "AWS::SecretsManager::Secret"
SUFFIX = "${EnvironmentName}-${AWS::AccountId}"  # the spec's {suffix} (docs/decisions.md)

# What Secrets Manager draws from (GetRandomPassword): letters, digits and this punctuation.
AWS_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
URL_UNRESERVED = set(string.ascii_letters + string.digits + "-._~")  # RFC 3986 section 2.3
JSON_UNSAFE = set('"\\') | {chr(c) for c in range(32)}
MIN_ENTROPY_BITS = 128
AES_KEY_BITS = 256
RESOLVE = re.compile(r"\{\{resolve:secretsmanager:\$\{(\w+)\}:SecretString(?::(\w+))?\}\}")


def secrets_of(filename: str) -> dict[str, dict[str, Any]]:
    return helpers.resources_of_type(helpers.template(filename), SECRET_TYPE)


def secret_named(pattern: str) -> dict[str, Any]:
    """The secret (in any template) whose Name is this Fn::Sub pattern."""
    found = [
        s
        for f in ("secrets.yaml", "appsecret.yaml")
        for s in secrets_of(f).values()
        if helpers.sub_text(helpers.props(s)["Name"]) == pattern
    ]
    assert len(found) == 1, f"expected one secret named {pattern}, found {len(found)}"
    return found[0]


def spec_name(label: str) -> str:
    """A secret name from the spec with {suffix} expanded, e.g. for "App Secrets"."""
    name = spec.find(rf"\*\*{label}\*\*: `([^`]+)`", SECRETS)
    assert "{suffix}" in name
    return name.replace("{suffix}", SUFFIX)


def charset(gen: dict[str, Any]) -> set[str]:
    """The characters a GenerateSecretString can produce."""
    chars = set()
    if not gen.get("ExcludeUppercase"):
        chars |= set(string.ascii_uppercase)
    if not gen.get("ExcludeLowercase"):
        chars |= set(string.ascii_lowercase)
    if not gen.get("ExcludeNumbers"):
        chars |= set(string.digits)
    if not gen.get("ExcludePunctuation"):
        chars |= set(AWS_PUNCTUATION)
    if gen.get("IncludeSpace"):
        chars.add(" ")
    return chars - set(gen.get("ExcludeCharacters", ""))


def entropy_bits(gen: dict[str, Any]) -> float:
    return gen.get("PasswordLength", 32) * math.log2(len(charset(gen)))


def generated() -> dict[str, dict[str, Any]]:
    return {
        helpers.sub_text(helpers.props(s)["Name"]): helpers.props(s)["GenerateSecretString"]
        for s in secrets_of("secrets.yaml").values()
    }


def app_secret_document() -> dict[str, str]:
    """The app secret's SecretString pattern, parsed (placeholders left as text)."""
    props = helpers.props(secret_named(spec_name("App Secrets")))
    return json.loads(helpers.sub_text(props["SecretString"]))


# ---------------------------------------------------------------------------------------------
# Generated secrets
# ---------------------------------------------------------------------------------------------
def test_every_value_is_generated_by_secrets_manager():
    secrets = secrets_of("secrets.yaml")
    assert len(secrets) == 3  # DB credentials, ENCRYPTION_KEY, SESSION_SECRET
    for logical_id, s in secrets.items():
        p = helpers.props(s)
        assert "GenerateSecretString" in p, logical_id
        assert "SecretString" not in p, logical_id  # cannot be combined, and would be a value


def test_generation_settings_never_depend_on_a_parameter():
    # Any change to a GenerateSecretString regenerates the value (a new ENCRYPTION_KEY loses the
    # data): the settings are literals, so no parameter value can ever change them.
    for name, gen in generated().items():
        for key, value in gen.items():
            assert not isinstance(value, (dict, list)), f"{name}.{key} is {value!r}"


def test_the_database_password_secret_has_the_spec_name_and_credentials_shape():
    gen = generated()[spec_name("Database Password")]
    template = json.loads(gen["SecretStringTemplate"])
    assert list(template) == ["username"]
    assert gen["GenerateStringKey"] == "password"
    user = template["username"]
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,62}", user), "not a valid RDS master user name"
    assert user.lower() not in {"postgres", "rdsadmin", "admin", "root", "user"}
    assert set(user) <= URL_UNRESERVED


def test_the_database_password_fits_a_url_and_json_verbatim():
    gen = generated()[spec_name("Database Password")]
    chars = charset(gen)
    assert chars <= URL_UNRESERVED, f"URL-reserved characters possible: {sorted(chars - URL_UNRESERVED)}"
    assert not chars & JSON_UNSAFE
    # RDS PostgreSQL master passwords: 8-128 printable characters except / " @ and space.
    assert 32 <= gen["PasswordLength"] <= 128
    assert not chars & set('/"@ ')
    assert entropy_bits(gen) >= MIN_ENTROPY_BITS


def test_encryption_key_and_session_secret_are_long_random_and_json_safe():
    gens = generated()
    key = gens[f"karematch-encryption-key-{SUFFIX}"]
    session = gens[f"karematch-session-secret-{SUFFIX}"]
    for gen in (key, session):
        assert not charset(gen) & JSON_UNSAFE
        assert entropy_bits(gen) >= MIN_ENTROPY_BITS
    # ENCRYPTION_KEY: 64 hex digits = a full AES-256 key.
    assert charset(key) <= set(string.hexdigits.lower())
    assert entropy_bits(key) >= AES_KEY_BITS


def test_secrets_use_the_default_kms_key():
    assert spec.find(r"Encryption: AWS KMS \((default key)\)", SECRETS)
    for filename in ("secrets.yaml", "appsecret.yaml"):
        for logical_id, s in secrets_of(filename).items():
            assert "KmsKeyId" not in helpers.props(s), f"{filename}/{logical_id}"


def test_no_automatic_rotation_and_a_runbook_exists():
    # Spec: rotation manual. Automatic rotation would stale the DATABASE_URL in the app secret.
    assert spec.find(r"Rotation: (Manual)", SECRETS)
    for filename in helpers.rendered_text():
        t = helpers.template(filename)
        assert not helpers.resources_of_type(t, "AWS::SecretsManager::RotationSchedule"), filename
        for db in helpers.resources_of_type(t, "AWS::RDS::DBInstance").values():
            assert not helpers.props(db).get("ManageMasterUserPassword"), filename
    runbook = helpers.REPO / "docs" / "runbooks" / "rotate-database-password.md"
    assert "DATABASE_URL" in runbook.read_text()


@pytest.mark.parametrize("filename", ["secrets.yaml", "appsecret.yaml"])
def test_secrets_are_kept_when_the_stack_lets_go_of_them(filename):
    for logical_id, s in secrets_of(filename).items():
        assert s["DeletionPolicy"] == "RetainExceptOnCreate", logical_id
        assert s["UpdateReplacePolicy"] == "Retain", logical_id


def test_secret_arns_are_the_outputs_never_values():
    outputs = helpers.template("secrets.yaml")["Outputs"]
    refs = {o["Value"]["Ref"] for o in outputs.values()}
    assert refs == set(secrets_of("secrets.yaml"))  # Ref of a secret is its ARN


# ---------------------------------------------------------------------------------------------
# The app secret
# ---------------------------------------------------------------------------------------------
def test_app_secret_has_the_spec_name_and_exactly_the_spec_keys():
    block = spec.find(r"(?s)```json\n(.*?)```", SECRETS).replace("...", "")
    spec_keys = re.findall(r'"(\w+)":', block)
    assert spec_keys == ["DATABASE_URL", "ENCRYPTION_KEY", "SESSION_SECRET", "AWS_REGION"]
    assert list(app_secret_document()) == spec_keys


def test_app_secret_values_are_references_never_literals():
    doc = app_secret_document()
    assert RESOLVE.fullmatch(doc["ENCRYPTION_KEY"]).groups() == ("EncryptionKeySecretArn", None)
    assert RESOLVE.fullmatch(doc["SESSION_SECRET"]).groups() == ("SessionSecretArn", None)
    assert doc["AWS_REGION"] == "${AWS::Region}"


def test_database_url_is_built_from_the_credentials_endpoint_and_spec_database_with_ssl():
    scheme = spec.find(r'"DATABASE_URL": "(\w+)://', SECRETS)
    database = spec.find(r"Database: `(\w+)`", "3. Database")
    url = app_secret_document()["DATABASE_URL"]
    m = re.fullmatch(rf"{scheme}://(\{{\{{.+?\}}\}}):(\{{\{{.+?\}}\}})@([^/]+)/(\w+)\?(.*)", url)
    assert m, url
    user, password, host, db, query = m.groups()
    db_secret = generated()[spec_name("Database Password")]
    user_key = next(iter(json.loads(db_secret["SecretStringTemplate"])))
    assert RESOLVE.fullmatch(user).groups() == ("DatabaseSecretArn", user_key)
    assert RESOLVE.fullmatch(password).groups() == ("DatabaseSecretArn", db_secret["GenerateStringKey"])
    assert host == "${DatabaseEndpointAddress}:${DatabaseEndpointPort}"
    assert db == database
    # verify-full with the RDS CA bundle: libpq and node-postgres both authenticate the server
    assert query == "sslmode=verify-full&sslrootcert=${DatabaseCaBundlePath}"


def test_the_ca_bundle_path_is_a_url_safe_root_parameter_with_a_default_that_fits():
    root = helpers.template("karematch.yaml")
    param = root["Parameters"][names.DATABASE_CA_BUNDLE_PATH]
    pattern = param["AllowedPattern"]
    assert re.fullmatch(pattern, param["Default"])
    for bad in (
        "relative/path.pem",
        "/a b.pem",
        "/a%20b.pem",
        "/a.pem?x=1",
        "/a.pem&sslmode=disable",
        "/a#b",
        "",
    ):
        assert not re.fullmatch(pattern, bad), bad
    assert re.fullmatch(pattern, "/opt/app/certs/rds-global-bundle.pem")


def test_only_the_app_secret_reads_the_ca_bundle_path_so_no_generated_secret_changes_with_it():
    root = helpers.template("karematch.yaml")
    stacks = helpers.resources_of_type(root, "AWS::CloudFormation::Stack")
    fed = {
        v["Properties"]["TemplateURL"]
        for v in stacks.values()
        if names.DATABASE_CA_BUNDLE_PATH in v["Properties"].get("Parameters", {})
    }
    assert fed == {"./appsecret.yaml"}
    assert "GenerateSecretString" not in json.dumps(helpers.template("appsecret.yaml")["Resources"])


def test_app_secret_outputs_are_its_arn_and_name():
    t = helpers.template("appsecret.yaml")
    (logical_id,) = secrets_of("appsecret.yaml")
    assert t["Outputs"]["AppSecretArn"]["Value"] == {"Ref": logical_id}
    assert helpers.sub_text(t["Outputs"]["AppSecretName"]["Value"]) == spec_name("App Secrets")


def test_app_secret_inputs_are_wired_from_the_stacks_that_own_them():
    root = helpers.template("karematch.yaml")
    stacks = helpers.resources_of_type(root, "AWS::CloudFormation::Stack")
    (app,) = [s for s in stacks.values() if s["Properties"]["TemplateURL"] == "./appsecret.yaml"]
    fed = app["Properties"]["Parameters"]
    by_file = {k: v["Properties"]["TemplateURL"] for k, v in stacks.items()}
    producers = {p: by_file[v["Fn::GetAtt"][0]] for p, v in fed.items() if "Fn::GetAtt" in v}
    assert producers == {
        names.DATABASE_SECRET_ARN: "./secrets.yaml",
        names.ENCRYPTION_KEY_SECRET_ARN: "./secrets.yaml",
        names.SESSION_SECRET_ARN: "./secrets.yaml",
        names.DATABASE_ENDPOINT_ADDRESS: "./database.yaml",
        names.DATABASE_ENDPOINT_PORT: "./database.yaml",
    }
