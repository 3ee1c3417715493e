"""The local stack is template.yaml: same tables, queues, topics and subscriptions, on moto."""

from __future__ import annotations

import io
import json
import socket
import zipfile
from collections.abc import Iterator
from contextlib import redirect_stdout
from typing import Any

import boto3
import pytest

from dunning_local.cfn import REPO_ROOT, load_template, sam_transform
from dunning_local.stack import LocalStack, build_local_stack, main, seed_tables


def template_props(stack: LocalStack, logical_id: str) -> dict[str, Any]:
    resolved: dict[str, Any] = stack.resolve(stack.template["Resources"][logical_id]["Properties"])
    return resolved


def of_type(stack: LocalStack, kind: str) -> list[str]:
    return [lid for lid, r in stack.template["Resources"].items() if r["Type"] == kind]


def _indexes(description: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {
        index["IndexName"]: (index["KeySchema"], index["Projection"])
        for index in description.get("GlobalSecondaryIndexes", [])
    }


# ---- tables --------------------------------------------------------------------------------------


def test_tables_have_the_templates_keys_indexes_streams_ttl_and_pitr(
    aws: boto3.Session, stack: LocalStack
) -> None:
    dynamodb = aws.client("dynamodb")
    assert set(stack.tables) == set(of_type(stack, "AWS::DynamoDB::Table"))
    for logical_id, name in stack.tables.items():
        wanted = template_props(stack, logical_id)
        table = dynamodb.describe_table(TableName=name)["Table"]
        assert table["KeySchema"] == wanted["KeySchema"]
        assert _indexes(table) == _indexes(wanted)
        assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
            (a["AttributeName"], a["AttributeType"]) for a in wanted["AttributeDefinitions"]
        }
        assert table["BillingModeSummary"]["BillingMode"] == wanted["BillingMode"]
        if "StreamSpecification" in wanted:
            assert table["StreamSpecification"] == {
                "StreamEnabled": True,
                "StreamViewType": wanted["StreamSpecification"]["StreamViewType"],
            }
            assert stack.get_att(logical_id, "StreamArn") == table["LatestStreamArn"]
        else:
            assert "StreamSpecification" not in table or not table["StreamSpecification"]["StreamEnabled"]
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if "TimeToLiveSpecification" in wanted:
            assert ttl == {
                "TimeToLiveStatus": "ENABLED",
                "AttributeName": wanted["TimeToLiveSpecification"]["AttributeName"],
            }
        else:
            assert ttl["TimeToLiveStatus"] == "DISABLED"
        backups = dynamodb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_the_due_index_answers_the_ticks_query(aws: boto3.Session, stack: LocalStack) -> None:
    dynamodb = aws.client("dynamodb")
    table = stack.tables["StateTable"]
    for loan, due in (("L-0001", "2026-03-02T13:00:00Z"), ("L-0002", "2026-03-02T15:00:00Z")):
        item = {"pk": {"S": f"LOAN#{loan}"}, "sk": {"S": "CADENCE"}, "loan_id": {"S": loan}}
        item |= {"due_shard": {"S": "DUE#03"}, "next_contact_at": {"S": due}}
        dynamodb.put_item(TableName=table, Item=item)
    # Out of the index: no due_shard (sparse).
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "LOAN#L-0003"}, "sk": {"S": "CADENCE"}})
    found = dynamodb.query(
        TableName=table,
        IndexName="DueIndex",
        KeyConditionExpression="due_shard = :s AND next_contact_at <= :now",
        ExpressionAttributeValues={":s": {"S": "DUE#03"}, ":now": {"S": "2026-03-02T14:00:00Z"}},
    )["Items"]
    assert [i["pk"]["S"] for i in found] == ["LOAN#L-0001"]


def test_seed_items_land_in_the_lenders_tables(aws: boto3.Session, stack: LocalStack) -> None:
    items = {
        "LoansTable": [{"loan_id": {"S": f"L-{n:04d}"}, "borrower_id": {"S": "B-0001"}} for n in range(30)]
    }
    assert seed_tables(stack, aws.client("dynamodb"), items) == 30
    count = aws.client("dynamodb").scan(TableName=stack.tables["LoansTable"], Select="COUNT")["Count"]
    assert count == 30


# ---- queues, topics, subscriptions ------------------------------------------------------------------


def test_queues_have_the_templates_redrive_visibility_and_encryption(
    aws: boto3.Session, stack: LocalStack
) -> None:
    sqs = aws.client("sqs")
    assert set(stack.queues) == set(of_type(stack, "AWS::SQS::Queue"))
    for logical_id, url in stack.queues.items():
        wanted = template_props(stack, logical_id)
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["SqsManagedSseEnabled"] == "true"
        assert attributes["MessageRetentionPeriod"] == str(wanted["MessageRetentionPeriod"])
        if "VisibilityTimeout" in wanted:
            assert attributes["VisibilityTimeout"] == str(wanted["VisibilityTimeout"])
        if "RedrivePolicy" in wanted:
            redrive = json.loads(attributes["RedrivePolicy"])
            assert redrive["deadLetterTargetArn"] == wanted["RedrivePolicy"]["deadLetterTargetArn"]
            assert int(redrive["maxReceiveCount"]) == 5


def test_a_job_received_five_times_goes_to_its_dlq(aws: boto3.Session, stack: LocalStack) -> None:
    sqs = aws.client("sqs")
    sqs.send_message(QueueUrl=stack.queues["SmsQueue"], MessageBody="{}")
    for _ in range(5):
        (message,) = sqs.receive_message(QueueUrl=stack.queues["SmsQueue"])["Messages"]
        sqs.change_message_visibility(
            QueueUrl=stack.queues["SmsQueue"], ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    assert "Messages" not in sqs.receive_message(QueueUrl=stack.queues["SmsQueue"])
    assert len(sqs.receive_message(QueueUrl=stack.queues["SmsDLQ"])["Messages"]) == 1


def test_subscriptions_filter_by_channel_with_raw_delivery(aws: boto3.Session, stack: LocalStack) -> None:
    sns = aws.client("sns")
    assert set(stack.subscriptions) == {"SmsJobsSubscription", "PushJobsSubscription"}
    assert stack.skipped == {"AlarmEmailSubscription": "its condition is false"}
    for logical_id, arn in stack.subscriptions.items():
        wanted = template_props(stack, logical_id)
        attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
        assert json.loads(attributes["FilterPolicy"]) == wanted["FilterPolicy"]
        assert attributes["FilterPolicyScope"] == wanted["FilterPolicyScope"]
        assert attributes["RawMessageDelivery"] == "true"
        assert attributes["Endpoint"] == wanted["Endpoint"]
        assert attributes["TopicArn"] == stack.topics["OutboundTopic"]


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", [])
    return messages


def test_an_sms_job_lands_only_in_the_sms_queue(aws: boto3.Session, stack: LocalStack) -> None:
    sns, sqs = aws.client("sns"), aws.client("sqs")
    job = json.dumps({"job_id": "L-0001#D+7", "channel": "sms"})
    sns.publish(
        TopicArn=stack.topics["OutboundTopic"],
        Message=job,
        MessageAttributes={"channel": {"DataType": "String", "StringValue": "sms"}},
    )
    (message,) = _drain(sqs, stack.queues["SmsQueue"])
    assert message["Body"] == job  # raw delivery: the job itself, no SNS envelope
    assert message["MessageAttributes"]["channel"]["StringValue"] == "sms"
    assert _drain(sqs, stack.queues["PushQueue"]) == []


def test_the_planners_publish_batch_splits_by_channel(aws: boto3.Session, stack: LocalStack) -> None:
    sns, sqs = aws.client("sns"), aws.client("sqs")
    entries = [
        {
            "Id": f"job{n}",
            "Message": json.dumps({"n": n}),
            "MessageAttributes": {"channel": {"DataType": "String", "StringValue": channel}},
        }
        for n, channel in enumerate(["sms", "push", "sms", "other"])
    ]
    response = sns.publish_batch(TopicArn=stack.topics["OutboundTopic"], PublishBatchRequestEntries=entries)
    assert len(response["Successful"]) == 4
    assert sorted(json.loads(m["Body"])["n"] for m in _drain(sqs, stack.queues["SmsQueue"])) == [0, 2]
    assert [json.loads(m["Body"])["n"] for m in _drain(sqs, stack.queues["PushQueue"])] == [1]


def test_building_again_on_the_same_endpoint_finds_the_same_resources(
    aws: boto3.Session, stack: LocalStack
) -> None:
    again = build_local_stack(aws)
    assert (again.tables, again.queues, again.topics, again.subscriptions) == (
        stack.tables,
        stack.queues,
        stack.topics,
        stack.subscriptions,
    )
    assert len(aws.client("sns").list_subscriptions()["Subscriptions"]) == 2


def test_a_table_with_other_keys_is_refused(aws: boto3.Session) -> None:
    dynamodb = aws.client("dynamodb")
    dynamodb.create_table(
        TableName="dunning-local-LoansTable",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(RuntimeError, match="other keys"):
        build_local_stack(aws)


def test_a_prefix_names_everything_like_a_stack_name(aws: boto3.Session) -> None:
    stack = build_local_stack(aws, prefix="demo")
    assert stack.tables["LoansTable"] == "demo-LoansTable"
    assert stack.ref("SenderFunction") == "demo-sender"
    assert stack.function_environment("PlannerFunction")["OUTBOUND_TOPIC_ARN"].endswith(":demo-OutboundTopic")


# ---- function environments --------------------------------------------------------------------------


def test_function_environment_resolves_globals_resources_and_parameters(aws: boto3.Session) -> None:
    stack = build_local_stack(aws, parameters={"ShardCount": 4, "SmsOriginationIdentity": "+12125550101"})
    planner = stack.function_environment("PlannerFunction")
    assert planner["SHARD_COUNT"] == "4"
    assert planner["STATE_TABLE"] == stack.tables["StateTable"]  # from Globals
    assert planner["PLAN_QUEUE_URL"] == stack.queues["PlanQueue"]
    assert planner["OUTBOUND_TOPIC_ARN"] == stack.topics["OutboundTopic"]
    assert planner["LOG_LEVEL"] == "INFO"
    sender = stack.function_environment("SenderFunction", {"LOG_LEVEL": "DEBUG"})
    assert sender["SMS_ORIGINATION_IDENTITY"] == "+12125550101"
    assert sender["SMS_MAX_PRICE_USD"] == ""
    assert sender["LOG_LEVEL"] == "DEBUG"
    assert sender["AWS_ENDPOINT_URL"] == ""  # in AWS and on in-process moto: boto3's own endpoints


@pytest.mark.parametrize(
    ("facts", "projected"),
    [("true", ["borrower_id", "phone", "phone_facts"]), ("false", ["borrower_id", "phone"])],
)
def test_a_stack_created_before_phone_facts_keeps_its_due_index_projection(
    aws: boto3.Session, facts: str, projected: list[str]
) -> None:
    """DynamoDB cannot change an index's projection in place: an older stack deploys with ``false``."""
    stack = build_local_stack(aws, parameters={"DueIndexPhoneFacts": facts})
    table = aws.client("dynamodb").describe_table(TableName=stack.tables["StateTable"])["Table"]
    (index,) = [i for i in table["GlobalSecondaryIndexes"] if i["IndexName"] == "DueIndex"]

    assert sorted(index["Projection"]["NonKeyAttributes"]) == projected


def test_functions_are_found_by_logical_id_folder_or_name(stack: LocalStack) -> None:
    assert stack.function_logical_id("sender") == "SenderFunction"
    assert stack.function_logical_id("SenderFunction") == "SenderFunction"
    assert stack.function_logical_id("dunning-local-sender") == "SenderFunction"
    with pytest.raises(KeyError, match="no function"):
        stack.function_logical_id("mailer")


def test_unknown_parameters_are_refused(aws: boto3.Session) -> None:
    with pytest.raises(KeyError, match="ShardCont"):
        build_local_stack(aws, parameters={"ShardCont": 4})


# ---- the same template through CloudFormation on moto ------------------------------------------------


@pytest.fixture
def cloudformation_stack(aws: boto3.Session) -> dict[str, str]:
    """template.yaml, SAM-transformed offline, created as a CloudFormation stack on moto."""
    transformed = sam_transform(load_template())
    s3 = aws.client("s3")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("app.py", "def handler(event, context):\n    return None\n")
    buckets: set[str] = set()
    for resource in transformed["Resources"].values():
        properties = resource.get("Properties", {})
        code = properties.get("Code") or properties.get("Content")
        if resource["Type"] in ("AWS::Lambda::Function", "AWS::Lambda::LayerVersion") and code:
            if code["S3Bucket"] not in buckets:
                s3.create_bucket(Bucket=code["S3Bucket"])
                buckets.add(code["S3Bucket"])
            s3.put_object(Bucket=code["S3Bucket"], Key=code["S3Key"], Body=archive.getvalue())
    cloudformation = aws.client("cloudformation")
    with pytest.warns(UserWarning):  # moto skips what it does not model (alarms, subscriptions, schedules)
        cloudformation.create_stack(
            StackName="dunning-test", TemplateBody=json.dumps(transformed), Capabilities=["CAPABILITY_IAM"]
        )
    (described,) = cloudformation.describe_stacks(StackName="dunning-test")["Stacks"]
    assert described["StackStatus"] == "CREATE_COMPLETE"
    return {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}


def test_the_transformed_template_creates_on_moto_with_the_same_tables(
    aws: boto3.Session, cloudformation_stack: dict[str, str]
) -> None:
    dynamodb = aws.client("dynamodb")
    deployed = {
        lid: cloudformation_stack[f"{lid}Name"]
        for lid in ("LoansTable", "BorrowersTable", "StateTable", "LedgerTable")
    }
    local = build_local_stack(aws)  # next to it, under the local prefix
    for logical_id, name in deployed.items():
        cfn_table = dynamodb.describe_table(TableName=name)["Table"]
        local_table = dynamodb.describe_table(TableName=local.tables[logical_id])["Table"]
        assert cfn_table["KeySchema"] == local_table["KeySchema"]
        assert _indexes(cfn_table) == _indexes(local_table)
        assert cfn_table.get("StreamSpecification") == local_table.get("StreamSpecification")


def test_the_transformed_template_creates_on_moto_with_the_same_queues_and_topics(
    aws: boto3.Session, cloudformation_stack: dict[str, str]
) -> None:
    sqs, sns = aws.client("sqs"), aws.client("sns")
    local = build_local_stack(aws)
    compared = ("VisibilityTimeout", "MessageRetentionPeriod", "SqsManagedSseEnabled")
    for logical_id, local_url in local.queues.items():
        cfn = sqs.get_queue_attributes(
            QueueUrl=cloudformation_stack[f"{logical_id}Url"], AttributeNames=["All"]
        )
        mine = sqs.get_queue_attributes(QueueUrl=local_url, AttributeNames=["All"])
        assert {k: cfn["Attributes"].get(k) for k in compared} == {
            k: mine["Attributes"].get(k) for k in compared
        }
        if "RedrivePolicy" in mine["Attributes"]:
            dlq = json.loads(cfn["Attributes"]["RedrivePolicy"])["deadLetterTargetArn"]
            assert dlq.split(":")[-1].startswith(f"dunning-test-{logical_id.replace('Queue', 'DLQ')}-")
            assert int(json.loads(cfn["Attributes"]["RedrivePolicy"])["maxReceiveCount"]) == 5
    topics = {t["TopicArn"] for t in sns.list_topics()["Topics"]}
    for logical_id in local.topics:
        assert cloudformation_stack[f"{logical_id}Arn"] in topics


def test_the_deployed_functions_read_the_variables_the_local_stack_gives(
    aws: boto3.Session, cloudformation_stack: dict[str, str]
) -> None:
    awslambda = aws.client("lambda")
    local = build_local_stack(aws)
    by_output = {
        **{f"{lid}Name": lid for lid in local.tables},
        **{f"{lid}Arn": lid for lid in local.topics},
        **{f"{lid}Url": lid for lid in local.queues},
    }
    deployed_value_of = {lid: cloudformation_stack[key] for key, lid in by_output.items()}
    local_value_of = {**local.tables, **local.topics, **local.queues}
    for logical_id in local.function_ids:
        name = f"dunning-test-{local.function_properties(logical_id)['CodeUri'].strip('/').split('/')[-1]}"
        deployed = awslambda.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        mine = local.function_environment(logical_id)
        assert set(deployed) == set(mine), logical_id
        for variable, value in mine.items():
            resource = next((lid for lid, v in local_value_of.items() if v == value), None)
            if resource is not None:
                assert deployed[variable] == deployed_value_of[resource], (logical_id, variable)


# ---- python -m dunning_local.stack against moto_server -----------------------------------------------


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_the_module_creates_the_stack_on_moto_server_and_prints_the_environment(moto_server: str) -> None:
    outputs = []
    for _ in range(2):  # a second run finds what the first created
        printed = io.StringIO()
        with redirect_stdout(printed):
            assert main(["--endpoint", moto_server]) == 0
        outputs.append(json.loads(printed.getvalue()))
    first, second = outputs
    assert first == second
    assert set(first["tables"]) == {"LoansTable", "BorrowersTable", "StateTable", "LedgerTable"}
    sender = first["functions"]["SenderFunction"]
    assert sender["AWS_ENDPOINT_URL"] == moto_server
    assert sender["LOANS_TABLE"] == "dunning-local-LoansTable"
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_server, region_name="us-east-1")
    assert "dunning-local-LedgerTable" in dynamodb.list_tables()["TableNames"]

    printed = io.StringIO()
    seed = str(REPO_ROOT / "events" / "seed.json")
    with redirect_stdout(printed):
        assert main(["--endpoint", moto_server, "--function", "sender", "--seed", seed]) == 0
    assert f"export AWS_ENDPOINT_URL={moto_server}" in printed.getvalue().splitlines()
    assert dynamodb.scan(TableName="dunning-local-LoansTable", Select="COUNT")["Count"] == 3
