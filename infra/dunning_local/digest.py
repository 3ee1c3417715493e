"""What the demo report shows beyond the audit's counts, built from the run's own records.

A per-tick timeline, the numbers per jurisdiction, each jurisdiction's contact window, replies by intent,
sample messages as the borrower sees them (one per locale, template and channel), the loans worth
exploring afterwards (an opt-out late at night, a cap hit, a dispute) and one explained trail.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from dunning.items import borrower_from_item, loan_from_item, parse_iso_utc
from dunning.jurisdictions import policy_for
from dunning.rules import load_rulebooks
from dunning.sms import sms_segments
from dunning_local.audit import table_items
from dunning_local.prices import PUSH_PRICE, sms_part_price

if TYPE_CHECKING:
    from dunning_local.simulate import Simulation


def rule_family(rule_id: str) -> str:
    """``window.quiet_hours`` → ``window``: the chart groups deferrals by the kind of rule."""
    return rule_id.split(".", 1)[0] if rule_id else "other"


def _tick_of(at: datetime, start: datetime, minutes: int) -> int:
    return max(0, int((at - start).total_seconds() // (minutes * 60)))


def timeline(
    ledger: Iterable[Mapping[str, Any]], start: datetime, tick_minutes: int, ticks: int
) -> list[dict[str, Any]]:
    """Per tick: messages sent by channel, deferrals by rule family, failures (sends and deliveries)."""
    rows: list[dict[str, Any]] = [
        {
            "tick": (start + timedelta(minutes=k * tick_minutes)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "sent": {"sms": 0, "push": 0},
            "deferred": {},
            "failed": 0,
        }
        for k in range(ticks)
    ]
    for item in ledger:
        kind = item.get("type")
        if kind not in ("MESSAGE", "DECISION", "OUTCOME") or not item.get("at"):
            continue
        k = min(_tick_of(parse_iso_utc(str(item["at"])), start, tick_minutes), ticks - 1)
        row = rows[k]
        if kind == "MESSAGE":
            channel = str(item.get("channel"))
            row["sent"][channel] = row["sent"].get(channel, 0) + 1
            row["failed"] += item.get("status") == "FAILED"
        elif kind == "DECISION" and item.get("decision") == "DEFER":
            family = rule_family(str(item.get("rule_id", "")))
            row["deferred"][family] = row["deferred"].get(family, 0) + 1
        elif kind == "OUTCOME" and item.get("status") == "FAILED":
            row["failed"] += 1
    return rows


def contact_windows(
    jurisdictions: Iterable[str], borrowers: Mapping[str, Any], loans: Mapping[str, Any], day: date
) -> dict[str, Any]:
    """Per loan jurisdiction: the hours each applicable rulebook allows on ``day`` (local), and where they
    overlap (what a send must respect in the borrower's own zone)."""
    rulebooks = load_rulebooks()
    wanted = set(jurisdictions)
    out: dict[str, Any] = {}
    for loan in loans.values():
        if loan.jurisdiction not in wanted or loan.jurisdiction in out:
            continue
        policy = policy_for(loan, borrowers[loan.borrower_id], rulebooks)
        books: list[dict[str, Any]] = []
        spans: list[tuple[int, int] | None] = []
        for window in policy.windows:
            span = window.day_rule(day).span
            spans.append((span.start, span.end) if span else None)
            books.append(
                {
                    "code": window.code,
                    "start": span.start if span else None,
                    "end": span.end if span else None,
                }
            )
        allowed: list[int] | None = None
        known = [s for s in spans if s is not None]
        if spans and len(known) == len(spans):
            lo, hi = max(s for s, _ in known), min(e for _, e in known)
            allowed = [lo, hi] if lo < hi else None
        out[loan.jurisdiction] = {"rulebooks": books, "allowed": allowed}
    return dict(sorted(out.items()))


def _push_views(payload: str) -> dict[str, str]:
    """Lock screen (what the OS shows) and detail (what the app shows) of an SNS push message."""
    try:
        outer = json.loads(payload)
        for key in ("APNS", "APNS_SANDBOX", "GCM"):
            if key in outer:
                inner = json.loads(outer[key])
                if "aps" in inner:
                    alert = inner["aps"]["alert"]
                    return {
                        "title": alert["title"],
                        "body": alert["body"],
                        "detail": inner["dunning"]["detail"],
                    }
                message = inner["fcmV1Message"]["message"]
                return {
                    "title": message["notification"]["title"],
                    "body": message["notification"]["body"],
                    "detail": message["data"]["detail"],
                }
    except (ValueError, KeyError, TypeError):
        pass
    return {"title": "", "body": str(payload)[:200], "detail": ""}


def sample_messages(
    messages: Sequence[Mapping[str, Any]], sms_bodies: Mapping[str, str], push_bodies: Mapping[str, str]
) -> list[dict[str, Any]]:
    """One message per (locale, template, channel), as the borrower saw it."""
    samples: dict[tuple[str, str, str], dict[str, Any]] = {}
    # The first message of each kind, by time then loan: message ids are random, loan ids are the seed's.
    for m in sorted(messages, key=lambda m: (str(m.get("at")), str(m.get("loan_id")), str(m.get("step")))):
        key = (str(m.get("locale") or "?"), str(m.get("template") or "?"), str(m.get("channel")))
        if key in samples:
            continue
        message_id = str(m.get("message_id"))
        sample: dict[str, Any] = {
            "locale": key[0],
            "template": key[1],
            "channel": key[2],
            "loan_id": m.get("loan_id"),
        }
        if key[2] == "sms" and message_id in sms_bodies:
            sample["text"] = sms_bodies[message_id]
            sample["segments"] = sms_segments(sms_bodies[message_id])
        elif key[2] == "push" and message_id in push_bodies:
            sample.update(_push_views(push_bodies[message_id]))
        else:
            continue
        samples[key] = sample
    return [samples[k] for k in sorted(samples)]


def _local_hour(at: datetime, zone_name: str | None) -> int:
    try:
        return at.astimezone(ZoneInfo(zone_name or "UTC")).hour
    except (KeyError, ValueError):
        return at.hour


def build(sim: Simulation, summary: Mapping[str, Any]) -> dict[str, Any]:
    """The report's extra sections (merged into the summary; keys another part already set are kept)."""
    from moto.sns.models import sns_backends

    o = sim.options
    ledger = table_items(sim.stack.account_id, sim.stack.region, sim.tables["LedgerTable"])
    loans = {i["loan_id"]: loan_from_item(i) for i in sim.book.loans}
    borrowers = {i["borrower_id"]: borrower_from_item(i) for i in sim.book.borrowers}
    backend = sns_backends[sim.stack.account_id][sim.stack.region]
    sms_bodies = {mid: body for mid, (_phone, body) in backend.sms_messages.items()}
    push_bodies = {
        mid: str(msg) for ep in backend.platform_endpoints.values() for mid, msg in ep.messages.items()
    }
    ticks = o.hours * 60 // o.tick_minutes

    messages = [i for i in ledger if i.get("type") == "MESSAGE"]
    decisions = [i for i in ledger if i.get("type") == "DECISION"]
    outcomes = [i for i in ledger if i.get("type") == "OUTCOME"]
    inbound = [
        i for i in ledger if i.get("type") == "INBOUND" and str(i.get("pk", "")).startswith("BORROWER#")
    ]

    # -- per jurisdiction -------------------------------------------------------------------------
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    cost: dict[str, float] = defaultdict(float)
    by_country: dict[str, dict[str, Any]] = {}
    for job in sim.jobs_seen:
        loan = loans.get(job.split("#", 1)[0])
        if loan is not None:
            rows[loan.jurisdiction]["planned"] += 1
    for d in decisions:
        loan = loans.get(str(d.get("loan_id") or str(d.get("pk", "")).removeprefix("LOAN#")))
        if loan is not None and d.get("decision") in ("DEFER", "STOP"):
            rows[loan.jurisdiction]["deferred" if d["decision"] == "DEFER" else "stopped"] += 1
    for x in outcomes:
        loan = loans.get(str(x.get("loan_id")))
        if loan is not None and x.get("status") == "SUPPRESSED":
            rows[loan.jurisdiction]["suppressed"] += 1
    for m in sorted(messages, key=lambda m: str(m.get("message_id"))):
        loan = loans[str(m["loan_id"])]
        row = rows[loan.jurisdiction]
        row["sent"] += 1
        row["delivered"] += m.get("status") == "DELIVERED"
        row["failed"] += m.get("status") == "FAILED"
        address = borrowers[str(m["borrower_id"])].address
        country = address.country if address else "US"
        spend = by_country.setdefault(country, {"sms": 0, "push": 0, "parts": 0, "usd": 0.0})
        if m.get("channel") == "sms":
            parts = sms_segments(sms_bodies.get(str(m.get("message_id")), "")) or int(m.get("segments") or 1)
            usd = parts * sms_part_price(country)
            row["parts"] += parts
            spend["sms"] += 1
            spend["parts"] += parts
        else:
            usd = PUSH_PRICE
            spend["push"] += 1
        cost[loan.jurisdiction] += usd
        spend["usd"] += usd
    jurisdictions = {
        code: {
            "planned": row["planned"],
            "sent": row["sent"],
            "deferred": row["deferred"],
            "stopped": row["stopped"],
            "suppressed": row["suppressed"],
            "delivered": row["delivered"],
            "failed": row["failed"],
            "delivered_rate": round(row["delivered"] / row["sent"], 4) if row["sent"] else None,
            "parts": row["parts"],
            "usd": round(cost[code], 4),
        }
        for code, row in sorted(rows.items())
    }

    # -- replies and the loans worth a look -------------------------------------------------------
    intents = Counter(str(i.get("intent")) for i in inbound)
    opt_out_hours: Counter[int] = Counter()
    interesting: list[dict[str, str]] = []
    loans_of: dict[str, list[str]] = defaultdict(list)
    for loan in loans.values():
        loans_of[loan.borrower_id].append(loan.loan_id)
    for i in sorted(inbound, key=lambda i: str(i.get("at"))):
        borrower_id = str(i["pk"]).removeprefix("BORROWER#")
        borrower = borrowers.get(borrower_id)
        if borrower is None or not loans_of.get(borrower_id):
            continue
        at = parse_iso_utc(str(i["at"]))
        hour = _local_hour(at, borrower.time_zone)
        if i.get("intent") == "STOP":
            opt_out_hours[hour] += 1
            if hour >= 22 and not any(x["why"].startswith("opt-out") for x in interesting):
                interesting.append(
                    {
                        "loan_id": sorted(loans_of[borrower_id])[0],
                        "why": f"opt-out by SMS at {hour:02d}:00 local",
                    }
                )
        if "dispute" in str(i.get("body", "")).lower() and not any(
            x["why"].startswith("dispute") for x in interesting
        ):
            interesting.append(
                {
                    "loan_id": sorted(loans_of[borrower_id])[0],
                    "why": "dispute reply: contact paused for a person",
                }
            )
    cap_hit = next(
        (
            str(d["pk"]).removeprefix("LOAN#")
            for d in sorted(decisions, key=lambda d: str(d.get("at")))
            if str(d.get("rule_id", "")).startswith("cap.")
        ),
        None,
    ) or next((str(x["loan_id"]) for x in outcomes if str(x.get("rule_id", "")).startswith("cap.")), None)
    if cap_hit:
        interesting.append({"loan_id": cap_hit, "why": "held back by a contact cap"})

    extras: dict[str, Any] = {
        "timeline": timeline(ledger, o.start, o.tick_minutes, ticks),
        "jurisdictions": jurisdictions,
        "contact_windows": contact_windows(jurisdictions, borrowers, loans, o.start.date()),
        "replies": {
            "by_intent": dict(intents.most_common()),
            "opt_out_local_hours": {str(h): n for h, n in sorted(opt_out_hours.items())},
        },
        "samples": sample_messages(messages, sms_bodies, push_bodies),
        "interesting_loans": interesting,
        "spend_by_country": {
            c: {**by_country[c], "usd": round(by_country[c]["usd"], 4)} for c in sorted(by_country)
        },
    }
    return {k: v for k, v in extras.items() if k not in summary}


def explained_trail(sim: Simulation, loan_id: str) -> list[dict[str, Any]]:
    """One loan's trail (``dunning explain --json``), read from the run's tables."""
    from dunning.adapters import Adapters
    from dunning.explain import explain

    tables = sim.tables
    adapters = Adapters.for_tables(
        loans_table=tables["LoansTable"],
        borrowers_table=tables["BorrowersTable"],
        state_table=tables["StateTable"],
        ledger_table=tables["LedgerTable"],
    )
    return [e.as_dict() for e in explain(loan_id, adapters)]
