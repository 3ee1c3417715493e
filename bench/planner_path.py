"""The planner's whole CPU path on a realistic tick, per CPU second: ``python -m bench.planner_path``.

What bench/decisions.py leaves out, measured here: a tick decides its loans at one instant (the tick's
scheduled time, not a spread of instants), every borrower has a number of their own (so the phone cache
does not hit), and a loan costs more than ``decide``: its DynamoDB items are parsed into models
(``dunning.items``, the contact state of ``dunning.adapters.contact``), and a SEND becomes a job and
its JSON, a DEFER or STOP a cadence item and a ledger item, as ``dunning.planner`` does. Only the
I/O is left out (BatchGetItem, PublishBatch, BatchWriteItem, and boto3's wire conversion), and the
send budget's admission (a sort of the page's SENDs and one spend reservation per page and country).

The book is generated in this process and handed to a fresh interpreter (a subprocess: no cache of
this process helps it), which times the path with ``time.process_time`` after ``gc.freeze()``. Two
runs: ``parse`` (the due-index entries carry only the number, each one is parsed with phonenumbers)
and ``facts`` (the entries carry the phone facts the indexer stored, ``dunning.zones.phone_facts``).

Phone numbers are fictional and distinct: North American 555-0100..555-0199 in every US area code and
the Ontario, Quebec and British Columbia area codes that libphonenumber accepts (about 40,000 numbers),
and, for British borrowers, Ofcom's drama ranges for geographic numbers (020 7946 0xxx, 0113 496 0xxx
and the like; Ofcom's mobile drama range 07700 900xxx is not a valid number for libphonenumber). The
book has no Chinese, Indian or Irish borrowers: those countries have no fictional range big enough.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import pickle
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

# A tick at 14:00 UTC on a Monday: 09:00 in New York, 06:00 in Los Angeles, 14:00 in London.
TICK = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
LOANS = 40_000
PAGE = 100
SHARDS = 8
_STEPS = ("D-3", "D-1", "D+1", "D+3", "D+7", "D+15", "D+30")
# Ofcom's drama ranges for UK geographic numbers (national significant numbers without the last three
# digits) that libphonenumber accepts as valid; each holds 1,000 numbers.
_GB_DRAMA = (
    "2079460",
    "1134960",
    "1144960",
    "1164960",
    "1174960",
    "1184960",
    "1214960",
    "1314960",
    "1414960",
    "1514960",
    "1614960",
    "1914980",
)
_GB_SHARE = 0.05
# Canadian loans only where a provincial rulebook exists (there is no rulebook for CA alone).
_CA_PROVINCES = frozenset({"CA-ON", "CA-QC", "CA-BC"})


@dataclass(frozen=True)
class Entry:
    """A due-index entry as ``CadenceStore.due_pages`` yields it (``dunning.adapters.cadence.DueEntry``)."""

    loan_id: str
    borrower_id: str
    phone: str | None
    phone_facts: str | None


def _nanp_pool() -> list[tuple[str, tuple[str, ...]]]:
    """(number, regions) for every fictional 555-01xx number of a US or ruled Canadian area code."""
    import phonenumbers

    from dunning.zones import _area_codes

    pool: list[tuple[str, tuple[str, ...]]] = []
    for npa, regions in sorted(_area_codes().items()):
        if not regions or (regions[0].startswith("CA") and not set(regions) & _CA_PROVINCES):
            continue
        if not phonenumbers.is_valid_number(phonenumbers.parse(f"+1{npa}5550100", None)):
            continue
        pool += [(f"+1{npa}5550{k}", regions) for k in range(100, 200)]
    return pool


def _gb_pool() -> list[str]:
    return [f"+44{prefix}{k:03d}" for prefix in _GB_DRAMA for k in range(1000)]


def _address(
    rng: random.Random, country: str, region: str | None, states: list[str]
) -> tuple[str | None, str | None]:
    roll = rng.random()
    if roll < 0.05:
        return None, None
    if roll < 0.12 and country == "US":
        return country, rng.choice(states)  # moved, kept the number
    return country, region


def generate(n: int = LOANS, seed: int = 20260302, facts: bool = False) -> dict[str, Any]:
    """A tick's book of ``n`` loans as DynamoDB items, each borrower with a number of their own."""
    from bench.decisions import random_flags
    from dunning.adapters.state_keys import CONSENT, CONTACT
    from dunning.items import borrower_to_item, iso_utc, loan_to_item
    from dunning.models import (
        Address,
        Borrower,
        Channel,
        Consent,
        Loan,
        LoanStatus,
        PushEndpoint,
    )
    from dunning.zones import address_zones

    rng = random.Random(seed)
    nanp, gb = _nanp_pool(), _gb_pool()
    rng.shuffle(nanp)
    rng.shuffle(gb)
    gb_count = min(len(gb), round(n * _GB_SHARE))
    if n - gb_count > len(nanp):
        raise ValueError(f"at most {len(nanp) + gb_count:,} distinct fictional numbers for {n:,} loans")
    us_states = sorted({r.split("-")[1] for _, rs in nanp for r in rs if r.startswith("US-")})
    numbers = [(p, ("GB",)) for p in gb[:gb_count]] + nanp[: n - gb_count]
    rng.shuffle(numbers)
    book: dict[str, Any] = {"loans": {}, "borrowers": {}, "contacts": {}, "consents": {}, "entries": []}
    for i, (phone, regions) in enumerate(numbers):
        country = regions[0].split("-")[0]
        region = regions[0].split("-")[1] if "-" in regions[0] else None
        jurisdiction = "US" if country == "US" else country if country == "GB" else regions[0]
        if regions[0] in ("US-CA", "US-MA", "US-NY-NYC", "US-WA") and rng.random() < 0.5:
            jurisdiction = regions[0]
        address_country, address_region = _address(rng, country, region, us_states)
        zones = address_zones(address_country, address_region) if address_country else ()
        roll = rng.random()
        stated = (zones[0] if zones else None) if roll < 0.8 else ("Nowhere/Invalid" if roll < 0.83 else None)
        borrower_id, loan_id = f"B{i:07d}", f"L{i:07d}"
        due = TICK.date() - timedelta(days=rng.randrange(-5, 40))
        endpoints: tuple[PushEndpoint, ...] = ()
        if rng.random() < 0.6:
            arn = f"arn:aws:sns:us-east-1:123456789012:endpoint/GCM/dunning/{i:08x}"
            endpoints = (PushEndpoint(arn=arn, platform="GCM"),)
        borrower = Borrower(
            borrower_id=borrower_id,
            first_name="Alex",
            locale="en-GB" if country == "GB" else ("fr-CA" if region == "QC" else "en-US"),
            time_zone=stated,
            address=Address(country=address_country, region=address_region) if address_country else None,
            phone=phone if rng.random() < 0.98 else None,
            push_endpoints=endpoints,
            consent=Consent(sms=rng.random() < 0.92, push=rng.random() < 0.9),
            opt_outs=frozenset({Channel.SMS}) if rng.random() < 0.03 else frozenset(),
        )
        flags = random_flags(rng, due)
        loan = Loan(
            loan_id=loan_id,
            borrower_id=borrower_id,
            currency={"US": "USD", "CA": "CAD", "GB": "GBP"}[country],
            amount_due=Decimal(rng.randrange(2000, 200000)) / 100,
            due_date=due,
            status=LoanStatus.PAID if rng.random() < 0.03 else LoanStatus.ACTIVE,
            product="bnpl" if rng.random() < 0.2 else "default",
            jurisdiction=jurisdiction,
            flags=flags,
        )
        contact: dict[str, Any] = {"pk": f"BORROWER#{borrower_id}", "sk": CONTACT}
        sends, claims = [], set()
        for step in _STEPS[: rng.randrange(0, 5)]:
            at = TICK - timedelta(hours=rng.randrange(1, 24 * 12))
            channel = "sms" if rng.random() < 0.7 else "push"
            sends.append({"at": iso_utc(at), "channel": channel, "loan_id": loan_id, "step": step})
            claims.add(f"{loan_id}#{step}")
        if sends:
            contact.update(version=Decimal(len(sends)), sends=sends, claims=claims)
        if rng.random() < 0.01:
            contact["paused_until"] = iso_utc(TICK + timedelta(hours=6))
        book["loans"][loan_id] = loan_to_item(loan)
        book["borrowers"][borrower_id] = borrower_to_item(borrower)
        if len(contact) > 2:
            book["contacts"][borrower_id] = contact
        if borrower.phone and rng.random() < 0.02:
            book["consents"][borrower.phone] = {
                "pk": f"PHONE#{borrower.phone}",
                "sk": CONSENT,
                "sms_opted_out": True,
                "changed_at": iso_utc(TICK - timedelta(days=3)),
            }
        book["entries"].append(Entry(loan_id, borrower_id, borrower.phone, None))
    if facts:
        from dunning.zones import phone_facts

        book["entries"] = [
            Entry(e.loan_id, e.borrower_id, e.phone, phone_facts(e.phone) if e.phone else None)
            for e in book["entries"]
        ]
    return book


# ---- the timed child ------------------------------------------------------------------------------


def _plan(book: dict[str, Any]) -> tuple[Counter[str], int, int]:
    """What ``_PagePlanner.plan`` does to each due loan, without the I/O; returns the kinds decided,
    the jobs' JSON size and the write items built."""
    from dunning.adapters.cadence import CadenceStore
    from dunning.adapters.ledger import Ledger
    from dunning.adapters.reads import Snapshot
    from dunning.engine import decide
    from dunning.items import InvalidItem
    from dunning.jobs import job_from_decision
    from dunning.models import DecisionKind
    from dunning.planner import ENGINE_ERROR_RETRY, MIN_DEFERRAL
    from dunning.rules import load_rulebooks
    from dunning.strategy import load_strategies
    from dunning.zones import remember_phone_facts

    rulebooks, strategies = load_rulebooks(), load_strategies()
    snapshot = Snapshot(book["loans"], book["borrowers"], book["contacts"], book["consents"])
    cadence = CadenceStore(None, "State", SHARDS)  # type: ignore[arg-type]
    ledger = Ledger(None, "Ledger", 400)  # type: ignore[arg-type]
    ttl, now = timedelta(minutes=30), TICK
    entries: list[Entry] = book["entries"]
    kinds: Counter[str] = Counter()
    json_bytes = writes = 0
    for start in range(0, len(entries), PAGE):
        page = entries[start : start + PAGE]
        for e in page:  # as dunning.planner._remember_phone_facts
            if e.phone and e.phone_facts:
                remember_phone_facts(e.phone, e.phone_facts)
        for entry in page:
            try:
                subject = snapshot.subject(entry.loan_id)
            except InvalidItem:
                kinds["invalid"] += 1
                continue
            loan, borrower = subject.loan, subject.borrower
            decision = decide(loan, borrower, subject.state, now, rulebooks, strategies)
            kinds[decision.kind.value] += 1
            if decision.kind == DecisionKind.SEND:
                job = job_from_decision(decision, ttl=ttl, phone=borrower.phone)
                json_bytes += len(job.to_json())
                follow_up = decision.follow_up_at
                next_at = max(follow_up, job.expires_at) if follow_up is not None else None
                ops = [_cadence(cadence, decision, next_at, borrower.phone)]
            else:
                next_at = None
                if decision.kind == DecisionKind.DEFER:
                    next_at = max(decision.not_before or now + ENGINE_ERROR_RETRY, now + MIN_DEFERRAL)
                ops = [
                    _cadence(cadence, decision, next_at, borrower.phone),
                    ledger.decision_op(decision),
                ]
            writes += len(ops)
    return kinds, json_bytes, writes


def _cadence(cadence: Any, decision: Any, next_at: datetime | None, phone: str | None) -> Any:
    """The cadence write of ``dunning.planner._Outbox.cadence``."""
    from dunning.zones import phone_facts

    item = cadence.cadence_item(
        decision.loan_id,
        decision.borrower_id,
        next_contact_at=next_at,
        at=TICK,
        rule_id=decision.rule_id,
        reason=decision.reason,
        phone=phone,
        phone_facts=phone_facts(phone) if phone else None,
    )
    return cadence.put_op(item)


def _profile_shares(profiler: Any) -> dict[str, Any]:
    """Where the time went: cumulative shares of the path's parts, and the top functions by own time
    (shares of the profiled total, so the profiler's own overhead is spread evenly)."""
    import pstats

    stats = pstats.Stats(profiler)
    raw: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0

    def cumulative(module: str, name: str) -> float:
        return sum(
            v[3] for (f, _, n), v in raw.items() if n == name and f.replace(os.sep, "/").endswith(module)
        )

    def own(fragment: str) -> float:
        return sum(v[2] for (f, _, _), v in raw.items() if fragment in f.replace(os.sep, "/"))

    parts = {
        "items → models (Snapshot.subject)": cumulative("adapters/reads.py", "subject"),
        "decide": cumulative("dunning/engine.py", "decide"),
        "job and its JSON": cumulative("dunning/jobs.py", "job_from_decision")
        + cumulative("dunning/jobs.py", "to_json"),
        "cadence and ledger items": cumulative("bench/planner_path.py", "_cadence")
        + cumulative("adapters/ledger.py", "decision_op"),
        "phonenumbers (own time)": own("/phonenumbers/"),
        "pydantic (own time)": own("/pydantic"),
        "building the Decision (_Outcome._make)": cumulative("dunning/engine.py", "_make"),
        "caps (CapCounter)": cumulative("dunning/caps.py", "blocks")
        + cumulative("dunning/caps.py", "__init__"),
        "window checks": cumulative("dunning/zones.py", "allows")
        + cumulative("dunning/zones.py", "next_allowed")
        + cumulative("dunning/zones.py", "blocking"),
        "SEND reason and Decision (_Case.send)": cumulative("dunning/engine.py", "send"),
    }
    top = sorted(raw.items(), key=lambda kv: -kv[1][2])[:15]
    return {
        "shares": {k: round(v / total, 3) for k, v in parts.items()},
        "top_own": [
            {"function": f"{Path(f).name}:{line}:{name}", "share": round(v[2] / total, 3), "calls": v[1]}
            for (f, line, name), v in top
        ],
    }


def child(book_path: Path, profile: bool) -> dict[str, Any]:
    """Time the planner's path over the pickled book in this (fresh) process."""
    with book_path.open("rb") as handle:
        book = pickle.load(handle)
    # The engine's data (rulebooks, strategies, holiday calendars) is loaded by a cold start before the
    # first page; loaded here first, so the timed loop is what a warm Lambda does for a new book. So are
    # the modules: the handler imports dunning.planner (with the adapters, boto3 and botocore), and
    # build_planner the engine; imported inside the timed loop, they were a sixth of it.
    for module in ("dunning.planner", "dunning.engine"):
        importlib.import_module(module)
    from dunning.rules import load_rulebooks
    from dunning.strategy import load_strategies

    load_rulebooks(), load_strategies()
    gc.collect()
    gc.freeze()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    cpu, wall = time.process_time(), time.perf_counter()
    kinds, json_bytes, writes = _plan(book)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    n = len(book["entries"])
    out: dict[str, Any] = {
        "loans": n,
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "loans_per_cpu_s": round(n / cpu),
        "us_per_loan": round(cpu / n * 1e6, 1),
        "kinds": dict(kinds),
        "job_json_bytes": json_bytes,
        "write_items": writes,
    }
    if profiler is not None:
        profiler.disable()
        out["profile"] = _profile_shares(profiler)
    return out


def _run_child(book_path: Path, profile: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.planner_path", "--child", str(book_path)]
    if profile:
        command.append("--profile")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(n: int = LOANS, profile: bool = True) -> dict[str, Any]:
    """Both runs (numbers parsed, stored facts used) in fresh processes, and a profile of each."""
    book = generate(n, facts=True)
    numbers = {e.phone for e in book["entries"] if e.phone}
    bare = dict(book, entries=[Entry(e.loan_id, e.borrower_id, e.phone, None) for e in book["entries"]])
    out: dict[str, Any] = {
        "loans": n,
        "distinct_numbers": len(numbers),
        "tick": TICK.isoformat(),
        "python": sys.version.split()[0],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in (("parse", bare), ("facts", book)):
            path = Path(tmp) / f"{name}.pickle"
            with path.open("wb") as handle:
                pickle.dump(data, handle)
            out[name] = _run_child(path, profile=False)
            if profile:
                out[name]["profile"] = _run_child(path, profile=True)["profile"]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.planner_path", description=__doc__.split("\n")[0])
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help="cProfile the path (slower)")
    parser.add_argument("--loans", type=int, default=LOANS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.profile)))
        return
    result = run(args.loans, profile=args.profile)
    for name in ("parse", "facts"):
        if name not in result:
            continue
        r = result[name]
        print(
            f"{name:>5}: {r['loans_per_cpu_s']:>7,} loans per CPU second ({r['us_per_loan']} µs each), "
            f"{r['kinds']}"
        )
        for part, share in (r.get("profile") or {}).get("shares", {}).items():
            print(f"         {share:6.1%}  {part}")
        for top in (r.get("profile") or {}).get("top_own", []):
            print(f"         {top['share']:6.1%}  {top['function']} ({top['calls']:,} calls)")
    print(json.dumps({k: v for k, v in result.items() if k not in ("parse", "facts")}))


if __name__ == "__main__":
    main()
