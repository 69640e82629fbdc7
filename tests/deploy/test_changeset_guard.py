"""The change-set tree, the review table and the data guard, over AWS-shaped DescribeChangeSet
outputs (moto returns neither Replacement, Details nor nested change sets)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from karematch_cfn.deploy import changeset, guard
from karematch_cfn.deploy.changeset import Node

from . import shapes as s

pytestmark = pytest.mark.deploy

DB = "AWS::RDS::DBInstance"
LOGS = "AWS::Logs::LogGroup"
SECRET = "AWS::SecretsManager::Secret"
SG = "AWS::EC2::SecurityGroup"


def build(root: dict, nested: dict[str, dict] | None = None) -> Node:
    """fetch_tree over canned descriptions keyed by change set id."""
    nested = nested or {}
    return changeset.fetch_tree(lambda cs_id: nested[cs_id], root)


def one_child(
    logical_id: str,
    changes: list[dict],
    *,
    params: dict[str, str] | None = None,
    status: str = "CREATE_COMPLETE",
    reason: str | None = None,
) -> Node:
    cs = s.change_set_arn(f"{logical_id}-cs", 7)
    child = s.change_set(
        changes,
        cs_id=cs,
        stack_id=s.nested_id(logical_id),
        params=params,
        stack_name=s.nested_name(logical_id),
        parent=s.ROOT_CS,
        status=status,
        reason=reason,
    )
    return build(s.change_set([s.nested("Modify", logical_id, cs)]), {cs: child})


class Resolver:
    def __init__(self, answers: dict[str, bool | None] | None = None) -> None:
        self.answers = answers or {}
        self.asked: list[tuple[str, str]] = []

    def parameter_changes(self, node: Node, parameter: str) -> bool | None:
        self.asked.append((node.label, parameter))
        return self.answers.get(parameter)


def refusals(root: Node, resolver: Resolver | None = None) -> list[guard.Refusal]:
    return guard.check(root, resolver or Resolver())


# ------------------------------------------------------------------------------------------
# What counts as a change
# ------------------------------------------------------------------------------------------
def test_a_nested_modify_with_nothing_inside_is_no_change():
    root = one_child("NetworkStack", [])

    assert not changeset.has_changes(root)
    assert changeset.table_lines(root, s.STACK) == []


def test_a_nested_change_set_failed_for_no_changes_is_no_change():
    root = one_child("NetworkStack", [], status="FAILED", reason=s.NO_CHANGES_REASON)

    assert not changeset.has_changes(root)


def test_the_root_failed_no_change_status_is_recognised_with_both_texts():
    assert changeset.is_no_change_reason(s.NO_CHANGES_REASON)
    assert changeset.is_no_change_reason("No updates are to be performed.")
    assert not changeset.is_no_change_reason("Template format error: Unresolved resource dependencies")


def test_a_nested_modify_with_a_real_change_inside_counts():
    root = one_child(
        "DatabaseStack",
        [
            s.change(
                "Modify", "DatabaseInstance", DB, replacement="False", details=[s.detail("DBInstanceClass")]
            )
        ],
    )

    assert changeset.has_changes(root)


def test_every_page_is_read():
    cfn = boto3.client(
        "cloudformation", region_name=s.REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    page1 = s.change_set([s.change("Add", "A", LOGS)], next_token="page-2")
    page2 = s.change_set([s.change("Add", "B", LOGS)])
    with Stubber(cfn) as stub:
        stub.add_response("describe_change_set", page2, {"ChangeSetName": s.ROOT_CS, "NextToken": "page-2"})
        merged = changeset.describe_all(cfn, s.ROOT_CS, first=page1)
        stub.assert_no_pending_responses()

    assert [c["ResourceChange"]["LogicalResourceId"] for c in merged["Changes"]] == ["A", "B"]
    assert "NextToken" not in merged


def test_the_table_names_action_id_type_replacement_and_properties_but_no_values():
    detail = s.detail("DBInstanceIdentifier", recreation="Always")
    detail["Target"].update(BeforeValue="old-secret-value", AfterValue="new-secret-value")
    root = one_child(
        "DatabaseStack",
        [
            s.change("Modify", "DatabaseInstance", DB, replacement="True", details=[detail]),
            s.change(
                "Modify",
                "AppSecurityGroup",
                SG,
                replacement="Conditional",
                details=[
                    s.detail(
                        "VpcId",
                        recreation="Always",
                        evaluation="Dynamic",
                        source="ParameterReference",
                        causing="VpcId",
                    )
                ],
            ),
        ],
    )

    text = "\n".join(changeset.table_lines(root, s.STACK))

    assert "Stack karematch-dev / DatabaseStack" in text
    db_line = next(line for line in text.splitlines() if "DatabaseInstance" in line)
    assert db_line.split()[:4] == ["Modify", "DatabaseInstance", DB, "True"]
    assert "DBInstanceIdentifier (replace)" in db_line
    assert "VpcId (replace; dynamic: parameter VpcId)" in text
    assert "secret-value" not in text


# ------------------------------------------------------------------------------------------
# The guard
# ------------------------------------------------------------------------------------------
def test_replacement_true_of_a_database_is_refused_with_its_name_and_cause():
    root = one_child(
        "DatabaseStack",
        [
            s.change(
                "Modify",
                "DatabaseInstance",
                DB,
                replacement="True",
                details=[s.detail("DBInstanceClass"), s.detail("DBInstanceIdentifier", recreation="Always")],
            )
        ],
    )

    (r,) = refusals(root)

    assert r.name == "DatabaseStack/DatabaseInstance"
    assert "Replacement True" in r.reason and "DBInstanceIdentifier" in r.reason
    assert "DBInstanceClass" not in r.reason


def test_a_remove_is_refused_and_so_is_a_whole_child_stack():
    root = build(
        s.change_set([s.nested("Remove", "DatabaseStack", None), s.change("Remove", "AuditLogGroup", LOGS)])
    )

    assert sorted(r.name for r in refusals(root)) == ["AuditLogGroup", "DatabaseStack"]
    assert all("removed" in r.reason for r in refusals(root))


def test_a_replaced_security_group_is_not_the_guards_business():
    replaced = s.change(
        "Modify",
        "AppSecurityGroup",
        SG,
        replacement="True",
        details=[s.detail("GroupName", recreation="Always")],
    )
    root = one_child("SecurityGroupsStack", [replaced])

    assert refusals(root) == []


def test_conditional_from_a_dynamic_parameter_that_does_not_really_change_passes():
    change = s.change(
        "Modify",
        "DatabaseInstance",
        DB,
        replacement="Conditional",
        details=[
            s.detail(
                "DBSubnetGroupName",
                recreation="Always",
                evaluation="Dynamic",
                source="ParameterReference",
                causing="DatabaseSubnetIds",
            )
        ],
    )
    root = one_child("DatabaseStack", [change])

    resolver = Resolver({"DatabaseSubnetIds": False})
    assert refusals(root, resolver) == []
    assert resolver.asked == [("DatabaseStack", "DatabaseSubnetIds")]

    assert [r.name for r in refusals(root, Resolver({"DatabaseSubnetIds": True}))] == [
        "DatabaseStack/DatabaseInstance"
    ]
    (unknown,) = refusals(root, Resolver({}))  # cannot tell: refuse
    assert "DBSubnetGroupName (from DatabaseSubnetIds)" in unknown.reason


def test_conditional_from_a_static_change_is_refused():
    conditional = s.change(
        "Modify",
        "DatabaseInstance",
        DB,
        replacement="Conditional",
        details=[s.detail("StorageType", recreation="Conditionally")],
    )
    root = one_child("DatabaseStack", [conditional])

    (r,) = refusals(root)
    assert "Replacement Conditional" in r.reason and "StorageType" in r.reason


def test_conditional_from_an_attribute_of_an_unchanged_resource_passes():
    def root_with(extra: list[dict]) -> Node:
        kms = s.detail(
            "KmsKeyId",
            recreation="Always",
            evaluation="Dynamic",
            source="ResourceAttribute",
            causing="DatabaseKey.Arn",
        )
        db = s.change("Modify", "DatabaseInstance", DB, replacement="Conditional", details=[kms])
        return one_child("DatabaseStack", [db, *extra])

    assert refusals(root_with([])) == []
    changed_key = s.change(
        "Modify",
        "DatabaseKey",
        "AWS::KMS::Key",
        replacement="True",
        details=[s.detail("KeySpec", recreation="Always")],
    )
    assert sorted(r.name for r in refusals(root_with([changed_key]))) == [
        "DatabaseStack/DatabaseInstance",
        "DatabaseStack/DatabaseKey",
    ]


def test_regenerating_a_secret_is_refused_but_other_secret_changes_pass():
    regen = one_child(
        "SecretsStack",
        [
            s.change(
                "Modify",
                "EncryptionKeySecret",
                SECRET,
                replacement="False",
                details=[s.detail("GenerateSecretString")],
            )
        ],
    )
    (r,) = refusals(regen)
    assert r.name == "SecretsStack/EncryptionKeySecret" and "new secret value" in r.reason

    described = one_child(
        "SecretsStack",
        [
            s.change(
                "Modify",
                "EncryptionKeySecret",
                SECRET,
                replacement="False",
                details=[s.detail("Description")],
            )
        ],
    )
    assert refusals(described) == []


def test_ids_repeat_across_children_so_names_carry_the_child():
    cs_a, cs_b = s.change_set_arn("a", 8), s.change_set_arn("b", 9)
    gone = [s.change("Remove", "LogGroup", LOGS)]
    root = build(
        s.change_set([s.nested("Modify", "ServiceStack", cs_a), s.nested("Modify", "NetworkStack", cs_b)]),
        {
            cs_a: s.change_set(gone, cs_id=cs_a, parent=s.ROOT_CS),
            cs_b: s.change_set(gone, cs_id=cs_b, parent=s.ROOT_CS),
        },
    )

    assert sorted(r.name for r in refusals(root)) == ["NetworkStack/LogGroup", "ServiceStack/LogGroup"]


def test_grandchildren_are_walked():
    cs_a, cs_b = s.change_set_arn("a", 8), s.change_set_arn("b", 9)
    root = build(
        s.change_set([s.nested("Modify", "Outer", cs_a)]),
        {
            cs_a: s.change_set([s.nested("Modify", "Inner", cs_b)], cs_id=cs_a, parent=s.ROOT_CS),
            cs_b: s.change_set([s.change("Remove", "Bucket", "AWS::S3::Bucket")], cs_id=cs_b, parent=cs_a),
        },
    )

    assert [r.name for r in refusals(root)] == ["Outer/Inner/Bucket"]


def test_allow_replacement_lifts_one_resource_at_a_time():
    found = [
        guard.Refusal("DatabaseStack/DatabaseInstance", DB, "x"),
        guard.Refusal("AuditLogGroup", LOGS, "y"),
    ]

    kept, lifted, unused = guard.split_allowed(found, ["DatabaseStack/DatabaseInstance", "Typo/Name"])

    assert [r.name for r in kept] == ["AuditLogGroup"]
    assert [r.name for r in lifted] == ["DatabaseStack/DatabaseInstance"]
    assert unused == ["Typo/Name"]


# ------------------------------------------------------------------------------------------
# Live values (the resolver's AWS part)
# ------------------------------------------------------------------------------------------
PLACEHOLDER = "{{IntrinsicFunction:karematch-dev/NetworkStack.Outputs.DatabaseSubnetIds/Fn::GetAtt}}"


@pytest.mark.parametrize("live_output, expected", [("subnet-1,subnet-2", False), ("subnet-9", True)])
def test_a_placeholder_is_resolved_from_an_unchanged_siblings_live_output(live_output, expected):
    cfn = boto3.client(
        "cloudformation", region_name=s.REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    root = one_child("DatabaseStack", [], params={"DatabaseSubnetIds": PLACEHOLDER})
    node = root.children["DatabaseStack"]
    with Stubber(cfn) as stub:
        stub.add_response(
            "describe_stack_resource",
            s.validated(
                "describe_stack_resource",
                {
                    "StackResourceDetail": {
                        "StackName": s.STACK,
                        "StackId": s.ROOT_ID,
                        "LogicalResourceId": "NetworkStack",
                        "PhysicalResourceId": s.nested_id("NetworkStack", 3),
                        "ResourceType": "AWS::CloudFormation::Stack",
                        "LastUpdatedTimestamp": s.T0,
                        "ResourceStatus": "UPDATE_COMPLETE",
                    }
                },
            ),
            {"StackName": s.ROOT_ID, "LogicalResourceId": "NetworkStack"},
        )
        stub.add_response(
            "describe_stacks",
            s.stack(
                "UPDATE_COMPLETE",
                name=s.nested_name("NetworkStack"),
                stack_id=s.nested_id("NetworkStack", 3),
                outputs={"DatabaseSubnetIds": live_output},
            ),
            {"StackName": s.nested_id("NetworkStack", 3)},
        )
        stub.add_response(
            "describe_stacks",
            s.stack(
                "UPDATE_COMPLETE",
                name=s.nested_name("DatabaseStack"),
                stack_id=s.nested_id("DatabaseStack"),
                params={"DatabaseSubnetIds": "subnet-1,subnet-2"},
            ),
            {"StackName": s.nested_id("DatabaseStack")},
        )
        resolver = guard.LiveResolver(cfn, {}, {})
        assert resolver.parameter_changes(node, "DatabaseSubnetIds") is expected
        stub.assert_no_pending_responses()


def test_a_placeholder_from_a_changing_sibling_is_unknown():
    cs_net, cs_db = s.change_set_arn("net", 8), s.change_set_arn("db", 9)
    vpc = s.change(
        "Modify",
        "Vpc",
        "AWS::EC2::VPC",
        replacement="True",
        details=[s.detail("CidrBlock", recreation="Always")],
    )
    root = build(
        s.change_set(
            [s.nested("Modify", "NetworkStack", cs_net), s.nested("Modify", "DatabaseStack", cs_db)]
        ),
        {
            cs_net: s.change_set([vpc], cs_id=cs_net, parent=s.ROOT_CS),
            cs_db: s.change_set(
                [],
                cs_id=cs_db,
                stack_id=s.nested_id("DatabaseStack"),
                parent=s.ROOT_CS,
                params={"DatabaseSubnetIds": PLACEHOLDER},
            ),
        },
    )
    cfn = boto3.client(
        "cloudformation", region_name=s.REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(cfn) as stub:
        stub.add_response(
            "describe_stacks",
            s.stack(
                "UPDATE_COMPLETE",
                stack_id=s.nested_id("DatabaseStack"),
                params={"DatabaseSubnetIds": "subnet-1"},
            ),
        )
        resolver = guard.LiveResolver(cfn, {}, {})
        assert resolver.parameter_changes(root.children["DatabaseStack"], "DatabaseSubnetIds") is None


def test_masked_no_echo_values_are_never_taken_as_equal():
    cfn = boto3.client(
        "cloudformation", region_name=s.REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    root = one_child("DatabaseStack", [], params={"MasterPassword": "****"})
    with Stubber(cfn) as stub:
        stub.add_response(
            "describe_stacks",
            s.stack(
                "UPDATE_COMPLETE", stack_id=s.nested_id("DatabaseStack"), params={"MasterPassword": "****"}
            ),
        )
        resolver = guard.LiveResolver(cfn, {}, {})
        assert resolver.parameter_changes(root.children["DatabaseStack"], "MasterPassword") is None


def test_root_parameters_compare_what_is_sent_with_what_is_live():
    root = build(s.change_set([]))
    live = {"DesiredCount": {"ParameterKey": "DesiredCount", "ParameterValue": "2"}}
    sent = {
        "DesiredCount": {"ParameterKey": "DesiredCount", "ParameterValue": "2"},
        "ImageTag": {"ParameterKey": "ImageTag", "UsePreviousValue": True},
    }
    resolver = guard.LiveResolver(None, sent, live)

    assert resolver.parameter_changes(root, "DesiredCount") is False
    assert resolver.parameter_changes(root, "ImageTag") is False


def test_a_new_database_url_and_ca_pass_the_guard_while_the_generated_secrets_stay_put():
    """The change set AWS shows for DatabaseCaBundlePath / verify-full: the app secret's
    SecretString (assembled from references, never generated) and the instance's CA change in
    place; the generated secrets have no change inside their child."""
    secret_cs, db_cs, app_cs = (s.change_set_arn(f"{n}-cs", 20 + i) for i, n in enumerate("sda"))
    url = s.change(
        "Modify",
        "AppSecret",
        SECRET,
        replacement="False",
        details=[
            s.detail("SecretString", source="ParameterReference", causing="DatabaseCaBundlePath"),
            s.detail("SecretString"),
        ],
    )
    ca = s.change(
        "Modify", "DatabaseInstance", DB, replacement="False", details=[s.detail("CACertificateIdentifier")]
    )

    def child(logical_id: str, cs: str, changes: list[dict]) -> dict:
        return s.change_set(
            changes,
            cs_id=cs,
            stack_id=s.nested_id(logical_id),
            stack_name=s.nested_name(logical_id),
            parent=s.ROOT_CS,
        )

    root = build(
        s.change_set(
            [
                s.nested("Modify", "SecretsStack", secret_cs),
                s.nested("Modify", "DatabaseStack", db_cs),
                s.nested("Modify", "AppSecretStack", app_cs),
            ]
        ),
        {
            secret_cs: child("SecretsStack", secret_cs, []),
            db_cs: child("DatabaseStack", db_cs, [ca]),
            app_cs: child("AppSecretStack", app_cs, [url]),
        },
    )
    assert changeset.has_changes(root)
    assert refusals(root) == []
