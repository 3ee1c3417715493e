"""Security checks not covered elsewhere: what the repository holds, and who the functions listen to.

Covered elsewhere, not repeated: least privilege of every role and policy (test_iam.py, and
test_pipeline.py checks every call the functions make against their roles); encryption at rest of
every table, queue and topic with the customer managed key's rotation (test_template.py
``test_tables_queues_and_topics_are_encrypted``); the template sandbox refusing Python internals
(test_lint.py); foreign topics and log groups refused (test_inbound.py, test_receipts.py).

Here:

- no credentials in the repository (AWS access keys, private keys, common API tokens), no secret-looking
  environment variable in the template, and no real phone number (only NANP 555-01xx, Ofcom's drama
  range and libphonenumber's example numbers);
- the inbound and receipts functions accept an event only when its source is exactly the configured
  topic or log group: the same topic name in another account or region, a log group that merely starts
  or ends like ours, or a foreign record inside an otherwise good batch are all refused and counted.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import phonenumbers
import pytest

from dunning_local import lambda_events as events
from dunning_local.cfn import REPO_ROOT, load_template
from dunning_local.invoke import invoke
from dunning_local.stack import LocalStack

AT = datetime(2026, 3, 2, 14, 20, tzinfo=UTC)
PHONE = "+12125550142"

# ---- the repository -----------------------------------------------------------------------------

SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b"),
    "AWS secret access key": re.compile(
        r"(?i)aws.{0,20}secret.{0,20}[=:]\s*['\"]?[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"
    ),
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    "GitHub token": re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{30,}"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "Stripe live key": re.compile(r"\b[rs]k_live_[0-9a-zA-Z]{16,}"),
    "Twilio key": re.compile(r"\bSK[0-9a-fA-F]{32}\b"),
}


def repository_files() -> Iterator[tuple[Path, str]]:
    """Every file git tracks or would track (untracked but not ignored), as text; binaries skipped."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        path = REPO_ROOT / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        yield path, data.decode("utf-8", errors="replace")


def test_no_credentials_in_the_repository() -> None:
    files = list(repository_files())
    assert len(files) > 50
    found = [
        f"{path.relative_to(REPO_ROOT)}:{text.count(chr(10), 0, match.start()) + 1}: {kind}"
        for path, text in files
        for kind, pattern in SECRET_PATTERNS.items()
        for match in pattern.finditer(text)
    ]
    assert found == []


def test_the_scan_finds_what_it_looks_for() -> None:
    # Assembled here so this file does not trip its own scan.
    samples = {
        "AWS access key id": "AKIA" + "Z" * 16,
        "private key": "-----BEGIN RSA " + "PRIVATE KEY-----",
        "AWS secret access key": "aws_secret_access_key = " + "a/B+" * 10,
        "GitHub token": "ghp_" + "a1" * 18,
    }
    for kind, sample in samples.items():
        assert SECRET_PATTERNS[kind].search(sample), kind


def test_no_function_environment_variable_looks_like_a_secret() -> None:
    template = load_template()
    names = set(template["Globals"]["Function"].get("Environment", {}).get("Variables", {}))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            names |= set(resource["Properties"].get("Environment", {}).get("Variables", {}))
    assert names
    assert [
        n for n in names if re.search(r"SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE|CREDENTIAL|API_KEY", n)
    ] == []


_E164 = re.compile(r"(?<![\w+])\+[1-9]\d{7,14}\b")


def _fictional(number: str) -> bool:
    """NANP 555-0100..0199, Ofcom's 07700 900xxx, or libphonenumber's example number for the region."""
    if re.fullmatch(r"\+1\d{3}5550[1]\d{2}", number):
        return True
    if re.fullmatch(r"\+44" r"7700900\d{3}", number):  # split: this file is scanned too
        return True
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return True  # not a number at all
    region = phonenumbers.region_code_for_number(parsed)
    examples = {
        phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        for kind in phonenumbers.PhoneNumberType.values()
        if (example := phonenumbers.example_number_for_type(region, kind)) is not None
    }
    return number in examples or not phonenumbers.is_possible_number(parsed)


def test_every_phone_number_in_the_repository_is_fictional() -> None:
    real = sorted(
        {
            f"{path.relative_to(REPO_ROOT)}: {number}"
            for path, text in repository_files()
            for number in _E164.findall(text)
            if not _fictional(number)
        }
    )
    assert real == []


def test_the_phone_number_check_can_fail() -> None:
    # A Manhattan number outside 555-01xx, and a UK mobile outside the drama range.
    assert not _fictional("+1212" + "7362" + "000")
    assert not _fictional("+4478" + "12345678")
    assert _fictional(PHONE)
    assert _fictional("+8613123456789")


# ---- who the functions listen to ----------------------------------------------------------------


def emf(out: str, name: str) -> float:
    total = 0.0
    for line in out.splitlines():
        if line.startswith('{"_aws"') and f'"{name}"' in line:
            value = json.loads(line)[name]
            total += sum(value) if isinstance(value, list) else float(value)
    return total


def lookalike_topics(topic_arn: str) -> list[str]:
    partition, service, region, account, name = topic_arn.split(":")[1:6]
    return [
        f"arn:{partition}:{service}:{region}:999999999999:{name}",  # same name, another account
        f"arn:{partition}:{service}:eu-west-1:{account}:{name}",  # same name, another region
        f"{topic_arn}-copy",
        topic_arn.upper(),
        topic_arn[:-1],
    ]


@pytest.fixture
def ledger(stack: LocalStack, aws: boto3.Session) -> Any:
    return aws.resource("dynamodb").Table(stack.tables["LedgerTable"])


def test_inbound_acts_only_on_records_from_its_own_topic(
    stack: LocalStack, ledger: Any, aws: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    ours = str(stack.topics["InboundTopic"])
    state = aws.resource("dynamodb").Table(stack.tables["StateTable"])
    records = []
    for n, topic in enumerate(lookalike_topics(ours)):
        message = events.inbound_sms(PHONE, "+12125550101", "STOP", inbound_id=f"forged-{n}")
        records += events.sns_event(topic, message, AT)["Records"]
    good = events.inbound_sms("+16175550123", "+12125550101", "HELP", inbound_id="genuine-1")
    records += events.sns_event(ours, good, AT)["Records"]
    capsys.readouterr()
    assert invoke("InboundFunction", {"Records": records}, stack, now=AT) == {"handled": 1}
    assert emf(capsys.readouterr().out, "InboundRejected") == len(records) - 1
    # The forged STOPs changed nothing; the genuine HELP was recorded.
    assert state.get_item(Key={"pk": f"PHONE#{PHONE}", "sk": "CONSENT"}).get("Item") is None
    recorded = ledger.query(
        KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": "PHONE#+16175550123"}
    )["Items"]
    assert [r["inbound_id"] for r in recorded] == ["genuine-1"]


def test_receipts_read_only_their_own_log_groups_and_topic(
    stack: LocalStack, ledger: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger.put_item(
        Item={"pk": "MSG#m-1", "sk": "MESSAGE", "type": "MESSAGE", "message_id": "m-1", "status": "SENT"}
    )
    group = str(stack.ref("SmsDeliveryLogGroup"))
    forged = events.sms_delivery_record("m-1", PHONE, AT, success=False, price=0)
    lookalike_groups = [f"{group}-copy", f"x{group}", group.upper(), f"{group}/Failure/extra", f"/{group}"]
    capsys.readouterr()
    for lookalike in lookalike_groups:
        event = events.logs_subscription_event(lookalike, [(AT, forged)])
        assert invoke("ReceiptsFunction", event, stack, now=AT) == {"receipts": 0}
    topic = str(stack.topics["DeliveryEventsTopic"])
    eum = {"eventType": "TEXT_INVALID", "isFinal": True, "messageId": "m-1", "eventTimestamp": 1772460000000}
    records = [
        r for t in lookalike_topics(topic) for r in events.sns_event(t, json.dumps(eum), AT)["Records"]
    ]
    assert invoke("ReceiptsFunction", {"Records": records}, stack, now=AT) == {"receipts": 0}
    out = capsys.readouterr().out
    assert emf(out, "ReceiptRejected") == len(lookalike_groups) + len(records)
    assert ledger.get_item(Key={"pk": "MSG#m-1", "sk": "MESSAGE"})["Item"]["status"] == "SENT"
    # In a mixed batch the genuine notification is read and the forged ones are not.
    genuine = {**eum, "eventType": "TEXT_DELIVERED"}
    mixed = records[:2] + events.sns_event(topic, json.dumps(genuine), AT)["Records"]
    assert invoke("ReceiptsFunction", {"Records": mixed}, stack, now=AT) == {"receipts": 1}
    assert ledger.get_item(Key={"pk": "MSG#m-1", "sk": "MESSAGE"})["Item"]["status"] == "DELIVERED"


def test_the_accepted_sources_are_exactly_the_subscribed_ones(stack: LocalStack) -> None:
    """RECEIPT_LOG_GROUPS names exactly the log groups the template subscribes the function to, and the
    accepted topics are the ones the functions are subscribed to: nothing else is trusted."""
    template = load_template()
    receipts_env = stack.function_environment("ReceiptsFunction")
    accepted = set(receipts_env["RECEIPT_LOG_GROUPS"].split(","))
    sources = template["Resources"]["ReceiptsFunction"]["Properties"]["Events"]
    subscribed = {
        str(stack.resolve(e["Properties"]["LogGroupName"]))
        for e in sources.values()
        if e["Type"] == "CloudWatchLogs"
    }
    topics = {str(stack.resolve(e["Properties"]["Topic"])) for e in sources.values() if e["Type"] == "SNS"}
    assert accepted == subscribed
    assert len(accepted) >= 4
    assert topics == {receipts_env["DELIVERY_EVENTS_TOPIC_ARN"]}
    inbound = template["Resources"]["InboundFunction"]["Properties"]["Events"]
    inbound_topics = {str(stack.resolve(e["Properties"]["Topic"])) for e in inbound.values()}
    assert inbound_topics == {stack.function_environment("InboundFunction")["INBOUND_TOPIC_ARN"]}
