"""What the functions that follow the planner's ticks read of them: the planner's schedule expression."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import Field

from dunning.settings import FunctionSettings


class TickedSettings(FunctionSettings):
    # The planner's schedule expression: the send budget of a tick is what can go out before the next
    # one, and the indexer looks at a loan as the planner's next tick will see it.
    planner_schedule: Annotated[str, Field(pattern=r"^(rate\(\d+ (minute|minutes|hour|hours)\)|cron\(.+\))$")]

    @property
    def tick_interval(self) -> timedelta | None:
        """Time between ticks for a ``rate(...)`` schedule; None for a cron one (the job TTL then bounds)."""
        match = re.match(r"^rate\((\d+) (minute|hour)s?\)$", self.planner_schedule)
        if match is None:
            return None
        count = int(match.group(1))
        return timedelta(minutes=count) if match.group(2) == "minute" else timedelta(hours=count)
