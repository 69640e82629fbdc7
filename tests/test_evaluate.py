"""The template evaluator the loader and the behaviour tests rely on."""

from __future__ import annotations

from karematch_cfn import evaluate

T = {
    "Parameters": {"Env": {"Type": "String"}, "Cert": {"Type": "String", "Default": ""}},
    "Conditions": {
        "IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
        "HasCert": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Cert"}, ""]}]},
        "ProdWithCert": {"Fn::And": [{"Condition": "IsProd"}, {"Condition": "HasCert"}]},
    },
    "Resources": {
        "Always": {
            "Type": "X",
            "Properties": {
                "A": {"Fn::If": ["IsProd", 1, {"Ref": "AWS::NoValue"}]},
                "B": {"Ref": "Env"},
                "C": {"Ref": "Always"},
            },
        },
        "Secure": {"Type": "Y", "Condition": "ProdWithCert"},
    },
    "Outputs": {"O": {"Condition": "HasCert", "Value": "x"}},
}


def test_conditions_reference_each_other_and_defaults_apply():
    assert evaluate.conditions(T, evaluate.effective_parameters(T, {"Env": "prod"})) == {
        "IsProd": True,
        "HasCert": False,
        "ProdWithCert": False,
    }


def test_resolve_drops_false_resources_and_novalue_and_substitutes_parameters():
    dev = evaluate.resolve(T, {"Env": "dev"})
    assert dev["Resources"]["Always"]["Properties"] == {"B": "dev", "C": {"Ref": "Always"}}
    assert "Secure" not in dev["Resources"] and dev["Outputs"] == {}
    prod = evaluate.resolve(T, {"Env": "prod", "Cert": "arn"})
    assert prod["Resources"]["Always"]["Properties"]["A"] == 1
    assert "Secure" in prod["Resources"] and "O" in prod["Outputs"]


def test_find_in_map_over_a_pseudo_parameter_in_conditions():
    t = {
        "Mappings": {"Accounts": {"us-east-1": {"Id": "127311923021"}, "ap-southeast-5": {"Id": "none"}}},
        "Conditions": {
            "HasAccount": {
                "Fn::Not": [
                    {"Fn::Equals": [{"Fn::FindInMap": ["Accounts", {"Ref": "AWS::Region"}, "Id"]}, "none"]}
                ]
            }
        },
    }
    assert evaluate.conditions(t, evaluate.effective_parameters(t, {"AWS::Region": "us-east-1"})) == {
        "HasAccount": True
    }
    assert evaluate.conditions(t, evaluate.effective_parameters(t, {"AWS::Region": "ap-southeast-5"})) == {
        "HasAccount": False
    }
