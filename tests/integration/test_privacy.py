"""What the functions write to CloudWatch Logs holds no phone number, push token or message body.

A full run through the real handlers - indexing, a tick, texts and pushes, a dead number, a throttled
publish, a poison job, delivery receipts (hard failures included), STOP / HELP / free text / START
replies, an invalid borrower item, the daily sweep - with the service logger at DEBUG (stricter than the
template's INFO). Every record is captured as CloudWatch would get it: the service's records through
the service's own handler and formatter, anything else that reaches the root logger (botocore,
Powertools internals: what the Lambda runtime ships), and the EMF metric blobs on stdout. The captured
text is then searched, decoded from JSON where it is JSON, for every seeded number (E.164 and national
digits), every push token and endpoint id, and every message body that went out or came in.

The ledger and the attention events do hold numbers and bodies (that is their job; the ledger is
encrypted at rest, see test_template.py); logs never do.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.logging.filters import SuppressFilter
from moto.sns.exceptions import SNSInvalidParameter
from moto.sns.models import SNSBackend, sns_backends
from pipeline_helpers import (
    ACCOUNT,
    INDEXED_AT,
    MA_PHONE,
    NY_PHONE,
    OUR_NUMBER,
    REGION,
    TICK,
    Harness,
    book,
    loan,
    start_harness,
)

from dunning import engine
from dunning.items import borrower_to_item, loan_to_item
from dunning.models import Address, Borrower, Consent
from dunning.observability import MaskingFormatter
from dunning_local import faults
from dunning_local import lambda_events as events
from dunning_local.stack import LocalStack

DEAD_PHONE = "+12125550177"
POISON_PHONE = "+12125550178"
FREE_TEXT = "I dispute this, my other number is +12125550179, call me"
FREE_TEXT_ZH = "我有异议，请打我另一个号码 13123456789"


@pytest.fixture
def captured() -> Iterator[list[str]]:
    """Every log record, formatted as it would reach CloudWatch Logs."""
    lines: list[str] = []
    service = logging.getLogger("dunning")
    plain = logging.Formatter("%(name)s %(levelname)s %(message)s")

    class Collect(logging.Handler):
        def __init__(self, formatter_of: Any) -> None:
            super().__init__(level=logging.DEBUG)
            self.formatter_of = formatter_of

        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.formatter_of().format(record))

    def service_formatter() -> logging.Formatter:
        handler = next((h for h in service.handlers if not isinstance(h, Collect)), None)
        return handler.formatter if handler and handler.formatter else MaskingFormatter()

    from_service = Collect(service_formatter)
    # The Lambda runtime ships the root logger's records too (WARNING and up by default). Its handler
    # exists before Powertools configures the service logger, which then filters the service's own
    # records out of it (they go through the service's masked handler instead); the same here.
    from_root = Collect(lambda: plain)
    from_root.setLevel(logging.WARNING)
    from_root.addFilter(SuppressFilter("dunning"))
    service.addHandler(from_service)
    logging.getLogger().addHandler(from_root)
    try:
        yield lines
    finally:
        service.removeHandler(from_service)
        logging.getLogger().removeHandler(from_root)


def strings_in(line: str) -> Iterator[str]:
    """The line itself and, for a JSON line, every decoded string in it (bodies may be \\u-escaped)."""
    yield line
    try:
        value = json.loads(line)
    except ValueError:
        return
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
            stack.extend(item.keys())
        elif isinstance(item, list):
            stack.extend(item)


def run_everything(pipeline: Harness, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    loans, borrowers, endpoints = book(aws)
    extra = [
        Borrower(
            borrower_id=f"B-{name}",
            first_name="Grace",
            time_zone="America/New_York",
            phone=phone,
            address=Address(country="US", region="NY"),
            consent=Consent(sms=True),
        )
        for name, phone in (("DEAD", DEAD_PHONE), ("POISON", POISON_PHONE))
    ]
    extra_loans = [loan(f"L-{name}", f"B-{name}", "US-NY", date(2026, 2, 23)) for name in ("DEAD", "POISON")]
    pipeline.seed(loans + extra_loans, borrowers + extra)
    # A borrower item that breaks the contract, with a number that is not E.164.
    bad = {
        **borrower_to_item(borrowers[0]),
        "borrower_id": "B-BAD",
        "phone": "212 555 0176",
        "push_endpoints": [{"arn": "not an endpoint", "platform": "GCM"}],
    }
    pipeline.borrowers.put_item(Item=bad)
    pipeline.loans.put_item(Item=loan_to_item(loan("L-BAD", "B-BAD", "US-NY", date(2026, 2, 23))))
    pipeline.index(INDEXED_AT)

    publish = SNSBackend.publish

    def refuse_dead(backend: Any, message: str, arn: str | None = None, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("phone_number") == DEAD_PHONE:
            raise SNSInvalidParameter(f"Invalid parameter: PhoneNumber Reason: {DEAD_PHONE} is not valid")
        return publish(backend, message, arn, *args, **kwargs)

    decide = engine.decide

    def poison(loan_: Any, *args: Any) -> Any:
        if loan_.loan_id == "L-POISON":
            raise RuntimeError(f"cannot decide for {POISON_PHONE}")
        return decide(loan_, *args)

    monkeypatch.setattr(SNSBackend, "publish", refuse_dead)
    pipeline.tick(TICK)
    pipeline.plan(TICK + timedelta(seconds=10))
    jobs = pipeline.jobs()
    monkeypatch.setattr(engine, "decide", poison)
    # The first delivery is throttled throughout; the second goes through.
    with faults.injected(1.0, seed=11, operations={faults.SNS_PUBLISH}):
        pipeline.send(jobs, TICK + timedelta(minutes=1))
    pipeline.send(jobs, TICK + timedelta(minutes=2))
    monkeypatch.setattr(engine, "decide", decide)

    at = TICK + timedelta(minutes=5)
    messages = pipeline.messages()
    sms_group = str(pipeline.stack.ref("SmsDeliveryFailureLogGroup"))
    push_group = str(pipeline.stack.ref("FcmDeliveryFailureLogGroup"))
    for n in range(3):  # hard failures until the number is marked unusable
        message = messages["L-NY"]
        record = events.sms_delivery_record(
            str(message["message_id"]), NY_PHONE, at + timedelta(minutes=n), success=False, price=0
        )
        pipeline.invoke("ReceiptsFunction", events.logs_subscription_event(sms_group, [(at, record)]), at)
    record = events.push_delivery_record(
        str(messages["L-GB"]["message_id"]), endpoints["GB"], at, success=False
    )
    pipeline.invoke("ReceiptsFunction", events.logs_subscription_event(push_group, [(at, record)]), at)
    unknown = events.sms_delivery_record("not-ours", MA_PHONE, at, success=True, price=0.00581)
    ok_group = str(pipeline.stack.ref("SmsDeliveryLogGroup"))
    pipeline.invoke("ReceiptsFunction", events.logs_subscription_event(ok_group, [(at, unknown)]), at)

    topic = str(pipeline.stack.topics["InboundTopic"])
    for n, (phone, body) in enumerate(
        [
            (MA_PHONE, "HELP"),
            (NY_PHONE, FREE_TEXT),
            (NY_PHONE, FREE_TEXT_ZH),
            (MA_PHONE, "Stop texting me"),
            (MA_PHONE, "START"),
        ]
    ):
        payload = events.inbound_sms(phone, OUR_NUMBER, body, inbound_id=f"priv-{n}")
        when = at + timedelta(minutes=10 + n)
        pipeline.invoke("InboundFunction", events.sns_event(topic, payload, when), when)
    pipeline.invoke("ReconcileFunction", {"scheduled_time": "2026-03-03T03:30:00Z"}, at)


def test_a_full_run_logs_no_number_token_or_body(
    stack: LocalStack,
    aws: boto3.Session,
    monkeypatch: pytest.MonkeyPatch,
    captured: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    pipeline = start_harness(stack, aws, monkeypatch)
    pipeline.env = {"LOG_LEVEL": "DEBUG"}
    run_everything(pipeline, aws, monkeypatch)
    metrics_out = capsys.readouterr().out.splitlines()
    lines = captured + [line for line in metrics_out if line.startswith('{"_aws"')]
    # The run did log, errors and warnings included, with numbers in their masked form.
    assert len(captured) > 30
    assert any('"level":"ERROR"' in line for line in captured)
    assert any("+12*******42" in line for line in captured)
    assert any("invalid item" in line for line in captured)

    backend = sns_backends[ACCOUNT][REGION]
    numbers = {str(b["phone"]) for b in pipeline.borrowers.scan()["Items"] if b.get("phone")}
    numbers |= {DEAD_PHONE, POISON_PHONE, "+12125550179"}
    secrets = {n for n in numbers} | {n.removeprefix("+1") for n in numbers if n.startswith("+1")}
    secrets |= {"13123456789", "2125550176", "212 555 0176"}
    endpoints = list(backend.platform_endpoints.values())
    secrets |= {e.token for e in endpoints}
    secrets |= {e.arn.rsplit("/", 1)[1] for e in endpoints}  # the endpoint id identifies a device
    bodies = [text for _, text in backend.sms_messages.values()]
    bodies += [m for e in endpoints for m in e.messages.values()]
    for raw in list(bodies):
        try:  # push: every platform's payload, and the title/body/detail inside it
            for payload in json.loads(raw).values():
                bodies.append(payload)
                bodies.extend(str(v) for v in strings_in(payload) if len(str(v)) > 20)
        except (ValueError, AttributeError):
            pass
    bodies += [FREE_TEXT, FREE_TEXT_ZH]
    assert len(bodies) > 8
    assert len(secrets) > 10

    leaks = []
    for line in lines:
        for text in strings_in(line):
            leaks += [f"{s!r} in {line[:160]}" for s in secrets if s in text]
            leaks += [f"body {b[:30]!r}… in {line[:160]}" for b in bodies if b in text]
    assert leaks == []
