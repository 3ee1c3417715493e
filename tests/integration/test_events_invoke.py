"""Every file in events/ drives its function through the offline invoke, against a seeded local stack.

The rest of this module checks the event files themselves (reproducible, parseable by Powertools'
models, pointing at the local stack) and the invoke mechanics with a stand-in handler.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from dunning_local import invoke as invoke_module
from dunning_local.cfn import REPO_ROOT
from dunning_local.invoke import batch_item_failures, invoke, invoke_main, load_event
from dunning_local.stack import LocalStack, build_local_stack, seed_tables

EVENTS_DIR = REPO_ROOT / "events"
EVENT_FILES = sorted(EVENTS_DIR.glob("*/*.json"))
FUNCTION_OF_FOLDER = {
    "indexer": "IndexerFunction",
    "planner": "PlannerFunction",
    "sender": "SenderFunction",
    "receipts": "ReceiptsFunction",
    "inbound": "InboundFunction",
    "reconcile": "ReconcileFunction",
}
# Monday 2026-03-02 09:05 in New York: five minutes after the tick the job events were planned at.
NOW = datetime(2026, 3, 2, 14, 5, tzinfo=UTC)


def _label(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


# ---- the event files ---------------------------------------------------------------------------------


def test_event_files_are_what_make_events_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(EVENTS_DIR / "make_events.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"},
    )
    assert result.returncode == 0, result.stderr


def test_every_function_has_events() -> None:
    assert {path.parent.name for path in EVENT_FILES} == set(FUNCTION_OF_FOLDER)


@pytest.mark.parametrize("path", EVENT_FILES, ids=_label)
def test_events_parse_with_the_powertools_models(path: Path) -> None:
    from aws_lambda_powertools.utilities.parser import parse
    from aws_lambda_powertools.utilities.parser.models import (
        CloudWatchLogsModel,
        DynamoDBStreamModel,
        SnsModel,
        SqsModel,
    )

    models: dict[str, Any] = {
        "_sqs": SqsModel,
        "_sns": SnsModel,
        "_stream": DynamoDBStreamModel,
        "_logs": CloudWatchLogsModel,
    }
    event = json.loads(path.read_text())
    model = next((m for suffix, m in models.items() if path.stem.endswith(suffix)), None)
    if model is None:
        assert set(event) <= {"scheduled_time", "execution_id"}  # a schedule's Input
        assert event["scheduled_time"].endswith("Z")
        return
    parsed = parse(event=event, model=model)
    if path.stem.endswith("_logs"):
        assert parsed.awslogs.decoded_data.logEvents


def test_events_name_the_local_stacks_resources(stack: LocalStack) -> None:
    text = "\n".join(path.read_text() for path in EVENT_FILES)
    for arn in (
        stack.topics["InboundTopic"],
        stack.topics["DeliveryEventsTopic"],
        stack.get_att("SmsQueue", "Arn"),
        stack.get_att("PushQueue", "Arn"),
        stack.get_att("PlanQueue", "Arn"),
    ):
        assert f'"{arn}' in text, arn
    groups = stack.function_environment("ReceiptsFunction")["RECEIPT_LOG_GROUPS"].split(",")
    for name in ("sms_success", "sms_failure", "push_success", "push_failure"):
        data = load_event(EVENTS_DIR / "receipts" / f"{name}_logs.json", stack)
        from aws_lambda_powertools.utilities.data_classes import CloudWatchLogsEvent

        assert CloudWatchLogsEvent(data).parse_logs_data().log_group in groups


def test_env_json_sets_only_variables_the_template_declares(stack: LocalStack) -> None:
    # `sam local invoke --env-vars` ignores anything else.
    env = json.loads((EVENTS_DIR / "env.json").read_text())
    assert set(env) == set(stack.function_ids)
    for logical_id, variables in env.items():
        declared = stack.function_environment(logical_id)
        assert set(variables) == set(declared)
        assert variables["AWS_ENDPOINT_URL"].startswith("http://host.docker.internal:")


# ---- every event through its handler -------------------------------------------------------------------


@pytest.fixture
def seeded(aws: boto3.Session, stack: LocalStack) -> LocalStack:
    """The stack with events/seed.json's loans and borrowers, and the borrower's push endpoint in moto."""
    seed = json.loads((EVENTS_DIR / "seed.json").read_text())
    sns = aws.client("sns")
    application = sns.create_platform_application(
        Name="dunning-apns",
        Platform="APNS",
        Attributes={"PlatformCredential": "private-key", "PlatformPrincipal": "certificate"},
    )["PlatformApplicationArn"]
    for borrower in seed["BorrowersTable"]:
        for endpoint in borrower.get("push_endpoints", {}).get("L", []):
            created = sns.create_platform_endpoint(
                PlatformApplicationArn=application, Token=borrower["borrower_id"]["S"].lower() * 8
            )["EndpointArn"]
            endpoint["M"]["arn"]["S"] = created  # moto names endpoints itself
    seed_tables(stack, aws.client("dynamodb"), seed)
    return stack


@pytest.mark.parametrize("path", EVENT_FILES, ids=_label)
def test_each_event_invokes_its_function_successfully(path: Path, seeded: LocalStack) -> None:
    function = FUNCTION_OF_FOLDER[path.parent.name]
    result = invoke(function, path, seeded, now=NOW)
    assert batch_item_failures(result) == [], result
    # Succeeding is not enough: no job may end unrenderable or rejected as malformed.
    ledger = seeded.tables["LedgerTable"]
    items = boto3.client("dynamodb", region_name=seeded.region).scan(TableName=ledger)["Items"]
    broken = [
        i for i in items if i.get("rule_id", {}).get("S") == "render.error" or i["sk"]["S"] == "INVALID_JOB"
    ]
    assert broken == [], broken


# ---- the invoke mechanics, with a stand-in handler ---------------------------------------------------

_STAND_IN = """
import os

import helper

CALLS = 0


def handler(event, context):
    global CALLS
    CALLS += 1
    from dunning import clock

    return {
        "calls": CALLS,
        "helper": helper.VALUE,
        "env": dict(os.environ),
        "event": event,
        "function_name": context.function_name,
        "arn": context.invoked_function_arn,
        "memory": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
        "now": clock.now().isoformat(),
    }
"""


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    code = tmp_path / "functions" / "sender"
    code.mkdir(parents=True)
    (code / "app.py").write_text(_STAND_IN)
    (code / "helper.py").write_text("VALUE = 'from the task root'\n")
    return tmp_path


def test_invoke_runs_the_handler_with_the_templates_environment_and_a_context(
    stack: LocalStack, stand_in: Path
) -> None:
    result = invoke("sender", {"Records": []}, stack, repo_root=stand_in, now=NOW)
    assert result["helper"] == "from the task root"
    assert result["event"] == {"Records": []}
    env = result["env"]
    assert env["LOANS_TABLE"] == stack.tables["LoansTable"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "dunning-local-sender"
    assert env["POWERTOOLS_SERVICE_NAME"] == "dunning"
    assert result["function_name"] == "dunning-local-sender"
    assert result["arn"] == f"arn:aws:lambda:us-east-1:{stack.account_id}:function:dunning-local-sender"
    assert result["memory"] == 512
    assert 29_000 < result["remaining_ms"] <= 30_000  # the sender's Timeout
    assert result["now"] == NOW.isoformat()
    assert "LOANS_TABLE" not in os.environ
    assert "helper" not in sys.modules


def test_every_invoke_is_a_cold_start(stack: LocalStack, stand_in: Path) -> None:
    first = invoke("SenderFunction", {}, stack, repo_root=stand_in)
    second = invoke("SenderFunction", {}, stack, repo_root=stand_in)
    assert first["calls"] == second["calls"] == 1
    assert first["request_id"] != second["request_id"]


def test_env_overrides_win(stack: LocalStack, stand_in: Path) -> None:
    result = invoke("sender", {}, stack, repo_root=stand_in, env_overrides={"LOG_LEVEL": "DEBUG"})
    assert result["env"]["LOG_LEVEL"] == "DEBUG"


def test_events_follow_a_stack_built_under_another_prefix(aws: boto3.Session, stand_in: Path) -> None:
    other = build_local_stack(aws, prefix="demo")
    event = EVENTS_DIR / "sender" / "sms_jobs_sqs.json"
    result = invoke("sender", event, other, repo_root=stand_in)
    (first, *_) = result["event"]["Records"]
    assert first["eventSourceARN"] == other.get_att("SmsQueue", "Arn")


def test_a_missing_handler_is_reported(stack: LocalStack, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no handler module"):
        invoke("sender", {}, stack, repo_root=tmp_path)


def test_invoke_main_prints_the_result_and_fails_on_failed_batch_items(
    monkeypatch: pytest.MonkeyPatch, stand_in: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setattr(invoke_module, "REPO_ROOT", stand_in)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"Records": []}))
    assert invoke_main(["sender", "--event", str(event), "--now", "2026-03-02T14:05:00Z"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["now"] == NOW.isoformat()

    (stand_in / "functions" / "sender" / "app.py").write_text(
        "def handler(event, context):\n    return {'batchItemFailures': [{'itemIdentifier': 'm-1'}]}\n"
    )
    assert invoke_main(["sender", "--event", str(event)]) == 1
    assert "m-1" in capsys.readouterr().err


def test_batch_item_failures_reads_partial_batch_responses() -> None:
    assert batch_item_failures({"batchItemFailures": [{"itemIdentifier": "a"}]}) == ["a"]
    assert batch_item_failures({"batchItemFailures": []}) == []
    assert batch_item_failures(None) == []
