"""Malformed events: SQS jobs, PlanQueue tasks, Logs subscription payloads, SNS receipts, inbound texts.

Whatever arrives, through the real handlers (loaded once, warm, on moto): no exception escapes, no
record of a batch fails because of its neighbour, every rejected input is recorded or counted (ledger
item and/or metric), and nothing is sent because of it. Inbound replies of any shape (unicode, emoji,
mixed case, very long) are classified without raising, and an opt-out hidden in them still wins.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.sns.models import sns_backends

from dunning.inbound import Intent, classify
from dunning.jobs import InvalidJob, parse_job
from dunning.observability import MaskingFormatter
from dunning_local import lambda_events as events
from dunning_local.invoke import WarmFunction, batch_item_failures, warm_function
from dunning_local.stack import LocalStack

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
ACCOUNT, REGION = "123456789012", "us-east-1"
PHONE = "+12125550142"
_ids = itertools.count()

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=30),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=8,
)
weird_text = st.one_of(
    st.text(max_size=200),
    st.text(alphabet="💸🙂😡🛑✋ÄÖÜ漢字退订停止\u200b\u202e\u00a0", max_size=50),
    st.sampled_from(["x" * 100_000, "STOP" * 5_000, "\x00\x01\x02", "{}", "[]", "null", '{"job_id": 1}']),
)


def emf_total(out: str, name: str) -> float:
    total = 0.0
    for line in out.splitlines():
        if line.startswith('{"_aws"') and f'"{name}"' in line:
            value = json.loads(line).get(name)
            total += sum(value) if isinstance(value, list) else float(value or 0)
    return total


class Functions:
    def __init__(self, stack: LocalStack, session: boto3.Session) -> None:
        self.stack = stack
        dynamodb = session.resource("dynamodb")
        self.ledger = dynamodb.Table(stack.tables["LedgerTable"])
        self._warm: dict[str, WarmFunction] = {}

    def __call__(self, name: str, event: Any, at: datetime = T0) -> Any:
        if name not in self._warm:
            self._warm[name] = warm_function(self.stack, name)
        return self._warm[name](event, now=at)

    def sqs(self, queue: str, bodies: list[str]) -> tuple[dict[str, Any], list[str]]:
        ids = [f"m-{next(_ids)}" for _ in bodies]
        messages = [
            {"MessageId": i, "ReceiptHandle": "rh", "Body": b} for i, b in zip(ids, bodies, strict=True)
        ]
        return events.sqs_event(messages, str(self.stack.get_att(queue, "Arn"))), ids

    def item(self, pk: str, sk: str) -> dict[str, Any]:
        return self.ledger.get_item(Key={"pk": pk, "sk": sk}).get("Item", {})


@pytest.fixture
def functions(stack: LocalStack, aws: boto3.Session) -> Functions:
    return Functions(stack, aws)


def sent_count() -> int:
    backend = sns_backends[ACCOUNT][REGION]
    return len(backend.sms_messages) + sum(len(e.messages) for e in backend.platform_endpoints.values())


HANDLER_SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# ---- SQS jobs -----------------------------------------------------------------------------------

GOOD_JOB = {
    "job_id": "L-404#D+7",
    "loan_id": "L-404",
    "borrower_id": "B-404",
    "step": "D+7",
    "channel": "sms",
    "template": "overdue",
    "planned_at": "2026-03-02T14:00:00Z",
    "expires_at": "2026-03-02T15:00:00Z",
    "rule_id": "cadence.step_due",
    "reason": "step due",
    "phone": PHONE,
}


@st.composite
def job_bodies(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["text", "json", "mutated"]))
    if kind == "text":
        return draw(weird_text)
    if kind == "json":
        return json.dumps(draw(json_values))
    job: dict[str, Any] = dict(GOOD_JOB)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        field = draw(st.sampled_from(sorted(GOOD_JOB)))
        change = draw(st.sampled_from(["drop", "junk", "huge", "naive"]))
        if change == "drop":
            job.pop(field, None)
        elif change == "junk":
            job[field] = draw(json_values)
        elif change == "huge":
            job[field] = "x" * 5_000
        else:
            job[field] = "2026-03-02T14:00:00"
    if draw(st.booleans()):
        job["extra"] = "not in a job"
    return json.dumps(job)


@HANDLER_SETTINGS
@given(st.lists(job_bodies(), min_size=1, max_size=10))
def test_malformed_jobs_are_recorded_and_consumed_and_nothing_is_sent(
    functions: Functions, capsys: pytest.CaptureFixture[str], bodies: list[str]
) -> None:
    capsys.readouterr()
    before = sent_count()
    event, ids = functions.sqs("SmsQueue", bodies)
    assert batch_item_failures(functions("SenderFunction", event, T0 + timedelta(minutes=1))) == []
    invalid = 0
    for message_id, body in zip(ids, bodies, strict=True):
        try:
            parse_job(body)
        except InvalidJob as exc:
            invalid += 1
            recorded = functions.item(f"SQS#{message_id}", "INVALID_JOB")
            assert recorded["reason"] == str(exc)
            assert "\n" not in recorded["reason"]
            assert PHONE not in recorded["reason"]
    assert sent_count() == before  # the one parseable job names a loan that does not exist
    assert emf_total(capsys.readouterr().out, "InvalidJob") == invalid


@HANDLER_SETTINGS
@given(st.lists(st.one_of(weird_text, json_values.map(json.dumps)), min_size=1, max_size=5))
def test_malformed_shard_tasks_are_consumed_and_counted(
    functions: Functions, capsys: pytest.CaptureFixture[str], bodies: list[str]
) -> None:
    capsys.readouterr()
    event, _ = functions.sqs("PlanQueue", bodies)
    assert batch_item_failures(functions("PlannerFunction", event)) == []
    assert emf_total(capsys.readouterr().out, "InvalidTask") == len(bodies)


# ---- Logs subscription payloads -----------------------------------------------------------------


def awslogs(payload: Any) -> dict[str, Any]:
    data = base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()
    return {"awslogs": {"data": data}}


@st.composite
def delivery_records(draw: st.DrawFn) -> Any:
    """A delivery-status record with some of its fields replaced by junk (or the whole thing junk)."""
    record = events.sms_delivery_record(f"junk-{next(_ids)}", PHONE, T0, success=True, price=0.00581)
    if draw(st.booleans()):
        return draw(json_values)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        target = draw(st.sampled_from(["notification", "delivery", "status", "top"]))
        value = draw(
            st.one_of(
                json_values,
                st.sampled_from(
                    [
                        float("nan"),
                        float("inf"),
                        10**60,
                        "x" * 50_000,
                        "0001-01-01 00:00:00.000",
                        "9999-12-31 23:59:59.999",
                    ]
                ),
            )
        )
        if target == "top":
            record[draw(st.sampled_from(["notification", "delivery", "status"]))] = value
        elif target == "status":
            record["status"] = value
        elif isinstance(record.get(target), dict):
            key = draw(
                st.sampled_from(
                    ["messageId", "timestamp"]
                    if target == "notification"
                    else ["priceInUSD", "dwellTimeMs", "phoneCarrier", "providerResponse", "destination"]
                )
            )
            record[target][key] = value
    return record


@HANDLER_SETTINGS
@given(
    st.lists(delivery_records(), max_size=6),
    st.one_of(st.none(), json_values, st.just("not a list")),
    st.integers(min_value=1, max_value=3),
)
def test_bad_log_events_are_counted_and_never_spoil_the_good_ones(
    functions: Functions,
    capsys: pytest.CaptureFixture[str],
    junk: list[Any],
    odd_message: Any,
    good: int,
) -> None:
    group = str(functions.stack.ref("SmsDeliveryLogGroup"))
    ids = [f"ok-{next(_ids)}" for _ in range(good)]
    for message_id in ids:
        functions.ledger.put_item(
            Item={
                "pk": f"MSG#{message_id}",
                "sk": "MESSAGE",
                "type": "MESSAGE",
                "message_id": message_id,
                "status": "SENT",
                "at": "2026-03-02T14:00:30Z",
            }
        )
    good_events = [
        events.sms_delivery_record(i, PHONE, T0 + timedelta(minutes=1), success=True, price=0.00581)
        for i in ids
    ]
    log_events = [
        {"id": str(n), "timestamp": 1772460000000, "message": m if isinstance(m, str) else json.dumps(m)}
        for n, m in enumerate([*junk, *good_events])
    ]
    log_events.append({"id": "odd", "timestamp": 0, "message": odd_message})
    payload = {"messageType": "DATA_MESSAGE", "logGroup": group, "logEvents": log_events}
    capsys.readouterr()
    result = functions("ReceiptsFunction", awslogs(payload), T0 + timedelta(minutes=2))
    assert result["receipts"] >= good
    for message_id in ids:
        assert functions.item(f"MSG#{message_id}", "MESSAGE")["status"] == "DELIVERED"
    out = capsys.readouterr().out
    assert result["receipts"] + emf_total(out, "BadReceipt") == len(log_events)


@HANDLER_SETTINGS
@given(
    st.one_of(
        weird_text.map(lambda t: {"awslogs": {"data": t}}),
        json_values.map(lambda v: awslogs(v)),
        st.dictionaries(st.sampled_from(["messageType", "logGroup", "logEvents"]), json_values).map(awslogs),
        st.lists(json_values, max_size=3).map(lambda records: {"Records": records}),
        json_values.map(lambda v: {"awslogs": v}),
    )
)
def test_any_payload_at_all_is_refused_quietly(functions: Functions, event: dict[str, Any]) -> None:
    result = functions("ReceiptsFunction", event, T0)
    assert result == {"receipts": 0} or result["receipts"] >= 0


@HANDLER_SETTINGS
@given(st.lists(st.one_of(json_values, weird_text), min_size=1, max_size=4))
def test_end_user_messaging_events_of_any_shape_are_counted_not_raised(
    functions: Functions, capsys: pytest.CaptureFixture[str], messages: list[Any]
) -> None:
    topic = str(functions.stack.topics["DeliveryEventsTopic"])
    records = []
    for m in messages:
        text = m if isinstance(m, str) else json.dumps(m)
        records += events.sns_event(topic, text, T0)["Records"]
    capsys.readouterr()
    result = functions("ReceiptsFunction", {"Records": records}, T0)
    assert result["receipts"] + emf_total(capsys.readouterr().out, "BadReceipt") <= len(records)


def test_eum_events_with_absurd_numbers_are_bad_receipts(functions: Functions) -> None:
    topic = str(functions.stack.topics["DeliveryEventsTopic"])
    base = {"eventType": "TEXT_DELIVERED", "isFinal": True, "messageId": "eum-absurd", "eventTimestamp": 1}
    for odd in ({"eventTimestamp": 10**30}, {"eventTimestamp": -(10**30)}, {"totalMessagePrice": "NaN"}):
        result = functions("ReceiptsFunction", events.sns_event(topic, json.dumps({**base, **odd}), T0), T0)
        assert result["receipts"] in (0, 1)
    price = functions.item("MSG#eum-absurd", "RECEIPT").get("price_usd")
    assert price is None or Decimal(price).is_finite()


# ---- wrong event shapes, every handler -------------------------------------------------------------

RECORD_FUNCTIONS = ["SenderFunction", "PlannerFunction", "IndexerFunction", "InboundFunction"]
ALL_FUNCTIONS = [*RECORD_FUNCTIONS, "ReceiptsFunction", "ReconcileFunction"]
odd_records = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.integers(),
    st.lists(json_values, max_size=2),
    st.dictionaries(st.sampled_from(["messageId", "body", "dynamodb", "eventName", "Sns"]), json_values),
)
wrong_shapes = st.one_of(
    json_values,
    st.sampled_from([{}, {"Records": None}, {"Records": "not a list"}, {"Records": [None]}, {"Records": {}}]),
    st.builds(lambda records: {"Records": records}, json_values),
    st.builds(lambda records: {"Records": records}, st.lists(odd_records, max_size=5)),
)


def identifiers(event: Any) -> set[str]:
    """What a partial batch response may name: ids the event's records really carry."""
    records = event.get("Records") if isinstance(event, dict) else None
    found: set[str] = set()
    for record in records if isinstance(records, list) else []:
        if isinstance(record, dict):
            dynamodb = record.get("dynamodb")
            for value in (
                record.get("messageId"),
                record.get("eventID"),
                dynamodb.get("SequenceNumber") if isinstance(dynamodb, dict) else None,
            ):
                if value:
                    found.add(str(value)[:128])
    return found


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
@HANDLER_SETTINGS
@given(event=wrong_shapes)
def test_an_event_of_the_wrong_shape_is_answered_never_raised(
    functions: Functions, function: str, event: Any
) -> None:
    result = functions(function, event)
    assert isinstance(result, dict)
    failures = batch_item_failures(result)
    assert "" not in failures  # an empty identifier would fail the whole batch
    assert set(failures) <= identifiers(event)


@pytest.mark.parametrize("function", RECORD_FUNCTIONS)
@pytest.mark.parametrize(
    "event",
    [[], "Records", 7, None, {"Records": "x"}, {"Records": {"a": 1}}, {"Records": 3}],
    ids=["list", "string", "number", "null", "records-string", "records-object", "records-number"],
)
def test_a_wrong_event_shape_is_logged_and_counted(
    functions: Functions,
    capsys: pytest.CaptureFixture[str],
    log_lines: list[str],
    function: str,
    event: Any,
) -> None:
    capsys.readouterr()
    log_lines.clear()
    result = functions(function, event)
    assert batch_item_failures(result) == []
    assert emf_total(capsys.readouterr().out, "MalformedEvent") == 1
    assert any('"level":"ERROR"' in line and "malformed event" in line for line in log_lines)


def test_null_and_string_records_do_not_stop_the_real_records_of_a_sender_batch(
    functions: Functions, capsys: pytest.CaptureFixture[str]
) -> None:
    event, ids = functions.sqs("SmsQueue", ["not a job"])
    event["Records"] = [None, "a string record", *event["Records"], 42]
    capsys.readouterr()
    assert batch_item_failures(functions("SenderFunction", event, T0)) == []
    out = capsys.readouterr().out
    assert emf_total(out, "MalformedRecord") == 3
    assert functions.item(f"SQS#{ids[0]}", "INVALID_JOB")["reason"] == "body is not JSON (JSONDecodeError)"


def test_a_stream_record_without_a_sequence_number_is_skipped_and_its_neighbours_indexed(
    functions: Functions, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{functions.stack.tables['LoansTable']}/stream/x"
    broken = [
        {"eventName": "INSERT", "eventSourceARN": arn, "dynamodb": "not an object"},
        {"eventName": "MODIFY", "eventSourceARN": arn, "dynamodb": {"SequenceNumber": "7", "NewImage": []}},
    ]
    capsys.readouterr()
    result = functions("IndexerFunction", {"Records": broken})
    assert batch_item_failures(result) == ["7"]
    assert emf_total(capsys.readouterr().out, "BadStreamRecord") == 2


# ---- inbound texts ------------------------------------------------------------------------------

opt_out_words = st.sampled_from(
    ["STOP", "stop", "Stop", "ＳＴＯＰ", "unsubscribe", "退订", "STOP ALL", "OptOut"]
)


@settings(max_examples=300, deadline=None)
@given(weird_text, opt_out_words, weird_text)
def test_an_opt_out_inside_any_text_is_an_opt_out(before: str, word: str, after: str) -> None:
    # Separated from the surrounding text, as a word is; the surrounding text may be anything.
    assert classify(f"{before[:2000]} {word} {after[:2000]}") == Intent.STOP


@settings(max_examples=300, deadline=None)
@given(weird_text)
def test_classify_takes_any_text(text: str) -> None:
    assert classify(text) in set(Intent)


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every record the functions log, formatted as their CloudWatch handler formats it (masked JSON)."""
    lines: list[str] = []
    service = logging.getLogger("dunning")

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            handler = next((h for h in service.handlers if h is not self), None)
            formatter = handler.formatter if handler and handler.formatter else MaskingFormatter()
            lines.append(formatter.format(record))

    collect = Collect()
    service.addHandler(collect)
    try:
        yield lines
    finally:
        service.removeHandler(collect)


@HANDLER_SETTINGS
@given(weird_text, st.sampled_from(["+12125550142", "+16175550123", "+447700900123", "+12125550199"]))
def test_any_reply_is_recorded_once_without_its_body_in_the_logs(
    functions: Functions, log_lines: list[str], body: str, phone: str
) -> None:
    inbound_id = f"in-{next(_ids)}"
    message = events.inbound_sms(phone, "+12125550101", body, inbound_id=inbound_id)
    event = events.sns_event(str(functions.stack.topics["InboundTopic"]), message, T0)
    log_lines.clear()
    assert functions("InboundFunction", event, T0) == {"handled": 1}
    recorded = functions.ledger.query(
        KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": f"PHONE#{phone}"}
    )["Items"]
    (reply,) = [r for r in recorded if r["inbound_id"] == inbound_id]
    assert reply["intent"] == classify(body).value
    assert len(str(reply.get("body", ""))) <= 1600
    assert log_lines  # the reply is logged: its intent and a masked number
    logged = "\n".join(log_lines)
    if len(body.strip()) >= 8:
        assert body not in logged
    assert phone not in logged


@HANDLER_SETTINGS
@given(json_values, st.sampled_from(["originationNumber", "messageBody", "inboundMessageId", None]))
def test_inbound_payloads_of_any_shape_are_rejected_or_handled(
    functions: Functions, capsys: pytest.CaptureFixture[str], junk: Any, field: str | None
) -> None:
    payload: Any = json.loads(events.inbound_sms(PHONE, "+12125550101", "HELP", inbound_id=f"j-{next(_ids)}"))
    if field is None:
        payload = junk
    else:
        payload[field] = junk
    event = events.sns_event(str(functions.stack.topics["InboundTopic"]), json.dumps(payload), T0)
    capsys.readouterr()
    result = functions("InboundFunction", event, T0)
    rejected = emf_total(capsys.readouterr().out, "InboundRejected")
    assert result["handled"] + rejected == 1
