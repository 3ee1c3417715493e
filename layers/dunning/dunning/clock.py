"""The wall clock, in one place.

Services take a ``clock`` callable; handlers pass :func:`now`. The demo and the tests run simulated
time by installing another clock with :func:`use` — nothing else in the package reads the time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def _system_now() -> datetime:
    return datetime.now(UTC)


_current: Clock = _system_now


def now() -> datetime:
    """The current instant (UTC, aware) from the installed clock."""
    return _current()


@contextmanager
def use(clock: Clock) -> Iterator[None]:
    """Install ``clock`` for the duration of the block (simulated time for demos and tests)."""
    global _current
    previous, _current = _current, clock
    try:
        yield
    finally:
        _current = previous
