"""The run's own records, checked: counts for the report and the invariants that must hold.

The invariants are checked from what the system recorded and what AWS (moto) saw, not from what the
planner meant to do:

- no send outside a window: every MESSAGE's instant, in every candidate zone of its borrower, falls in
  the hours each applicable rulebook allows that local day (checked against the rulebooks' day rules
  directly, not through the engine's interval arithmetic);
- no cap exceeded: recounting every borrower's messages over every cap's rolling window, for the caps
  of every candidate jurisdiction (loan, address, and the region the phone number implies: the same
  ``dunning.jurisdictions.candidate_jurisdictions`` the engine decides with);
- no duplicate: at most one MESSAGE per (loan, step), and every SMS/push SNS accepted is either a
  recorded MESSAGE or a reply to a borrower's own text;
- every job in a terminal state: each job the senders received has a MESSAGE or an OUTCOME, and no
  queue or dead-letter queue holds anything.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dunning import zones
from dunning.items import borrower_from_item, loan_from_item, parse_iso_utc
from dunning.jurisdictions import Candidates, candidate_jurisdictions
from dunning.models import Borrower, Loan
from dunning.rules import Policy, load_rulebooks
from dunning.sms import sms_segments
from dunning_local.throughput_stats import throughput_summary

if TYPE_CHECKING:
    from dunning_local.simulate import Simulation

_MONTH_CAP = "calendar_month"


def table_items(account_id: str, region: str, table: str) -> list[dict[str, Any]]:
    """Every item of a table on in-process moto, as plain Python values.

    Read from moto's backend rather than with Scan: the audit is not part of the product, and
    serialising tens of thousands of items through the HTTP layer would dominate the demo's run time.
    """
    from boto3.dynamodb.types import TypeDeserializer
    from moto.dynamodb.models import dynamodb_backends

    des = TypeDeserializer()
    source = dynamodb_backends[account_id][region].get_table(table)
    return [
        {k: des.deserialize(v) for k, v in item.to_json()["Attributes"].items()}
        for item in source.all_items()
    ]


def window_violation(at: datetime, policy: Policy, zone_names: Iterable[str]) -> str | None:
    """Why ``at`` is outside an allowed window in some candidate zone, or None if it is inside all."""
    for zone_name in zone_names:
        local = at.astimezone(zones.zone(zone_name))
        minute = local.hour * 60 + local.minute
        for window in policy.windows:
            rule = window.day_rule(local.date())
            if rule.span is None or not rule.span.start <= minute < rule.span.end:
                allowed = "no contact" if rule.span is None else str(rule.span)
                return f"{local:%a %Y-%m-%d %H:%M} {zone_name} ({window.code} allows {allowed})"
    return None


def cap_violations(
    sends: list[tuple[datetime, str, str]], policy_of: Mapping[str, Policy], primary_zone: str
) -> list[str]:
    """Caps exceeded among one borrower's sends: (instant, loan_id, channel), any order."""
    problems = []
    ordered = sorted(sends)
    for i, (at, loan_id, channel) in enumerate(ordered):
        for cap in policy_of[loan_id].caps:
            if channel not in {c.value for c in cap.channels}:
                continue
            counted = 0
            for other_at, other_loan, other_channel in ordered[: i + 1]:
                if other_channel not in {c.value for c in cap.channels}:
                    continue
                if cap.scope == "debt" and other_loan != loan_id:
                    continue
                if cap.period_us is None:
                    here = at.astimezone(zones.zone(primary_zone))
                    there = other_at.astimezone(zones.zone(primary_zone))
                    inside = (here.year, here.month) == (there.year, there.month)
                else:
                    inside = (at - other_at).total_seconds() * 1_000_000 < cap.period_us
                counted += inside
            if counted > cap.limit:
                problems.append(f"{cap.ref.rule_id} ({cap.describe()}): {counted} by {at:%Y-%m-%d %H:%M}Z")
    return problems


def _invariant(name: str, failures: list[str], ok_detail: str) -> dict[str, Any]:
    if failures:
        shown = "; ".join(failures[:3]) + (f" (+{len(failures) - 3} more)" if len(failures) > 3 else "")
        return {"name": name, "passed": False, "detail": f"{len(failures)} violation(s): {shown}"}
    return {"name": name, "passed": True, "detail": ok_detail}


@dataclass(frozen=True)
class RunRecords:
    """What a run left behind, read once: the ledger by item type, the state table, the book, the
    policies the engine decided under, and what SNS accepted."""

    messages: list[dict[str, Any]]
    outcomes: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    inbound: list[dict[str, Any]]
    receipts_only: list[dict[str, Any]]
    state: list[dict[str, Any]]
    loans: dict[str, Loan]
    borrowers: dict[str, Borrower]
    candidates: dict[str, Candidates]
    sms_bodies: dict[str, str]
    sms_phones: dict[str, str]
    push_ids: set[str]

    @property
    def policy_of(self) -> dict[str, Policy]:
        """Each loan's merged policy."""
        return {loan_id: c.policy for loan_id, c in self.candidates.items()}

    def sends_per_borrower(self) -> dict[str, list[tuple[datetime, str, str]]]:
        """(instant, loan_id, channel) of every MESSAGE, by borrower."""
        per_borrower: dict[str, list[tuple[datetime, str, str]]] = defaultdict(list)
        for m in self.messages:
            at = parse_iso_utc(str(m["at"]))
            per_borrower[str(m["borrower_id"])].append((at, str(m["loan_id"]), str(m["channel"])))
        return per_borrower


def read_records(sim: Simulation) -> RunRecords:
    """Read the run's tables, book and SNS backend into ``RunRecords``."""
    from moto.sns.models import sns_backends

    account, region = sim.stack.account_id, sim.stack.region
    ledger = table_items(account, region, sim.tables["LedgerTable"])
    loans = {i["loan_id"]: loan_from_item(i) for i in sim.book.loans}
    borrowers = {i["borrower_id"]: borrower_from_item(i) for i in sim.book.borrowers}
    rulebooks = load_rulebooks()
    backend = sns_backends[account][region]

    def of_type(kind: str) -> list[dict[str, Any]]:
        return [i for i in ledger if i.get("type") == kind]

    return RunRecords(
        messages=of_type("MESSAGE"),
        outcomes=of_type("OUTCOME"),
        decisions=of_type("DECISION"),
        inbound=of_type("INBOUND"),
        receipts_only=of_type("RECEIPT"),
        state=table_items(account, region, sim.tables["StateTable"]),
        loans=loans,
        borrowers=borrowers,
        candidates={
            loan_id: candidate_jurisdictions(loan, borrowers[loan.borrower_id], rulebooks)
            for loan_id, loan in loans.items()
        },
        sms_bodies={message_id: body for message_id, (_phone, body) in backend.sms_messages.items()},
        sms_phones={message_id: phone for message_id, (phone, _body) in backend.sms_messages.items()},
        push_ids={mid for ep in backend.platform_endpoints.values() for mid in ep.messages},
    )


def counts(records: RunRecords) -> dict[str, Any]:
    """The report's counts: sent, delivery, deferrals, stops, suppressions, opt-outs, replies, hours."""
    messages, outcomes, decisions = records.messages, records.outcomes, records.decisions
    delivery = Counter(str(m["status"]) for m in messages)
    deferred = Counter(str(d["rule_id"]) for d in decisions if d.get("decision") == "DEFER")
    suppressed = Counter(f"{o['status'].lower()}: {o.get('rule_id', '?')}" for o in outcomes)
    hours: Counter[int] = Counter()
    for m in messages:
        loan = records.loans[str(m["loan_id"])]
        where = zones.candidate_zones(loan, records.borrowers[str(m["borrower_id"])])
        hours[parse_iso_utc(str(m["at"])).astimezone(zones.zone(where.primary)).hour] += 1
    return {
        "sent": dict(Counter(str(m["channel"]) for m in messages)),
        "delivery": {**{k: delivery.get(k, 0) for k in ("DELIVERED", "FAILED", "SENT")}, **dict(delivery)},
        "deferred": dict(deferred),
        "stopped": dict(Counter(str(d["rule_id"]) for d in decisions if d.get("decision") == "STOP")),
        "suppressed": dict(suppressed),
        "cap_hits": sum(n for rule, n in deferred.items() if rule.startswith("cap."))
        + sum(n for rule, n in suppressed.items() if ": cap." in rule),
        "opt_outs": sum(
            1 for s in records.state if str(s.get("pk", "")).startswith("PHONE#") and s.get("sms_opted_out")
        ),
        "inbound": dict(
            Counter(
                str(i.get("intent"))
                for i in records.inbound
                if str(i.get("pk", "")).startswith(("BORROWER#", "PHONE#"))
            )
        ),
        "receipts_without_message": len(records.receipts_only),
        "by_jurisdiction": dict(Counter(records.loans[str(m["loan_id"])].jurisdiction for m in messages)),
        "local_hour_histogram": {str(h): hours.get(h, 0) for h in range(24)},
    }


def check_windows(records: RunRecords) -> dict[str, Any]:
    """Invariant: every MESSAGE inside every applicable rulebook's hours in every candidate zone."""
    policy_of = records.policy_of

    def problem(m: Mapping[str, Any]) -> str | None:
        loan = records.loans[str(m["loan_id"])]
        where = zones.candidate_zones(loan, records.borrowers[str(m["borrower_id"])])
        return window_violation(parse_iso_utc(str(m["at"])), policy_of[loan.loan_id], where.zones)

    failures = [f"{m['loan_id']} {m['step']}: {p}" for m in records.messages if (p := problem(m))]
    return _invariant(
        "no send outside a contact window (every candidate zone, every rulebook)",
        failures,
        f"{len(records.messages):,} messages checked in all their borrowers' candidate zones",
    )


def check_caps(records: RunRecords) -> dict[str, Any]:
    """Invariant: no borrower's sends exceed a cap of any candidate jurisdiction, per borrower or debt."""
    policy_of, candidates = records.policy_of, records.candidates
    per_borrower = records.sends_per_borrower()
    failures = []
    for borrower_id, sends in per_borrower.items():
        loan = records.loans[sends[0][1]]
        primary = zones.candidate_zones(loan, records.borrowers[borrower_id]).primary
        failures += [f"{borrower_id}: {p}" for p in cap_violations(sends, policy_of, primary)]
    # Borrowers held to a rulebook only their phone number brings (a Boston number, no address).
    by_phone = {
        borrower_id
        for borrower_id, sends in per_borrower.items()
        if any(
            j.source == "phone" and j.rulebook and j.rulebook not in candidates[loan_id].codes("loan")
            for _, loan_id, _ in sends
            for j in candidates[loan_id].applied
        )
    }
    return _invariant(
        "no cap exceeded (per borrower and per debt, every rolling window)",
        failures,
        f"{len(per_borrower):,} borrowers' sends recounted against every applicable cap "
        f"({len(by_phone):,} of them under a rulebook their phone number brings)",
    )


def check_no_duplicates(records: RunRecords) -> dict[str, Any]:
    """Invariant: one MESSAGE per (loan, step), and SNS and the ledger agree on every message."""
    messages = records.messages
    per_step = Counter((str(m["loan_id"]), str(m["step"])) for m in messages)
    failures = [f"{loan} {step} sent {n} times" for (loan, step), n in per_step.items() if n > 1]
    recorded_ids = {str(m["message_id"]) for m in messages}
    repliers = {str(i.get("phone")) for i in records.inbound}
    failures += [
        f"an SMS SNS accepted ({message_id[:8]}) has no ledger MESSAGE"
        for message_id, phone in records.sms_phones.items()
        if message_id not in recorded_ids and phone not in repliers
    ]
    failures += [
        f"a push SNS accepted ({message_id[:8]}) has no ledger MESSAGE"
        for message_id in records.push_ids - recorded_ids
    ]
    failures += [
        f"ledger MESSAGE {message_id[:8]} was never accepted by SNS"
        for message_id in recorded_ids - set(records.sms_bodies) - records.push_ids
    ]
    return _invariant(
        "no duplicate per loan and step; nothing sent unrecorded",
        failures,
        f"{len(per_step):,} (loan, step) pairs sent once each; "
        f"{len(records.sms_bodies):,} SMS and {len(records.push_ids):,} push matched to the ledger",
    )


def check_terminal(sim: Simulation, records: RunRecords) -> dict[str, Any]:
    """Invariant: every job the senders received ended in a MESSAGE or an OUTCOME; every queue drained."""
    terminal = {(str(m["loan_id"]), str(m["step"])) for m in records.messages} | {
        (str(x["loan_id"]), str(x["step"])) for x in records.outcomes
    }
    failures = [
        f"job {job} has no terminal record"
        for job in sorted(sim.jobs_seen)
        if tuple(job.split("#", 1)) not in terminal
    ]
    for logical, url in sim.queues.items():
        attrs = sim.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        waiting = int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        )
        if waiting:
            failures.append(f"{logical} still holds {waiting} message(s)")
    return _invariant(
        "every job in a terminal state, every queue drained",
        failures,
        f"{len(sim.jobs_seen):,} jobs: {len(terminal):,} with a MESSAGE or OUTCOME; queues and DLQs empty",
    )


def cost(records: RunRecords) -> dict[str, Any]:
    """The run's estimated cost: SMS parts at each destination's price, push, and infrastructure."""
    from dunning_local.prices import INFRA_PER_MESSAGE, PUSH_PRICE, sms_part_price

    sms_parts = 0
    sms_usd = 0.0
    for m in records.messages:
        body = records.sms_bodies.get(str(m["message_id"]))
        if m["channel"] != "sms" or body is None:
            continue
        parts = sms_segments(body)
        address = records.borrowers[str(m["borrower_id"])].address
        sms_parts += parts
        sms_usd += parts * sms_part_price(address.country if address else "US")
    push_usd = sum(1 for m in records.messages if m["channel"] == "push") * PUSH_PRICE
    infra_usd = len(records.messages) * INFRA_PER_MESSAGE
    total = sms_usd + push_usd + infra_usd
    return {
        "sms_parts": sms_parts,
        "sms_usd": round(sms_usd, 4),
        "push_usd": round(push_usd, 6),
        "infra_usd": round(infra_usd, 6),
        "total_usd": round(total, 4),
        "per_message_usd": round(total / max(len(records.messages), 1), 6),
    }


def summarise(sim: Simulation, *, elapsed: float) -> dict[str, Any]:
    """The report's numbers and the invariants, from the ledger, the state table, SNS and the queues."""
    o = sim.options
    records = read_records(sim)
    return {
        "run": {
            "loans": len(records.loans),
            "borrowers": len(records.borrowers),
            "hours": o.hours,
            "tick_minutes": o.tick_minutes,
            "ticks": o.hours * 60 // o.tick_minutes,
            "seed": o.seed,
            "fault_rate": o.fault_rate,
            "shards": o.shards,
            "start": o.start.isoformat(),
            "elapsed_seconds": round(elapsed, 1),
            "invocations": dict(sim.invocations),
        },
        **counts(records),
        # Parts per delivered SMS, peak sends per minute per identity, spend per country (issue 11).
        **throughput_summary(records.messages, records.sms_bodies, records.loans),
        "invariants": [
            check_windows(records),
            check_caps(records),
            check_no_duplicates(records),
            check_terminal(sim, records),
        ],
        "cost": cost(records),
    }
