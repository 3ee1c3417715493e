"""Rulebooks: each jurisdiction's contact rules and the lender's policy, merged into one ``Policy`` per loan.

A rulebook (``data/rulebooks/<code>.yaml``) says when contact is allowed (hours by weekday, Sunday,
public holidays), how often (caps), what every message must contain, which opt-out keywords must be
honoured, how many parts an SMS may have and which channels need prior consent. Every rule carries a
``citation`` and a ``verified`` flag. The lender policy (``data/lender/policy.yaml``) has the same shape
and can only add restrictions: merging intersects windows, applies every cap, unions content, keywords
and consent, and keeps the smallest segment limit, so nothing a lender writes loosens the law; a policy
file that tries to remove or waive a rule is rejected at load.

Which rulebooks apply to a loan: every rulebook whose code is a segment prefix of one of the
borrower's candidate jurisdictions (the loan's jurisdiction, the address ``country[-region]``, and the
region the phone number implies, as ``data/phone_policy.yaml`` allows; see ``dunning.jurisdictions``),
and the lender policy. Loan ``US`` + address ``US-MA`` → ``US``, ``US-MA``, ``lender``; loan ``US``, no
address, a 617 number → the same.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache, lru_cache
from pathlib import Path
from typing import Annotated, Any, Final, Literal, NamedTuple, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from dunning.calendars import check_known, holidays_in
from dunning.models import Borrower, Channel, JurisdictionCode
from dunning.yamlio import safe_load

DATA_DIR: Final = Path(__file__).parent / "data"
DEFAULT_RULEBOOKS_DIR: Final = DATA_DIR / "rulebooks"
DEFAULT_LENDER_POLICY: Final = DATA_DIR / "lender" / "policy.yaml"
DEFAULT_PHONE_POLICY: Final = DATA_DIR / "phone_policy.yaml"
LENDER: Final = "lender"

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: Final[tuple[Weekday, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RequiredContent = Literal["opt_out", "sender_identity", "licence_number", "cn_signature"]

# Decisions the engine takes on its own (status, flags, cadence, ...). A rulebook or the lender policy
# may give them a citation so that every decision can say which rule it applied.
ENGINE_RULE_IDS: Final = frozenset(
    {
        "status.paid",
        "status.closed",
        "status.charged_off",
        "status.nothing_due",
        "data.due_date",
        "flag.bankruptcy",
        "flag.deceased",
        "flag.cease_and_desist",
        "flag.attorney_represented",
        "flag.dispute",
        "flag.promise_to_pay",
        "flag.hardship",
        "pause.inbound",
        "jurisdiction.unknown",
        "consent.none_usable",
        "channel.unavailable",
        "cadence.not_due",
        "cadence.end",
        "window.no_common_hours",
    }
)

# Keys a lender might write to switch a rule off. Strictest-wins merging already makes a wider window or
# a larger cap harmless; these would not be, so the file is refused rather than silently ignored.
_RELAXING_KEYS: Final = frozenset(
    {
        "remove",
        "removes",
        "disable",
        "disabled",
        "exempt",
        "exempts",
        "exemption",
        "waive",
        "waives",
        "waiver",
        "override",
        "overrides",
        "unset",
        "except",
        "exclude",
        "excludes",
        "relax",
        "allow",
        "not_required",
    }
)

_MINUTES_PER_DAY: Final = 24 * 60
_HOURS_RE: Final = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_PERIOD_RE: Final = re.compile(r"^(\d{1,3})(h|d)$")
_US_PER_HOUR: Final = 3_600_000_000


_M = TypeVar("_M", bound=BaseModel)


class RulebookError(ValueError):
    """A rulebook, the lender policy or a strategy file is invalid; the message names the file."""


class Span(NamedTuple):
    """Allowed local hours on one day: minutes after local midnight, ``end`` exclusive (1440 = midnight)."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}–{self.end // 60:02d}:{self.end % 60:02d}"


FULL_DAY: Final = Span(0, _MINUTES_PER_DAY)


def _parse_hours(value: object) -> Span | None:
    if value is None or isinstance(value, Span):
        return value
    if not isinstance(value, str):
        raise ValueError("hours must be 'HH:MM-HH:MM' or 'closed'")
    if value.strip().lower() == "closed":
        return None
    match = _HOURS_RE.match(value.strip())
    if not match:
        raise ValueError(f"hours {value!r} must be 'HH:MM-HH:MM' or 'closed'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > _MINUTES_PER_DAY or start >= end:
        raise ValueError(f"hours {value!r}: need 00:00 <= start < end <= 24:00")
    return Span(start, end)


Hours = Annotated[Span | None, BeforeValidator(_parse_hours)]


# --- file schema ------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Cited(_Strict):
    """Where a rule comes from. ``verified: false`` marks rules from conflicting or secondary sources."""

    citation: Annotated[str, Field(min_length=3, max_length=400)]
    verified: bool
    note: Annotated[str, Field(max_length=600)] | None = None


class WindowRule(Cited):
    """Contact hours by weekday: ``hours`` for every day, ``by_day`` overrides (e.g. ``sat: closed``)."""

    hours: Hours
    by_day: dict[Weekday, Hours] = {}


class SundayRule(Cited):
    hours: Hours


class HolidayCalendar(_Strict):
    """A public-holiday calendar of the ``holidays`` package (country, subdivision, categories), one that
    the precomputed table (``dunning.calendars``, ``data/holidays.json``) has."""

    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    subdiv: Annotated[str, Field(pattern=r"^[A-Z0-9]{1,4}$")] | None = None
    categories: tuple[Annotated[str, Field(pattern=r"^[a-z_]+$")], ...] = ("public",)

    @model_validator(mode="after")
    def _in_the_holiday_table(self) -> HolidayCalendar:
        check_known(self.country, self.subdiv, self.categories)
        return self


class HolidayRule(Cited):
    calendar: HolidayCalendar
    hours: Hours = None


class CapRule(Cited):
    """At most ``limit`` contacts per ``period`` (rolling ``24h``/``7d``/``30d``, or ``calendar_month``)."""

    id: Annotated[str, Field(pattern=r"^cap\.[a-z0-9_]+$")]
    limit: Annotated[int, Field(ge=1, le=1000)]
    period: Annotated[str, Field(pattern=r"^(\d{1,3}(h|d)|calendar_month)$")]
    scope: Literal["borrower", "debt"]
    channels: frozenset[Channel] = frozenset(Channel)


class ContentRule(Cited):
    requires: RequiredContent


class ConsentRule(Cited):
    channel: Channel


class KeywordsRule(Cited):
    keywords: Annotated[tuple[Annotated[str, Field(min_length=1, max_length=32)], ...], Field(min_length=1)]


class SegmentsRule(Cited):
    limit: Annotated[int, Field(ge=1, le=10)]


class _RulebookBody(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    window: WindowRule | None = None
    sunday: SundayRule | None = None
    holidays: HolidayRule | None = None
    caps: tuple[CapRule, ...] = ()
    content: tuple[ContentRule, ...] = ()
    consent: tuple[ConsentRule, ...] = ()
    opt_out_keywords: KeywordsRule | None = None
    max_sms_segments: SegmentsRule | None = None
    citations: dict[str, Cited] = {}

    @model_validator(mode="after")
    def _consistent(self) -> _RulebookBody:
        ids = [cap.id for cap in self.caps]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"cap ids must be unique, repeated: {duplicates}")
        unknown = sorted(set(self.citations) - ENGINE_RULE_IDS)
        if unknown:
            raise ValueError(f"citations for unknown rule ids {unknown}; known: {sorted(ENGINE_RULE_IDS)}")
        return self


class RulebookFile(_RulebookBody):
    """One jurisdiction's rulebook as written in ``data/rulebooks/<code>.yaml``."""

    code: JurisdictionCode


class LenderPolicyFile(_RulebookBody):
    """The lender's own policy: same shape as a rulebook, additive only, and it sets the SMS basics."""

    code: Literal["lender"]
    opt_out_keywords: KeywordsRule
    max_sms_segments: SegmentsRule

    @model_validator(mode="before")
    @classmethod
    def _refuse_relaxing(cls, data: Any) -> Any:
        where = _find_relaxing_key(data, "")
        if where:
            raise ValueError(
                f"'{where}': a lender policy can only add restrictions (the strictest rule wins); "
                "it cannot remove, waive or override a rule of a jurisdiction or of this file"
            )
        return data


def _find_relaxing_key(node: Any, path: str) -> str | None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if str(key).lower() in _RELAXING_KEYS:
                return here
            found = _find_relaxing_key(value, here)
            if found:
                return found
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            found = _find_relaxing_key(value, f"{path}[{i}]")
            if found:
                return found
    return None


PhoneRegionAdds = Literal["when_address_missing", "when_address_missing_or_conflicting", "always"]


class PhoneRegionRule(Cited):
    """When the region a phone number implies adds its rulebook, compared with the borrower's address.

    ``when_address_missing``: only when there is no address or it is less precise than the phone
    (address ``US``, number from Boston). ``when_address_missing_or_conflicting`` (the default): also when
    the address is elsewhere (a moved borrower gets both rulebooks). ``always``: the same rulebooks, and a
    phone region that agrees with the address is recorded on the decision as well.
    """

    adds: PhoneRegionAdds


class PhonePolicyFile(_Strict):
    """``data/phone_policy.yaml``: the rule for phone-implied regions, by the number's country."""

    default: PhoneRegionRule
    countries: dict[Annotated[str, Field(pattern=r"^[A-Z]{2}$")], PhoneRegionRule] = {}

    def for_country(self, country: str) -> PhoneRegionRule:
        """The rule for numbers of one country (ISO code), else the default."""
        return self.countries.get(country, self.default)


# --- compiled, hashable forms used by the engine -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleRef:
    """A rule as a decision cites it: which rulebook, which rule id, which source."""

    code: str
    rule_id: str
    citation: str
    verified: bool

    def cite(self) -> str:
        """``"US-MA: 940 CMR 7.04(1)(f)"``, marked ``[unverified]`` when the source is not confirmed."""
        return f"{self.code}: {self.citation}" + ("" if self.verified else " [unverified]")


def _ref(code: str, rule_id: str, cited: Cited) -> RuleRef:
    return RuleRef(code, rule_id, cited.citation, cited.verified)


@dataclass(frozen=True, slots=True)
class DayRule:
    """What one rulebook allows on one local date, and which rule says so."""

    span: Span | None
    ref: RuleRef | None
    holiday: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class WindowSet:
    """One rulebook's contact windows: hours per weekday (Sunday rule applied) and its holiday rule.

    Built once per rulebook and shared by every policy that includes it (compared by identity), so
    that window computations cached per combination of window sets serve many policies.
    """

    code: str
    weekdays: tuple[DayRule, ...]
    calendar: tuple[str, str | None, tuple[str, ...]] | None = None
    holiday_span: Span | None = None
    holiday_ref: RuleRef | None = None

    def day_rule(self, day: date) -> DayRule:
        """The hours this rulebook allows on a local date (a public holiday first, then the weekday)."""
        if self.calendar is not None:
            name = holiday_name(*self.calendar, day)
            if name is not None:
                return DayRule(self.holiday_span, self.holiday_ref, name)
        return self.weekdays[day.weekday()]


@dataclass(frozen=True, slots=True)
class Cap:
    """A frequency cap: at most ``limit`` contacts on ``channels`` in a rolling window or calendar month."""

    ref: RuleRef
    limit: int
    period: str
    period_us: int | None
    scope: Literal["borrower", "debt"]
    channels: frozenset[Channel]

    def describe(self) -> str:
        """``"2 per 7d, push+sms, per borrower"``."""
        chans = "+".join(sorted(c.value for c in self.channels))
        period = "calendar month" if self.period_us is None else self.period
        return f"{self.limit} per {period}, {chans}, per {self.scope}"


@dataclass(frozen=True, eq=False)
class Policy:
    """The merged, strictest policy for one loan: what every decision and every message must respect.

    Policies are memoised per ``Rulebooks`` and compared by identity, which keeps them cheap cache keys.
    """

    jurisdictions: tuple[str, ...]
    required_content: frozenset[str]
    max_sms_segments: int
    opt_out_keywords: frozenset[str]
    consent_required: frozenset[Channel]
    windows: tuple[WindowSet, ...]
    caps: tuple[Cap, ...]
    # False when no rulebook of the loan's own country applies: nothing to decide safely under.
    loan_country_covered: bool = True
    consent_rules: tuple[RuleRef, ...] = ()
    content_rules: tuple[RuleRef, ...] = ()
    opt_out_rules: tuple[RuleRef, ...] = ()
    segment_rules: tuple[RuleRef, ...] = ()
    engine_citations: tuple[RuleRef, ...] = ()
    # Decisions look citations up by rule id on every call: joined once, here.
    _citations: dict[str, str | None] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        by_rule: dict[str, list[RuleRef]] = {}
        for ref in self.engine_citations:
            by_rule.setdefault(ref.rule_id, []).append(ref)
        for rule_id, refs in by_rule.items():
            self._citations[rule_id] = _join(refs)

    def consent_citation(self, channel: Channel) -> str | None:
        """Why ``channel`` needs prior consent here (joined citations), or None."""
        return _join(r for r in self.consent_rules if r.rule_id == f"consent.{channel.value}")

    def citation(self, rule_id: str) -> str | None:
        """The citation(s) the applicable rulebooks give an engine rule id (law first, then lender)."""
        return self._citations.get(rule_id)


def _join(refs: Any) -> str | None:
    text = "; ".join(r.cite() for r in refs)
    return text or None


def holiday_name(country: str, subdiv: str | None, categories: tuple[str, ...], day: date) -> str | None:
    """The public holiday on ``day`` in that calendar, or None (``dunning.calendars``: the precomputed
    table in its years, the ``holidays`` package outside them)."""
    return holidays_in(country, subdiv, categories, day.year).get(day)


def _window_set(code: str, book: _RulebookBody) -> WindowSet | None:
    if book.window is None and book.sunday is None and book.holidays is None:
        return None
    days: list[DayRule] = []
    for name in WEEKDAYS:
        if name == "sun" and book.sunday is not None:
            days.append(DayRule(book.sunday.hours, _ref(code, "window.sunday", book.sunday)))
        elif book.window is not None:
            hours = book.window.by_day.get(name, book.window.hours)
            days.append(DayRule(hours, _ref(code, "window.quiet_hours", book.window)))
        else:
            days.append(DayRule(FULL_DAY, None))
    calendar = None
    holiday_span: Span | None = None
    holiday_ref = None
    if book.holidays is not None:
        cal = book.holidays.calendar
        calendar = (cal.country, cal.subdiv, cal.categories)
        holiday_span = book.holidays.hours
        holiday_ref = _ref(code, "window.holiday", book.holidays)
    return WindowSet(code, tuple(days), calendar, holiday_span, holiday_ref)


def _period_us(period: str) -> int | None:
    if period == "calendar_month":
        return None
    match = _PERIOD_RE.match(period)
    assert match is not None  # the schema pattern guarantees it
    return int(match.group(1)) * (_US_PER_HOUR if match.group(2) == "h" else 24 * _US_PER_HOUR)


def _caps(code: str, book: _RulebookBody) -> list[Cap]:
    return [
        Cap(_ref(code, c.id, c), c.limit, c.period, _period_us(c.period), c.scope, c.channels)
        for c in book.caps
    ]


@dataclass(frozen=True, slots=True)
class _Compiled:
    """What one rulebook (or the lender policy) adds to every policy it is merged into, built once."""

    caps: tuple[Cap, ...]
    content: tuple[RuleRef, ...]
    consent: tuple[RuleRef, ...]
    opt_out: RuleRef | None
    segments: RuleRef | None
    citations: tuple[RuleRef, ...]


def _compiled(code: str, book: _RulebookBody) -> _Compiled:
    keywords, segments = book.opt_out_keywords, book.max_sms_segments
    return _Compiled(
        caps=tuple(_caps(code, book)),
        content=tuple(_ref(code, f"content.{r.requires}", r) for r in book.content),
        consent=tuple(_ref(code, f"consent.{r.channel.value}", r) for r in book.consent),
        opt_out=_ref(code, "sms.opt_out_keywords", keywords) if keywords is not None else None,
        segments=_ref(code, "sms.max_segments", segments) if segments is not None else None,
        citations=tuple(_ref(code, rid, cited) for rid, cited in book.citations.items()),
    )


def _segments(code: str) -> list[str]:
    return code.split("-")


def _is_prefix(code: str, target: str | None) -> bool:
    if not target:
        return False
    head = _segments(code)
    return _segments(target)[: len(head)] == head


def address_code(borrower: Borrower) -> str | None:
    """The borrower's address as a jurisdiction-like code: ``"US-MA"``, ``"GB"``, or None."""
    address = borrower.address
    return None if address is None else _address_code(address.country, address.region)


@lru_cache(maxsize=4096)
def _address_code(country: str, region: str | None) -> str:
    region = (region or "").strip().upper()
    if region.startswith(country + "-"):
        region = region[len(country) + 1 :]
    return f"{country}-{region}" if region else country


class Rulebooks:
    """All jurisdiction rulebooks and the lender policy, validated; builds (and memoises) policies."""

    def __init__(
        self,
        rulebooks: Mapping[str, RulebookFile],
        lender: LenderPolicyFile,
        phone_policy: PhonePolicyFile | None = None,
    ) -> None:
        self._books = dict(sorted(rulebooks.items()))
        self.lender = lender
        self.phone_policy = phone_policy or validate_file(DEFAULT_PHONE_POLICY, PhonePolicyFile)
        self._policies: dict[tuple[str, str | None, tuple[str, ...]], Policy] = {}
        self._merged: dict[tuple[tuple[str, ...], bool], Policy] = {}
        self._window_sets = {
            code: _window_set(code, book) for code, book in [*self._books.items(), (LENDER, lender)]
        }
        self._parts = {code: _compiled(code, book) for code, book in [*self._books.items(), (LENDER, lender)]}
        self._heads = {code: _segments(code) for code in self._books}

    @property
    def codes(self) -> tuple[str, ...]:
        """Jurisdiction codes that have a rulebook, sorted."""
        return tuple(self._books)

    def rulebook(self, code: str) -> RulebookFile:
        """One rulebook by code (KeyError if there is none)."""
        return self._books[code]

    def has_rulebook(self, code: str) -> bool:
        """Whether a rulebook with exactly this code exists."""
        return code in self._books

    def applicable(
        self, jurisdiction: str, address: str | None, phone: tuple[str, ...] = ()
    ) -> tuple[str, ...]:
        """Codes of the rulebooks that apply, broadest first (lender policy not included)."""
        # A code applies when its segments begin a target's: look each beginning up, not every code.
        codes = set()
        for target in (jurisdiction, address, *phone):
            if target:
                parts = _segments(target)
                for n in range(1, len(parts) + 1):
                    code = "-".join(parts[:n])
                    if code in self._heads and self._heads[code] == parts[:n]:
                        codes.add(code)
        return tuple(sorted(codes, key=lambda c: (len(self._heads[c]), c)))

    def policy(self, jurisdiction: str, address: str | None, phone: tuple[str, ...] = ()) -> Policy:
        """The merged policy for a loan jurisdiction, an address code and the phone regions applied.

        Only the loan's jurisdiction and the address can make the loan's country covered: a phone
        number is a reason to believe, so it adds rules but never makes a loan decidable.
        """
        key = (jurisdiction, address, phone)
        found = self._policies.get(key)
        if found is None:
            # A policy is made of the rulebooks that apply and whether the loan's country is covered:
            # merged once for every jurisdiction, address and phone region that bring the same ones.
            codes = self.applicable(jurisdiction, address, phone)
            country = _segments(jurisdiction)[0]
            covered = any(_segments(c)[0] == country for c in self.applicable(jurisdiction, address))
            found = self._merged.get((codes, covered))
            if found is None:
                found = self._merged[(codes, covered)] = self._merge(codes, covered)
            self._policies[key] = found
        return found

    def _merge(self, codes: tuple[str, ...], covered: bool) -> Policy:
        books: list[tuple[str, _RulebookBody]] = [(c, self._books[c]) for c in codes]
        books.append((LENDER, self.lender))
        windows = tuple(w for code, _ in books if (w := self._window_sets[code]) is not None)
        parts = [self._parts[code] for code, _ in books]
        caps = tuple(cap for p in parts for cap in p.caps)
        content_rules = tuple(r for p in parts for r in p.content)
        consent_rules = tuple(r for p in parts for r in p.consent)
        keyword_books = [(c, b.opt_out_keywords) for c, b in books if b.opt_out_keywords is not None]
        segment_books = [(c, b.max_sms_segments) for c, b in books if b.max_sms_segments is not None]
        return Policy(
            jurisdictions=(*codes, LENDER),
            required_content=frozenset(r.requires for _, b in books for r in b.content),
            max_sms_segments=min(s.limit for _, s in segment_books),
            opt_out_keywords=frozenset(
                " ".join(k.upper().split()) for _, rule in keyword_books for k in rule.keywords
            ),
            consent_required=frozenset(r.channel for _, b in books for r in b.consent),
            windows=windows,
            caps=caps,
            loan_country_covered=covered,
            consent_rules=consent_rules,
            content_rules=content_rules,
            opt_out_rules=tuple(p.opt_out for p in parts if p.opt_out is not None),
            segment_rules=tuple(p.segments for p in parts if p.segments is not None),
            engine_citations=tuple(r for p in parts for r in p.citations),
        )


# --- loading ------------------------------------------------------------------------------------------


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(file)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def read_yaml(path: Path) -> Any:
    """Parse one YAML file, naming the file in any error."""
    try:
        return safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RulebookError(f"{path}: cannot read YAML: {exc}") from exc


def validate_file(path: Path, model: type[_M]) -> _M:
    """Validate one YAML file against a pydantic model; a clear ``RulebookError`` naming the file if not."""
    data = read_yaml(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RulebookError(f"{path}: {_describe(exc)}") from exc


def _load(directory: Path, lender_policy: Path, phone_policy: Path = DEFAULT_PHONE_POLICY) -> Rulebooks:
    files: Sequence[Path] = sorted(directory.glob("*.yaml"))
    if not files:
        raise RulebookError(f"{directory}: no rulebook files (*.yaml)")
    books: dict[str, RulebookFile] = {}
    for path in files:
        book = validate_file(path, RulebookFile)
        if book.code != path.stem:
            raise RulebookError(f"{path}: code {book.code!r} must match the file name ({path.stem}.yaml)")
        books[book.code] = book
    return Rulebooks(
        books, validate_file(lender_policy, LenderPolicyFile), validate_file(phone_policy, PhonePolicyFile)
    )


@cache
def _default_rulebooks() -> Rulebooks:
    return _load(DEFAULT_RULEBOOKS_DIR, DEFAULT_LENDER_POLICY)


def load_rulebooks(
    directory: Path | None = None, lender_policy: Path | None = None, phone_policy: Path | None = None
) -> Rulebooks:
    """Load and validate every rulebook, the lender policy and the phone-region policy; the packaged
    default is loaded once.

    Raises ``RulebookError`` (a ``ValueError``) naming the file and the field on any invalid file.
    """
    if directory is None and lender_policy is None and phone_policy is None:
        return _default_rulebooks()
    return _load(
        directory or DEFAULT_RULEBOOKS_DIR,
        lender_policy or DEFAULT_LENDER_POLICY,
        phone_policy or DEFAULT_PHONE_POLICY,
    )
