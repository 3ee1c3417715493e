"""The CloudFormation YAML dialect and intrinsic functions, as dunning_local.cfn reads and resolves them."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from dunning_local.cfn import CloudFormationLoader, IntrinsicResolver, merged_function_properties, references


def load(text: str) -> Any:
    return yaml.load(text, Loader=CloudFormationLoader)


def test_short_tags_become_the_long_forms() -> None:
    document = load(
        """
        ref: !Ref Table
        att: !GetAtt Table.StreamArn
        att_list: !GetAtt [Table, Arn]
        nested_att: !GetAtt Db.Endpoint.Address
        sub: !Sub "${AWS::StackName}-x"
        sub_map: !Sub ["${A}-${B}", {A: !Ref X, B: b}]
        join: !Join [",", [a, !Ref B]]
        if: !If [IsProd, 1, !Ref AWS::NoValue]
        conditions: !And [!Equals [!Ref P, ""], !Not [!Condition C], !Or [!Condition C, !Condition D]]
        select: !Select [0, !Split [",", "a,b"]]
        map: !FindInMap [M, k, v]
        azs: !GetAZs ""
        import: !ImportValue shared-x
        b64: !Base64 text
        """
    )
    assert document["ref"] == {"Ref": "Table"}
    assert document["att"] == {"Fn::GetAtt": ["Table", "StreamArn"]}
    assert document["att_list"] == {"Fn::GetAtt": ["Table", "Arn"]}
    assert document["nested_att"] == {"Fn::GetAtt": ["Db", "Endpoint.Address"]}
    assert document["sub"] == {"Fn::Sub": "${AWS::StackName}-x"}
    assert document["sub_map"] == {"Fn::Sub": ["${A}-${B}", {"A": {"Ref": "X"}, "B": "b"}]}
    assert document["join"] == {"Fn::Join": [",", ["a", {"Ref": "B"}]]}
    assert document["if"] == {"Fn::If": ["IsProd", 1, {"Ref": "AWS::NoValue"}]}
    assert document["conditions"] == {
        "Fn::And": [
            {"Fn::Equals": [{"Ref": "P"}, ""]},
            {"Fn::Not": [{"Condition": "C"}]},
            {"Fn::Or": [{"Condition": "C"}, {"Condition": "D"}]},
        ]
    }
    assert document["select"] == {"Fn::Select": [0, {"Fn::Split": [",", "a,b"]}]}
    assert document["map"] == {"Fn::FindInMap": ["M", "k", "v"]}
    assert document["azs"] == {"Fn::GetAZs": ""}
    assert document["import"] == {"Fn::ImportValue": "shared-x"}
    assert document["b64"] == {"Fn::Base64": "text"}


def test_dates_stay_strings_as_in_cloudformation() -> None:
    assert load("AWSTemplateFormatVersion: 2010-09-09")["AWSTemplateFormatVersion"] == "2010-09-09"


def test_a_get_att_without_attribute_is_an_error() -> None:
    with pytest.raises(yaml.constructor.ConstructorError, match=r"Resource\.Attribute"):
        load("x: !GetAtt Table")


def test_unknown_tags_are_still_refused() -> None:
    with pytest.raises(yaml.constructor.ConstructorError):
        load("x: !Bogus y")


TEMPLATE: dict[str, Any] = {
    "Parameters": {
        "Env": {"Type": "String", "Default": "dev"},
        "Count": {"Type": "Number", "Default": 16},
        "Names": {"Type": "CommaDelimitedList", "Default": "a,b"},
    },
    "Mappings": {"Sizes": {"dev": {"Memory": 256}}},
    "Conditions": {
        "IsDev": {"Fn::Equals": [{"Ref": "Env"}, "dev"]},
        "IsProd": {"Fn::Not": [{"Condition": "IsDev"}]},
    },
    "Resources": {"Table": {"Type": "AWS::DynamoDB::Table"}},
}


@pytest.fixture
def resolver() -> IntrinsicResolver:
    return IntrinsicResolver(
        TEMPLATE,
        parameters={"Env": "dev", "Count": "16", "Names": ["a", "b"]},
        pseudo={"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::StackName": "s"},
        ref=lambda logical_id: f"{logical_id}-name",
        get_att=lambda logical_id, attribute: f"{logical_id}-{attribute}",
    )


def test_intrinsics_resolve(resolver: IntrinsicResolver) -> None:
    value = {
        "ref": {"Ref": "Table"},
        "param": {"Ref": "Count"},
        "sub": {"Fn::Sub": "${AWS::StackName}-${Table}-${Table.Arn}-${!Literal}"},
        "sub_map": {"Fn::Sub": ["${x}/${Env}", {"x": {"Ref": "Table"}}]},
        "join": {"Fn::Join": [",", {"Ref": "Names"}]},
        "select": {"Fn::Select": ["1", {"Fn::Split": ["/", "a/b/c"]}]},
        "map": {"Fn::FindInMap": ["Sizes", {"Ref": "Env"}, "Memory"]},
        "if": {"Fn::If": ["IsProd", "big", "small"]},
        "gone": {"Fn::If": ["IsProd", "x", {"Ref": "AWS::NoValue"}]},
        "list": ["keep", {"Ref": "AWS::NoValue"}],
        "azs": {"Fn::GetAZs": ""},
        "b64": {"Fn::Base64": "hi"},
    }
    assert resolver.resolve(value) == {
        "ref": "Table-name",
        "param": "16",
        "sub": "s-Table-name-Table-Arn-${Literal}",
        "sub_map": "Table-name/dev",
        "join": "a,b",
        "select": "b",
        "map": 256,
        "if": "small",
        "list": ["keep"],
        "azs": ["us-east-1a", "us-east-1b", "us-east-1c"],
        "b64": "aGk=",
    }
    assert resolver.condition("IsDev") is True


def test_unresolvable_intrinsics_say_so(resolver: IntrinsicResolver) -> None:
    with pytest.raises(NotImplementedError, match="not resolvable locally"):
        resolver.resolve({"Fn::ImportValue": "x"})
    with pytest.raises(KeyError, match="unknown name"):
        resolver.resolve({"Ref": "Nope"})


def test_references_follow_ref_get_att_and_sub() -> None:
    value = {
        "a": {"Ref": "A"},
        "b": [{"Fn::GetAtt": ["B", "Arn"]}],
        "c": {"Fn::Sub": "${C.Arn}/${AWS::Region}/${!D}"},
    }
    assert references(value) == {"A", "B", "C", "AWS::Region"}


def test_globals_merge_like_sam() -> None:
    template = {
        "Globals": {
            "Function": {"Timeout": 30, "Layers": ["L"], "Environment": {"Variables": {"A": "1", "B": "1"}}}
        },
        "Resources": {
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"Timeout": 60, "Layers": ["M"], "Environment": {"Variables": {"B": "2"}}},
            }
        },
    }
    assert merged_function_properties(template, "Fn") == {
        "Timeout": 60,
        "Layers": ["L", "M"],
        "Environment": {"Variables": {"A": "1", "B": "2"}},
    }
