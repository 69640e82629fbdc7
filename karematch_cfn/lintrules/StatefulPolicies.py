"""E9101: every stateful resource and child stack carries explicit, data-keeping policies.

cfn-lint's I3011 skips types whose deletion needs them empty (S3 buckets) and does not list ECR
repositories; this rule covers the project's whole stateful set (``lib/policies.py``):
DeletionPolicy and UpdateReplacePolicy must both be set, and never to Delete on a data store.
"""

from __future__ import annotations

from cfnlint.rules import CloudFormationLintRule, RuleMatch

# Kept literal (not imported from karematch_cfn) so the rule loads in any cfn-lint process;
# tests/test_policies.py checks it equals karematch_cfn.lib.policies.STATEFUL_TYPES.
STATEFUL_TYPES = frozenset(
    {
        "AWS::RDS::DBInstance",
        "AWS::S3::Bucket",
        "AWS::SecretsManager::Secret",
        "AWS::Logs::LogGroup",
        "AWS::ECR::Repository",
        "AWS::KMS::Key",
        "AWS::Backup::BackupVault",
    }
)
NESTED_STACK = "AWS::CloudFormation::Stack"


class StatefulPolicies(CloudFormationLintRule):
    id = "E9101"
    shortdesc = "Stateful resources keep their data"
    description = (
        "Databases, buckets, secrets, log groups, repositories, KMS keys and backup vaults need explicit "
        "DeletionPolicy and UpdateReplacePolicy other than Delete; nested stacks need both set"
    )
    source_url = (
        "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html"
    )
    tags = ["resources", "deletionpolicy", "karematch"]  # noqa: RUF012 (cfn-lint's CloudFormationLintRule declares tags a list)

    def match(self, cfn):
        matches = []
        for name, resource in cfn.template.get("Resources", {}).items():
            rtype = resource.get("Type") if isinstance(resource, dict) else None
            if rtype not in STATEFUL_TYPES and rtype != NESTED_STACK:
                continue
            for attr in ("DeletionPolicy", "UpdateReplacePolicy"):
                value = resource.get(attr)
                if value is None:
                    matches.append(RuleMatch(["Resources", name], f"{rtype} {name} has no explicit {attr}"))
                elif rtype in STATEFUL_TYPES and value == "Delete":
                    matches.append(
                        RuleMatch(
                            ["Resources", name, attr], f"{rtype} {name} would lose its data: {attr} is Delete"
                        )
                    )
        return matches
