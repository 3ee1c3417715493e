"""Where and when is the borrower: candidate time zones, DST-safe local instants, and contact windows as UTC.

Candidate zones are every zone the borrower might be in: the stated zone (if it is a valid IANA zone),
every zone of the phone number's prefix (``phonenumbers``), and the zone(s) of the address (a region
table for US states and Canadian provinces, else every zone tzdata lists for the country). If no signal
is left, every zone of the loan's country is used. A contact window must hold in *all* of them.

Times are integers of microseconds since the Unix epoch (UTC) throughout: exact, cheap to compare, and
hashable. Wall-clock edges that fall into a DST gap or overlap are resolved conservatively: a window
starts at the later instant and ends at the earlier one.
"""

from __future__ import annotations

import importlib.resources
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache
from typing import Final
from zoneinfo import ZoneInfo, available_timezones

import phonenumbers
from phonenumbers import timezone as phone_timezone

from dunning.models import Borrower, Loan
from dunning.rules import DATA_DIR, FULL_DAY, DayRule, RuleRef, WindowSet, read_yaml

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_DATE: Final = date(1970, 1, 1)
SECOND: Final = 1_000_000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR
_ONE_US: Final = timedelta(microseconds=1)
_ONE_DAY: Final = timedelta(days=1)
# Windows are searched this far ahead before concluding that the zones never share an allowed instant.
SEARCH_HORIZON_DAYS: Final = 400
UNKNOWN_ZONE: Final = "Etc/Unknown"


def to_us(instant: datetime) -> int:
    """An aware datetime as microseconds since the epoch (exact)."""
    return (instant - EPOCH) // _ONE_US


# Recent instants: a tick decides every loan at the tick's instant, and the window openings and
# follow-ups it gives are the same few instants for thousands of loans. Cleared whole when full.
_FROM_US: dict[int, datetime] = {}
_FROM_US_MAX: Final = 4096


def from_us(us: int) -> datetime:
    """Microseconds since the epoch as an aware UTC datetime."""
    found = _FROM_US.get(us)
    if found is None:
        found = EPOCH + timedelta(microseconds=us)
        if len(_FROM_US) >= _FROM_US_MAX:
            _FROM_US.clear()
        _FROM_US[us] = found
    return found


def local(us: int, zone_name: str) -> datetime:
    """The wall-clock time of an instant in a zone."""
    return from_us(us).astimezone(zone(zone_name))


_DAY_NAMES: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def fmt_wall(wall: datetime, weekday: bool = True) -> str:
    """``Tue 2026-03-10 09:00`` (seconds only when not zero); f-strings, as strftime is slow here."""
    text = f"{wall.year:04d}-{wall.month:02d}-{wall.day:02d} {wall.hour:02d}:{wall.minute:02d}"
    if wall.second or wall.microsecond:
        text += f":{wall.second:02d}"
    return f"{_DAY_NAMES[wall.weekday()]} {text}" if weekday else text


def fmt_utc(us: int) -> str:
    """``2026-03-10 13:00 UTC``."""
    try:
        return f"{fmt_wall(from_us(us), weekday=False)} UTC"
    except OverflowError:
        return "beyond the year 9999"


@lru_cache(maxsize=1 << 12)
def fmt_local(us: int, zone_name: str) -> str:
    """``Tue 2026-03-10 09:00 America/New_York``."""
    return f"{fmt_wall(local(us, zone_name))} {zone_name}"


# --- zones ------------------------------------------------------------------------------------------


@cache
def _available() -> frozenset[str]:
    return frozenset(available_timezones())


@lru_cache(maxsize=2048)
def zone_or_none(name: str) -> ZoneInfo | None:
    """The ZoneInfo of a valid IANA zone name, or None for anything else (never raises)."""
    if name not in _available() or name == UNKNOWN_ZONE:
        return None
    return ZoneInfo(name)


def zone(name: str) -> ZoneInfo:
    """The ZoneInfo of a zone name already known to be valid."""
    found = zone_or_none(name)
    if found is None:
        raise KeyError(name)
    return found


@lru_cache(maxsize=1024)
def _tzdata_file(name: str) -> bytes | None:
    try:
        return importlib.resources.files("tzdata.zoneinfo").joinpath(*name.split("/")).read_bytes()
    except (OSError, ValueError):
        return None


def _tab_rows(table: str) -> list[list[str]]:
    text = importlib.resources.files("tzdata.zoneinfo").joinpath(table).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


@cache
def _canonical_by_content() -> dict[bytes, str]:
    # tzdata ships links (Europe/Guernsey, Asia/Calcutta) as copies of their target, so identical files
    # are the same zone; zone1970.tab names the canonical one.
    table: dict[bytes, str] = {}
    for row in _tab_rows("zone1970.tab"):
        content = _tzdata_file(row[2])
        if content is not None:
            table.setdefault(content, row[2])
    return table


@lru_cache(maxsize=2048)
def canonical_zone(name: str) -> str:
    """The canonical name of a zone (``Asia/Calcutta`` → ``Asia/Kolkata``); the name itself if unknown."""
    content = _tzdata_file(name)
    return _canonical_by_content().get(content, name) if content is not None else name


@cache
def _country_zones() -> dict[str, tuple[str, ...]]:
    table: dict[str, list[str]] = {}
    for row in _tab_rows("zone.tab"):
        table.setdefault(row[0], []).append(row[2])
    return {country: tuple(zones) for country, zones in table.items()}


def country_zones(country: str) -> tuple[str, ...]:
    """Every zone tzdata's zone.tab lists for an ISO country code (empty if none)."""
    return _country_zones().get(country, ())


@cache
def _region_zones() -> dict[str, dict[str, tuple[str, ...]]]:
    data = read_yaml(DATA_DIR / "regions.yaml")
    return {str(c): {str(r): tuple(zs) for r, zs in regions.items()} for c, regions in data.items()}


def address_zones(country: str, region: str | None) -> tuple[str, ...]:
    """Zones of an address: the region table (US states, Canadian provinces, and ``"*"`` for a country
    with one legal time, such as China), else every zone tzdata lists for the country."""
    regions = _region_zones().get(country, {})
    if region:
        found = regions.get(region.upper())
        if found:
            return found
    return regions.get("*") or country_zones(country)


# --- phones -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PhoneInfo:
    """What ``phonenumbers`` says about a number: valid or not, its E.164 form, its prefix's zones, and
    the regions it implies (``US-MA`` for a 617 number, ``GB`` for a UK one; see ``phone_regions``)."""

    valid: bool
    e164: str | None = None
    zones: tuple[str, ...] = ()
    problem: str | None = None
    regions: tuple[str, ...] = ()


def mask_phone(raw: str) -> str:
    """A phone number safe for reasons and logs: ``+1212*****42``."""
    if len(raw) <= 6:
        return "*" * len(raw)
    return raw[:5] + "*" * (len(raw) - 7) + raw[-2:]


# Mobile and other non-geographic numbers map to their calling code's zones, the same for all of them.
_COUNTRY_LEVEL_ZONES: dict[int, tuple[str, ...]] = {}


# Parsed (or remembered) numbers; cleared whole when full, which a warm planner reaches only after
# a hundred thousand distinct numbers.
_PHONES: dict[str, PhoneInfo] = {}
_PHONES_MAX: Final = 1 << 17


def phone_info(raw: str) -> PhoneInfo:
    """Parse a stored phone number (E.164 expected); never raises. Cached, and answered without
    parsing for a number whose stored facts were remembered (``remember_phone_facts``)."""
    found = _PHONES.get(raw)
    if found is None:
        found = _parse_phone(raw)
        if len(_PHONES) >= _PHONES_MAX:
            _PHONES.clear()
        _PHONES[raw] = found
    return found


def clear_phone_cache() -> None:
    """Forget every parsed and remembered number (benchmarks and tests)."""
    _PHONES.clear()
    _FACTS.clear()


def _parse_phone(raw: str) -> PhoneInfo:
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return PhoneInfo(False, problem=f"phone {mask_phone(raw)} is not an E.164 number")
    # number_type is UNKNOWN exactly when is_valid_number is False (both match the national number
    # against the region's patterns); one call answers both, which halves the cost of a new number.
    number_type = phonenumbers.number_type(number)
    if number_type == phonenumbers.PhoneNumberType.UNKNOWN:
        return PhoneInfo(False, problem=f"phone {mask_phone(raw)} is not a valid number")
    country_code = number.country_code or 0
    if phonenumbers.is_number_type_geographical(number_type, country_code):
        zones = phone_timezone.time_zones_for_geographical_number(number)
    else:
        zones = _COUNTRY_LEVEL_ZONES.get(country_code) or _COUNTRY_LEVEL_ZONES.setdefault(
            country_code, tuple(phone_timezone.time_zones_for_number(number))
        )
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return PhoneInfo(True, e164, tuple(z for z in zones if z != UNKNOWN_ZONE), regions=_regions(number))


# --- stored phone facts -----------------------------------------------------------------------------
#
# Parsing a number is the engine's largest single cost when every number is new (a planner tick), so
# the indexer stores what ``phone_info`` says next to the number on the loan's cadence item, and the
# planner hands it back from the due-index (``remember_phone_facts``) instead of parsing again. The
# facts are a function of the number, the phonenumbers metadata and the area-code table: they carry
# a version naming the last two, and facts of another version are ignored (the number is parsed).


@cache
def phone_facts_version() -> str:
    """``1/<phonenumbers version>/<crc32 of data/nanp_area_codes.yaml>``: what stored facts depend on."""
    table = zlib.crc32((DATA_DIR / "nanp_area_codes.yaml").read_bytes())
    return f"1/{phonenumbers.__version__}/{table:08x}"


# The text of each number's facts, as ``phone_facts`` made it or ``remember_phone_facts`` took it (the
# planner writes the facts back on every cadence item it rewrites); cleared whole when full.
_FACTS: dict[str, str] = {}


def phone_facts(raw: str) -> str:
    """What ``phone_info(raw)`` says, as the text stored on the cadence item:
    ``version|valid|e164|zone,zone|region,region|problem`` (the problem, last, may hold anything)."""
    found = _FACTS.get(raw)
    if found is None:
        info = phone_info(raw)
        found = "|".join(
            (
                phone_facts_version(),
                "1" if info.valid else "0",
                info.e164 or "",
                ",".join(info.zones),
                ",".join(info.regions),
                info.problem or "",
            )
        )
        _remember_text(raw, found)
    return found


def _remember_text(raw: str, facts: str) -> None:
    if len(_FACTS) >= _PHONES_MAX:
        _FACTS.clear()
    _FACTS[raw] = facts


def phone_info_from_facts(raw: str, facts: str) -> PhoneInfo | None:
    """The ``PhoneInfo`` stored facts give for ``raw``; None when they are of another version,
    malformed, or not about this number (the caller then parses it)."""
    parts = facts.split("|", 5)
    if len(parts) != 6 or parts[0] != phone_facts_version():
        return None
    _, valid, e164, zones, regions, problem = parts
    if valid == "1":
        # A valid number's facts name its E.164 form: only the number it was stored for matches.
        if e164 != raw or problem:
            return None
        return PhoneInfo(True, e164, _names(zones), regions=_names(regions))
    if valid != "0" or e164 or zones or regions or mask_phone(raw) not in problem:
        return None
    return PhoneInfo(False, problem=problem)


@lru_cache(maxsize=1024)
def _names(joined: str) -> tuple[str, ...]:
    # Zones and regions as stored facts join them; the same few lists for most numbers.
    return tuple(joined.split(",")) if joined else ()


def remember_phone_facts(raw: str, facts: str) -> bool:
    """Answer ``phone_info(raw)`` from stored facts from now on, unless it is known already or the
    facts are unusable (see ``phone_info_from_facts``); True when the facts were taken."""
    if raw in _PHONES:
        return False
    info = phone_info_from_facts(raw, facts)
    if info is None:
        return False
    if len(_PHONES) >= _PHONES_MAX:
        _PHONES.clear()
    _PHONES[raw] = info
    # Facts taken are exactly the text ``phone_facts`` would make from ``info`` (the same version, and
    # the fields split as they were joined): kept, the planner's cadence writes do not join them again.
    _remember_text(raw, facts)
    return True


@cache
def _area_codes() -> dict[str, tuple[str, ...]]:
    data = read_yaml(DATA_DIR / "nanp_area_codes.yaml")
    table = {str(k): tuple(v) for k, v in (data.get("area_codes") or {}).items()}
    table.update({str(k): tuple(v) for k, v in (data.get("overrides") or {}).items()})
    return table


def _regions(number: phonenumbers.PhoneNumber) -> tuple[str, ...]:
    # The area code alone decides for North American numbers, so a fictional 555-01xx number maps like
    # any other number of its area code; elsewhere the country is all a number says.
    country_code = number.country_code or 0
    if country_code == 1:
        found = _area_codes().get(str(number.national_number)[:3])
        if found:
            return found
    regions = phonenumbers.region_codes_for_country_code(country_code)
    region = regions[0] if len(regions) == 1 else phonenumbers.region_code_for_number(number)
    return (region,) if region and len(region) == 2 and region.isalpha() and region != "ZZ" else ()


def phone_regions(raw: str) -> tuple[str, ...]:
    """The jurisdictions a stored number implies: the state or province of a North American area code
    (``data/nanp_area_codes.yaml``; New York City's area codes give ``US-NY-NYC``), else the number's
    country. Empty for an invalid number."""
    return phone_info(raw).regions


# --- candidate zones --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Whereabouts:
    """The borrower's candidate zones (deduplicated), the primary one, and notes on unusable data."""

    zones: tuple[str, ...]
    primary: str
    sources: tuple[str, ...]
    notes: tuple[str, ...]
    # ``America/New_York (stated, address), America/Los_Angeles (phone)``, for reasons.
    label: str


@cache
def _zone_tab_names() -> frozenset[str]:
    return frozenset(row[2] for row in _tab_rows("zone.tab"))


@cache
def _zone1970_names() -> frozenset[str]:
    return frozenset(row[2] for row in _tab_rows("zone1970.tab"))


def _label(zones: tuple[str, ...], sources: tuple[str, ...], limit: int = 4) -> str:
    parts = [f"{z} ({s})" for z, s in zip(zones[:limit], sources[:limit], strict=True)]
    if len(zones) > limit:
        parts.append(f"and {len(zones) - limit} more")
    return ", ".join(parts)


@lru_cache(maxsize=8192)
def whereabouts(
    stated: str | None,
    phone_zones: tuple[str, ...],
    country: str | None,
    region: str | None,
    fallback_country: str,
) -> Whereabouts:
    """Candidate zones from the stated zone, the phone prefix's zones and the address (see module doc).

    Zones with identical rules (tzdata links such as Europe/Jersey and Europe/London) count once. The
    name shown for such a group is the stated one, else the address's, else the canonical one, so that
    a Quebec address shows America/Blanc-Sablon rather than the zone it is linked to.
    """
    groups: dict[bytes | str, list[str]] = {}
    names: dict[bytes | str, tuple[int, str]] = {}
    notes: list[str] = []

    def add(candidates: Iterable[str], source: str, rank: int) -> None:
        for name in candidates:
            if zone_or_none(name) is None:
                continue
            if name not in _zone_tab_names():
                name = canonical_zone(name)  # an old alias (Asia/Calcutta) under its current name
            key: bytes | str = _tzdata_file(name) or name
            preference = (rank if rank < 2 else (2 if name in _zone1970_names() else 3), name)
            if key not in groups:
                groups[key], names[key] = [], preference
            elif preference[0] < names[key][0]:
                names[key] = preference
            if source not in groups[key]:
                groups[key].append(source)

    stated_key: bytes | str | None = None
    if stated:
        if zone_or_none(stated) is not None:
            add([stated], "stated", 0)
            stated_key = next(iter(groups))
        else:
            notes.append(f"stated time zone {stated!r} is not a valid IANA zone and was ignored")
    add(phone_zones, "phone", 2)
    if country:
        zones = address_zones(country, region)
        if not zones:
            notes.append(f"no time zone is known for the address country {country}")
        add(zones, "address", 1)
    if not groups:
        add(country_zones(fallback_country), f"all of {fallback_country}", 2)
        notes.append(f"no usable location signal: every time zone of {fallback_country} is assumed")
    if not groups:
        add(["UTC"], "no zone known", 2)
    zones = tuple(names[key][1] for key in groups)
    sources = tuple(", ".join(s) for s in groups.values())
    primary = names[stated_key][1] if stated_key is not None else zones[0]
    return Whereabouts(zones, primary, sources, tuple(notes), _label(zones, sources))


def candidate_zones(loan: Loan, borrower: Borrower) -> Whereabouts:
    """Every zone this borrower may be in: stated, the phone prefix's, the address's, else the loan's country.

    The one place that turns a loan and borrower into ``whereabouts``: the engine decides under it and
    the demo's audit and the tests check sends against it, so they cannot disagree.
    """
    phone = phone_info(borrower.phone) if borrower.phone else None
    address = borrower.address
    return whereabouts(
        borrower.time_zone,
        phone.zones if phone is not None and phone.valid else (),
        address.country if address else None,
        address.region if address else None,
        loan.jurisdiction.split("-")[0],
    )


# --- wall clock ↔ instants --------------------------------------------------------------------------


def _offset(tz: ZoneInfo, second: int) -> timedelta | None:
    return datetime.fromtimestamp(second, tz).utcoffset()


def _transition(tz: ZoneInfo, before: int, after: int) -> int:
    # The first second at which the post-transition offset holds, between two instants on either side.
    lo, hi = before // SECOND, -(-after // SECOND)
    target = _offset(tz, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(tz, mid) == target:
            hi = mid
        else:
            lo = mid
    return hi * SECOND


@lru_cache(maxsize=1 << 16)
def wall_to_us(zone_name: str, day: date, minute: int, later: bool) -> int:
    """The instant of a wall-clock time (``minute`` after local midnight of ``day``, 1440 allowed).

    In a repeated hour (DST ends) ``later`` picks the second occurrence, else the first. A skipped time
    (DST starts) has no instant: both a start and an end there move to the transition, which starts a
    window later and ends it earlier than any reading of the wall clock would.
    """
    if minute >= 24 * 60:
        day, minute = day + timedelta(days=minute // (24 * 60)), minute % (24 * 60)
    tz = zone(zone_name)
    wall = datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=tz)
    first, second = to_us(wall), to_us(wall.replace(fold=1))
    if first == second:
        return first
    if first < second:
        return second if later else first
    return _transition(tz, second, first)


def day_start(zone_name: str, day: date) -> int:
    """The instant a local date begins (conservatively late if midnight is skipped or repeated)."""
    return wall_to_us(zone_name, day, 0, True)


def local_date(us: int, zone_name: str) -> date:
    """The local date of an instant in a zone."""
    return local(us, zone_name).date()


# --- contact windows as UTC intervals ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowBlock:
    """Why an instant is outside the windows: the zone, its local time, and the rule that excludes it."""

    zone: str
    local: datetime
    code: str
    rule: DayRule
    dst_edge: bool = False

    @property
    def ref(self) -> RuleRef | None:
        return self.rule.ref

    def describe(self) -> str:
        """A sentence a compliance officer can read."""
        when = f"{fmt_wall(self.local)} in {self.zone}"
        span = self.rule.span
        if self.rule.holiday:
            allowed = f"contact only {span}" if span else "no contact"
            return f"{when}: {self.rule.holiday}, a public holiday ({self.code}): {allowed}"
        if span is None:
            return f"{when}: no contact on {self.local:%A}s ({self.code})"
        if self.dst_edge:
            return (
                f"{when}: a DST change moves the edge of {self.code} hours {span} (the safer instant is used)"
            )
        side = "before" if self.local.hour * 60 + self.local.minute < span.start else "after"
        return f"{when} is {side} {self.code} contact hours {span}"


def _intersect(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


@lru_cache(maxsize=1 << 16)
def local_window(windows: tuple[WindowSet, ...], zone_name: str, day: date) -> tuple[int, int] | None:
    """The allowed instants of one local date in one zone (every window set intersected), or None."""
    start, end = 0, 24 * 60
    for window_set in windows:
        span = window_set.day_rule(day).span
        if span is None:
            return None
        start, end = max(start, span.start), min(end, span.end)
    if start >= end:
        return None
    first, last = wall_to_us(zone_name, day, start, True), wall_to_us(zone_name, day, end, False)
    return (first, last) if first < last else None


class WindowTable:
    """The instants at which every window set holds in every candidate zone, day by UTC day.

    Built once per (window sets, zones) and memoised, so the daily intervals are computed once for all
    borrowers who share the applicable rulebooks and candidate zones.
    """

    def __init__(self, windows: tuple[WindowSet, ...], zones: tuple[str, ...]) -> None:
        self.windows = windows
        self.zones = zones
        self._days: dict[int, tuple[tuple[int, int], ...]] = {}
        self._local_times: dict[tuple[int, int], str] = {}
        self._blocking: dict[int, WindowBlock | None] = {}
        self._blocking_texts: dict[int, str] = {}
        # Answers of ``allows`` for the last instants asked: a tick asks every loan at its instant, and
        # at the few instants its steps fall due and its windows open.
        self._allowed: dict[int, bool] = {}
        # Answers of ``next_allowed`` (the default horizon) for the last instants asked, likewise.
        self._next: dict[int, int | None] = {}

    def local_window(self, zone_name: str, day: date) -> tuple[int, int] | None:
        """The allowed instants of one local date in one zone."""
        return local_window(self.windows, zone_name, day)

    def intervals(self, utc_day: int) -> tuple[tuple[int, int], ...]:
        """Allowed ``[start, end)`` intervals within one UTC day (day number since the epoch)."""
        hit = self._days.get(utc_day)
        if hit is not None:
            return hit
        lo, hi = utc_day * DAY, (utc_day + 1) * DAY
        middle = EPOCH_DATE + timedelta(days=utc_day)
        allowed = [(lo, hi)]
        for zone_name in self.zones:
            # A UTC day meets at most three local dates (offsets lie within -12h..+14h).
            mine = []
            for day in (middle - _ONE_DAY, middle, middle + _ONE_DAY):
                window = self.local_window(zone_name, day)
                if window and window[1] > lo and window[0] < hi:
                    mine.append((max(window[0], lo), min(window[1], hi)))
            allowed = _intersect(allowed, mine)
            if not allowed:
                break
        found = self._days[utc_day] = tuple(allowed)
        return found

    def allows(self, us: int) -> bool:
        """Whether an instant is inside the windows in every zone."""
        allowed = self._allowed.get(us)
        if allowed is None:
            allowed = self.allows_at(us)
            if len(self._allowed) >= 64:
                self._allowed.clear()
            self._allowed[us] = allowed
        return allowed

    def allows_at(self, us: int) -> bool:
        """:meth:`allows`, without remembering the answer."""
        # A loop, not ``any()`` over a generator (a sixth of the cost): asked for every loan of a tick.
        for start, end in self.intervals(us // DAY):  # noqa: SIM110
            if start <= us < end:
                return True
        return False

    def next_allowed(self, us: int, horizon_days: int = SEARCH_HORIZON_DAYS) -> int | None:
        """The earliest allowed instant at or after ``us``, or None if there is none within the horizon."""
        if horizon_days != SEARCH_HORIZON_DAYS:
            return self.next_allowed_at(us, horizon_days)
        if us in self._next:
            return self._next[us]
        found = self.next_allowed_at(us, horizon_days)
        if len(self._next) >= 64:
            self._next.clear()
        self._next[us] = found
        return found

    def next_allowed_at(self, us: int, horizon_days: int = SEARCH_HORIZON_DAYS) -> int | None:
        """:meth:`next_allowed`, without remembering the answer."""
        first_day = us // DAY
        for utc_day in range(first_day, first_day + horizon_days):
            for start, end in self.intervals(utc_day):
                if end > us:
                    return max(start, us)
        return None

    def blocking(self, us: int) -> WindowBlock | None:
        """The first zone and rule that exclude an instant, or None if it is allowed everywhere
        (remembered for the last instants asked, as ``local_times``)."""
        if us in self._blocking:
            return self._blocking[us]
        found = self._blocking_at(us)
        if len(self._blocking) >= 256:
            self._blocking.clear()
        self._blocking[us] = found
        return found

    def blocking_text(self, us: int) -> str:
        """What ``blocking(us).describe()`` says (remembered with it); the instant must be blocked."""
        found = self._blocking_texts.get(us)
        if found is None:
            block = self.blocking(us)
            if block is None:
                raise ValueError("the instant is inside the windows: nothing blocks it")
            if len(self._blocking_texts) >= 16:
                self._blocking_texts.clear()
            found = self._blocking_texts[us] = block.describe()
        return found

    def _blocking_at(self, us: int) -> WindowBlock | None:
        for zone_name in self.zones:
            wall = local(us, zone_name)
            window = self.local_window(zone_name, wall.date())
            if window is not None and window[0] <= us < window[1]:
                continue
            minute = wall.hour * 60 + wall.minute
            for window_set in self.windows:
                rule = window_set.day_rule(wall.date())
                if rule.span is None or not rule.span.start <= minute < rule.span.end:
                    return WindowBlock(zone_name, wall, window_set.code, rule)
            # Every rule allows this wall time: only the conservative reading of a DST edge excludes it.
            restricting = [w for w in self.windows if w.day_rule(wall.date()).ref is not None]
            if not restricting:
                return WindowBlock(zone_name, wall, "day boundary", DayRule(FULL_DAY, None), dst_edge=True)
            return WindowBlock(
                zone_name, wall, restricting[0].code, restricting[0].day_rule(wall.date()), dst_edge=True
            )
        return None

    def local_times(self, us: int, limit: int = 3) -> str:
        """``America/New_York 10:15, America/Los_Angeles 07:15`` for a reason text (remembered for the
        last instants asked: a tick's SENDs in the same zones are all decided at the tick's instant)."""
        key = (us, limit)
        found = self._local_times.get(key)
        if found is None:
            instant = from_us(us)
            walls = [(z, instant.astimezone(zone(z))) for z in self.zones[:limit]]
            parts = [f"{z} {w.hour:02d}:{w.minute:02d}" for z, w in walls]
            if len(self.zones) > limit:
                parts.append(f"and {len(self.zones) - limit} more")
            if len(self._local_times) >= 16:
                self._local_times.clear()
            found = self._local_times[key] = ", ".join(parts)
        return found


@lru_cache(maxsize=4096)
def window_table(windows: tuple[WindowSet, ...], zones: tuple[str, ...]) -> WindowTable:
    """The memoised window table of a policy's window sets in a set of candidate zones."""
    return WindowTable(windows, zones)
