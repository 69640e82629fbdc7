"""Identity policies across all templates: current policy language, wildcard resources only for
the actions AWS authorises nowhere narrower (karematch_cfn.lib.iam.WILDCARD_ACTIONS)."""

from __future__ import annotations

from karematch_cfn.lib import iam
from tests import helpers


def _identity_documents():
    """(where, document) for every role trust policy, inline policy and managed policy."""
    for filename in helpers.rendered_text():
        for logical_id, res in helpers.template(filename).get("Resources", {}).items():
            p = res.get("Properties", {})
            where = f"{filename}/{logical_id}"
            if res["Type"] == "AWS::IAM::Role":
                yield where + " trust", p["AssumeRolePolicyDocument"]
                for pol in p.get("Policies", []):
                    for branch in _branches(pol):
                        yield f"{where} {branch['PolicyName']}", branch["PolicyDocument"]
            elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                yield where, p["PolicyDocument"]


def _branches(node):
    """Both outcomes of an Fn::If (AWS::NoValue dropped), or the node itself."""
    if isinstance(node, dict) and "Fn::If" in node:
        for branch in node["Fn::If"][1:]:
            yield from _branches(branch)
    elif not (isinstance(node, dict) and node.get("Ref") == "AWS::NoValue"):
        yield node


def _statements(doc):
    if isinstance(doc, dict) and "Fn::If" in doc:  # conditional documents: check both branches
        for branch in doc["Fn::If"][1:]:
            yield from _statements(branch)
        return
    yield from doc.get("Statement", [])


def _as_list(x):
    return x if isinstance(x, list) else [x]


def test_policy_documents_use_the_current_language_version():
    docs = list(_identity_documents())
    assert docs, "no IAM documents found"
    for where, doc in docs:
        if isinstance(doc, dict) and "Statement" in doc:
            assert doc.get("Version") == iam.VERSION, where


def test_wildcard_resources_only_for_allowlisted_actions():
    for where, doc in _identity_documents():
        for st in _statements(doc):
            if st.get("Effect") != "Allow" or "Resource" not in st:
                continue
            if "*" in _as_list(st["Resource"]):
                actions = set(_as_list(st["Action"]))
                assert actions <= iam.WILDCARD_ACTIONS, (
                    f"{where}: {sorted(actions - iam.WILDCARD_ACTIONS)} on *"
                )


def test_no_allow_of_every_action():
    for where, doc in _identity_documents():
        for st in _statements(doc):
            for action in _as_list(st.get("Action", [])):
                assert (action != "*" and not str(action).endswith(":*")) or st.get("Effect") == "Deny", (
                    f"{where}: {action}"
                )
