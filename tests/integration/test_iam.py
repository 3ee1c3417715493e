"""Least privilege in the deployed (SAM-transformed) template: no wildcard beyond the documented ones.

Every policy document of the transformed template is scanned: role policies (ours and the ones SAM
generates, e.g. for the schedules), key policies, topic and queue policies. A statement may use a
wildcard action or a wildcard resource only if it is listed in ``DOCUMENTED_EXCEPTIONS`` below, with
the reason. A ``*`` after a specific table (``<table arn>/stream/*``) is not a wildcard grant.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from dunning_local.cfn import load_template, sam_transform

FUNCTION_ROLES = ("IndexerRole", "PlannerRole", "SenderRole", "ReceiptsRole", "InboundRole", "ReconcileRole")
_ARN = "arn:${AWS::Partition}"
_HERE = "${AWS::Region}:${AWS::AccountId}"


@dataclass(frozen=True)
class Allowed:
    holders: tuple[str, ...]
    actions: frozenset[str]
    resource: str
    reason: str


DOCUMENTED_EXCEPTIONS = (
    Allowed(
        FUNCTION_ROLES,
        frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"}),
        "*",
        "X-Ray has no resource-level permissions (Tracing: Active)",
    ),
    Allowed(
        ("InboundRole", "ReconcileRole"),
        frozenset({"sns:Publish"}),
        "*",
        "an SMS to a phone number (STOP/HELP/START replies, and the confirmations still owed that the "
        "sweep completes) has no resource ARN",
    ),
    Allowed(
        ("SenderRole",),
        frozenset({"sns:Publish"}),
        "* except arn:${AWS::Partition}:sns:*:*:*",
        "an SMS to a phone number (reminders) has no resource ARN; NotResource keeps the statement off "
        "every topic, endpoint and application",
    ),
    Allowed(
        ("SenderRole",),
        frozenset({"sns:Publish"}),
        f"{_ARN}:sns:{_HERE}:endpoint/${{ApnsPlatform}}/${{ApnsAppName}}/*",
        "push endpoints are created per device at run time, under the stack's APNS application",
    ),
    Allowed(
        ("SenderRole",),
        frozenset({"sns:Publish"}),
        f"{_ARN}:sns:{_HERE}:endpoint/GCM/${{FcmAppName}}/*",
        "push endpoints are created per device at run time, under the stack's FCM application",
    ),
    Allowed(
        ("DeliveryStatusRole",),
        frozenset(
            {
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "logs:PutMetricFilter",
                "logs:PutRetentionPolicy",
            }
        ),
        f"{_ARN}:logs:{_HERE}:log-group:sns/*",
        "SNS names its delivery-status log groups itself, all under sns/<region>/<account>/",
    ),
    Allowed(
        ("TopicKey", "DeliveryLogKey"),
        frozenset({"kms:*"}),
        "*",
        "the default key policy statement for the account root: it lets IAM policies grant use of the "
        "key and keeps the key administrable; in a key policy '*' means this key",
    ),
    Allowed(
        ("TopicKey",),
        frozenset({"kms:Decrypt", "kms:GenerateDataKey"}),
        "*",
        "in a key policy '*' means this key: CloudWatch alarms and End User Messaging publish to the "
        "encrypted topics",
    ),
    Allowed(
        ("DeliveryLogKey",),
        frozenset(
            {
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncryptFrom",
                "kms:ReEncryptTo",
                "kms:GenerateDataKey",
                "kms:GenerateDataKeyWithoutPlaintext",
                "kms:DescribeKey",
            }
        ),
        "*",
        "in a key policy '*' means this key: CloudWatch Logs encrypts the sns/ delivery-status groups "
        "(the condition names them)",
    ),
)

# "<specific table ARN>/stream/*" or ".../index/*": all sub-resources of one named resource.
_SUB_RESOURCES = re.compile(r"^\$\{[A-Za-z0-9]+\.Arn\}/(stream|index)/\*$")


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    return sam_transform(load_template())


def render(value: Any) -> str:
    """A resource value as text with references kept symbolic (``${Table.Arn}``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Fn::Sub":
            return arg if isinstance(arg, str) else arg[0]
        if key == "Fn::GetAtt":
            target, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return f"${{{target}.{attribute}}}"
        if key == "Ref":
            return f"${{{arg}}}"
        if key == "Fn::Join":
            return arg[0].join(render(part) for part in arg[1])
    return json.dumps(value, sort_keys=True)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Grant:
    holder: str
    sid: str
    effect: str
    actions: frozenset[str]
    resources: tuple[str, ...]


def grants(template: dict[str, Any]) -> Iterator[Grant]:
    """Every statement of every policy document in the template, with who holds it."""
    for logical_id, resource in template["Resources"].items():
        kind, properties = resource["Type"], resource.get("Properties", {})
        documents = []
        if kind == "AWS::IAM::Role":
            documents = [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
        elif kind in (
            "AWS::IAM::Policy",
            "AWS::IAM::ManagedPolicy",
            "AWS::SQS::QueuePolicy",
            "AWS::SNS::TopicPolicy",
        ):
            documents = [properties["PolicyDocument"]]
        elif kind == "AWS::KMS::Key":
            documents = [properties["KeyPolicy"]]
        for document in documents:
            for statement in _as_list(document["Statement"]):
                assert "NotAction" not in statement, (logical_id, statement)
                if "NotResource" in statement:
                    # "Everything except …": counted as a wildcard grant, so it must be documented.
                    excluded = ", ".join(render(r) for r in _as_list(statement["NotResource"]))
                    resources: tuple[str, ...] = (f"* except {excluded}",)
                else:
                    resources = tuple(render(r) for r in _as_list(statement["Resource"]))
                yield Grant(
                    holder=logical_id,
                    sid=statement.get("Sid", ""),
                    effect=statement["Effect"],
                    actions=frozenset(_as_list(statement["Action"])),
                    resources=resources,
                )


def _documented(grant: Grant, resource: str) -> bool:
    return any(
        grant.holder in allowed.holders and grant.actions <= allowed.actions and resource == allowed.resource
        for allowed in DOCUMENTED_EXCEPTIONS
    )


def test_no_wildcard_grant_beyond_the_documented_exceptions(transformed: dict[str, Any]) -> None:
    found = list(grants(transformed))
    assert found
    problems = []
    for grant in found:
        if grant.effect != "Allow":
            continue
        wildcard_action = any("*" in action for action in grant.actions)
        for resource in grant.resources:
            wildcard_resource = "*" in resource and not _SUB_RESOURCES.match(resource)
            if (wildcard_action or wildcard_resource) and not _documented(grant, resource):
                problems.append(f"{grant.holder} {grant.sid}: {sorted(grant.actions)} on {resource}")
    assert not problems, "undocumented wildcard grants:\n" + "\n".join(problems)


def test_every_documented_exception_is_still_needed(transformed: dict[str, Any]) -> None:
    found = list(grants(transformed))
    for allowed in DOCUMENTED_EXCEPTIONS:
        assert any(
            g.holder in allowed.holders and g.actions <= allowed.actions and allowed.resource in g.resources
            for g in found
        ), allowed.reason


def test_roles_carry_no_managed_policies(transformed: dict[str, Any]) -> None:
    # AWS managed policies (basic execution, X-Ray, SQS/stream pollers) are all on "*".
    for logical_id, resource in transformed["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            assert not resource["Properties"].get("ManagedPolicyArns"), logical_id


def test_roles_are_assumable_only_by_their_service(transformed: dict[str, Any]) -> None:
    expected = {role: "lambda.amazonaws.com" for role in FUNCTION_ROLES} | {
        "DeliveryStatusRole": "sns.amazonaws.com"
    }
    roles = {lid: r for lid, r in transformed["Resources"].items() if r["Type"] == "AWS::IAM::Role"}
    for logical_id, role in roles.items():
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        services = _as_list(statement["Principal"]["Service"])
        assert services == [expected.get(logical_id, "scheduler.amazonaws.com")], logical_id


def _actions_by_resource(template: dict[str, Any], role: str) -> dict[str, set[str]]:
    by_resource: dict[str, set[str]] = defaultdict(set)
    for grant in grants(template):
        if grant.holder == role and grant.effect == "Allow":
            for resource in grant.resources:
                by_resource[resource] |= grant.actions
    return dict(by_resource)


def test_the_sender_gets_exactly_what_sending_needs(transformed: dict[str, Any]) -> None:
    granted = _actions_by_resource(transformed, "SenderRole")
    dynamodb = {
        resource: actions
        for resource, actions in granted.items()
        if any(a.startswith("dynamodb:") for a in actions)
    }
    assert dynamodb == {
        "${LoansTable.Arn}": {"dynamodb:GetItem", "dynamodb:BatchGetItem"},
        "${BorrowersTable.Arn}": {"dynamodb:GetItem", "dynamodb:BatchGetItem"},
        "${StateTable.Arn}": {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem"},
        "${LedgerTable.Arn}": {"dynamodb:PutItem", "dynamodb:BatchWriteItem"},
    }
    consume = {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
    }
    assert granted["${SmsQueue.Arn}"] == consume
    assert granted["${PushQueue.Arn}"] == consume
    assert granted["*"] == {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    assert granted["* except arn:${AWS::Partition}:sns:*:*:*"] == {"sns:Publish"}, "texts, but no topic"
    assert granted["${SenderLogGroup.Arn}"] == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert not any(a.startswith(("kms:", "sqs:SendMessage")) for actions in granted.values() for a in actions)


def test_the_lenders_tables_are_read_only_for_every_function(transformed: dict[str, Any]) -> None:
    reads = {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan"}
    stream = {
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    }
    for role in FUNCTION_ROLES:
        for resource, actions in _actions_by_resource(transformed, role).items():
            if resource.startswith(("${LoansTable.", "${BorrowersTable.")):
                assert actions <= reads | stream, (role, resource, actions)


def test_only_the_reconcile_sweep_scans_and_only_the_loans(transformed: dict[str, Any]) -> None:
    for role in FUNCTION_ROLES:
        for resource, actions in _actions_by_resource(transformed, role).items():
            if "dynamodb:Scan" in actions:
                assert (role, resource) == ("ReconcileRole", "${LoansTable.Arn}")


def test_publishers_to_encrypted_topics_may_use_the_key_and_nobody_else(transformed: dict[str, Any]) -> None:
    holders = {g.holder for g in grants(transformed) if any(a.startswith("kms:") for a in g.actions)}
    # DeliveryLogKey's own policy (CloudWatch Logs, for the delivery-status groups) is not about topics.
    assert holders == {"PlannerRole", "InboundRole", "TopicKey", "DeliveryLogKey"}
    for role in ("PlannerRole", "InboundRole"):
        assert _actions_by_resource(transformed, role)["${TopicKey.Arn}"] == {
            "kms:GenerateDataKey",
            "kms:Decrypt",
        }


def test_every_lambda_permission_names_its_source(transformed: dict[str, Any]) -> None:
    for logical_id, resource in transformed["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Permission":
            assert "SourceArn" in resource["Properties"], logical_id
