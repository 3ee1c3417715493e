"""Throughput and cost figures of a run, from what was recorded: SMS parts, peak sends per minute per
origination identity against its configured rate, and estimated SMS spend per destination country.

Shared by the demo summary (``audit.summarise``) and ``make bench``; prices and rates come from the same
data files the product reads (``data/prices.yaml``, ``data/lender/sending.yaml``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from dunning.budget import Prices, SendingPolicy, load_prices, load_sending_policy
from dunning.items import parse_iso_utc
from dunning.models import Channel, Loan
from dunning.sms import sms_segments


def sms_parts(parts: Iterable[int]) -> dict[str, Any]:
    """``{"mean": float, "histogram": {"1": n, "2": n, ...}}`` of the parts per SMS."""
    counts = Counter(parts)
    total = sum(counts.values())
    mean = sum(p * n for p, n in counts.items()) / total if total else 0.0
    return {"mean": round(mean, 3), "histogram": {str(p): counts[p] for p in sorted(counts)}}


def peak_sends_per_minute(
    sends: Iterable[tuple[str, str, str]], policy: SendingPolicy | None = None
) -> dict[str, dict[str, int]]:
    """``{identity: {"peak": n, "limit": n}}``: the busiest minute of each identity, and its rate x 60.

    ``sends`` are (ISO instant, channel, destination country) of every message that went out.
    """
    policy = policy or load_sending_policy()
    per_minute: dict[str, Counter[str]] = defaultdict(Counter)
    for at, channel, country in sends:
        identity, _ = policy.identity_for(Channel(channel), country)
        per_minute[identity][parse_iso_utc(at).strftime("%Y-%m-%dT%H:%M")] += 1
    rates = policy.rates()
    return {
        identity: {"peak": max(minutes.values()), "limit": int(rates[identity] * 60)}
        for identity, minutes in sorted(per_minute.items())
    }


def spend_by_country(
    sms: Iterable[tuple[str, int]], prices: Prices | None = None
) -> dict[str, dict[str, float | int]]:
    """``{country: {"sms": n, "parts": n, "usd": float}}`` from (destination country, parts) per SMS."""
    prices = prices or load_prices()
    totals: dict[str, dict[str, float | int]] = {}
    for country, parts in sms:
        row = totals.setdefault(country, {"sms": 0, "parts": 0, "usd": 0.0})
        row["sms"] = int(row["sms"]) + 1
        row["parts"] = int(row["parts"]) + parts
        row["usd"] = float(row["usd"]) + parts * prices.sms_part(country)
    return {c: {**row, "usd": round(float(row["usd"]), 4)} for c, row in sorted(totals.items())}


def throughput_summary(
    messages: Iterable[Mapping[str, Any]], sms_bodies: Mapping[str, str], loans: Mapping[str, Loan]
) -> dict[str, Any]:
    """The demo summary's ``sms_parts``, ``peak_sends_per_minute`` and ``spend_by_country``.

    ``messages`` are the ledger's MESSAGE items, ``sms_bodies`` what SNS accepted by message id. Parts
    are counted on delivered SMS; peaks on every message that went out; spend on every SMS SNS accepted
    (a carrier bills a failed delivery's parts too).
    """
    delivered: list[int] = []
    sent_sms: list[tuple[str, int]] = []
    sends: list[tuple[str, str, str]] = []
    for m in messages:
        country = loans[str(m["loan_id"])].jurisdiction.split("-")[0]
        sends.append((str(m["at"]), str(m["channel"]), country))
        body = sms_bodies.get(str(m.get("message_id")))
        if m["channel"] != "sms" or body is None:
            continue
        parts = sms_segments(body)
        sent_sms.append((country, parts))
        if m.get("status") == "DELIVERED":
            delivered.append(parts)
    return {
        "sms_parts": sms_parts(delivered),
        "peak_sends_per_minute": peak_sends_per_minute(sends),
        "spend_by_country": spend_by_country(sent_sms),
    }
