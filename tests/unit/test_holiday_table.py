"""The precomputed holiday table (data/holidays.json): generated, what the holidays package computes, read
in its years, the package itself outside them, and the rulebooks' calendars checked against it."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from engine_fixtures import copy_rulebooks

from dunning import calendars
from dunning.calendars import calendar_key, computed, holidays_in, table
from dunning.rules import RulebookError, holiday_name, load_rulebooks
from dunning_local import holiday_table

ROOT = Path(__file__).parents[2]
QUEBEC = ("CA", "QC", ("public", "optional"))


def test_holiday_table_is_what_the_installed_holidays_package_gives() -> None:
    # Fails when a holidays upgrade changes a date or a name, when a rulebook names a new calendar or when
    # the years change: regenerate with python -m dunning_local.holiday_table.
    assert holiday_table.main(["--check"]) == 0


def test_the_table_has_every_calendar_the_rulebooks_name() -> None:
    named = {calendar_key(*c) for c in holiday_table.packaged_calendars()}

    assert set(table().calendars) == named
    assert calendar_key(*QUEBEC) in named


def test_the_table_covers_this_year_and_the_next_two() -> None:
    # The range is fixed in dunning_local.holiday_table.YEARS; this fails two years before it runs out.
    this_year = datetime.now(UTC).year

    assert table().first_year <= this_year
    assert this_year + 2 <= table().last_year


def test_calendar_keys_take_categories_as_a_set() -> None:
    assert calendar_key("CA", "QC", ("public", "optional")) == "CA/QC/optional+public"
    assert calendar_key("CA", "QC", ("optional", "public", "public")) == "CA/QC/optional+public"
    assert calendar_key("IE", None, ("public",)) == "IE/-/public"


@pytest.mark.parametrize("calendar", holiday_table.packaged_calendars(), ids=lambda c: calendar_key(*c))
def test_lookups_in_the_tables_years_match_the_holidays_package(
    calendar: tuple[str, str | None, tuple[str, ...]],
) -> None:
    known = table()
    for year in range(known.first_year, known.last_year + 1):
        assert holidays_in(*calendar, year) == computed(*calendar, year), year


@pytest.mark.parametrize("year", [2023, 2037, 2050])
def test_outside_the_tables_years_the_holidays_package_answers(year: int) -> None:
    assert not table().covers(year)
    expected = computed(*QUEBEC, year)

    assert holidays_in(*QUEBEC, year) == expected
    assert len(expected) >= 8


def test_a_lookup_outside_the_table_gives_the_same_day_as_inside() -> None:
    # Easter Monday, in the table (2026) and after it (2040): the same name either way.
    assert holiday_name(*QUEBEC, date(2026, 4, 6)) == "Easter Monday"
    assert holiday_name(*QUEBEC, date(2040, 4, 2)) == "Easter Monday"
    assert holiday_name(*QUEBEC, date(2040, 4, 3)) is None


def test_a_calendar_the_table_lacks_is_looked_up_in_the_holidays_package() -> None:
    assert calendar_key("US", None, ("public",)) not in table().calendars

    assert holidays_in("US", None, ("public",), 2026) == computed("US", None, ("public",), 2026)


_COLD = """
import sys
from datetime import date
from dunning.rules import holiday_name, load_rulebooks
load_rulebooks()
print(holiday_name("CA", "ON", ("public",), date(2026, 7, 1)), "holidays" in sys.modules)
print(holiday_name("CA", "ON", ("public",), date(2045, 7, 1)), "holidays" in sys.modules)
"""


def test_loading_the_rulebooks_and_looking_up_the_tables_years_never_import_the_holidays_package() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _COLD], capture_output=True, text=True, cwd=ROOT, timeout=120
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Canada Day False", "Canada Day True"]


def test_a_rulebook_calendar_the_table_lacks_is_refused_and_says_how_to_add_it(tmp_path: Path) -> None:
    text = "code: US\nname: x\nholidays: {calendar: {country: US}, citation: abc, verified: true}\n"
    books = copy_rulebooks(tmp_path, {"US.yaml": text})

    with pytest.raises(RulebookError) as error:
        load_rulebooks(books, tmp_path / "policy.yaml")

    assert "US.yaml" in str(error.value)
    assert "US/-/public is not in the precomputed holiday table" in str(error.value)
    assert "python -m dunning_local.holiday_table" in str(error.value)


def test_a_calendar_the_holidays_package_lacks_is_refused_as_such() -> None:
    with pytest.raises(ValueError, match="the holidays package has no calendar ZZ/None"):
        calendars.check_known("ZZ", None, ("public",))


def test_the_generator_finds_the_calendars_of_rulebooks_it_is_given(tmp_path: Path) -> None:
    quebec = "{country: CA, subdiv: QC, categories: [public, optional]}"
    (tmp_path / "A.yaml").write_text(f"code: A\nholidays: {{calendar: {quebec}}}\n")
    (tmp_path / "B.yaml").write_text("code: B\nholidays: {calendar: {country: US}}\n")
    (tmp_path / "C.yaml").write_text("code: C\nwindow: {hours: '08:00-21:00'}\n")

    found = holiday_table.named_calendars(sorted(tmp_path.glob("*.yaml")))

    assert found == [("CA", "QC", ("optional", "public")), ("US", None, ("public",))]


def test_a_generated_table_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "holidays.json"
    years = range(2030, 2032)
    path.write_text(holiday_table.render(holiday_table.compute([QUEBEC], years), years))

    read = calendars.read_table(path)

    assert (read.first_year, read.last_year) == (2030, 2031)
    assert read.source.startswith("holidays ")
    assert read.calendars[calendar_key(*QUEBEC)]["2031-06-24"] == "Saint John the Baptist Day"
