"""The sender's send pacer on simulated time, so that a simulated run replays exactly.

The pacer (``dunning.adapters.pacing.SendPacer``) asks DynamoDB for send tokens by the wall clock's
epoch second. In a simulation whose instants are not the wall clock's, that makes a run depend on when
a real second happens to end: how many token requests a send makes, and so which request a seeded
fault hits, changes from one run to the next. :func:`simulated_pacing` gives every pacer a
:class:`PacerClock` instead: the simulated instant (``dunning.clock``) plus a millisecond per reading,
whose waits advance it rather than sleep. The same seed then gives the same run, faults included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from unittest import mock

from dunning import clock


class PacerClock:
    """Simulated time for the pacer: the simulated instant, a millisecond later at each reading."""

    def __init__(self, now: Callable[[], datetime] = clock.now) -> None:
        self._now = now
        self.offset = 0.0
        self.pacers: list[Any] = []  # the warm senders' pacers, whose held tokens a restart drops

    def restart(self) -> None:
        """Start over (a new schedule): no offset, and no pacer keeps tokens of the old timeline."""
        self.offset = 0.0
        for pacer in self.pacers:
            pacer._held.clear()
        self.pacers.clear()

    def __call__(self) -> float:
        self.offset += 0.001
        return self._now().timestamp() + self.offset

    def sleep(self, seconds: float) -> None:
        self.offset += max(0.0, seconds)


@contextmanager
def simulated_pacing(pacer_clock: PacerClock | None = None) -> Iterator[PacerClock]:
    """Within the context, every ``SendPacer`` reads and waits on ``pacer_clock`` (a new one if None)."""
    from dunning.adapters.pacing import SendPacer

    the_clock = pacer_clock if pacer_clock is not None else PacerClock()
    real_pace = SendPacer.pace

    def pace(pacer: SendPacer, *args: Any, **kwargs: Any) -> str:
        if not any(known is pacer for known in the_clock.pacers):
            the_clock.pacers.append(pacer)
        pacer.limiter.clock = the_clock
        pacer.limiter.sleep = the_clock.sleep
        return real_pace(pacer, *args, **kwargs)

    with mock.patch.object(SendPacer, "pace", pace):
        yield the_clock
