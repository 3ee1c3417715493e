"""Frequency caps: count the contacts inside each cap's window and find when enough of them have left it.

A rolling cap of ``limit`` per ``period`` counts the sends made in the ``period`` before an instant; a send
at ``t`` stops counting at ``t + period``. A calendar-month cap counts the sends of the same local month,
in every candidate zone (the month must have room wherever the borrower is). Per-debt caps count only
the sends about the loan being decided; per-borrower caps count every send to the person.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import NamedTuple

from dunning.models import Channel, ContactState
from dunning.rules import Cap
from dunning.zones import day_start, fmt_local, fmt_utc, local, to_us


class Sent(NamedTuple):
    """One past contact, as the caps see it (a tuple, so histories sort by time natively)."""

    at: int
    channel: Channel
    loan_id: str


@dataclass(frozen=True, slots=True)
class CapBlock:
    """A cap that is full at some instant, and the instant it has room again (history held constant)."""

    cap: Cap
    count: int
    until: int
    oldest: int | None = None
    zone: str | None = None

    def describe(self) -> str:
        """A sentence naming the cap, the count and when it frees up."""
        cap = self.cap
        name = _cap_name(cap)
        if self.zone is not None:
            return (
                f"{name}: {self.count} contact(s) already this month in {self.zone}; "
                f"the next month begins {fmt_local(self.until, self.zone)}"
            )
        assert self.oldest is not None
        return (
            f"{name}: {self.count} contact(s) in the last {cap.period}; the one sent {fmt_utc(self.oldest)} "
            f"leaves the window at {fmt_utc(self.until)}"
        )


# The instants of recent sends in microseconds: a borrower's sends were made at ticks, which many
# borrowers share. Cleared whole when full.
_SENT_US: dict[datetime, int] = {}
_SENT_US_MAX = 4096
_sent = partial(tuple.__new__, Sent)  # Sent(...) without its Python-level __new__


# Each cap's name as a reason gives it, by the cap's identity (the cap is kept with it, so its id is not
# reused): a tick writes the same few caps into thousands of reasons.
_CAP_NAMES: dict[int, tuple[Cap, str]] = {}


def _cap_name(cap: Cap) -> str:
    found = _CAP_NAMES.get(id(cap))
    if found is None or found[0] is not cap:
        if len(_CAP_NAMES) >= 1024:
            _CAP_NAMES.clear()
        found = _CAP_NAMES[id(cap)] = (cap, f"{cap.ref.code} {cap.ref.rule_id} ({cap.describe()})")
    return found[1]


def sends_of(state: ContactState) -> tuple[Sent, ...]:
    """The borrower's past sends, oldest first."""
    sent: list[Sent] = []
    for s in state.sends:
        at = s.at
        us = _SENT_US.get(at)
        if us is None:
            us = to_us(at)
            if len(_SENT_US) >= _SENT_US_MAX:
                _SENT_US.clear()
            _SENT_US[at] = us
        sent.append(_sent((us, s.channel, s.loan_id)))
    sent.sort()
    return tuple(sent)


def _month(us: int, zone_name: str) -> tuple[int, int]:
    wall = local(us, zone_name)
    return wall.year, wall.month


def _month_start_after(us: int, zone_name: str) -> int:
    year, month = _month(us, zone_name)
    return day_start(zone_name, date(year + month // 12, month % 12 + 1, 1))


class CapCounter:
    """The caps of one policy applied to one borrower's history, for one loan.

    Which sends a cap counts does not depend on the instant, so that filtering is done once per cap
    and reused while the engine searches for the earliest allowed instant. ``sends`` are oldest first,
    as :func:`sends_of` gives them.
    """

    def __init__(
        self, caps: Sequence[Cap], sends: Sequence[Sent], loan_id: str, zones: Sequence[str]
    ) -> None:
        self.caps, self.sends, self.loan_id, self.zones = caps, sends, loan_id, zones
        self._counted: dict[int, list[int]] = {}

    def _times(self, index: int, cap: Cap) -> list[int]:
        times = self._counted.get(index)
        if times is None:
            times = self._counted[index] = [
                s.at
                for s in self.sends
                if s.channel in cap.channels and (cap.scope == "borrower" or s.loan_id == self.loan_id)
            ]
        return times

    def blocks(self, channel: Channel, us: int) -> list[CapBlock]:
        """Every cap that one more contact on ``channel`` at ``us`` would exceed, with when each frees up."""
        blocks: list[CapBlock] = []
        if not self.sends:
            return blocks
        sent = len(self.sends)
        counted = self._counted
        for index, cap in enumerate(self.caps):
            limit = cap.limit
            if sent < limit or channel not in cap.channels:
                continue
            times = counted.get(index)
            if times is None:
                times = self._times(index, cap)
            if len(times) < limit:
                continue
            period = cap.period_us
            if period is not None:
                # ``times`` is in order (``sends_of``): those inside the window are the last ones.
                inside = len(times) - bisect_right(times, us - period)
                if inside >= limit:
                    # Room for one more once the (n - limit + 1) oldest sends have left the window.
                    oldest = times[len(times) - limit]
                    blocks.append(CapBlock(cap, inside, oldest + period, oldest=oldest))
                continue
            worst = self._month_block(cap, times, us)
            if worst is not None:
                blocks.append(worst)
        return blocks

    def _month_block(self, cap: Cap, times: list[int], us: int) -> CapBlock | None:
        # A calendar-month cap in every candidate zone (apart from ``blocks``: the generator below would
        # make that hot method's locals cells).
        worst: CapBlock | None = None
        for zone_name in self.zones:
            month = _month(us, zone_name)
            count = sum(1 for t in times if _month(t, zone_name) == month)
            if count >= cap.limit:
                until = _month_start_after(us, zone_name)
                if worst is None or until > worst.until:
                    worst = CapBlock(cap, count, until, zone=zone_name)
        return worst
