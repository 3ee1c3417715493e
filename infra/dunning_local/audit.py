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


def _candidate_zones(loan: Loan, borrower: Borrower) -> zones.Whereabouts:
    phone = zones.phone_info(borrower.phone) if borrower.phone else None
    address = borrower.address
    return zones.whereabouts(
        borrower.time_zone,
        phone.zones if phone is not None and phone.valid else (),
        address.country if address else None,
        address.region if address else None,
        loan.jurisdiction.split("-")[0],
    )


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


def summarise(sim: Simulation, *, elapsed: float) -> dict[str, Any]:
    """The report's numbers and the invariants, from the ledger, the state table, SNS and the queues."""
    from moto.sns.models import sns_backends

    o = sim.options
    account, region = sim.stack.account_id, sim.stack.region
    ledger = table_items(account, region, sim.tables["LedgerTable"])
    state = table_items(account, region, sim.tables["StateTable"])
    loans = {i["loan_id"]: loan_from_item(i) for i in sim.book.loans}
    borrowers = {i["borrower_id"]: borrower_from_item(i) for i in sim.book.borrowers}
    rulebooks = load_rulebooks()
    candidates: dict[str, Candidates] = {
        loan_id: candidate_jurisdictions(loan, borrowers[loan.borrower_id], rulebooks)
        for loan_id, loan in loans.items()
    }
    policy_of = {loan_id: c.policy for loan_id, c in candidates.items()}

    messages = [i for i in ledger if i.get("type") == "MESSAGE"]
    outcomes = [i for i in ledger if i.get("type") == "OUTCOME"]
    decisions = [i for i in ledger if i.get("type") == "DECISION"]
    inbound = [i for i in ledger if i.get("type") == "INBOUND"]
    receipts_only = [i for i in ledger if i.get("type") == "RECEIPT"]

    # -- counts -----------------------------------------------------------------------------------
    sent = Counter(str(m["channel"]) for m in messages)
    delivery = Counter(str(m["status"]) for m in messages)
    deferred = Counter(str(d["rule_id"]) for d in decisions if d.get("decision") == "DEFER")
    stopped = Counter(str(d["rule_id"]) for d in decisions if d.get("decision") == "STOP")
    suppressed = Counter(f"{o_['status'].lower()}: {o_.get('rule_id', '?')}" for o_ in outcomes)
    cap_hits = sum(n for rule, n in deferred.items() if rule.startswith("cap.")) + sum(
        n for rule, n in suppressed.items() if ": cap." in rule
    )
    opted_out_now = sum(
        1 for s in state if str(s.get("pk", "")).startswith("PHONE#") and s.get("sms_opted_out")
    )
    inbound_intents = Counter(
        str(i.get("intent")) for i in inbound if str(i.get("pk", "")).startswith(("BORROWER#", "PHONE#"))
    )

    # -- invariants -------------------------------------------------------------------------------
    hours: Counter[int] = Counter()
    window_failures: list[str] = []
    per_borrower: dict[str, list[tuple[datetime, str, str]]] = defaultdict(list)
    primary: dict[str, str] = {}
    by_jurisdiction: Counter[str] = Counter()
    for m in messages:
        loan = loans[str(m["loan_id"])]
        borrower = borrowers[str(m["borrower_id"])]
        at = parse_iso_utc(str(m["at"]))
        where = _candidate_zones(loan, borrower)
        primary[borrower.borrower_id] = where.primary
        hours[at.astimezone(zones.zone(where.primary)).hour] += 1
        by_jurisdiction[loan.jurisdiction] += 1
        problem = window_violation(at, policy_of[loan.loan_id], where.zones)
        if problem:
            window_failures.append(f"{loan.loan_id} {m['step']}: {problem}")
        per_borrower[borrower.borrower_id].append((at, loan.loan_id, str(m["channel"])))
    cap_failures = [
        f"{bid}: {p}"
        for bid, sends in per_borrower.items()
        for p in cap_violations(sends, policy_of, primary[bid])
    ]
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

    per_step = Counter((str(m["loan_id"]), str(m["step"])) for m in messages)
    duplicate_failures = [f"{loan} {step} sent {n} times" for (loan, step), n in per_step.items() if n > 1]
    backend = sns_backends[sim.stack.account_id][sim.stack.region]
    recorded_ids = {str(m["message_id"]) for m in messages}
    repliers = {str(i.get("phone")) for i in inbound}
    sms_bodies: dict[str, str] = {}
    for message_id, (phone, body) in backend.sms_messages.items():
        sms_bodies[message_id] = body
        if message_id not in recorded_ids and phone not in repliers:
            duplicate_failures.append(f"an SMS SNS accepted ({message_id[:8]}) has no ledger MESSAGE")
    push_ids = {mid for ep in backend.platform_endpoints.values() for mid in ep.messages}
    for message_id in push_ids - recorded_ids:
        duplicate_failures.append(f"a push SNS accepted ({message_id[:8]}) has no ledger MESSAGE")
    for message_id in recorded_ids - set(sms_bodies) - push_ids:
        duplicate_failures.append(f"ledger MESSAGE {message_id[:8]} was never accepted by SNS")

    terminal = {(str(m["loan_id"]), str(m["step"])) for m in messages} | {
        (str(x["loan_id"]), str(x["step"])) for x in outcomes
    }
    terminal_failures = [
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
            terminal_failures.append(f"{logical} still holds {waiting} message(s)")

    invariants = [
        _invariant(
            "no send outside a contact window (every candidate zone, every rulebook)",
            window_failures,
            f"{len(messages):,} messages checked in all their borrowers' candidate zones",
        ),
        _invariant(
            "no cap exceeded (per borrower and per debt, every rolling window)",
            cap_failures,
            f"{len(per_borrower):,} borrowers' sends recounted against every applicable cap "
            f"({len(by_phone):,} of them under a rulebook their phone number brings)",
        ),
        _invariant(
            "no duplicate per loan and step; nothing sent unrecorded",
            duplicate_failures,
            f"{len(per_step):,} (loan, step) pairs sent once each; "
            f"{len(backend.sms_messages):,} SMS and {len(push_ids):,} push matched to the ledger",
        ),
        _invariant(
            "every job in a terminal state, every queue drained",
            terminal_failures,
            f"{len(sim.jobs_seen):,} jobs: {len(terminal):,} with a MESSAGE or OUTCOME; "
            "queues and DLQs empty",
        ),
    ]

    # -- cost -------------------------------------------------------------------------------------
    from dunning_local.prices import INFRA_PER_MESSAGE, PUSH_PRICE, SMS_PRICE_PER_PART

    sms_parts = 0
    sms_usd = 0.0
    for m in messages:
        if m["channel"] != "sms" or str(m["message_id"]) not in sms_bodies:
            continue
        parts = sms_segments(sms_bodies[str(m["message_id"])])
        country = borrowers[str(m["borrower_id"])].address
        price = SMS_PRICE_PER_PART.get(country.country if country else "US", 0.01)
        sms_parts += parts
        sms_usd += parts * price
    push_usd = sent.get("push", 0) * PUSH_PRICE
    infra_usd = len(messages) * INFRA_PER_MESSAGE

    ticks = o.hours * 60 // o.tick_minutes
    return {
        "run": {
            "loans": len(loans),
            "borrowers": len(borrowers),
            "hours": o.hours,
            "tick_minutes": o.tick_minutes,
            "ticks": ticks,
            "seed": o.seed,
            "fault_rate": o.fault_rate,
            "shards": o.shards,
            "start": o.start.isoformat(),
            "elapsed_seconds": round(elapsed, 1),
            "invocations": dict(sim.invocations),
        },
        "sent": dict(sent),
        "delivery": {**{k: delivery.get(k, 0) for k in ("DELIVERED", "FAILED", "SENT")}, **dict(delivery)},
        "deferred": dict(deferred),
        "stopped": dict(stopped),
        "suppressed": dict(suppressed),
        "cap_hits": cap_hits,
        "opt_outs": opted_out_now,
        "inbound": dict(inbound_intents),
        "receipts_without_message": len(receipts_only),
        "by_jurisdiction": dict(by_jurisdiction),
        "local_hour_histogram": {str(h): hours.get(h, 0) for h in range(24)},
        # Parts per delivered SMS, peak sends per minute per identity, spend per country (issue 11).
        **throughput_summary(messages, sms_bodies, loans),
        "invariants": invariants,
        "cost": {
            "sms_parts": sms_parts,
            "sms_usd": round(sms_usd, 4),
            "push_usd": round(push_usd, 6),
            "infra_usd": round(infra_usd, 6),
            "total_usd": round(sms_usd + push_usd + infra_usd, 4),
            "per_message_usd": round((sms_usd + push_usd + infra_usd) / max(len(messages), 1), 6),
        },
    }
