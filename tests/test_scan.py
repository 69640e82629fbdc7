"""The security scan: the real checkov (its own virtual environment, offline) on what dev,
staging and prod will create, and on bootstrap.yaml. Zero failed checks; every skip has a reason
and sits on its resource; a removed hardening fails the scan."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from karematch_cfn import names, resolved, scan
from tests import helpers


@pytest.fixture(scope="module")
def parsed():
    return resolved.parse(helpers.rendered_text())


@pytest.fixture(scope="module")
def scopes(parsed):
    return scan.trees(parsed)


@pytest.fixture(scope="module")
def findings(parsed):
    return scan.scan(parsed)


def test_the_scan_reads_every_environment_and_the_bootstrap(scopes):
    assert set(scopes) == {*names.ENVIRONMENTS, scan.BOOTSTRAP_DIR}
    assert "audit.yaml" in scopes["prod"]  # prod's trail is judged too
    for env in names.ENVIRONMENTS:
        assert "Fn::If" not in repr(scopes[env]), env


def test_no_check_fails_in_any_environment_or_the_bootstrap(findings):
    assert not findings, "checkov failed:\n" + scan.report(findings)


def test_every_skip_has_a_reason_and_names_a_real_check(scopes):
    found = scan.all_suppressions(scopes)
    assert any(found.values())
    for scope, skips in found.items():
        for s in skips:
            assert s.check_id.startswith(("CKV_AWS_", "CKV2_AWS_")), (scope, s)
            assert len(s.reason) > 20, (scope, s)


def test_a_skip_outside_production_is_not_a_skip_in_production(scopes):
    """Dev's HTTP listener, the single-AZ database, the default CloudFront certificate: skipped
    where they are by design, judged in prod."""
    prod = {(s.file, s.logical_id, s.check_id) for s in scan.all_suppressions(scopes)["prod"]}
    dev = {(s.file, s.logical_id, s.check_id) for s in scan.all_suppressions(scopes)["dev"]}
    dev_only = dev - prod
    assert ("database.yaml", "DatabaseInstance", "CKV_AWS_157") in dev_only
    assert ("loadbalancer.yaml", "HttpListener", "CKV_AWS_2") in dev_only
    assert ("frontend.yaml", "FrontendDistribution", "CKV_AWS_174") in dev_only


# What removing one hardening does: (file, logical id, property path to delete or value to set,
# the check that must then fail).
REGRESSIONS = (
    ("service.yaml", "AppLogGroup", ("KmsKeyId",), None, "CKV_AWS_158"),
    ("secrets.yaml", "EncryptionKeySecret", ("KmsKeyId",), None, "CKV_AWS_149"),
    ("registry.yaml", "BackendRepository", ("EncryptionConfiguration",), None, "CKV_AWS_136"),
    ("frontend.yaml", "FrontendBucket", ("LoggingConfiguration",), None, "CKV_AWS_18"),
    ("database.yaml", "DatabaseInstance", ("MonitoringInterval",), None, "CKV_AWS_118"),
    ("database.yaml", "DatabaseInstance", ("MultiAZ",), False, "CKV_AWS_157"),
    ("frontend.yaml", "FrontendDistribution", ("DistributionConfig", "WebACLId"), None, "CKV_AWS_68"),
    ("foundation.yaml", "DataKey", ("EnableKeyRotation",), None, "CKV_AWS_7"),
)


def _without(tree: dict, file: str, logical_id: str, path: tuple[str, ...], value) -> None:
    node = tree[file]["Resources"][logical_id]["Properties"]
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value


def test_removing_a_hardening_fails_the_scan_in_prod(scopes, tmp_path: Path):
    prod = copy.deepcopy(scopes["prod"])
    for file, logical_id, path, value, _ in REGRESSIONS:
        _without(prod, file, logical_id, path, value)
    scan.write({"prod": {f: prod[f] for f in {r[0] for r in REGRESSIONS}}}, tmp_path)
    failed = {(f.file, f.resource.split(".")[-1], f.check_id) for f in scan.run_checkov(tmp_path)}
    for file, logical_id, _, _, check in REGRESSIONS:
        assert (file.replace(".yaml", ".json"), logical_id, check) in failed, (logical_id, check)


def test_a_missing_checkov_is_a_clear_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="run `make`"):
        scan.run_checkov(tmp_path, tmp_path / "no-checkov")
