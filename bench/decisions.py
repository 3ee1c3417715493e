"""Decision throughput of the pure engine on one core: ``python -m bench.decisions``.

Generates a seeded, realistic book (jurisdictions, addresses, zones, phones, consents, opt-outs, flags,
contact histories, instants around the due dates) and times ``decide`` alone with ``time.perf_counter``;
generation is excluded. The first pass starts with whatever the process has cached so far (the 10k run
is cold: zones, windows and phone numbers are computed as they are first met); the warm pass decides
the same book again. Phone numbers are fictional (US 555-01xx in many area codes and the
libphonenumber example numbers), so there are a few thousand distinct numbers and the phone-parsing
cache hits often; ``phone_parse_us`` reports what an uncached parse costs, to estimate a book where
every number is new (``decisions_per_s_cold_phones``).
"""

from __future__ import annotations

import gc
import random
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from dunning.engine import decide
from dunning.models import (
    Address,
    Borrower,
    Channel,
    Consent,
    ContactState,
    Dispute,
    Loan,
    LoanFlags,
    LoanStatus,
    PromiseToPay,
    PushEndpoint,
    SendRecord,
)
from dunning.rules import load_rulebooks
from dunning.strategy import load_strategies
from dunning.zones import clear_phone_cache, phone_info

Case = tuple[Loan, Borrower, ContactState, datetime]

# (loan jurisdiction, address country, address region, stated zone, area codes or example numbers, weight)
_PLACES: list[tuple[str, str, str | None, str | None, tuple[str, ...], int]] = [
    ("US", "US", "NY", "America/New_York", ("212", "718", "917", "646"), 10),
    ("US-NY-NYC", "US", "NY", "America/New_York", ("212", "718", "347"), 6),
    ("US", "US", "MA", "America/New_York", ("617", "508", "781"), 6),
    ("US", "US", "CA", "America/Los_Angeles", ("310", "415", "213", "619"), 10),
    ("US-CA", "US", "CA", "America/Los_Angeles", ("310", "415", "408"), 5),
    ("US", "US", "WA", "America/Los_Angeles", ("206", "425"), 4),
    ("US", "US", "TX", "America/Chicago", ("214", "713", "512"), 8),
    ("US", "US", "FL", "America/New_York", ("305", "407", "813"), 6),
    ("US", "US", "IL", "America/Chicago", ("312", "773"), 5),
    ("US", "US", "AZ", "America/Phoenix", ("602", "480"), 3),
    ("US", "US", None, None, ("303", "404", "702"), 3),
    ("CN", "CN", None, "Asia/Shanghai", ("+8613123456789",), 8),
    ("IN", "IN", None, "Asia/Kolkata", ("+918123456789",), 6),
    ("GB", "GB", None, "Europe/London", ("+447400123456",), 5),
    ("IE", "IE", None, "Europe/Dublin", ("+353850123456",), 3),
    ("CA-ON", "CA", "ON", "America/Toronto", ("416", "647"), 4),
    ("CA-QC", "CA", "QC", "America/Toronto", ("514", "438"), 2),
    ("CA-BC", "CA", "BC", "America/Vancouver", ("604", "778"), 2),
]
_WEIGHTS = [p[-1] for p in _PLACES]
_START = datetime(2026, 1, 5, tzinfo=UTC)
_STEPS = ("D-3", "D-1", "D+1", "D+3", "D+7", "D+15", "D+30")


def _phone(rng: random.Random, prefixes: tuple[str, ...]) -> str:
    prefix = rng.choice(prefixes)
    if prefix.startswith("+"):
        return prefix
    return f"+1{prefix}5550{rng.randrange(100, 200)}"


def random_flags(rng: random.Random, due: date) -> LoanFlags:
    """A loan's flags as a book has them: mostly none, a few promises, hardships, disputes, a C&D."""
    roll = rng.random()
    if roll < 0.04:
        return LoanFlags(
            promise_to_pay=PromiseToPay(until=due + timedelta(days=rng.randrange(0, 20)), grace_days=2)
        )
    if roll < 0.06:
        return LoanFlags(hardship_until=due + timedelta(days=rng.randrange(0, 30)))
    if roll < 0.07:
        return LoanFlags(
            dispute=Dispute(opened_on=due, until=None if rng.random() < 0.5 else due + timedelta(10))
        )
    if roll < 0.075:
        return LoanFlags(cease_and_desist=True)
    return LoanFlags()


def generate(n: int, seed: int = 20260301) -> list[Case]:
    """``n`` (loan, borrower, contact state, instant) cases, the same for the same seed."""
    rng = random.Random(seed)
    cases: list[Case] = []
    for i in range(n):
        jurisdiction, country, region, stated, prefixes, _ = rng.choices(_PLACES, _WEIGHTS)[0]
        borrower_id = f"B{i:07d}"
        loan_id = f"L{i:07d}"
        due = (_START + timedelta(days=rng.randrange(0, 90))).date()
        now = datetime.combine(due, datetime.min.time(), UTC) + timedelta(
            days=rng.randrange(-5, 40), minutes=rng.randrange(0, 24 * 60)
        )
        endpoints: tuple[PushEndpoint, ...] = ()
        if rng.random() < 0.6:
            arn = f"arn:aws:sns:us-east-1:123456789012:endpoint/GCM/dunning/{i:08x}"
            endpoints = (PushEndpoint(arn=arn, platform="GCM"),)
        borrower = Borrower(
            borrower_id=borrower_id,
            first_name="Alex",
            locale="zh-CN" if country == "CN" else "en-US",
            time_zone=stated if rng.random() < 0.85 else (None if rng.random() < 0.7 else "Nowhere/Invalid"),
            address=Address(country=country, region=region) if rng.random() < 0.9 else None,
            phone=_phone(rng, prefixes) if rng.random() < 0.97 else "+1555",
            push_endpoints=endpoints,
            consent=Consent(sms=rng.random() < 0.92, push=rng.random() < 0.9),
            opt_outs=frozenset({Channel.SMS}) if rng.random() < 0.03 else frozenset(),
        )
        flags = random_flags(rng, due)
        status = LoanStatus.PAID if rng.random() < 0.03 else LoanStatus.ACTIVE
        loan = Loan(
            loan_id=loan_id,
            borrower_id=borrower_id,
            currency="CNY" if country == "CN" else "USD",
            amount_due=Decimal(rng.randrange(2000, 200000)) / 100,
            due_date=due,
            status=status,
            product="bnpl" if rng.random() < 0.2 else "default",
            jurisdiction=jurisdiction,
            flags=flags,
        )
        sends = []
        claims = set()
        for step in _STEPS[: rng.randrange(0, 5)]:
            at = now - timedelta(hours=rng.randrange(1, 24 * 12))
            channel = Channel.SMS if rng.random() < 0.7 else Channel.PUSH
            sends.append(SendRecord(at=at, channel=channel, loan_id=loan_id, step=step))
            claims.add(ContactState.claim_key(loan_id, step))
        state = ContactState(
            borrower_id=borrower_id,
            sends=tuple(sends),
            claims=frozenset(claims),
            sms_opted_out=rng.random() < 0.02,
            paused_until=now + timedelta(hours=6) if rng.random() < 0.01 else None,
        )
        cases.append((loan, borrower, state, now))
    return cases


def _phone_parse_cost(samples: int = 2000) -> float:
    numbers = [f"+1212555{i:04d}" for i in range(samples)]
    clear_phone_cache()
    started = time.perf_counter()
    for number in numbers:
        phone_info(number)
    elapsed = time.perf_counter() - started
    clear_phone_cache()
    return elapsed / samples * 1e6


def run(n: int) -> dict[str, Any]:
    """Decide ``n`` generated cases on this core; decisions per second and what was decided."""
    cases = generate(n)
    # The generated book is millions of objects; without this the collector would rescan them during the
    # timed loop, charging the engine for the benchmark's own memory.
    gc.collect()
    gc.freeze()
    rulebooks, strategies = load_rulebooks(), load_strategies()
    kinds: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    started, cpu_started = time.perf_counter(), time.process_time()
    for loan, borrower, state, now in cases:
        decision = decide(loan, borrower, state, now, rulebooks, strategies)
        kinds[decision.kind.value] += 1
        rules[decision.rule_id] += 1
    elapsed = time.perf_counter() - started
    # CPU time of this process too: on a shared machine the wall clock also counts other processes' turns.
    cpu = time.process_time() - cpu_started
    # The same book again: what a warm planner sees when it re-decides loans it deferred earlier.
    started = time.perf_counter()
    for loan, borrower, state, now in cases:
        decide(loan, borrower, state, now, rulebooks, strategies)
    warm = time.perf_counter() - started
    gc.unfreeze()
    per_decision_us = elapsed / n * 1e6
    parse_us = _phone_parse_cost()
    return {
        "n": n,
        "seconds": round(elapsed, 3),
        "decisions_per_s": round(n / elapsed),
        "us_per_decision": round(per_decision_us, 1),
        "decisions_per_s_warm": round(n / warm),
        "decisions_per_cpu_s": round(n / cpu),
        "phone_parse_us": round(parse_us, 1),
        "decisions_per_s_cold_phones": round(1e6 / (per_decision_us + parse_us)),
        "kinds": dict(kinds),
        "top_rules": dict(rules.most_common(8)),
        "python": sys.version.split()[0],
    }


def main() -> None:
    """Print the results for 10k and 100k decisions."""
    for n in (10_000, 100_000):
        result = run(n)
        print(
            f"{result['n']:>7} decisions: {result['decisions_per_s']:>7} /s/core first pass "
            f"({result['us_per_decision']} µs each; {result['decisions_per_cpu_s']} per CPU second), "
            f"{result['decisions_per_s_warm']} /s/core warm; "
            f"{result['decisions_per_s_cold_phones']} /s if every phone number were new "
            f"(parse {result['phone_parse_us']} µs)"
        )
        print(f"        kinds {result['kinds']}")
        print(f"        rules {result['top_rules']}")


if __name__ == "__main__":
    main()
