"""Public holidays of the rulebooks' calendars, read from a table precomputed with the ``holidays`` package.

The first use of the ``holidays`` package imports every one of its ~250 country modules, and loading the
rulebooks used it to validate their calendars: the largest single part of a cold start. The calendars the
packaged rulebooks name are precomputed instead, for a bounded range of years, into ``data/holidays.json``
by ``python -m dunning_local.holiday_table`` (tooling; tests/unit/test_holiday_table.py regenerates the
table and fails when it differs from the file: a ``holidays`` upgrade that changes a date or a name, a
calendar added to a rulebook, a change of the years). At run time:

- a calendar is valid in a rulebook when the table has it (``check_known``); any other is refused at
  load, with a message that says whether the ``holidays`` package knows it and how to add it;
- a lookup in one of the table's years reads the table; in any other year (or for a calendar the table
  does not have) it asks the ``holidays`` package itself, imported then and only then, so that a date
  outside the table is answered exactly as before, only slower.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache
from pathlib import Path
from typing import Final

TABLE_PATH: Final = Path(__file__).parent / "data" / "holidays.json"
GENERATOR: Final = "python -m dunning_local.holiday_table"


def calendar_key(country: str, subdiv: str | None, categories: Iterable[str]) -> str:
    """``"CA/QC/optional+public"``: the table's key of a calendar (categories are a set)."""
    return f"{country}/{subdiv or '-'}/{'+'.join(sorted(set(categories)))}"


@dataclass(frozen=True, slots=True)
class HolidayTable:
    """The precomputed table: every calendar's holidays (ISO date → name) in ``first_year..last_year``."""

    first_year: int
    last_year: int
    source: str
    calendars: dict[str, dict[str, str]]

    def covers(self, year: int) -> bool:
        """Whether the table holds ``year`` (for every calendar it has)."""
        return self.first_year <= year <= self.last_year


def read_table(path: Path = TABLE_PATH) -> HolidayTable:
    """The table in a ``holidays.json`` file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    first, last = data["years"]
    return HolidayTable(int(first), int(last), str(data["source"]), dict(data["calendars"]))


@cache
def table() -> HolidayTable:
    """The packaged table, read once."""
    return read_table()


def computed(country: str, subdiv: str | None, categories: tuple[str, ...], year: int) -> dict[date, str]:
    """One year of a calendar as the ``holidays`` package computes it (imports the package)."""
    import holidays

    found = holidays.country_holidays(country, subdiv=subdiv, categories=categories, years=year)
    return dict(found.items())


def check_known(country: str, subdiv: str | None, categories: tuple[str, ...]) -> None:
    """Raise ``ValueError`` unless the packaged table has this calendar."""
    if calendar_key(country, subdiv, categories) in table().calendars:
        return
    import holidays  # only on the way to an error: to say what is wrong

    try:
        holidays.country_holidays(country, subdiv=subdiv, categories=categories)
    except NotImplementedError as exc:
        raise ValueError(f"the holidays package has no calendar {country}/{subdiv}: {exc}") from exc
    raise ValueError(
        f"calendar {calendar_key(country, subdiv, categories)} is not in the precomputed holiday table "
        f"(dunning/data/{TABLE_PATH.name}); run `{GENERATOR}` to add every calendar the rulebooks name"
    )


@lru_cache(maxsize=512)
def holidays_in(country: str, subdiv: str | None, categories: tuple[str, ...], year: int) -> dict[date, str]:
    """The public holidays (date → name) of one calendar in one year: from the table when it has them."""
    known = table()
    days = known.calendars.get(calendar_key(country, subdiv, categories))
    if days is None or not known.covers(year):
        return computed(country, subdiv, categories, year)
    prefix = f"{year:04d}-"
    return {date.fromisoformat(day): name for day, name in days.items() if day.startswith(prefix)}
