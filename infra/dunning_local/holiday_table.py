"""Build the precomputed public-holiday table (``data/holidays.json``) from the ``holidays`` package.

The table has every calendar that the packaged rulebooks and the lender policy name (their
``holidays.calendar``: country, subdivision, categories), each with its holidays (ISO date → name, as
``holidays.country_holidays`` gives them) in the years ``YEARS``: 2024-2036, two years back and ten ahead
of 2026, when the table was introduced. The layer reads only this file (``dunning.calendars``): importing
the ``holidays`` package costs every cold start its ~250 country modules. Outside these years the layer
asks the package itself, so the range bounds only what is fast, never what is right; extend it here and
regenerate before it runs out (tests/unit/test_holiday_table.py fails two years ahead).

The rulebooks are read as plain YAML, not validated: validation refuses a calendar the table does not
have yet, which is what a new rulebook's calendar is until this runs.

Run ``python -m dunning_local.holiday_table`` to rewrite the file, ``--check`` to compare only (exit 1 if
the installed ``holidays`` package, the rulebooks' calendars or ``YEARS`` would change it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

from dunning.calendars import TABLE_PATH, calendar_key, computed
from dunning.rules import DEFAULT_LENDER_POLICY, DEFAULT_RULEBOOKS_DIR, read_yaml

YEARS = range(2024, 2037)

Calendar = tuple[str, str | None, tuple[str, ...]]


def named_calendars(files: Iterable[Path]) -> list[Calendar]:
    """The distinct calendars the files' ``holidays.calendar`` name, sorted by their key."""
    found: dict[str, Calendar] = {}
    for path in files:
        data = read_yaml(path)
        calendar = ((data or {}).get("holidays") or {}).get("calendar") if isinstance(data, dict) else None
        if not calendar:
            continue
        subdiv = calendar.get("subdiv")
        categories = tuple(sorted(set(calendar.get("categories") or ("public",))))
        entry = (str(calendar["country"]), None if subdiv is None else str(subdiv), categories)
        found[calendar_key(*entry)] = entry
    return [found[key] for key in sorted(found)]


def packaged_calendars() -> list[Calendar]:
    """The calendars of the packaged rulebooks and the lender policy."""
    return named_calendars([*sorted(DEFAULT_RULEBOOKS_DIR.glob("*.yaml")), DEFAULT_LENDER_POLICY])


def compute(calendars: Iterable[Calendar], years: range = YEARS) -> dict[str, dict[str, str]]:
    """Calendar key → {ISO date: holiday name} over ``years``, from the installed ``holidays`` package."""
    table: dict[str, dict[str, str]] = {}
    for country, subdiv, categories in calendars:
        days: dict[str, str] = {}
        for year in years:
            for day, name in sorted(computed(country, subdiv, categories, year).items()):
                days[day.isoformat()] = name
        table[calendar_key(country, subdiv, categories)] = days
    return table


def render(table: dict[str, dict[str, str]], years: range = YEARS) -> str:
    """The JSON file's text: one holiday a line, so that a change shows as such in review."""
    import holidays

    document = {
        "generated_by": "python -m dunning_local.holiday_table (do not edit by hand)",
        "source": f"holidays {holidays.__version__}",
        "years": [years[0], years[-1]],
        "calendars": table,
    }
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or ``--check``) the packaged holiday table."""
    parser = argparse.ArgumentParser(prog="python -m dunning_local.holiday_table", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if it would change")
    parser.add_argument("--path", type=Path, default=TABLE_PATH)
    args = parser.parse_args(argv)
    text = render(compute(packaged_calendars()))
    current = args.path.read_text(encoding="utf-8") if args.path.exists() else ""
    if args.check:
        if text != current:
            print(f"{args.path} is out of date: run python -m dunning_local.holiday_table", file=sys.stderr)
            return 1
        return 0
    args.path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
