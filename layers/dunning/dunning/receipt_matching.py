"""Which confirmations in doubt on one number SNS's receipts prove sent, taken together.

A confirmation whose Publish response was lost, or whose invocation died around its Publish, is
``CLAIMED`` or ``AMBIGUOUS``: SNS may or may not have accepted it. Its receipt carries a message id
nobody recorded. Other messages to the number can leave receipts of unknown id too: another confirmation
in doubt, or a HELP answer whose id was lost. Each of these *sources* sends at most one SMS, and SNS
stamps that SMS's log with its publish time, which falls within :data:`RECEIPT_WINDOW` after the
source's claim (a confirmation) or announcement (any other reply: announced on the entries in doubt
before its Publish, told apart by id after it).

The number's unknown receipts and its sources form a bipartite graph (a receipt may be a source's if
its stamp is in the source's window). Every receipt came from some source, so what happened is one of
the graph's maximum matchings. A confirmation is proven sent when *every* maximum matching gives it a
receipt, which is when taking it out of the graph makes the maximum matching smaller. That holds for any
subset of the receipts that later turns into the whole (a proof is never taken back by a receipt that
arrives later), so receipts functions running side by side may each settle what they can see.

Greedy settlement (each receipt to the earliest claim whose window holds it) is not enough: with a
START confirmation and then a STOP confirmation in doubt on one number, the STOP's receipt also fits the
START's window, and taking it for the START's leaves the STOP's unproven: it would be sent again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dunning.items import iso_utc_precise, parse_iso_utc

# How long after its claim (or announcement) a reply's Publish can be stamped: a confirmation is published
# within PUBLISH_DEADLINE of its claim or not at all, then one SNS call (5 s connect, 15 s read, no
# retries), plus clock skew between Lambda and SNS. It is also how long a confirmation in doubt holds its
# number's confirmation turn (ConsentStore.claim_confirmation): Lambda's second retry of a reply whose
# confirmation had to wait for it comes 3 minutes after the first attempt, when the turn has run out.
RECEIPT_WINDOW = timedelta(minutes=2)
PUBLISH_DEADLINE = timedelta(seconds=30)
# A claim holder gives the turn back only this long before it runs out (Lambdas' clocks differ a little).
TURN_MARGIN = timedelta(seconds=30)
# An announcement is written just before its Publish, on the announcer's clock: a little slack before it
# only makes the announced reply a candidate for more receipts (a proof needs more, never less).
ANNOUNCE_SLACK = timedelta(seconds=1)
IN_DOUBT = ("CLAIMED", "AMBIGUOUS")


@dataclass(frozen=True)
class Source:
    """Something that may have sent one SMS of unknown id to the number."""

    key: str  # the inbound id of the confirmation or of the reply announced
    opens: datetime | None  # its window's start; None: any time (an announcement of unknown time)
    confirmation: bool  # an entry in doubt (may be proven), or another reply (only explains receipts)

    def fits(self, stamp: datetime | None) -> bool:
        if stamp is None or self.opens is None:
            return True
        return (
            self.opens
            <= stamp
            <= self.opens + RECEIPT_WINDOW + (timedelta(0) if self.confirmation else ANNOUNCE_SLACK)
        )


@dataclass(frozen=True)
class Proof:
    """What one receipt does: the entries to keep it on, and the entries it and the others prove sent."""

    keep_on: tuple[str, ...]  # entries in doubt whose window holds it (for the receipts after it)
    settle: Mapping[str, str]  # entry → the message id taken for its own


def announcement(reply: str, at: datetime) -> str:
    """The line an announced reply appends to an entry's ``others_announced``."""
    return f"+ {reply} {iso_utc_precise(at)}"


def withdrawal(reply: str, at: datetime) -> str:
    """The line appended once the reply announced at ``at`` is known (its id) or was not taken by SNS."""
    return f"- {reply} {iso_utc_precise(at)}"


def receipt_line(message_id: str, stamp: datetime) -> str:
    """The line a receipt of unknown id appends to an entry's ``receipts_at``."""
    return f"{iso_utc_precise(stamp)} {message_id}"


def known_ids(entries: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Message ids that are some recorded message's: a confirmation's own, or another reply's."""
    known = {str(e["message_id"]) for e in entries.values() if e.get("message_id")}
    for entry in entries.values():
        known.update(str(i) for i in entry.get("other_replies") or [])
    return known


def in_doubt(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {k: e for k, e in entries.items() if e.get("status") in IN_DOUBT}


def sources(entries: Mapping[str, Mapping[str, Any]]) -> list[Source]:
    """The entries in doubt, then every reply announced on them and not withdrawn (once, even if
    announced on several), then one of unknown time per count an older item kept
    (``other_reply_unknown``)."""
    doubtful = in_doubt(entries)
    found = [
        Source(key, _stamp(entry.get("claimed_at")), confirmation=True)
        for key, entry in sorted(doubtful.items())
    ]
    # One announced attempt is one source: a reply answered again (its invocation retried) is another.
    opened: set[tuple[str, str]] = set()
    anonymous = 0
    for entry in doubtful.values():
        pending: set[tuple[str, str]] = set()
        for line in entry.get("others_announced") or []:
            sign, _, rest = str(line).partition(" ")
            key, _, at = rest.partition(" ")
            if sign == "+":
                pending.add((key, at))
            else:
                pending.discard((key, at))
        # A confirmation in doubt is a source already; one settled is known or never reached SNS.
        opened.update(p for p in pending if p[0] not in entries)
        anonymous += int(entry.get("other_reply_unknown") or 0)
    found.extend(Source(f"{k} {at}", _stamp(at), confirmation=False) for k, at in sorted(opened))
    found.extend(Source(f"unknown-{n}", None, confirmation=False) for n in range(anonymous))
    return found


def receipts(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, datetime | None]:
    """The unknown-id receipts kept on the entries in doubt, by message id (stamp None: kept by an older
    item without it), less those now known to be some recorded message's."""
    known = known_ids(entries)
    found: dict[str, datetime | None] = {}
    for entry in in_doubt(entries).values():
        for line in entry.get("receipts_at") or []:
            at, _, message_id = str(line).partition(" ")
            found[message_id] = _stamp(at)
        for message_id in entry.get("receipts_seen") or []:
            found.setdefault(str(message_id), None)
    return {k: v for k, v in found.items() if k not in known}


def prove(entries: Mapping[str, Mapping[str, Any]], message_id: str, stamp: datetime) -> Proof:
    """The entries in doubt that this receipt and those kept before it prove sent, each with the
    message id taken for its own (from one maximum matching, so no two share one)."""
    if message_id in known_ids(entries):
        return Proof((), {})
    found = sources(entries)
    keep_on = tuple(s.key for s in found if s.confirmation and s.opens is not None and s.fits(stamp))
    if not keep_on:
        return Proof((), {})
    seen = receipts(entries)
    seen[message_id] = stamp
    ids = sorted(seen, key=lambda i: (seen[i] is not None, seen[i] or stamp, i))
    edges = [[n for n, s in enumerate(found) if s.fits(seen[i])] for i in ids]
    matched = max_matching(edges, len(found))
    size = len(matched)
    settle: dict[str, str] = {}
    for receipt_index, source_index in matched.items():
        source = found[source_index]
        # Claimed at an unknown time (an older item): never proven, so never settled by a receipt.
        if not source.confirmation or source.opens is None:
            continue
        if len(max_matching(edges, len(found), without=source_index)) < size:
            settle[source.key] = ids[receipt_index]
    return Proof(keep_on, settle)


def max_matching(edges: Sequence[Iterable[int]], sources: int, without: int = -1) -> dict[int, int]:
    """A maximum matching of receipts (``edges[r]``: the sources receipt r may be from) to sources,
    source ``without`` left out: receipt → source (augmenting paths; a handful of each per number)."""
    owner: list[int] = [-1] * sources

    def augment(receipt: int, visited: set[int]) -> bool:
        for source in edges[receipt]:
            if source == without or source in visited:
                continue
            visited.add(source)
            if owner[source] < 0 or augment(owner[source], visited):
                owner[source] = receipt
                return True
        return False

    for receipt in range(len(edges)):
        augment(receipt, set())
    return {r: s for s, r in enumerate(owner) if r >= 0}


def _stamp(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return parse_iso_utc(str(value))
    except ValueError:
        return None
