"""template.yaml against the contract (docs/contract-resources.md), cfn-lint and the SAM transform."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import pytest

from dunning_local.cfn import (
    REPO_ROOT,
    TEMPLATE_PATH,
    load_template,
    merged_function_properties,
    sam_transform,
)
from dunning_local.stack import LocalStack

CONTRACT = REPO_ROOT / "docs" / "contract-resources.md"
FUNCTIONS = {
    "IndexerFunction": "indexer",
    "PlannerFunction": "planner",
    "SenderFunction": "sender",
    "ReceiptsFunction": "receipts",
    "InboundFunction": "inbound",
    "ReconcileFunction": "reconcile",
}
TABLES = ("LoansTable", "BorrowersTable", "StateTable", "LedgerTable")
TOPICS = ("OutboundTopic", "InboundTopic", "DeliveryEventsTopic", "AttentionTopic", "AlarmTopic")
JOB_QUEUES = {"SmsQueue": "SmsDLQ", "PushQueue": "PushDLQ", "PlanQueue": "PlanDLQ"}
DLQS = ("SmsDLQ", "PushDLQ", "PlanDLQ", "IndexerDLQ", "AsyncDLQ")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def transformed(template: dict[str, Any]) -> dict[str, Any]:
    return sam_transform(template)


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == kind}


def props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return properties


# ---- tooling -------------------------------------------------------------------------------------


def test_cfn_lint_is_clean() -> None:
    from cfnlint.api import lint_file

    matches = lint_file(TEMPLATE_PATH)
    assert not matches, "\n".join(str(match) for match in matches)


def test_the_sam_transform_succeeds_offline(transformed: dict[str, Any]) -> None:
    kinds = {r["Type"] for r in transformed["Resources"].values()}
    assert not any(kind.startswith("AWS::Serverless::") for kind in kinds)
    assert {"AWS::Lambda::Function", "AWS::Lambda::EventSourceMapping", "AWS::Scheduler::Schedule"} <= kinds
    assert len(resources_of(transformed, "AWS::Lambda::Function")) == len(FUNCTIONS)


def test_samconfig_deploys_with_iam_capability() -> None:
    config = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text())
    deploy = config["default"]["deploy"]["parameters"]
    assert "CAPABILITY_IAM" in deploy["capabilities"]
    assert config["default"]["build"]["parameters"]["cached"] is True


# ---- functions -----------------------------------------------------------------------------------


def test_globals_runtime_architecture_tracing_and_layer(template: dict[str, Any]) -> None:
    defaults = template["Globals"]["Function"]
    assert defaults["Runtime"] == "python3.13"
    assert defaults["Architectures"] == ["arm64"]
    assert defaults["Tracing"] == "Active"
    assert defaults["Layers"] == [{"Ref": "DunningLayer"}]
    variables = defaults["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == "dunning"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "Dunning"
    assert "LOG_LEVEL" in variables


def test_the_layer_is_built_by_sam_from_the_package_folder(template: dict[str, Any]) -> None:
    layer = template["Resources"]["DunningLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/dunning/"
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert "build-DunningLayer:" in (REPO_ROOT / "layers/dunning/Makefile").read_text(encoding="utf-8")
    assert (REPO_ROOT / "layers/dunning/requirements.txt").is_file()
    assert (REPO_ROOT / "layers/dunning/dunning/__init__.py").is_file()


def test_every_function_per_the_contract(template: dict[str, Any]) -> None:
    functions = resources_of(template, "AWS::Serverless::Function")
    assert set(functions) == set(FUNCTIONS)
    for logical_id, folder in FUNCTIONS.items():
        properties = merged_function_properties(template, logical_id)
        assert properties["CodeUri"] == f"functions/{folder}/"
        assert properties["Handler"] == "app.handler"
        assert properties["FunctionName"] == {"Fn::Sub": f"${{AWS::StackName}}-{folder}"}


def _contract_environment() -> dict[str, set[str]]:
    """Variable names per function from the contract's environment table ("all" = every function)."""
    text = CONTRACT.read_text()
    section = text.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    wanted: dict[str, set[str]] = {lid: set() for lid in FUNCTIONS}
    by_folder = {folder: lid for lid, folder in FUNCTIONS.items()}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0] or set(cells[0]) <= {"-"} or cells[0] == "variable":
            continue
        names = [name.strip() for name in cells[0].split(",")]
        users = cells[1]
        targets = (
            list(FUNCTIONS)
            if users.startswith("all")
            else [by_folder[user.strip()] for user in users.split(",") if user.strip()]
        )
        for target in targets:
            wanted[target].update(names)
    return wanted


def test_environment_variables_are_exactly_the_contracts(stack: LocalStack) -> None:
    for logical_id, names in _contract_environment().items():
        assert set(stack.function_environment(logical_id)) == names, logical_id


def test_each_functions_environment_satisfies_its_settings_model(stack: LocalStack) -> None:
    from dunning import settings

    for logical_id, folder in FUNCTIONS.items():
        model = getattr(settings, f"{folder.capitalize()}Settings", None)
        assert model is not None, f"no settings model for {logical_id}"
        # from_env raises on a missing or malformed variable: the template must satisfy the code.
        assert isinstance(model.from_env(stack.function_environment(logical_id)), model), logical_id


def test_planner_and_reconcile_schedules_carry_the_contract_input(template: dict[str, Any]) -> None:
    tick = props(template, "PlannerFunction")["Events"]["Tick"]
    assert tick["Type"] == "ScheduleV2"
    assert json.loads(tick["Properties"]["Input"]) == {
        "scheduled_time": "<aws.scheduler.scheduled-time>",
        "execution_id": "<aws.scheduler.execution-id>",
    }
    assert tick["Properties"]["ScheduleExpression"] == {"Ref": "PlannerSchedule"}
    assert template["Parameters"]["PlannerSchedule"]["Default"] == "rate(15 minutes)"
    daily = props(template, "ReconcileFunction")["Events"]["Daily"]
    assert daily["Type"] == "ScheduleV2"
    assert json.loads(daily["Properties"]["Input"]) == {"scheduled_time": "<aws.scheduler.scheduled-time>"}


def test_schedules_are_named_after_the_stack(template: dict[str, Any]) -> None:
    # Schedule names are unique per account and region: a second stack must not collide.
    for function, event in (("PlannerFunction", "Tick"), ("ReconcileFunction", "Daily")):
        name = props(template, function)["Events"][event]["Properties"]["Name"]

        assert name["Fn::Sub"].startswith("${AWS::StackName}-"), (function, name)


def test_every_table_has_deletion_protection(template: dict[str, Any]) -> None:
    tables = resources_of(template, "AWS::DynamoDB::Table")

    assert {t: p["Properties"].get("DeletionProtectionEnabled") for t, p in tables.items()} == dict.fromkeys(
        tables, True
    )


def test_delivery_status_log_groups_are_encrypted_with_a_key_only_logs_may_use_for_them(
    template: dict[str, Any],
) -> None:
    # SNS delivery-status groups (sns/...) and End User Messaging events: both hold full phone numbers.
    groups = {
        lid: g["Properties"]
        for lid, g in resources_of(template, "AWS::Logs::LogGroup").items()
        if "sns/" in json.dumps(g["Properties"]["LogGroupName"]) or lid == "SmsEventsLogGroup"
    }
    statements = props(template, "DeliveryLogKey")["KeyPolicy"]["Statement"]
    (logs,) = [s for s in statements if "Service" in s.get("Principal", {})]
    allowed = [a["Fn::Sub"] for a in logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]]

    assert len(groups) == 7
    key = {"Fn::GetAtt": ["DeliveryLogKey", "Arn"]}
    assert {lid: g.get("KmsKeyId") for lid, g in groups.items()} == {lid: key for lid in groups}
    assert props(template, "DeliveryLogKey")["EnableKeyRotation"] is True
    assert [a.rsplit("log-group:", 1)[1] for a in allowed] == [
        "sns/*",
        "/dunning/${AWS::StackName}/sms-events",
    ]


def test_services_may_use_the_topic_key_for_this_account_only(template: dict[str, Any]) -> None:
    statements = props(template, "TopicKey")["KeyPolicy"]["Statement"]
    services = [s for s in statements if "Service" in s.get("Principal", {})]

    assert services
    assert all(
        s["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"} for s in services
    ), [s["Sid"] for s in services]


def test_queue_consumers_report_partial_batch_failures(template: dict[str, Any]) -> None:
    consumers = {
        ("PlannerFunction", "ShardTasks"): "PlanQueue",
        ("SenderFunction", "SmsJobs"): "SmsQueue",
        ("SenderFunction", "PushJobs"): "PushQueue",
    }
    for (function, event), queue in consumers.items():
        source = props(template, function)["Events"][event]
        assert source["Type"] == "SQS"
        assert source["Properties"]["Queue"] == {"Fn::GetAtt": [queue, "Arn"]}
        assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    for event in ("SmsJobs", "PushJobs"):
        scaling = props(template, "SenderFunction")["Events"][event]["Properties"]["ScalingConfig"]
        assert scaling == {"MaximumConcurrency": {"Ref": "SenderMaxConcurrency"}}


def test_indexer_reads_both_streams_bisecting_with_a_failure_destination(template: dict[str, Any]) -> None:
    events = props(template, "IndexerFunction")["Events"]
    streams = {e["Properties"]["Stream"]["Fn::GetAtt"][0] for e in events.values() if e["Type"] == "DynamoDB"}
    assert streams == {"LoansTable", "BorrowersTable"}
    for event in events.values():
        source = event["Properties"]
        assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert source["BisectBatchOnFunctionError"] is True
        assert 0 <= source["MaximumRetryAttempts"] <= 10
        assert source["DestinationConfig"]["OnFailure"] == {
            "Type": "SQS",
            "Destination": {"Fn::GetAtt": ["IndexerDLQ", "Arn"]},
        }


def test_receipts_subscribes_to_every_delivery_status_group_and_the_events_topic(
    template: dict[str, Any], stack: LocalStack
) -> None:
    events = props(template, "ReceiptsFunction")["Events"]
    groups = {
        e["Properties"]["LogGroupName"]["Ref"] for e in events.values() if e["Type"] == "CloudWatchLogs"
    }
    assert groups == {
        "SmsDeliveryLogGroup",
        "SmsDeliveryFailureLogGroup",
        "ApnsDeliveryLogGroup",
        "ApnsDeliveryFailureLogGroup",
        "FcmDeliveryLogGroup",
        "FcmDeliveryFailureLogGroup",
        "SmsEventsLogGroup",
    }
    names = {stack.ref(group) for group in groups}
    region, account = stack.region, stack.account_id
    assert f"sns/{region}/{account}/DirectPublishToPhoneNumber" in names
    assert f"sns/{region}/{account}/DirectPublishToPhoneNumber/Failure" in names
    assert f"sns/{region}/{account}/app/APNS/dunning-apns/Failure" in names
    assert f"sns/{region}/{account}/app/GCM/dunning-fcm" in names
    assert set(stack.function_environment("ReceiptsFunction")["RECEIPT_LOG_GROUPS"].split(",")) == names
    sns = [e["Properties"]["Topic"] for e in events.values() if e["Type"] == "SNS"]
    assert sns == [{"Ref": "DeliveryEventsTopic"}]
    inbound = props(template, "InboundFunction")["Events"]["Replies"]
    assert inbound == {"Type": "SNS", "Properties": {"Topic": {"Ref": "InboundTopic"}}}


def test_every_function_logs_to_its_own_group_with_retention(
    template: dict[str, Any], stack: LocalStack
) -> None:
    for logical_id in FUNCTIONS:
        group = props(template, logical_id)["LoggingConfig"]["LogGroup"]["Ref"]
        assert stack.ref(group) == f"/aws/lambda/{stack.ref(logical_id)}"
        assert props(template, group)["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    for group in resources_of(template, "AWS::Logs::LogGroup").values():
        assert "RetentionInDays" in group["Properties"]


# ---- tables, topics, queues ------------------------------------------------------------------------


def _key(schema: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(k["AttributeName"], k["KeyType"]) for k in schema]


# The due-index carries what the planner needs to read a page in one BatchGetItem round (the borrower
# and the phone whose consent item it must read, with the phone's stored facts); every other index is
# keys only.
PROJECTIONS = {
    # phone_facts only where the stack was created with them (DueIndexPhoneFacts, docs/deploy.md).
    "DueIndex": {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": {
            "Fn::If": [
                "ProjectsPhoneFacts",
                ["borrower_id", "phone", "phone_facts"],
                ["borrower_id", "phone"],
            ]
        },
    }
}


def test_tables_keys_and_indexes_are_the_contracts(template: dict[str, Any]) -> None:
    expected = {
        "LoansTable": ([("loan_id", "HASH")], {"ByBorrower": [("borrower_id", "HASH")]}),
        "BorrowersTable": ([("borrower_id", "HASH")], {"ByPhone": [("phone", "HASH")]}),
        "StateTable": (
            [("pk", "HASH"), ("sk", "RANGE")],
            {"DueIndex": [("due_shard", "HASH"), ("next_contact_at", "RANGE")]},
        ),
        "LedgerTable": (
            [("pk", "HASH"), ("sk", "RANGE")],
            {"ByLoan": [("loan_id", "HASH"), ("at", "RANGE")]},
        ),
    }
    assert set(resources_of(template, "AWS::DynamoDB::Table")) == set(expected)
    for logical_id, (key, indexes) in expected.items():
        table = props(template, logical_id)
        assert _key(table["KeySchema"]) == key
        assert {i["IndexName"]: _key(i["KeySchema"]) for i in table["GlobalSecondaryIndexes"]} == indexes
        assert {i["IndexName"]: i["Projection"] for i in table["GlobalSecondaryIndexes"]} == {
            name: PROJECTIONS.get(name, {"ProjectionType": "KEYS_ONLY"}) for name in indexes
        }
        assert {a["AttributeType"] for a in table["AttributeDefinitions"]} == {"S"}
        assert table["BillingMode"] == "PAY_PER_REQUEST"
        assert table["SSESpecification"] == {"SSEEnabled": True}
        assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    for lender_table in ("LoansTable", "BorrowersTable"):
        assert props(template, lender_table)["StreamSpecification"] == {
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    assert props(template, "LedgerTable")["TimeToLiveSpecification"] == {
        "AttributeName": "expires_at",
        "Enabled": True,
    }


def test_job_queues_redrive_after_five_receives_with_six_times_the_consumer_timeout(
    template: dict[str, Any],
) -> None:
    consumer = {"SmsQueue": "SenderFunction", "PushQueue": "SenderFunction", "PlanQueue": "PlannerFunction"}
    for queue, dlq in JOB_QUEUES.items():
        properties = props(template, queue)
        timeout = merged_function_properties(template, consumer[queue])["Timeout"]
        assert properties["VisibilityTimeout"] == 6 * timeout, queue
        assert properties["RedrivePolicy"] == {
            "deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]},
            "maxReceiveCount": 5,
        }


def test_outbound_topic_fans_out_to_the_channel_queues(template: dict[str, Any]) -> None:
    subscriptions = resources_of(template, "AWS::SNS::Subscription")
    by_queue = {
        s["Properties"]["Endpoint"]["Fn::GetAtt"][0]: s["Properties"]
        for s in subscriptions.values()
        if s["Properties"]["Protocol"] == "sqs"
    }
    assert set(by_queue) == {"SmsQueue", "PushQueue"}
    for queue, channel in (("SmsQueue", "sms"), ("PushQueue", "push")):
        subscription = by_queue[queue]
        assert subscription["TopicArn"] == {"Ref": "OutboundTopic"}
        assert subscription["FilterPolicy"] == {"channel": [channel]}
        assert subscription["FilterPolicyScope"] == "MessageAttributes"
        assert subscription["RawMessageDelivery"] is True
    policy = props(template, "OutboundQueuesPolicy")
    assert policy["Queues"] == [{"Ref": "SmsQueue"}, {"Ref": "PushQueue"}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "OutboundTopic"}}}


def test_tables_queues_and_topics_are_encrypted(transformed: dict[str, Any]) -> None:
    for logical_id, table in resources_of(transformed, "AWS::DynamoDB::Table").items():
        assert table["Properties"]["SSESpecification"]["SSEEnabled"] is True, logical_id
    for logical_id, queue in resources_of(transformed, "AWS::SQS::Queue").items():
        properties = queue["Properties"]
        assert properties.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in properties, logical_id
    for logical_id, topic in resources_of(transformed, "AWS::SNS::Topic").items():
        # A customer managed key: alarms and End User Messaging cannot use alias/aws/sns.
        assert topic["Properties"]["KmsMasterKeyId"] == {"Ref": "TopicKey"}, logical_id
    key = props(transformed, "TopicKey")
    assert key["EnableKeyRotation"] is True
    services = {
        s["Principal"]["Service"]
        for s in key["KeyPolicy"]["Statement"]
        if "Service" in s.get("Principal", {})
    }
    assert services == {"cloudwatch.amazonaws.com", "sms-voice.amazonaws.com"}


def test_outputs_name_every_table_topic_and_queue(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    for logical_id in TABLES:
        assert outputs[f"{logical_id}Name"]["Value"] == {"Ref": logical_id}
    for logical_id in TOPICS:
        assert outputs[f"{logical_id}Arn"]["Value"] == {"Ref": logical_id}
    for logical_id in resources_of(template, "AWS::SQS::Queue"):
        assert outputs[f"{logical_id}Url"]["Value"] == {"Ref": logical_id}
    assert outputs["DeliveryStatusRoleArn"]["Value"] == {"Fn::GetAtt": ["DeliveryStatusRole", "Arn"]}


# ---- alarms and dashboard --------------------------------------------------------------------------


def test_alarms_cover_dlqs_functions_delivery_lag_and_spend(template: dict[str, Any]) -> None:
    alarms = resources_of(template, "AWS::CloudWatch::Alarm")
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    queue_alarms = {
        (a["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0], a["Properties"]["MetricName"])
        for a in alarms.values()
        if a["Properties"].get("Namespace") == "AWS/SQS"
    }
    assert queue_alarms == {(q, "ApproximateNumberOfMessagesVisible") for q in DLQS} | {
        (q, "ApproximateAgeOfOldestMessage") for q in JOB_QUEUES
    }
    assert set(resources_of(template, "AWS::SQS::Queue")) == set(DLQS) | set(JOB_QUEUES)
    lambda_alarms = {
        (a["Properties"]["Dimensions"][0]["Value"]["Ref"], a["Properties"]["MetricName"])
        for a in alarms.values()
        if a["Properties"].get("Namespace") == "AWS/Lambda"
    }
    assert lambda_alarms == {(f, m) for f in FUNCTIONS for m in ("Errors", "Throttles")} | {
        ("IndexerFunction", "IteratorAge")
    }

    failure_rate = alarms["DeliveryFailureRateAlarm"]["Properties"]["Metrics"]
    read = {
        (m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"])
        for m in failure_rate
        if "MetricStat" in m
    }
    assert read == {("Dunning", "Delivered"), ("Dunning", "Failed")}
    lag = alarms["PlannerLagAlarm"]["Properties"]
    assert (lag["Namespace"], lag["MetricName"]) == ("Dunning", "PlannerLagSeconds")
    spend = alarms["SmsSpendAlarm"]["Properties"]
    (spent,) = [m for m in spend["Metrics"] if "MetricStat" in m]
    assert spent["MetricStat"]["Metric"] == {"Namespace": "AWS/SNS", "MetricName": "SMSMonthToDateSpentUSD"}
    assert spend["Threshold"] == 0.8


def test_alarm_metric_dimensions_match_what_powertools_emits(template: dict[str, Any]) -> None:
    # Powertools adds service=<POWERTOOLS_SERVICE_NAME>; the receipts count Delivered/Failed per channel.
    service = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    alarms = resources_of(template, "AWS::CloudWatch::Alarm")
    for metric in alarms["DeliveryFailureRateAlarm"]["Properties"]["Metrics"]:
        if "MetricStat" in metric:
            dimensions = {d["Name"]: d["Value"] for d in metric["MetricStat"]["Metric"]["Dimensions"]}
            assert dimensions.keys() == {"channel", "service"}
            assert dimensions["service"] == service
    lag = alarms["PlannerLagAlarm"]["Properties"]
    assert lag["Dimensions"] == [{"Name": "service", "Value": service}]


def test_the_dashboard_body_is_valid_json_naming_the_products_metrics(stack: LocalStack) -> None:
    body = json.loads(stack.resolve(stack.template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]))
    text = json.dumps(body)
    for metric in (
        "Planned",
        "Sent",
        "Deferred",
        "Suppressed",
        "Delivered",
        "Failed",
        "OptOuts",
        "PlannerLagSeconds",
        "SMSMonthToDateSpentUSD",
        "ApproximateNumberOfMessagesVisible",
    ):
        assert re.search(rf"\b{metric}\b", text), metric
    for dlq in DLQS:
        assert stack.get_att(dlq, "QueueName") in text


def test_the_contract_names_every_topic_and_queue(template: dict[str, Any]) -> None:
    text = CONTRACT.read_text()
    for logical_id in (*TOPICS, *resources_of(template, "AWS::SQS::Queue")):
        assert logical_id in text, logical_id
