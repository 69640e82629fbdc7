"""Failures that explain themselves: each says the stack's state, what is left and the way back.

CloudFormation is botocore's Stubber (shaped like AWS's documented responses) where moto cannot
fail the way AWS does; S3, STS and IAM are the moto server's.
"""

from __future__ import annotations

import json

import pytest

from karematch_cfn.deploy import changeset

from . import shapes as s
from .conftest import FIXTURES, tree_args
from .test_stubbed_deploy import NOTIFY_CS, TOPIC, Flow, notify_change, notify_nested

pytestmark = pytest.mark.deploy


@pytest.fixture
def flow(moto) -> Flow:
    return Flow(moto)


def reviewed_update(flow: Flow) -> Flow:
    """An update up to the execution: change set created, described, events primed."""
    flow.existing().created().described(notify_change()).described(notify_nested(), NOTIFY_CS)
    old = s.event(s.STACK, "AWS::CloudFormation::Stack", "UPDATE_COMPLETE", seconds=-100, physical=s.ROOT_ID)
    return flow.add("describe_stack_events", s.events(old), StackName=s.ROOT_ID)


def reviewed_create(flow: Flow) -> Flow:
    """A first create up to the execution (the stack is REVIEW_IN_PROGRESS until executed)."""
    flow.fail("describe_stacks", "ValidationError", "Stack with id karematch-dev does not exist")
    flow.created().described(s.change_set([s.change("Add", "AlarmTopic", TOPIC)]))
    return flow.add("describe_stack_events", s.events(), StackName=s.ROOT_ID)


def test_execute_change_set_failing_on_an_update_says_the_state_and_what_is_left(flow):
    reviewed_update(flow)
    flow.fail(
        "execute_change_set",
        "InvalidChangeSetStatus",
        "ChangeSet [karematch-cfn-20240501-120000] cannot be executed in its current status of [OBSOLETE]",
    )
    flow.add("describe_stacks", s.stack("UPDATE_COMPLETE"), StackName=s.ROOT_ID)

    r = flow.run("--yes")

    assert r.code == 4, r.text
    assert r.err.startswith("error: executing the change set: InvalidChangeSetStatus")
    assert "stack karematch-dev is UPDATE_COMPLETE; fix the cause and deploy again" in r.err
    assert f"left behind: change set {s.ROOT_CS}" in r.err
    assert f"aws cloudformation delete-change-set --change-set-name {s.ROOT_CS}" in r.err
    assert "DeleteChangeSet" not in flow.requests  # an existing stack keeps it for review


def test_execute_change_set_failing_on_a_first_create_deletes_the_empty_stack_it_made(flow):
    reviewed_create(flow)
    flow.fail("execute_change_set", "InsufficientCapabilitiesException", "Requires capabilities")
    flow.add("describe_stacks", s.stack("REVIEW_IN_PROGRESS"), StackName=s.ROOT_ID)
    flow.add("delete_change_set", {}, ChangeSetName=s.ROOT_CS)
    flow.add("describe_stacks", s.stack("REVIEW_IN_PROGRESS"), StackName=s.ROOT_ID)
    flow.add("delete_stack", {}, StackName=s.ROOT_ID)

    r = flow.run("--yes")

    assert r.code == 4, r.text
    assert "stack karematch-dev is REVIEW_IN_PROGRESS; fix the cause and deploy again" in r.err
    assert "nothing was executed; this run's change set and empty stack were deleted" in r.err


def test_a_failure_while_watching_says_it_was_executed_and_how_to_follow_or_stop_it(flow):
    reviewed_update(flow)
    flow.add("execute_change_set", {}, ChangeSetName=s.ROOT_CS)
    flow.fail("describe_stack_events", "AccessDenied", "not authorized: DescribeStackEvents", 403)
    flow.add("describe_stacks", s.stack("UPDATE_IN_PROGRESS"), StackName=s.ROOT_ID)

    r = flow.run("--yes")

    assert r.code == 5, r.text  # the underlying access problem keeps its code
    assert "(while the change set executes)" in r.err.splitlines()[0]
    assert "the change set was executed; stack karematch-dev is UPDATE_IN_PROGRESS" in r.err
    assert "aws cloudformation cancel-update-stack --stack-name karematch-dev" in r.err
    assert "DeleteChangeSet" not in flow.requests


def test_ctrl_c_during_a_create_gives_create_advice_not_cancel_update(flow):
    reviewed_create(flow)
    flow.add("execute_change_set", {}, ChangeSetName=s.ROOT_CS)
    flow.add("describe_stack_events", s.events(), StackName=s.ROOT_ID)
    flow.add("describe_stacks", s.stack("CREATE_IN_PROGRESS"), StackName=s.ROOT_ID)
    flow.add("describe_stacks", s.stack("CREATE_IN_PROGRESS"), StackName=s.ROOT_ID)  # for the message

    def interrupt(_seconds):
        raise KeyboardInterrupt

    flow.sleep = interrupt
    r = flow.run("--yes")

    assert r.code == 130, r.text
    assert "stack karematch-dev is CREATE_IN_PROGRESS" in r.err
    assert "cancel-update-stack" not in r.err.replace("(cancel-update-stack is for updates)", "")
    assert "a first create cannot be cancelled" in r.err
    assert (
        "on ROLLBACK_COMPLETE delete it (aws cloudformation delete-stack --stack-name karematch-dev)" in r.err
    )


def test_change_set_names_started_in_the_same_second_differ():
    import datetime as dt

    now = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
    first, second = changeset.change_set_name(now), changeset.change_set_name(now)
    assert first != second
    assert first.startswith("karematch-cfn-20240501-120000-")
    for name in (first, second):  # CloudFormation's ChangeSetName pattern and length
        assert len(name) <= 128 and name[0].isalpha()
        assert all(c.isalnum() or c == "-" for c in name)


# ------------------------------------------------------------------------------------------
# Bad input: one short line, exit 2, before any AWS call (the moto server sees nothing)
# ------------------------------------------------------------------------------------------
def _nothing_in_aws(moto) -> None:
    assert moto.stacks() == {}
    assert moto.client("s3").list_buckets()["Buckets"] == []


def _one_short_line(r) -> None:
    assert r.code == 2, r.text
    assert r.out == ""
    first = r.err.splitlines()[0]
    assert first.startswith("error:") or "error:" in first, r.err
    assert len(r.err) < 600, r.err


def test_a_parameter_file_nested_very_deep_is_one_line(moto, karematch, tmp_path):
    deep = tmp_path / "dev.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)

    r = karematch("deploy", *tree_args("tree-v1", params=deep), "--yes")

    _one_short_line(r)
    assert "nested too deeply" in r.err and "Traceback" not in r.err
    _nothing_in_aws(moto)


def test_a_huge_value_is_not_echoed_whole(moto, karematch, tmp_path):
    huge = "x" * 5_000_000
    path = tmp_path / "dev.json"
    entries = json.loads((FIXTURES / "params" / "dev.json").read_text())
    entries = [e for e in entries if e["ParameterKey"] != "DesiredCount"]
    path.write_text(json.dumps([*entries, {"ParameterKey": "DesiredCount", "ParameterValue": huge}]))

    r = karematch("deploy", *tree_args("tree-v1", params=path), "--yes")
    _one_short_line(r)
    assert "(5000000 characters)" in r.err

    r = karematch("deploy", *tree_args("tree-v1"), "--yes", "--parameter", f"DesiredCount={huge}")
    _one_short_line(r)

    r = karematch("deploy", *tree_args("tree-v1"), "--yes", "--parameter", f"{huge}=1")
    _one_short_line(r)
    _nothing_in_aws(moto)


def test_a_boolean_json_value_gets_a_suggestion_that_is_accepted(moto, karematch, tmp_path):
    from karematch_cfn import config

    root = {"Parameters": {"Flag": {"Type": "String", "AllowedValues": ["true", "false"]}}}
    path = tmp_path / "x.json"
    path.write_text(json.dumps([{"ParameterKey": "Flag", "ParameterValue": True}]))
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, root)
    assert 'write "true"' in str(caught.value)

    path.write_text(json.dumps([{"ParameterKey": "Flag", "ParameterValue": "true"}]))  # as suggested
    assert config.load(path, root).values["Flag"] == "true"


def test_an_environment_parameter_that_disagrees_with_env_blames_the_parameter(moto, karematch):
    r = karematch("deploy", *tree_args("tree-v1"), "--yes", "--parameter", "EnvironmentName=prod")

    _one_short_line(r)
    assert r.err.startswith("error: --parameter EnvironmentName=prod disagrees with --env dev")
    assert "dev.json" not in r.err.splitlines()[0]
    _nothing_in_aws(moto)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--poll-interval", "inf"),
        ("--poll-interval", "1e9"),
        ("--stack-name", "9lives"),
        ("--stack-name", "under_score"),
        ("--stack-name", "x" * 129),
        ("--artifact-bucket", "Upper-Case"),
        ("--artifact-bucket", "ab"),
        ("--artifact-bucket", "a..b"),
        ("--artifact-bucket", "192.168.1.1"),
    ],
)
def test_invalid_options_are_refused_before_any_aws_call(moto, karematch, option, value):
    r = karematch("deploy", *tree_args("tree-v1"), "--yes", option, value)

    assert r.code == 2, r.text
    assert option in r.err
    _nothing_in_aws(moto)


@pytest.mark.parametrize("endpoint", ["not a url", "ftp://127.0.0.1", "http://127.0.0.1:port"])
def test_an_invalid_endpoint_url_is_bad_input_not_an_aws_error(moto, karematch, monkeypatch, endpoint):
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)

    r = karematch("deploy", *tree_args("tree-v1"), "--yes")

    _one_short_line(r)
    assert r.err.startswith("error: AWS_ENDPOINT_URL=")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    _nothing_in_aws(moto)


def test_package_out_is_checked_before_the_bucket_is_made(moto, karematch, tmp_path):
    a_file = tmp_path / "out"
    a_file.write_text("not a directory")

    r = karematch("package", *tree_args("tree-v1"), "--out", a_file)
    _one_short_line(r)
    assert f"--out {a_file}: exists and is not a directory" in r.err

    r = karematch("package", *tree_args("tree-v1"), "--out", a_file / "below")
    _one_short_line(r)
    assert "is not a directory" in r.err
    assert "linting" not in r.out
    _nothing_in_aws(moto)
