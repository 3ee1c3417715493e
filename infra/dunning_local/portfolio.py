"""A synthetic, realistic loan book for the demo, the soak run and the benchmarks.

Every borrower and loan is generated from one seed, so the same seed gives the same book. Items are in
the documented Loans/Borrowers item contract (README), ready for ``put_item``. Phone numbers are
fictional: North American numbers in the 555-0100..555-0199 range (spread over real area codes, so the
phone's time zone is meaningful), elsewhere libphonenumber's example number for the country.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

# jurisdiction -> (weight, address (country, region), stated zone, area codes or example number, locales)
# Weights give a US-heavy book with every rulebook represented.
_MARKETS: dict[str, dict[str, Any]] = {
    "US": {
        "weight": 16,
        "addresses": [
            ("US", "NY", "America/New_York", ["518", "585"]),
            ("US", "IL", "America/Chicago", ["312"]),
            ("US", "CO", "America/Denver", ["303"]),
            ("US", "TX", "America/Chicago", ["512", "214"]),
            ("US", "FL", "America/New_York", ["305"]),
            ("US", "AZ", "America/Phoenix", ["602"]),
        ],
        "locales": [("en-US", 85), ("zh-CN", 5), ("es-US", 10)],
    },
    "US-CA": {
        "weight": 10,
        "addresses": [("US", "CA", "America/Los_Angeles", ["310", "415", "213", "619"])],
        "locales": [("en-US", 75), ("zh-CN", 15), ("es-US", 10)],
    },
    "US-MA": {
        "weight": 8,
        "addresses": [("US", "MA", "America/New_York", ["617", "508", "413"])],
        "locales": [("en-US", 100)],
    },
    "US-NY-NYC": {
        "weight": 10,
        "addresses": [("US", "NY", "America/New_York", ["212", "718", "917", "347"])],
        "locales": [("en-US", 80), ("zh-CN", 20)],
    },
    "US-WA": {
        "weight": 6,
        "addresses": [("US", "WA", "America/Los_Angeles", ["206", "425", "509"])],
        "locales": [("en-US", 100)],
    },
    "CA-ON": {
        "weight": 6,
        "addresses": [("CA", "ON", "America/Toronto", ["416", "647", "613"])],
        "locales": [("en-US", 90), ("zh-CN", 10)],
    },
    "CA-QC": {
        "weight": 4,
        "addresses": [("CA", "QC", "America/Toronto", ["514", "438", "418"])],
        "locales": [("en-US", 100)],
    },
    "CA-BC": {
        "weight": 4,
        "addresses": [("CA", "BC", "America/Vancouver", ["604", "778"])],
        "locales": [("en-US", 70), ("zh-CN", 30)],
    },
    "CN": {
        "weight": 16,
        "addresses": [("CN", None, "Asia/Shanghai", "+8613123456789")],
        "locales": [("zh-CN", 100)],
        "currency": "CNY",
    },
    "IN": {
        "weight": 10,
        "addresses": [("IN", None, "Asia/Kolkata", "+918123456789")],
        "locales": [("en-US", 100)],
        "currency": "INR",
    },
    "GB": {
        "weight": 6,
        "addresses": [("GB", None, "Europe/London", "+447400123456")],
        "locales": [("en-US", 100)],
        "currency": "GBP",
    },
    "IE": {
        "weight": 4,
        "addresses": [("IE", None, "Europe/Dublin", "+353850123456")],
        "locales": [("en-US", 100)],
        "currency": "EUR",
    },
}
# Numbers from places stricter than the federal rules (Massachusetts, New York City, Washington), given
# to some US-loan borrowers as the only evidence of where they are (no address) or next to an address in
# another state (a borrower who moved): their caps and hours come from the candidate jurisdictions.
_STRICTER_NUMBERS: list[tuple[str, list[str]]] = [
    ("America/New_York", ["617", "508"]),
    ("America/New_York", ["212", "718", "917"]),
    ("America/Los_Angeles", ["206", "425"]),
]
_CURRENCY = {"US": "USD", "CA": "CAD"}
_FIRST_NAMES = {
    "en-US": ["Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn"],
    "es-US": ["Lucía", "Mateo", "Sofía", "Diego", "Valentina", "Carlos"],
    "zh-CN": ["伟", "芳", "娜", "敏", "静", "磊", "洋", "婷"],
}
_PRODUCTS = [("personal", 60), ("bnpl", 25), ("auto", 15)]


@dataclass(frozen=True)
class Scenario:
    """Share of the book that gets each special case (fractions of loans or borrowers)."""

    dispute: float = 0.03
    promise_to_pay: float = 0.05
    hardship: float = 0.02
    bankruptcy: float = 0.005
    deceased: float = 0.003
    cease_and_desist: float = 0.005
    attorney: float = 0.005
    sms_opt_out: float = 0.03
    no_consent: float = 0.05
    push_only: float = 0.08
    with_push: float = 0.35
    unreachable_number: float = 0.02
    invalid_stated_zone: float = 0.01
    mismatched_zone: float = 0.03
    second_loan: float = 0.08
    # US loans only: a number from a stricter state and no address; or one next to an address elsewhere.
    phone_only_stricter: float = 0.25
    moved_stricter: float = 0.10


@dataclass
class Portfolio:
    borrowers: list[dict[str, Any]] = field(default_factory=list)
    loans: list[dict[str, Any]] = field(default_factory=list)
    # Contact points the simulated carrier cannot reach (their receipts fail).
    unreachable: set[str] = field(default_factory=set)
    # borrower_id -> push token, for creating platform endpoints on the local stack.
    push_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)


def _weighted(rng: random.Random, pairs: list[tuple[Any, int]]) -> Any:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def _north_american_number(rng: random.Random, area_codes: list[str], used: set[str]) -> str:
    for _ in range(1000):
        number = f"+1{rng.choice(area_codes)}5550{rng.randint(100, 199)}"
        if number not in used:
            used.add(number)
            return number
    # The fictional range holds 100 numbers per area code; beyond that, numbers are shared (a household).
    return f"+1{rng.choice(area_codes)}5550{rng.randint(100, 199)}"


def generate(loans: int, *, seed: int, as_of: date, scenario: Scenario | None = None) -> Portfolio:
    """Generate about ``loans`` loans (a few borrowers hold two) due between D-3 and D+60 on ``as_of``."""
    sc = scenario or Scenario()
    rng = random.Random(seed)
    # A stream of its own, so that the rest of a seed's book is the same as before it was added.
    evidence = random.Random(seed ^ 0x15)
    book = Portfolio()
    used_numbers: set[str] = set()
    markets = [(code, m["weight"]) for code, m in _MARKETS.items()]
    b = 0
    while len(book.loans) < loans:
        b += 1
        jurisdiction = _weighted(rng, markets)
        market = _MARKETS[jurisdiction]
        country, region, zone, phones = rng.choice(market["addresses"])
        has_address = True
        if jurisdiction == "US":
            roll = evidence.random()
            if roll < sc.phone_only_stricter + sc.moved_stricter:
                phone_zone, phones = evidence.choice(_STRICTER_NUMBERS)
                if roll < sc.phone_only_stricter:
                    has_address, zone = False, phone_zone
        locale = _weighted(rng, market["locales"])
        borrower_id = f"B-{b:06d}"
        phone: str | None = (
            _north_american_number(rng, phones, used_numbers) if isinstance(phones, list) else phones
        )
        stated_zone: str | None = zone
        if rng.random() < sc.invalid_stated_zone:
            stated_zone = rng.choice(["Mars/Olympus_Mons", "EST-5", "", "America/NewYork"])
        elif rng.random() < sc.mismatched_zone and country == "US":
            stated_zone = "America/New_York" if zone != "America/New_York" else "America/Los_Angeles"
        elif rng.random() < 0.1:
            stated_zone = None
        consent = {"sms": rng.random() >= sc.no_consent, "push": True}
        opt_outs = ["sms"] if rng.random() < sc.sms_opt_out else []
        push_endpoints: list[dict[str, str]] = []
        push_only = rng.random() < sc.push_only
        if push_only or rng.random() < sc.with_push:
            platform = "APNS" if rng.random() < 0.5 else "GCM"
            token = f"{rng.getrandbits(128):032x}"
            book.push_tokens[borrower_id] = (platform, token)
            # Replaced by a real platform endpoint ARN when the demo creates it on the local stack.
            push_endpoints.append(
                {
                    "arn": f"arn:aws:sns:us-east-1:123456789012:endpoint/{platform}/DunningApp/{token[:8]}",
                    "platform": platform,
                }
            )
        if push_only:
            phone = None
        if phone and rng.random() < sc.unreachable_number and isinstance(phones, list):
            book.unreachable.add(phone)
        borrower: dict[str, Any] = {
            "borrower_id": borrower_id,
            "first_name": rng.choice(_FIRST_NAMES.get(locale, _FIRST_NAMES["en-US"])),
            "locale": locale,
            "consent": consent,
            "opt_outs": opt_outs,
            "push_endpoints": push_endpoints,
            "invalid_contacts": [],
        }
        if has_address:
            borrower["address"] = {"country": country, **({"region": region} if region else {})}
        if stated_zone is not None:
            borrower["time_zone"] = stated_zone
        if phone:
            borrower["phone"] = phone
        book.borrowers.append(borrower)
        for _ in range(2 if rng.random() < sc.second_loan else 1):
            book.loans.append(_loan(rng, len(book.loans) + 1, borrower_id, jurisdiction, market, as_of, sc))
    return book


def register_push_endpoints(book: Portfolio, sns: Any, app_names: Mapping[str, str]) -> dict[str, str]:
    """Create a push app per platform (``app_names``: platform → the template's app name) and an endpoint
    for every borrower with a push token, and write it into the borrower's ``push_endpoints``.

    The apps take the template's names so that their delivery-status log groups are the ones the receipts
    function subscribes to. Returns each endpoint's owner: endpoint ARN → borrower id.
    """
    apps = {
        platform: sns.create_platform_application(
            Name=name, Platform=platform, Attributes={"PlatformCredential": "example-credential"}
        )["PlatformApplicationArn"]
        for platform, name in app_names.items()
    }
    owners: dict[str, str] = {}
    for borrower in book.borrowers:
        token = book.push_tokens.get(borrower["borrower_id"])
        if token is None:
            continue
        platform, value = token
        arn = str(
            sns.create_platform_endpoint(PlatformApplicationArn=apps[platform], Token=value)["EndpointArn"]
        )
        borrower["push_endpoints"] = [{"arn": arn, "platform": platform}]
        owners[arn] = borrower["borrower_id"]
    return owners


def _loan(
    rng: random.Random,
    n: int,
    borrower_id: str,
    jurisdiction: str,
    market: dict[str, Any],
    as_of: date,
    sc: Scenario,
) -> dict[str, Any]:
    days_past_due = rng.randint(-3, 60)
    due = as_of - timedelta(days=days_past_due)
    currency = market.get("currency") or _CURRENCY[jurisdiction[:2]]
    scale = {"CNY": 7, "INR": 80}.get(currency, 1)
    amount = (Decimal(rng.randint(2500, 250000)) / 100 * scale).quantize(Decimal("0.01"))
    flags: dict[str, Any] = {}
    roll = rng.random()
    edges = [
        ("dispute", sc.dispute),
        ("promise_to_pay", sc.promise_to_pay),
        ("hardship", sc.hardship),
        ("bankruptcy", sc.bankruptcy),
        ("deceased", sc.deceased),
        ("cease_and_desist", sc.cease_and_desist),
        ("attorney_represented", sc.attorney),
    ]
    for name, share in edges:
        if roll < share:
            if name == "dispute":
                until = as_of + timedelta(days=rng.randint(1, 20))
                flags["dispute"] = {
                    "opened_on": (as_of - timedelta(days=2)).isoformat(),
                    **({"until": until.isoformat()} if rng.random() < 0.5 else {}),
                }
            elif name == "promise_to_pay":
                flags["promise_to_pay"] = {
                    "until": (as_of + timedelta(days=rng.randint(0, 4))).isoformat(),
                    "grace_days": rng.choice([0, 1, 2]),
                }
            elif name == "hardship":
                flags["hardship_until"] = (as_of + timedelta(days=rng.randint(1, 30))).isoformat()
            else:
                flags[name] = True
            break
        roll -= share
    return {
        "loan_id": f"L-{n:06d}",
        "borrower_id": borrower_id,
        "currency": currency,
        "amount_due": amount,
        "due_date": due.isoformat(),
        "status": "ACTIVE",
        "product": _weighted(rng, _PRODUCTS),
        "jurisdiction": jurisdiction,
        "flags": flags,
    }


def payments(
    book: Portfolio, *, seed: int, share: float, start: datetime, hours: int
) -> list[tuple[datetime, str]]:
    """Loans paid during the run: (instant, loan_id), sorted. Deterministic for a seed."""
    rng = random.Random(seed + 1)
    chosen = rng.sample([loan["loan_id"] for loan in book.loans], int(len(book.loans) * share))
    return sorted((start + timedelta(minutes=rng.randint(0, hours * 60)), loan_id) for loan_id in chosen)
