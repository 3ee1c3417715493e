"""The indexer: keeps each loan's cadence item right as the lender's tables change (DynamoDB streams).

- a new loan → into the due-index at its first look (``FirstLook``: the earliest instant it could be
  sent as the planner's next tick will see it, judged without contact history; the stream record's time
  when in doubt), or, when that look is a STOP (a flag, no usable channel), out of it with the STOP
  recorded in the ledger, as the planner would have recorded it;
- PAID / CLOSED / CHARGED_OFF → out of the index at once, with a STOP in the ledger;
- a change that matters (anything in the contract but the amount) → due at its first look;
- an amount-only change → nothing (the next message reads the new amount anyway);
- a borrower change that matters (phone, consent, opt-outs, zone, locale, address, push endpoints,
  invalid contacts), a new or a removed borrower → that borrower's active loans due at their first look;
- a borrower's SMS consent given again (``consent.sms`` turned true) → a wrong-number block of their
  number is lifted (a new consent; a STOP is never lifted this way), ordered by the record's time;
- an item that breaks the contract → STOP ``data.invalid`` recorded, out of the index, skipped;
- a loan or borrower id that cannot be a key part (``dunning.ids``) → STOP ``data.invalid`` recorded
  under the id's digest, that record alone: never a key built from it, never the batch failed by it.

Work is gathered for the whole stream batch first, then done with batched reads and writes. A record
that cannot even be read is reported as a batch item failure; the rest of the batch still counts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from dunning import clock
from dunning.adapters.dynamo import Dynamo, WriteOp
from dunning.adapters.ledger import Ledger
from dunning.adapters.lender import Lender
from dunning.adapters.state import StateStore
from dunning.ids import attribute_id, id_problem, is_valid_id, storable_id
from dunning.items import TERMINAL, InvalidItem, borrower_from_item, loan_from_item, raw_status
from dunning.models import Borrower, Decision, DecisionKind, Loan, build_validators
from dunning.observability import MetricsRecorder, PackageLogger, mask_phone
from dunning.settings import IndexerSettings

logger = PackageLogger(__name__)
_deserializer = TypeDeserializer()

# A change to any of these may change what the engine decides; the amount alone does not.
LOAN_FIELDS_THAT_MATTER = frozenset(Loan.model_fields) - {"amount_due"}
BORROWER_FIELDS_THAT_MATTER = frozenset(
    {"phone", "consent", "opt_outs", "time_zone", "locale", "address", "push_endpoints", "invalid_contacts"}
)


class FirstLook:
    """When an indexed loan is first worth deciding, or the STOP it would get: judged without contact
    history (``dunning.engine.decide_without_history``), as the planner's next tick will see it.

    - A DEFER: the earliest instant it could be sent, spread over the pacing span like any window opening
      (``dunning.budget.paced_release``), instead of the stream record's time. So the planner does not
      decide a loan at night only to record a DEFER until the window opens.
    - A SEND now whose window closes before the planner's next tick (``look_ahead``, the schedule's
      interval) could only be deferred by that tick: it is indexed at the next opening instead. At most
      one interval of the window's end is given up for a loan that changed in it.
    - A STOP: returned as the decision. Contact history can only add blocks (caps, claims, opt-outs,
      disputes), never lift one, so the planner's next tick would stop it too, with the same items; the
      indexer records it and leaves the loan out of the due-index, as the planner would have.

    The engine, the rulebooks and the sending policy are loaded at the first loan, not with the function.
    """

    def __init__(self, look_ahead: timedelta = timedelta(0)) -> None:
        self._decide: Callable[[Loan, Borrower, datetime], Decision] | None = None
        self._span_minutes = 0
        self.look_ahead = look_ahead

    def _load(self) -> Callable[[Loan, Borrower, datetime], Decision]:
        from dunning.budget import load_sending_policy
        from dunning.engine import decide_without_history
        from dunning.rules import load_rulebooks
        from dunning.strategy import load_strategies

        rulebooks, strategies = load_rulebooks(), load_strategies()
        self._span_minutes = load_sending_policy().pacing_span_minutes
        return lambda loan, borrower, at: decide_without_history(loan, borrower, at, rulebooks, strategies)

    def look(self, change: LoanChange, borrower_item: Mapping[str, Any] | None) -> datetime | Decision:
        """The instant to put ``change``'s loan in the due-index at (its change time when in doubt), or
        the STOP to record instead."""
        if change.item is None or borrower_item is None:
            return change.at
        try:
            loan, borrower = loan_from_item(change.item), borrower_from_item(borrower_item)
        except InvalidItem:
            return change.at  # the planner records what is wrong with it, at once
        try:
            return self._look(loan, borrower, change.at)
        except Exception:
            logger.exception(
                "first look failed; the loan is indexed due now", extra={"loan_id": change.loan_id}
            )
            return change.at

    def _look(self, loan: Loan, borrower: Borrower, at: datetime) -> datetime | Decision:
        if self._decide is None:
            self._decide = self._load()
        first = self._decide(loan, borrower, at)
        if first.kind is DecisionKind.STOP:
            return first
        if first.kind is DecisionKind.DEFER and first.not_before is not None and first.not_before > at:
            return self._opening(loan, borrower, first)
        if self.look_ahead:
            then = self._decide(loan, borrower, at + self.look_ahead)
            if then.kind is DecisionKind.DEFER and then.not_before is not None and then.not_before > at:
                from dunning.budget import PACED_RULES

                if then.rule_id in PACED_RULES:
                    return self._opening(loan, borrower, then)
        return at

    def _opening(self, loan: Loan, borrower: Borrower, deferral: Decision) -> datetime:
        from dunning.budget import PACED_RULES, paced_release

        assert deferral.not_before is not None
        if deferral.rule_id not in PACED_RULES:
            return deferral.not_before  # as the planner would: only window openings are spread
        decide = self._decide
        assert decide is not None

        def sendable(then: datetime) -> bool:
            return decide(loan, borrower, then).kind is DecisionKind.SEND

        return paced_release(deferral.not_before, borrower.borrower_id, self._span_minutes, sendable)


class BadRecord(ValueError):
    """A stream record that is not a readable INSERT/MODIFY/REMOVE of a known table."""


@dataclass
class LoanChange:
    """What to do with one loan's cadence item: index it now, take it out, delete it, or nothing."""

    action: str  # "index" | "out" | "delete"
    loan_id: str
    borrower_id: str
    at: datetime
    rule_id: str = ""
    reason: str = ""
    item: dict[str, Any] | None = None  # the loan's item, when it is to be indexed


@dataclass
class Plan:
    loans: dict[str, LoanChange] = field(default_factory=dict)
    borrowers: dict[str, datetime] = field(default_factory=dict)
    # Numbers whose borrower's SMS consent was given again: (when, stream event id).
    consents: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    invalid: int = 0
    # Borrowers whose id cannot be a key part: (stand-in id, reason, at), recorded in the ledger only.
    invalid_borrowers: list[tuple[str, str, datetime]] = field(default_factory=list)


def _sms_consent(item: Mapping[str, Any] | None) -> bool:
    consent = (item or {}).get("consent")
    return isinstance(consent, Mapping) and consent.get("sms") is True


def table_of(event_source_arn: str) -> str:
    """``arn:aws:dynamodb:…:table/<name>/stream/<label>`` → ``<name>``."""
    try:
        return event_source_arn.split(":table/", 1)[1].split("/stream/", 1)[0]
    except IndexError:
        raise BadRecord("eventSourceARN is not a DynamoDB stream ARN") from None


def _image(dynamodb: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    image = dynamodb.get(name)
    if not image:
        return None
    return {k: _deserializer.deserialize(v) for k, v in image.items()}


def _contract_view(item: Mapping[str, Any] | None, fields: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in (item or {}).items() if k in fields}


@dataclass
class Indexer:
    lender: Lender
    state: StateStore
    ledger: Ledger
    clock: Callable[[], datetime]
    first_look: FirstLook = field(default_factory=FirstLook)

    def process(self, records: list[Mapping[str, Any]], metrics: MetricsRecorder) -> list[str]:
        """Apply a stream batch; returns the sequence numbers to report as batch item failures."""
        plan = Plan()
        failures: list[str] = []
        metrics.count("StreamRecords", len(records))
        sequence_numbers: list[str] = []
        for record in records:
            dynamodb = record.get("dynamodb")
            dynamodb = dynamodb if isinstance(dynamodb, Mapping) else {}
            sequence = str(dynamodb.get("SequenceNumber") or record.get("eventID") or "")[:128]
            sequence_numbers.append(sequence)
            try:
                self._read(record, plan)
            except Exception as exc:  # one record's shape must never take its neighbours down
                logger.error(
                    "unreadable stream record",
                    extra={"sequence": sequence, "error": f"{type(exc).__name__}: {str(exc)[:200]}"},
                )
                metrics.count("BadStreamRecord")
                # Without a sequence number it cannot be named to the stream (an empty identifier
                # would fail the whole batch): the log line is its record.
                if sequence:
                    failures.append(sequence)
        if plan.invalid:
            metrics.count("InvalidItem", plan.invalid)
        try:
            self._apply(plan, metrics)
        except Exception:
            # Nothing of the batch is known to be applied: report every record so the stream retries
            # from the first one (cadence writes are idempotent puts, a replay is harmless).
            logger.exception("indexer batch failed; the stream will retry it")
            return [s for s in sequence_numbers if s]
        return failures

    # ---- phase 1: what each record asks for ----------------------------------------------------

    def _read(self, record: Mapping[str, Any], plan: Plan) -> None:
        name = record.get("eventName")
        if name not in ("INSERT", "MODIFY", "REMOVE"):
            raise BadRecord(f"eventName {name!r}")
        table = table_of(str(record.get("eventSourceARN", "")))
        dynamodb = record.get("dynamodb")
        if not isinstance(dynamodb, Mapping):
            raise BadRecord("dynamodb missing or not an object")
        created = dynamodb.get("ApproximateCreationDateTime")
        at = datetime.fromtimestamp(float(created), UTC) if created is not None else self.clock()
        new, old = _image(dynamodb, "NewImage"), _image(dynamodb, "OldImage")
        if table == self.lender.loans_table:
            self._read_loan(name, new, old, at, plan, dynamodb)
        elif table == self.lender.borrowers_table:
            self._read_borrower(name, new, old, at, plan, dynamodb)
        else:
            raise BadRecord(f"stream of an unknown table {table!r}")

    def _read_loan(
        self,
        name: str,
        new: dict[str, Any] | None,
        old: dict[str, Any] | None,
        at: datetime,
        plan: Plan,
        dynamodb: Mapping[str, Any],
    ) -> None:
        if name == "REMOVE":
            keys = _image(dynamodb, "Keys") or old or {}
            loan_id = str(keys["loan_id"])
            if not is_valid_id(loan_id):
                # Never indexed under an id that cannot be a key: there is nothing to take out.
                return
            borrower_id = attribute_id((old or {}).get("borrower_id", ""))
            plan.loans[loan_id] = LoanChange(
                "delete", loan_id, borrower_id, at, "loan.removed", "loan deleted"
            )
            return
        if new is None:
            raise BadRecord("INSERT/MODIFY without NewImage (stream view type must be NEW_AND_OLD_IMAGES)")
        loan_id = str(new.get("loan_id") or (_image(dynamodb, "Keys") or {})["loan_id"])
        borrower_id = attribute_id(new.get("borrower_id", ""))
        problem = id_problem(loan_id)
        if problem is not None:
            stand_in = storable_id(loan_id)
            plan.invalid += 1
            # Recorded under the stand-in: a cadence item out of the index (so reconcile records it only
            # once) and a STOP in the ledger; the raw id never becomes a key.
            reason = f"loan {stand_in}: loan_id: {problem}"
            plan.loans[stand_in] = LoanChange("out", stand_in, borrower_id, at, "data.invalid", reason)
            logger.warning("invalid loan id", extra={"loan_id": stand_in, "reason": f"loan_id: {problem}"})
            return
        status, old_status = raw_status(new), raw_status(old)
        if status in TERMINAL:
            if name == "INSERT" or old_status not in TERMINAL:
                plan.loans[loan_id] = LoanChange(
                    "out",
                    loan_id,
                    borrower_id,
                    at,
                    f"status.{status.value.lower()}",
                    f"loan is {status.value}: no further reminders",
                )
            return
        try:
            loan_from_item(new)
        except InvalidItem as exc:
            plan.invalid += 1
            plan.loans[loan_id] = LoanChange("out", loan_id, borrower_id, at, "data.invalid", str(exc))
            logger.warning("invalid loan item", extra={"loan_id": loan_id, "reason": exc.reason})
            return
        if name == "MODIFY" and _contract_view(new, LOAN_FIELDS_THAT_MATTER) == _contract_view(
            old, LOAN_FIELDS_THAT_MATTER
        ):
            return  # an amount-only change (or the lender's own attributes): nothing to re-plan
        plan.loans[loan_id] = LoanChange(
            "index", loan_id, borrower_id, at, "loan.changed", f"loan {name.lower()}", new
        )

    def _read_borrower(
        self,
        name: str,
        new: dict[str, Any] | None,
        old: dict[str, Any] | None,
        at: datetime,
        plan: Plan,
        dynamodb: Mapping[str, Any],
    ) -> None:
        image = new or old or _image(dynamodb, "Keys") or {}
        borrower_id = str(image["borrower_id"])
        problem = id_problem(borrower_id)
        if problem is not None:
            # Its loans name it and are invalid themselves (their own records stop them); the borrower
            # is recorded once per change, under the stand-in, and re-plans nothing.
            stand_in = storable_id(borrower_id)
            plan.invalid += 1
            plan.invalid_borrowers.append((stand_in, f"borrower {stand_in}: borrower_id: {problem}", at))
            logger.warning(
                "invalid borrower id", extra={"borrower_id": stand_in, "reason": f"borrower_id: {problem}"}
            )
            return
        phone = (new or {}).get("phone")
        if _sms_consent(new) and not _sms_consent(old) and isinstance(phone, str) and phone:
            plan.consents[phone] = (at, f"stream-{dynamodb.get('SequenceNumber') or borrower_id}")
        if name == "MODIFY" and _contract_view(new, BORROWER_FIELDS_THAT_MATTER) == _contract_view(
            old, BORROWER_FIELDS_THAT_MATTER
        ):
            return
        plan.borrowers[borrower_id] = at

    # ---- phase 2: batched reads and writes -----------------------------------------------------

    def _apply(self, plan: Plan, metrics: MetricsRecorder) -> None:
        for number, (at, event_id) in plan.consents.items():
            # Before the loans are re-planned below, so the re-plan already sees the block lifted.
            lifted = self.state.consent.record_consent(
                number,
                opted_out=False,
                at=at,
                source="lender",
                reason="lender_consent",
                inbound_id=event_id,
                # An id that cannot be a key part would fail the transaction: left out (recorded by
                # its own stream record), never blocking the others.
                borrower_ids=[
                    b for b in self.lender.borrower_ids_with_phone(number) if id_problem(b) is None
                ],
                only_if_reason="wrong_number",
            )
            if lifted.recorded:
                logger.info("wrong-number block lifted by a new consent", extra={"phone": mask_phone(number)})
                metrics.count("WrongNumberLifted")
        # A borrower's change re-plans their loans that are still active; a change to the loan itself
        # in the same batch is newer information about that loan and wins.
        borrower_loans: dict[str, str] = {}
        for borrower_id in plan.borrowers:
            for loan_id in self.lender.loan_ids_of_borrower(borrower_id):
                # A loan whose id cannot be a key is stopped by its own stream record, not re-planned.
                if loan_id not in plan.loans and is_valid_id(loan_id):
                    borrower_loans[loan_id] = borrower_id
        indexed = [c for c in plan.loans.values() if c.action == "index"]
        loans, borrowers = self.lender.get_many(
            loan_ids=borrower_loans,
            borrower_ids={c.borrower_id for c in indexed} | set(borrower_loans.values()),
        )
        for loan_id, borrower_id in borrower_loans.items():
            item = loans.get(loan_id)
            if item is None or raw_status(item) in TERMINAL:
                continue
            at = plan.borrowers[borrower_id]
            plan.loans[loan_id] = LoanChange(
                "index", loan_id, borrower_id, at, "borrower.changed", "borrower changed", item
            )
            metrics.count("Replanned")

        writes: list[WriteOp] = [
            self.ledger.invalid_id_op("borrower", stand_in, reason, at)
            for stand_in, reason, at in plan.invalid_borrowers
        ]
        for change in plan.loans.values():
            if change.action == "index":
                look = self.first_look.look(change, borrowers.get(change.borrower_id))
                if isinstance(look, Decision):
                    # Stopped at its first look: recorded as the planner would record it, kept out of
                    # the index until the loan or its borrower changes again.
                    writes.append(_cadence_op(self.state, change, None, look.rule_id, look.reason))
                    writes.append(self.ledger.decision_op(look))
                    metrics.count("StoppedAtFirstLook")
                    continue
                phone = (borrowers.get(change.borrower_id) or {}).get("phone")
                phone = phone if isinstance(phone, str) and phone else None
                writes.append(_cadence_op(self.state, change, look, change.rule_id, change.reason, phone))
                metrics.count("Indexed")
                continue
            if change.action == "delete":
                writes.append(self.state.cadence.delete_cadence_op(change.loan_id))
            else:
                writes.append(_cadence_op(self.state, change, None, change.rule_id, change.reason))
            stop = Decision(
                kind=DecisionKind.STOP,
                loan_id=change.loan_id,
                borrower_id=change.borrower_id,
                at=change.at,
                rule_id=change.rule_id,
                reason=change.reason,
            )
            writes.append(self.ledger.decision_op(stop))
            metrics.count("Unindexed")
        if writes:
            self.ledger.dynamo.batch_write(writes)


def _cadence_op(
    state: StateStore,
    change: LoanChange,
    next_contact_at: datetime | None,
    rule_id: str,
    reason: str,
    phone: str | None = None,
) -> WriteOp:
    """The loan's cadence item: due at ``next_contact_at``, or out of the due-index (None), saying why."""
    cadence = state.cadence
    item = cadence.cadence_item(
        change.loan_id,
        change.borrower_id,
        next_contact_at=next_contact_at,
        at=change.at,
        rule_id=rule_id,
        reason=reason,
        phone=phone,
        phone_facts=_phone_facts(phone),
    )
    return cadence.put_op(item)


def _phone_facts(phone: str | None) -> str | None:
    """What parsing the number says, stored next to it so the planner does not parse it again."""
    if phone is None:
        return None
    # Imported on first use: phonenumbers' metadata stays out of the indexer's cold start.
    from dunning.zones import phone_facts

    return phone_facts(phone)


def build_indexer(settings: IndexerSettings) -> Indexer:
    """The indexer wired to AWS as the settings say (clients are created on first use)."""
    # Every loan it indexes is validated (the first look), with its borrower; a STOP's Decision only
    # when a loan leaves the index: built then.
    build_validators(Loan, Borrower)
    dynamo = Dynamo()
    return Indexer(
        lender=Lender(dynamo, settings.loans_table, settings.borrowers_table),
        state=StateStore(dynamo, settings.state_table, settings.shard_count),
        ledger=Ledger(dynamo, settings.ledger_table, settings.ledger_retention_days),
        clock=clock.now,
        first_look=FirstLook(look_ahead=settings.tick_interval or timedelta(0)),
    )
