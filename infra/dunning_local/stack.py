"""The template's tables, queues, topics and subscriptions, created on whatever endpoint boto3 points at.

``build_local_stack`` reads template.yaml and creates, with the same key schemas, indexes, streams,
TTL, redrive policies, filter policies and raw delivery, every ``AWS::DynamoDB::Table``,
``AWS::SQS::Queue``, ``AWS::SNS::Topic`` and ``AWS::SNS::Subscription`` (SQS protocol) of it: on moto
in-process (``moto.mock_aws()``, tests and the demo) or on a running moto_server. Nothing here knows a
key schema; the template is the only description of the resources.

Names are the template's own when it sets one, else ``<prefix>-<LogicalId>`` (the local stand-in for
CloudFormation's generated names); ``AWS::StackName`` is the prefix. Resources that are not created
locally (functions, roles, log groups, keys) still resolve to stable names and ARNs, so a function's
environment can be computed exactly as CloudFormation would fill it in.

``python -m dunning_local.stack`` creates the stack on moto_server and prints the functions'
environments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dunning_local.cfn import (
    TEMPLATE_PATH,
    IntrinsicResolver,
    Template,
    load_template,
    merged_function_properties,
    parameter_values,
)

DEFAULT_PREFIX = "dunning-local"
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_ENDPOINT = "http://127.0.0.1:5000"

TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
TOPIC = "AWS::SNS::Topic"
SUBSCRIPTION = "AWS::SNS::Subscription"
FUNCTION = "AWS::Serverless::Function"
CREATED_TYPES = (TABLE, QUEUE, TOPIC, SUBSCRIPTION)

# Subscriptions of other protocols need something that does not exist locally (a Lambda function, a
# confirmed e-mail address); SAM's function events are not resources of the raw template at all.
_LOCAL_PROTOCOLS = {"sqs"}

_QUEUE_JSON_ATTRIBUTES = {"RedrivePolicy", "RedriveAllowPolicy"}
_QUEUE_ATTRIBUTES = {
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
} | _QUEUE_JSON_ATTRIBUTES
_TOPIC_ATTRIBUTES = {
    "DisplayName",
    "KmsMasterKeyId",
    "FifoTopic",
    "ContentBasedDeduplication",
    "SignatureVersion",
}
_SUBSCRIPTION_JSON_ATTRIBUTES = {"FilterPolicy", "RedrivePolicy", "DeliveryPolicy", "ReplayPolicy"}
_SUBSCRIPTION_ATTRIBUTES = {"RawMessageDelivery", "FilterPolicyScope", "SubscriptionRoleArn"}


@dataclass(frozen=True)
class LocalResource:
    """One created resource: what ``Ref`` gives and the ``Fn::GetAtt`` attributes."""

    logical_id: str
    type: str
    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass
class LocalStack:
    """The template's resources as created locally, and the template to answer questions with."""

    template: Template
    prefix: str
    region: str
    account_id: str
    parameters: dict[str, Any]
    resources: dict[str, LocalResource]
    skipped: dict[str, str]
    resolver: IntrinsicResolver = field(repr=False)

    # -- what was created, by logical id --------------------------------------------------------
    @property
    def tables(self) -> dict[str, str]:
        """Table names by logical id."""
        return self._refs(TABLE)

    @property
    def queues(self) -> dict[str, str]:
        """Queue URLs by logical id."""
        return self._refs(QUEUE)

    @property
    def topics(self) -> dict[str, str]:
        """Topic ARNs by logical id."""
        return self._refs(TOPIC)

    @property
    def subscriptions(self) -> dict[str, str]:
        """Subscription ARNs by logical id."""
        return self._refs(SUBSCRIPTION)

    def _refs(self, kind: str) -> dict[str, str]:
        return {lid: res.ref for lid, res in self.resources.items() if res.type == kind}

    def ref(self, logical_id: str) -> Any:
        """``Ref`` of a resource or parameter, as CloudFormation would give it."""
        return self.resolver.ref(logical_id)

    def get_att(self, logical_id: str, attribute: str) -> Any:
        """``Fn::GetAtt`` of a resource."""
        return self.resolver.resolve({"Fn::GetAtt": [logical_id, attribute]})

    def resolve(self, value: Any) -> Any:
        """Any template value with its intrinsic functions evaluated against this stack."""
        return self.resolver.resolve(value)

    # -- functions ----------------------------------------------------------------------------------
    @property
    def function_ids(self) -> list[str]:
        return [lid for lid, res in self.template["Resources"].items() if res.get("Type") == FUNCTION]

    def function_logical_id(self, name: str) -> str:
        """The logical id of a function given as logical id, CodeUri folder name or function name."""
        for lid in self.function_ids:
            props = merged_function_properties(self.template, lid)
            code_dir = Path(str(props.get("CodeUri", ""))).name
            if name in (lid, code_dir, self.ref(lid)):
                return lid
        raise KeyError(f"no function {name!r} in the template (known: {', '.join(self.function_ids)})")

    def function_properties(self, logical_id: str) -> dict[str, Any]:
        """The function's properties with Globals merged in, intrinsic functions not evaluated."""
        return merged_function_properties(self.template, logical_id)

    def function_environment(
        self, logical_id: str, overrides: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The function's environment variables (Globals merged) resolved against this stack.

        ``Ref``/``Fn::GetAtt`` give the local resources, parameters their defaults unless overridden
        when the stack was built; ``overrides`` replace single variables last.
        """
        variables = self.function_properties(logical_id).get("Environment", {}).get("Variables", {})
        environment = {name: _as_env_value(value) for name, value in self.resolve(variables).items()}
        environment.update(overrides or {})
        return environment


def _as_env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        raise ValueError(f"environment values must be scalars, got {value!r}")
    return str(value)


def local_clients(endpoint_url: str | None = None, region: str = DEFAULT_REGION) -> dict[str, Any]:
    """boto3 clients for the services the local stack uses, optionally on an explicit endpoint."""
    import boto3

    session = boto3.Session(region_name=region)
    return {
        name: session.client(name, endpoint_url=endpoint_url) for name in ("dynamodb", "sqs", "sns", "sts")
    }


def build_local_stack(
    session_or_clients: Any,
    template_path: str | Path = TEMPLATE_PATH,
    prefix: str = DEFAULT_PREFIX,
    *,
    parameters: Mapping[str, Any] | None = None,
    template: Template | None = None,
) -> LocalStack:
    """Create the template's tables, queues, topics and SQS subscriptions; return them resolved.

    ``session_or_clients`` is a ``boto3.Session`` or a mapping of clients by service name
    (``dynamodb``, ``sqs``, ``sns``; ``sts`` optional, to learn the account id). Running it twice
    against the same endpoint finds the existing resources instead of failing, so moto_server can be
    reused; a table that exists with other keys is an error (reset moto_server).
    """
    clients = _clients(session_or_clients)
    region = clients["sns"].meta.region_name or DEFAULT_REGION
    account_id = _account_id(clients)
    template = template if template is not None else load_template(template_path)
    builder = _Builder(template, clients, prefix, region, account_id, parameter_values(template, parameters))
    return builder.build()


def _clients(session_or_clients: Any) -> dict[str, Any]:
    if isinstance(session_or_clients, Mapping):
        missing = {"dynamodb", "sqs", "sns"} - set(session_or_clients)
        if missing:
            raise ValueError(f"clients missing for {sorted(missing)}")
        return dict(session_or_clients)
    return {name: session_or_clients.client(name) for name in ("dynamodb", "sqs", "sns", "sts")}


def _account_id(clients: Mapping[str, Any]) -> str:
    sts = clients.get("sts")
    return str(sts.get_caller_identity()["Account"]) if sts is not None else DEFAULT_ACCOUNT


class _Builder:
    def __init__(
        self,
        template: Template,
        clients: Mapping[str, Any],
        prefix: str,
        region: str,
        account_id: str,
        parameters: dict[str, Any],
    ) -> None:
        self.template = template
        self.clients = clients
        self.prefix = prefix
        self.region = region
        self.account_id = account_id
        self.parameters = parameters
        self.partition = "aws-cn" if region.startswith("cn-") else "aws"
        self.created: dict[str, LocalResource] = {}
        self.skipped: dict[str, str] = {}
        self._in_progress: set[str] = set()
        self.resolver = IntrinsicResolver(
            template,
            parameters=parameters,
            pseudo={
                "AWS::AccountId": account_id,
                "AWS::Region": region,
                "AWS::Partition": self.partition,
                "AWS::StackName": prefix,
                "AWS::StackId": f"arn:{self.partition}:cloudformation:{region}:{account_id}:stack/{prefix}/"
                + str(uuid.uuid5(uuid.NAMESPACE_URL, prefix)),
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::NotificationARNs": [],
            },
            ref=self._ref,
            get_att=self._get_att,
        )

    def build(self) -> LocalStack:
        for logical_id, resource in self.template["Resources"].items():
            if resource.get("Type") in CREATED_TYPES:
                self._ensure(logical_id)
        return LocalStack(
            template=self.template,
            prefix=self.prefix,
            region=self.region,
            account_id=self.account_id,
            parameters=self.parameters,
            resources=dict(self.created),
            skipped=dict(self.skipped),
            resolver=self.resolver,
        )

    # -- references -------------------------------------------------------------------------------
    def _resource(self, logical_id: str) -> dict[str, Any]:
        try:
            resource: dict[str, Any] = self.template["Resources"][logical_id]
        except KeyError:
            raise KeyError(f"no resource {logical_id!r} in the template") from None
        return resource

    def _ref(self, logical_id: str) -> str:
        if self._resource(logical_id).get("Type") in CREATED_TYPES:
            return self._created(logical_id).ref
        return self._not_created(logical_id)["Ref"]

    def _get_att(self, logical_id: str, attribute: str) -> str:
        if self._resource(logical_id).get("Type") in CREATED_TYPES:
            attributes = self._created(logical_id).attributes
        else:
            attributes = self._not_created(logical_id)
        if attribute not in attributes:
            raise KeyError(
                f"{logical_id} has no attribute {attribute!r} locally (known: {sorted(attributes)})"
            )
        return attributes[attribute]

    def _name(self, logical_id: str, name_property: str | None) -> str:
        props = self._resource(logical_id).get("Properties", {})
        if name_property and name_property in props:
            return str(self.resolver.resolve(props[name_property]))
        return f"{self.prefix}-{logical_id}"

    def _arn(self, service: str, resource: str, *, region: bool = True) -> str:
        where = f"{self.region}:{self.account_id}" if region else f":{self.account_id}"
        return f"arn:{self.partition}:{service}:{where}:{resource}"

    def _not_created(self, logical_id: str) -> dict[str, str]:
        """Stable stand-in values for resources that only exist in AWS, named as the template names them."""
        kind = self._resource(logical_id).get("Type")
        if kind == FUNCTION:
            name = self._name(logical_id, "FunctionName")
            return {"Ref": name, "Arn": self._arn("lambda", f"function:{name}")}
        if kind == "AWS::Logs::LogGroup":
            name = self._name(logical_id, "LogGroupName")
            return {"Ref": name, "Arn": self._arn("logs", f"log-group:{name}:*")}
        if kind == "AWS::IAM::Role":
            name = self._name(logical_id, "RoleName")
            return {"Ref": name, "Arn": self._arn("iam", f"role/{name}", region=False), "RoleId": name}
        if kind == "AWS::KMS::Key":
            key_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.prefix}/{logical_id}"))
            return {"Ref": key_id, "Arn": self._arn("kms", f"key/{key_id}"), "KeyId": key_id}
        if kind == "AWS::Serverless::LayerVersion":
            name = self._name(logical_id, "LayerName")
            return {"Ref": self._arn("lambda", f"layer:{name}:1")}
        raise NotImplementedError(f"{logical_id} ({kind}) has no local stand-in; add one in stack.py")

    # -- creation ---------------------------------------------------------------------------------
    def _created(self, logical_id: str) -> LocalResource:
        created = self._ensure(logical_id)
        if created is None:
            raise KeyError(f"{logical_id} is not created locally: {self.skipped[logical_id]}")
        return created

    def _ensure(self, logical_id: str) -> LocalResource | None:
        if logical_id in self.created or logical_id in self.skipped:
            return self.created.get(logical_id)
        if logical_id in self._in_progress:
            raise ValueError(f"circular reference through {logical_id}")
        if not self.resolver.resource_enabled(logical_id):
            self.skipped[logical_id] = "its condition is false"
            return None
        self._in_progress.add(logical_id)
        try:
            resource = self._resource(logical_id)
            properties = self.resolver.resolve(resource.get("Properties", {}))
            create = {
                TABLE: self._table,
                QUEUE: self._queue,
                TOPIC: self._topic,
                SUBSCRIPTION: self._subscription,
            }[resource["Type"]]
            created = create(logical_id, properties)
        finally:
            self._in_progress.discard(logical_id)
        if created is not None:
            self.created[logical_id] = created
        return created

    def _table(self, logical_id: str, props: dict[str, Any]) -> LocalResource:
        dynamodb = self.clients["dynamodb"]
        name = props.get("TableName") or f"{self.prefix}-{logical_id}"
        request = table_request(name, props)
        try:
            description = dynamodb.describe_table(TableName=name)["Table"]
        except dynamodb.exceptions.ResourceNotFoundException:
            description = dynamodb.create_table(**request)["TableDescription"]
        else:
            _check_same_keys(name, request, description)
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            status = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            if status.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                dynamodb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
                )
        pitr = props.get("PointInTimeRecoverySpecification", {})
        if pitr.get("PointInTimeRecoveryEnabled"):
            dynamodb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        attributes = {"Arn": description["TableArn"]}
        if description.get("LatestStreamArn"):
            attributes["StreamArn"] = description["LatestStreamArn"]
        return LocalResource(logical_id, TABLE, name, attributes)

    def _queue(self, logical_id: str, props: dict[str, Any]) -> LocalResource:
        sqs = self.clients["sqs"]
        name = props.get("QueueName") or f"{self.prefix}-{logical_id}" + (
            ".fifo" if props.get("FifoQueue") else ""
        )
        attributes = queue_attributes(props)
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except sqs.exceptions.QueueDoesNotExist:
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        else:
            mutable = {key: value for key, value in attributes.items() if key != "FifoQueue"}
            if mutable:
                sqs.set_queue_attributes(QueueUrl=url, Attributes=mutable)
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return LocalResource(logical_id, QUEUE, url, {"Arn": arn, "QueueName": name, "QueueUrl": url})

    def _topic(self, logical_id: str, props: dict[str, Any]) -> LocalResource:
        sns = self.clients["sns"]
        name = props.get("TopicName") or f"{self.prefix}-{logical_id}" + (
            ".fifo" if props.get("FifoTopic") else ""
        )
        attributes = {key: _attribute_value(props[key]) for key in _TOPIC_ATTRIBUTES if key in props}
        arn = sns.create_topic(Name=name, Attributes=attributes)["TopicArn"]
        for inline in props.get("Subscription", []):
            if inline.get("Protocol") in _LOCAL_PROTOCOLS:
                self._subscribe(arn, inline["Protocol"], inline["Endpoint"], {})
        return LocalResource(logical_id, TOPIC, arn, {"TopicArn": arn, "TopicName": name})

    def _subscription(self, logical_id: str, props: dict[str, Any]) -> LocalResource | None:
        protocol = props.get("Protocol", "")
        if protocol not in _LOCAL_PROTOCOLS:
            self.skipped[logical_id] = f"protocol {protocol!r} has no local endpoint"
            return None
        attributes: dict[str, str] = {}
        for key in _SUBSCRIPTION_ATTRIBUTES & set(props):
            attributes[key] = _attribute_value(props[key])
        for key in _SUBSCRIPTION_JSON_ATTRIBUTES & set(props):
            value = props[key]
            attributes[key] = value if isinstance(value, str) else json.dumps(value)
        arn = self._subscribe(props["TopicArn"], protocol, props["Endpoint"], attributes)
        return LocalResource(logical_id, SUBSCRIPTION, arn, {})

    def _subscribe(self, topic_arn: str, protocol: str, endpoint: str, attributes: dict[str, str]) -> str:
        sns = self.clients["sns"]
        for existing in sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]:
            if existing["Protocol"] == protocol and existing["Endpoint"] == endpoint:
                arn = str(existing["SubscriptionArn"])
                for key, value in attributes.items():
                    sns.set_subscription_attributes(
                        SubscriptionArn=arn, AttributeName=key, AttributeValue=value
                    )
                return arn
        response = sns.subscribe(
            TopicArn=topic_arn,
            Protocol=protocol,
            Endpoint=endpoint,
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )
        return str(response["SubscriptionArn"])


def table_request(name: str, props: Mapping[str, Any]) -> dict[str, Any]:
    """The CreateTable request for an ``AWS::DynamoDB::Table``'s resolved properties."""
    billing = props.get("BillingMode", "PROVISIONED")
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": billing,
    }
    if billing == "PROVISIONED":
        request["ProvisionedThroughput"] = _throughput(props["ProvisionedThroughput"])
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        indexes = []
        for index in props.get(kind, []):
            entry = {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
            if "ProvisionedThroughput" in index and billing == "PROVISIONED":
                entry["ProvisionedThroughput"] = _throughput(index["ProvisionedThroughput"])
            indexes.append(entry)
        if indexes:
            request[kind] = indexes
    stream = props.get("StreamSpecification")
    if stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    sse = props.get("SSESpecification")
    if sse:
        request["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled"))}
        if sse.get("SSEType"):
            request["SSESpecification"]["SSEType"] = sse["SSEType"]
        if sse.get("KMSMasterKeyId"):
            request["SSESpecification"]["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
    return request


def _throughput(spec: Mapping[str, Any]) -> dict[str, int]:
    return {key: int(spec[key]) for key in ("ReadCapacityUnits", "WriteCapacityUnits")}


def _check_same_keys(name: str, request: Mapping[str, Any], description: Mapping[str, Any]) -> None:
    def indexes(source: Mapping[str, Any]) -> dict[str, Any]:
        return {index["IndexName"]: index["KeySchema"] for index in source.get("GlobalSecondaryIndexes", [])}

    if request["KeySchema"] != description["KeySchema"] or indexes(request) != indexes(description):
        raise RuntimeError(
            f"table {name} already exists with other keys or indexes than template.yaml gives; "
            "reset the endpoint (moto_server: POST /moto-api/reset) or use another prefix"
        )


def queue_attributes(props: Mapping[str, Any]) -> dict[str, str]:
    """The SQS CreateQueue attributes for an ``AWS::SQS::Queue``'s resolved properties."""
    attributes: dict[str, str] = {}
    for key in _QUEUE_ATTRIBUTES & set(props):
        value = props[key]
        if key in _QUEUE_JSON_ATTRIBUTES and not isinstance(value, str):
            attributes[key] = json.dumps(value)
        else:
            attributes[key] = _attribute_value(value)
    return attributes


def _attribute_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def seed_tables(stack: LocalStack, dynamodb: Any, items: Mapping[str, Sequence[Mapping[str, Any]]]) -> int:
    """Put items (DynamoDB JSON, keyed by table logical id, e.g. events/seed.json) into the stack's tables.

    Returns how many items were written.
    """
    written = 0
    for logical_id, table_items in items.items():
        table = stack.tables[logical_id]
        for start in range(0, len(table_items), 25):
            chunk = [{"PutRequest": {"Item": dict(item)}} for item in table_items[start : start + 25]]
            pending: dict[str, Any] = {table: chunk}
            while pending:
                pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            written += len(chunk)
    return written


# ---------------------------------------------------------------------------------------------------
# python -m dunning_local.stack


def environments(stack: LocalStack, endpoint_url: str | None) -> dict[str, dict[str, str]]:
    """Every function's environment, pointed at ``endpoint_url`` (none: boto3's default endpoints)."""
    overrides = {"AWS_ENDPOINT_URL": endpoint_url} if endpoint_url else {}
    return {lid: stack.function_environment(lid, overrides) for lid in stack.function_ids}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dunning_local.stack",
        description="Create template.yaml's tables, queues, topics and subscriptions on moto_server "
        "and print the functions' environments.",
    )
    parser.add_argument("--endpoint", default=DEFAULT_ENDPOINT, help="moto_server URL (default %(default)s)")
    parser.add_argument("--region", default=DEFAULT_REGION)
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="stands for the stack name")
    parser.add_argument("--template", default=str(TEMPLATE_PATH))
    parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--function", help="print only this function's environment as shell exports")
    parser.add_argument("--seed", type=Path, help="put these items into the tables (e.g. events/seed.json)")
    args = parser.parse_args(argv)

    parameters = dict(item.split("=", 1) for item in args.parameter)
    # moto_server accepts any credentials: the local stack needs no AWS account (real ones still win).
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    clients = local_clients(args.endpoint, args.region)
    stack = build_local_stack(clients, args.template, args.prefix, parameters=parameters)
    if args.seed:
        written = seed_tables(stack, clients["dynamodb"], json.loads(args.seed.read_text(encoding="utf-8")))
        print(f"seeded {written} items from {args.seed}", file=sys.stderr)
    if args.function:
        lid = stack.function_logical_id(args.function)
        for name, value in environments(stack, args.endpoint)[lid].items():
            print(f"export {name}={_shell_quote(value)}")
        return 0
    document = {
        "endpoint": args.endpoint,
        "tables": stack.tables,
        "queues": stack.queues,
        "topics": stack.topics,
        "subscriptions": stack.subscriptions,
        "functions": environments(stack, args.endpoint),
    }
    json.dump(document, sys.stdout, indent=2)
    print()
    return 0


def _shell_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


if __name__ == "__main__":
    raise SystemExit(main())
