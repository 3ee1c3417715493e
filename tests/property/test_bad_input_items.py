"""Malformed Loans and Borrowers items: a clear recorded error and a metric, never a crash, never a send.

Items are valid contract items with one or more mutations (hypothesis): a field dropped, a value of the
wrong type, huge or unicode strings, bad E.164 numbers, bad zone names, negative or absurd amounts, junk
flags, near-miss attribute names. Checked through the public interfaces:

- ``items.loan_from_item`` / ``items.borrower_from_item``: a model or ``InvalidItem`` with a one-line
  reason that never echoes the values (they may be a phone number), nothing else;
- the IndexerFunction, fed stream records of such loans: no batch item failure, a STOP ``data.invalid``
  in the ledger and the ``InvalidItem`` metric for each bad one, the good ones indexed;
- the PlannerFunction, with such borrowers behind due loans: a STOP ``data.invalid`` and the metric,
  no job;
- the SenderFunction, with valid but unusual items (unicode and emoji names, empty names, big amounts,
  every locale and currency): a text is either sent with every variable filled in, or not sent and the
  job recorded (SUPPRESSED / FAILED) - never a message with a gap in it.
"""

from __future__ import annotations

import itertools
import json
import re
import string
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from moto.sns.models import sns_backends

from dunning.items import InvalidItem, borrower_from_item, loan_from_item, raw_status
from dunning.jobs import Job
from dunning.models import Borrower, Channel, DecisionKind, Loan, LoanStatus
from dunning.render import first_name_for_message
from dunning_local import lambda_events as events
from dunning_local.invoke import WarmFunction, batch_item_failures, warm_function
from dunning_local.stack import LocalStack

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # 09:00 in New York
ACCOUNT, REGION = "123456789012", "us-east-1"
TERMINAL_STATUSES = {LoanStatus.PAID, LoanStatus.CLOSED, LoanStatus.CHARGED_OFF}
_ids = itertools.count()

# ---- strategies ---------------------------------------------------------------------------------

# Values DynamoDB can store (no floats, no empty sets, numbers within its 38 digits).
storable_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12).map(Decimal),
    st.decimals(min_value=-(10**12), max_value=10**12, places=4, allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.text(alphabet="💸🙂😡€¥£ÄÖÜßçñ漢字ǅ\u200b\u202e", min_size=1, max_size=20),
    st.sampled_from(["", " ", "null", "None", "{{ amount }}", "<script>", "'; DROP TABLE", "\x00"]),
)
storable = st.recursive(
    storable_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(min_size=1, max_size=12), inner, max_size=3),
        st.frozensets(st.text(min_size=1, max_size=8), min_size=1, max_size=3).map(set),
    ),
    max_leaves=6,
)
huge = st.sampled_from(["x" * 10_000, "漢" * 3_000, "💸" * 2_000])
bad_amounts = st.sampled_from(
    [Decimal("-1"), Decimal("-0.01"), Decimal("1000000000.01"), Decimal("1E+30"), Decimal("12.345"), "12,00"]
)
bad_e164 = st.sampled_from(
    [
        "12125550142",
        "+1 212 555 0142",
        "+1-212-555-0142",
        "++12125550142",
        "+0000000000",
        "+1212555014212345678",
        "+1212555O142",
        "tel:+12125550142",
        "+",
        "☎️+12125550142",
    ]
)
bad_zones = st.sampled_from(
    ["Mars/Olympus_Mons", "", "UTC+25", "../../etc/passwd", "America/New York", "EST5EDT6", "漢字/時區"]
)
numbers_to_watch = ("+12125550142", "2125550142", "+12125550199")


def valid_loan(loan_id: str, borrower_id: str) -> dict[str, Any]:
    return {
        "loan_id": loan_id,
        "borrower_id": borrower_id,
        "currency": "USD",
        "amount_due": Decimal("250.00"),
        "due_date": "2026-02-23",
        "status": "ACTIVE",
        "product": "installment",
        "jurisdiction": "US-NY",
    }


def valid_borrower(borrower_id: str, phone: str = "+12125550142") -> dict[str, Any]:
    return {
        "borrower_id": borrower_id,
        "first_name": "Ada",
        "locale": "en-US",
        "time_zone": "America/New_York",
        "phone": phone,
        "address": {"country": "US", "region": "NY"},
        "consent": {"sms": True},
    }


LOAN_FIELDS = ["borrower_id", "currency", "amount_due", "due_date", "status", "product", "jurisdiction"]
LOAN_REQUIRED = ["borrower_id", "currency", "amount_due", "due_date", "jurisdiction"]
BORROWER_FIELDS = [
    "first_name",
    "locale",
    "time_zone",
    "phone",
    "address",
    "push_endpoints",
    "consent",
    "opt_outs",
    "invalid_contacts",
]


@st.composite
def loan_mutation(draw: st.DrawFn, *, storable_only: bool = True) -> tuple[str, Any]:
    """One change to a valid loan item: (field, new value) or (field, DROP)."""
    kind = draw(st.sampled_from(["drop", "junk", "huge", "amount", "jurisdiction", "flags", "near", "date"]))
    if kind == "drop":
        return draw(st.sampled_from(LOAN_REQUIRED)), DROP
    if kind == "junk":
        return draw(st.sampled_from(LOAN_FIELDS)), draw(storable)
    if kind == "huge":
        return draw(st.sampled_from(["currency", "product", "jurisdiction", "due_date", "status"])), draw(
            huge
        )
    if kind == "amount":
        return "amount_due", draw(bad_amounts)
    if kind == "jurisdiction":
        return "jurisdiction", draw(st.sampled_from(["us-ny", "USA", "US-NEWYORK-X-Y", "", "XX-"]))
    if kind == "flags":
        flags = draw(
            st.sampled_from(
                [
                    {"cease_and_desist": "yes"},
                    {"ceasee_and_desist": True},
                    {"dispute": {"until": "2026-03-25"}},
                    {"promise_to_pay": {"until": "soon", "grace_days": -3}},
                    {"bankruptcy": Decimal(1)},
                    ["dispute"],
                    "dispute",
                ]
            )
        )
        return "flags", flags
    if kind == "near":
        return draw(st.sampled_from(["flag", "amount_dues", "borower_id", "jurisdction"])), "oops"
    return "due_date", draw(st.sampled_from(["2026-02-30", "yesterday", Decimal(20260223), "2026-13-01", ""]))


@st.composite
def borrower_mutation(draw: st.DrawFn) -> tuple[str, Any]:
    kind = draw(st.sampled_from(["junk", "huge", "phone", "zone", "endpoints", "near", "locale", "sets"]))
    if kind == "junk":
        return draw(st.sampled_from(BORROWER_FIELDS)), draw(storable)
    if kind == "huge":
        return draw(st.sampled_from(["first_name", "time_zone", "phone", "locale"])), draw(huge)
    if kind == "phone":
        return "phone", draw(bad_e164)
    if kind == "zone":
        return "time_zone", draw(bad_zones)
    if kind == "endpoints":
        return "push_endpoints", draw(
            st.sampled_from(
                [
                    [{"arn": "not-an-arn", "platform": "GCM"}],
                    [{"arn": "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/App/1", "platform": "WNS"}],
                    {"arn": "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/App/1"},
                    "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/App/1",
                ]
            )
        )
    if kind == "near":
        return draw(st.sampled_from(["optouts", "opt_out", "consents", "invalid_contact"])), {"sms"}
    if kind == "locale":
        return "locale", draw(st.sampled_from(["EN_us", "english", "zh_CN", "", "x" * 70]))
    return draw(st.sampled_from(["opt_outs", "invalid_contacts"])), draw(
        st.sampled_from([{"fax"}, "sms", [Decimal(1)], {"sms": True}])
    )


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP = _Drop()


def mutate(item: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(item)
    for name, value in changes:
        if value is DROP:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def values_in(value: Any) -> Iterator[str]:
    """Every string inside a (nested) value: what a reason must never echo."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from values_in(v)
    elif isinstance(value, list | set | frozenset | tuple):
        for v in value:
            yield from values_in(v)


# ---- pure: the item contract --------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.lists(loan_mutation(), min_size=1, max_size=3))
def test_a_malformed_loan_is_a_model_or_an_invalid_item_with_a_reason_that_echoes_no_value(
    changes: list[tuple[str, Any]],
) -> None:
    item = mutate(valid_loan("L-1", "B-1"), changes)
    try:
        loan = loan_from_item(item)
    except InvalidItem as exc:
        reason = str(exc)
        assert reason.startswith("loan L-1: ")
        assert "\n" not in reason
        assert len(reason) < 400
        for value in (v for _, c in changes for v in values_in(c)):
            if len(value) >= 6 and value not in {"ACTIVE", "installment", "dispute"}:
                assert value not in exc.reason, (value, reason)
        return
    assert isinstance(loan, Loan)
    assert Decimal(0) <= loan.amount_due <= Decimal(1_000_000_000)


@settings(max_examples=400, deadline=None)
@given(st.lists(borrower_mutation(), min_size=1, max_size=3), st.sampled_from(numbers_to_watch))
def test_a_malformed_borrower_never_echoes_the_phone_number(
    changes: list[tuple[str, Any]], phone: str
) -> None:
    item = mutate(valid_borrower("B-1", phone), changes)
    try:
        borrower = borrower_from_item(item)
    except InvalidItem as exc:
        assert str(exc).startswith("borrower B-1: ")
        assert "\n" not in str(exc)
        assert phone not in str(exc)
        assert phone.lstrip("+") not in str(exc)
        for value in (v for _, c in changes for v in values_in(c)):
            if len(value) >= 6:
                assert value not in exc.reason, (value, str(exc))
        return
    assert isinstance(borrower, Borrower)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(max_size=20), storable, max_size=8),
    st.sampled_from([loan_from_item, borrower_from_item]),
)
def test_any_mapping_at_all_is_a_model_or_an_invalid_item(item: dict[str, Any], parse: Any) -> None:
    try:
        parsed = parse(item)
    except InvalidItem as exc:
        assert exc.reason  # a recorded error says why
    else:
        assert isinstance(parsed, Loan | Borrower)
    # raw_status reads a paid loan even from an item that is otherwise garbage, and never raises.
    assert raw_status(item) is None or isinstance(raw_status(item), LoanStatus)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"), Decimal("sNaN")]))
def test_non_finite_amounts_are_refused_not_crashed_on(amount: Decimal) -> None:
    with pytest.raises(InvalidItem, match="amount_due"):
        loan_from_item({**valid_loan("L-1", "B-1"), "amount_due": amount})


# ---- through the handlers -----------------------------------------------------------------------


class Functions:
    """The handlers loaded once (warm) against one stack; examples share it with unique ids."""

    def __init__(self, stack: LocalStack, session: boto3.Session) -> None:
        self.stack = stack
        self.ddb = session.client("dynamodb")
        dynamodb = session.resource("dynamodb")
        self.state = dynamodb.Table(stack.tables["StateTable"])
        self.ledger = dynamodb.Table(stack.tables["LedgerTable"])
        self.loans_table = stack.tables["LoansTable"]
        self.borrowers_table = stack.tables["BorrowersTable"]
        self.sqs = session.client("sqs")
        self._warm: dict[str, WarmFunction] = {}

    def __call__(self, name: str, event: Any, at: datetime) -> Any:
        if name not in self._warm:
            self._warm[name] = warm_function(self.stack, name)
        return self._warm[name](event, now=at)

    def put_raw(self, table: str, item: dict[str, Any]) -> None:
        """Write an item as the lender's system would (any shape it likes)."""
        serializer = TypeSerializer()
        self.ddb.put_item(TableName=table, Item={k: serializer.serialize(v) for k, v in item.items()})

    def decisions(self, loan_id: str) -> list[dict[str, Any]]:
        return self.ledger.query(
            KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": f"LOAN#{loan_id}"}
        )["Items"]

    def cadence(self, loan_id: str) -> dict[str, Any]:
        return self.state.get_item(Key={"pk": f"LOAN#{loan_id}", "sk": "CADENCE"}).get("Item", {})

    def outcome(self, job: str) -> dict[str, Any]:
        return self.ledger.get_item(Key={"pk": f"JOB#{job}", "sk": "OUTCOME"}).get("Item", {})


def metric(out: str, name: str) -> float:
    """The total of one metric in the EMF blobs a handler printed."""
    total = 0.0
    for line in out.splitlines():
        if line.startswith('{"_aws"') and name in line:
            value = json.loads(line).get(name)
            total += sum(value) if isinstance(value, list) else float(value or 0)
    return total


@pytest.fixture
def functions(stack: LocalStack, aws: boto3.Session) -> Functions:
    return Functions(stack, aws)


def stream_record(item: dict[str, Any]) -> dict[str, Any]:
    serializer = TypeSerializer()
    return {
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {"loan_id": {"S": item["loan_id"]}},
            "NewImage": {k: serializer.serialize(v) for k, v in item.items()},
            "SequenceNumber": str(next(_ids)).zfill(21),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            "ApproximateCreationDateTime": T0.timestamp(),
        },
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(loan_mutation(), max_size=2), min_size=1, max_size=5))
def test_the_indexer_records_every_bad_loan_and_fails_no_record(
    functions: Functions, capsys: pytest.CaptureFixture[str], batch: list[list[tuple[str, Any]]]
) -> None:
    items = [mutate(valid_loan(f"L-ix{next(_ids)}", "B-1"), changes) for changes in batch]
    capsys.readouterr()
    stream_arn = (
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{functions.loans_table}/stream/2026-01-01T00:00:00"
    )
    event = events.dynamodb_stream_event([stream_record(i) for i in items], stream_arn)
    assert batch_item_failures(functions("IndexerFunction", event, T0)) == []
    invalid = 0
    for item in items:
        status = raw_status(item)
        decisions = functions.decisions(item["loan_id"])
        cadence = functions.cadence(item["loan_id"])
        if status in TERMINAL_STATUSES:
            assert [d["rule_id"] for d in decisions] == [f"status.{status.value.lower()}"]
            continue
        try:
            loan_from_item(item)
        except InvalidItem as exc:
            invalid += 1
            (stop,) = decisions
            assert stop["decision"] == "STOP"
            assert stop["rule_id"] == "data.invalid"
            assert stop["reason"] == str(exc)
            assert "due_shard" not in cadence
            continue
        assert decisions == []
        assert cadence["due_shard"].startswith("DUE#")
    assert metric(capsys.readouterr().out, "InvalidItem") == invalid


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(borrower_mutation(), min_size=1, max_size=2))
def test_the_planner_stops_a_loan_whose_borrower_is_malformed_and_publishes_nothing(
    functions: Functions, capsys: pytest.CaptureFixture[str], changes: list[tuple[str, Any]]
) -> None:
    n = next(_ids)
    borrower = mutate(valid_borrower(f"B-pl{n}"), changes)
    try:
        borrower_from_item(borrower)
    except InvalidItem as exc:
        reason = str(exc)
    else:
        assume(False)  # only malformed borrowers here
    loan_id = f"L-pl{n}"
    try:
        functions.put_raw(functions.borrowers_table, borrower)
    except ClientError:
        assume(False)  # DynamoDB itself refuses it (a 10 kB phone is a GSI key over 2 kB)
    functions.put_raw(functions.loans_table, valid_loan(loan_id, borrower["borrower_id"]))
    shard = "DUE#00"
    functions.state.put_item(
        Item={
            "pk": f"LOAN#{loan_id}",
            "sk": "CADENCE",
            "loan_id": loan_id,
            "borrower_id": borrower["borrower_id"],
            "home_shard": shard,
            "due_shard": shard,
            "next_contact_at": "2026-03-02T12:00:00Z",
        }
    )
    capsys.readouterr()
    task = {"shard": shard, "scheduled_time": "2026-03-02T14:00:00Z", "continuation": None}
    message = {"MessageId": f"task-{n}", "ReceiptHandle": "rh", "Body": json.dumps(task)}
    event = events.sqs_event([message], str(functions.stack.get_att("PlanQueue", "Arn")))
    assert batch_item_failures(functions("PlannerFunction", event, T0 + timedelta(seconds=10))) == []
    (stop,) = functions.decisions(loan_id)
    assert stop["rule_id"] == "data.invalid"
    assert stop["reason"] == reason
    assert "due_shard" not in functions.cadence(loan_id)
    out = capsys.readouterr().out
    assert metric(out, "InvalidItem") == 1
    assert metric(out, "Planned") == 0


# ---- nothing sent with a gap in it --------------------------------------------------------------

PLACEHOLDER = re.compile(r"\{\{|\}\}|\{%|%\}|\bNone\b|\bundefined\b|\bnan\b|\bNaN\b|<[a-z_]+>")

odd_names = st.one_of(
    st.just(""),
    st.text(alphabet=string.ascii_letters + " -'", max_size=64),
    st.text(alphabet="ÄÖÜßçñéåøŁŻ漢字李王张💸🙂\u200b", min_size=1, max_size=30),
    st.sampled_from(["{{ amount }}", "{% raw %}", "None", "Ada\nLovelace", "O'Brien-Smith", "x" * 64]),
)
odd_amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999999999.99"), places=2)
profiles = st.sampled_from(
    [
        ("US-NY", "USD", "en-US", "America/New_York", {"country": "US", "region": "NY"}, "+1212555"),
        ("US-MA", "USD", "es-US", "America/New_York", {"country": "US", "region": "MA"}, "+1617555"),
        ("US-CA", "USD", "zh-CN", "America/Los_Angeles", {"country": "US", "region": "CA"}, "+1415555"),
    ]
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(odd_names, odd_amounts, profiles, st.integers(min_value=3, max_value=40))
def test_a_text_is_sent_whole_or_not_at_all(
    functions: Functions, name: str, amount: Decimal, profile: tuple[Any, ...], days_late: int
) -> None:
    jurisdiction, currency, locale, zone, address, prefix = profile
    n = next(_ids)
    phone = f"{prefix}01{n % 100:02d}"
    borrower = {
        **valid_borrower(f"B-tx{n}", phone),
        "first_name": name,
        "locale": locale,
        "time_zone": zone,
        "address": address,
    }
    loan = {
        **valid_loan(f"L-tx{n}", borrower["borrower_id"]),
        "amount_due": amount,
        "currency": currency,
        "jurisdiction": jurisdiction,
        "due_date": (date(2026, 3, 2) - timedelta(days=days_late)).isoformat(),
    }
    try:
        parsed_loan, parsed_borrower = loan_from_item(loan), borrower_from_item(borrower)
    except InvalidItem:
        assume(False)
    functions.put_raw(functions.borrowers_table, borrower)
    functions.put_raw(functions.loans_table, loan)
    from dunning.engine import decide
    from dunning.models import ContactState
    from dunning.rules import load_rulebooks
    from dunning.strategy import load_strategies

    at = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)  # 14:00 in New York, 11:00 in Los Angeles
    decision = decide(
        parsed_loan,
        parsed_borrower,
        ContactState(borrower_id=parsed_borrower.borrower_id),
        at,
        load_rulebooks(),
        load_strategies(),
    )
    assume(decision.kind == DecisionKind.SEND and decision.channel == Channel.SMS)
    assert decision.step is not None
    job = Job(
        job_id=f"{loan['loan_id']}#{decision.step}",
        loan_id=loan["loan_id"],
        borrower_id=borrower["borrower_id"],
        step=decision.step,
        channel=Channel.SMS,
        template=decision.template or decision.step,
        planned_at=at,
        expires_at=at + timedelta(hours=1),
        rule_id=decision.rule_id,
        reason=decision.reason,
        phone=phone,
    )
    before = len(sns_backends[ACCOUNT][REGION].sms_messages)
    message = {"MessageId": f"job-{n}", "ReceiptHandle": "rh", "Body": job.to_json()}
    event = events.sqs_event([message], str(functions.stack.get_att("SmsQueue", "Arn")))
    assert batch_item_failures(functions("SenderFunction", event, at + timedelta(minutes=1))) == []
    sent = [text for number, text in list(sns_backends[ACCOUNT][REGION].sms_messages.values())[before:]]
    if sent:
        (text,) = sent
        # The borrower's own name may look like anything; everything else must be filled in.
        cleaned = first_name_for_message(name)
        assert PLACEHOLDER.search(text.replace(cleaned, "") if cleaned else text) is None, text
        assert "STOP" in text or "退订" in text or "TD" in text
    else:
        outcome = functions.outcome(job.job_id)
        assert outcome["status"] in {"SUPPRESSED", "FAILED"}
        assert outcome["reason"]
