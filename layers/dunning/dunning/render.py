"""Render a SEND decision into the exact SMS or push message that goes out, or refuse to.

Templates are data (``data/templates/locales/<locale>.yaml``), rendered in an immutable Jinja2 sandbox
with strict undefined variables and no globals: a template can only print the documented variables
(``TEMPLATE_VARIABLES``), already formatted for the borrower's locale with Babel. Rendering fails
closed: a missing variable, a sandbox violation, a required element missing from the output (opt-out
instruction, sender identity, licence number, 【签名】) or an SMS over the segment limit raises
``RenderError`` instead of producing a message that should not be sent. ``dunning.lint`` renders every
template with sample data before deployment so that none of this is first seen at send time.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from babel import Locale, UnknownLocaleError
from babel.core import get_global
from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dunning.models import Borrower, Channel, Decision, DecisionKind, Loan
from dunning.profile import CatalogError, LenderProfile, load_profile, read_yaml
from dunning.sms import GSM7, UCS2, SmsEncoding, gsm_transliterate, is_gsm7, sms_encoding, sms_segments

if TYPE_CHECKING:
    from dunning.rules import Policy

DATA_DIR: Final = Path(__file__).parent / "data"
DEFAULT_TEMPLATES_DIR: Final = DATA_DIR / "templates" / "locales"
DEFAULT_LOCALE: Final = "en-US"

RequiredContent = Literal["opt_out", "sender_identity", "licence_number", "cn_signature"]
REQUIRED_CONTENT: Final[frozenset[str]] = frozenset(
    {"opt_out", "sender_identity", "licence_number", "cn_signature"}
)

# The whole vocabulary of a template. Everything is a pre-formatted string, so a template never needs
# (and never gets) an object to call methods on.
TEMPLATE_VARIABLES: Final[Mapping[str, str]] = {
    "first_name": "borrower's first name, cleaned; may be empty (write {% if first_name %}…{% endif %})",
    "amount": "amount due, Babel format_currency in the loan currency and the borrower's locale",
    "due_date": "due date, Babel format_date in the borrower's locale (the locale file's date_format)",
    "lender_name": "lender's name (the profile's per-locale name when it has one)",
    "lender_short_name": "lender's short name (app or brand name)",
    "pay_url": "where to pay",
    "help_phone": "help line",
    "help_url": "help page",
    "licence": "licence number(s) the jurisdiction demands, '; '-joined; empty when none is required",
    "opt_out": "the locale's opt-out instruction for this channel (SMS: keyword reply; push: app settings)",
    "signature": "the registered 【签名】 the renderer prepends to this SMS (China), else empty",
}
# Push title and body show on a lock screen: only these may appear there, never the amount or the date.
LOCK_SCREEN_VARIABLES: Final[frozenset[str]] = frozenset({"first_name", "lender_name", "lender_short_name"})
PUSH_FIELDS: Final = ("title", "body", "detail")
LOCK_SCREEN_FIELDS: Final = ("title", "body")

# APNs and FCM both refuse payloads over 4 KB.
PUSH_PAYLOAD_LIMIT_BYTES: Final = 4096

_FIRST_NAME_MAX = 24
_SIGNATURE_RE = re.compile(r"^【[^【】]+】")
_HORIZONTAL_SPACE = re.compile(r"[ \t\u00a0\u2007\u2009\u202f]+")

RenderErrorKind = Literal[
    "not_a_send",
    "unknown_template",
    "undefined_variable",
    "sandbox",
    "template_error",
    "required_content",
    "sms_segments",
    "lock_screen",
    "push_payload",
]


class RenderError(Exception):
    """A message could not be rendered safely; nothing must be sent for it.

    ``kind`` says what went wrong (``undefined_variable``, ``sandbox``, ``required_content``,
    ``sms_segments``…); ``template``, ``locale``, ``channel``, ``field`` and ``variable`` say where.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: RenderErrorKind,
        template: str | None = None,
        locale: str | None = None,
        channel: str | None = None,
        field: str | None = None,
        variable: str | None = None,
    ) -> None:
        where = "/".join(part for part in (locale, template, channel, field) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.kind: RenderErrorKind = kind
        self.template = template
        self.locale = locale
        self.channel = channel
        self.field = field
        self.variable = variable

    @property
    def rule_id(self) -> str:
        """The ledger's rule id: ``render.too_long`` for an SMS no variant fits, else ``render.error``."""
        return "render.too_long" if self.kind == "sms_segments" else "render.error"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PushSource(_Frozen):
    title: Annotated[str, Field(min_length=1)]
    body: Annotated[str, Field(min_length=1)]
    detail: Annotated[str, Field(min_length=1)]


SmsSource = Annotated[str, Field(min_length=1)]


class TemplateSource(_Frozen):
    # One text, or variants from the richest to the leanest: the renderer sends the richest that fits
    # the segment budget for this borrower's values (docs/templates.md).
    sms: SmsSource | Annotated[tuple[SmsSource, ...], Field(min_length=1, max_length=8)]
    push: PushSource

    @property
    def sms_variants(self) -> tuple[str, ...]:
        """The SMS variants, richest first."""
        return (self.sms,) if isinstance(self.sms, str) else self.sms


class LocalePhrases(_Frozen):
    # Literal text the required-content check looks for; templates print it through {{ opt_out }}.
    opt_out_sms: Annotated[str, Field(min_length=1)]
    opt_out_push: Annotated[str, Field(min_length=1)]


def sms_variant_field(index: int) -> str:
    """The field name of an SMS variant: ``text`` for the richest, ``text.2``, ``text.3``… after it."""
    return "text" if index == 0 else f"text.{index + 1}"


class LocaleTemplates(_Frozen):
    """One locale file: its phrases, formatting choices and one template per id and channel."""

    locale: Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]
    # Latin-script locales: fold characters GSM-7 lacks (á → a, curly quotes) so the SMS stays GSM-7.
    sms_transliterate: bool = False
    date_format: Literal["short", "medium", "long", "full"] = "medium"
    phrases: LocalePhrases
    templates: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], TemplateSource]

    def sources(self, template: str, channel: Channel) -> dict[str, str]:
        """Field name → Jinja source for one template and channel (``text`` for SMS; title/body/detail)."""
        source = self.templates[template]
        if channel == Channel.SMS:
            return {sms_variant_field(i): text for i, text in enumerate(source.sms_variants)}
        return {"title": source.push.title, "body": source.push.body, "detail": source.push.detail}


@dataclass(frozen=True)
class LocaleChoice:
    """How a borrower's locale was served: which templates, which Babel locale, and whether it fell back."""

    requested: str
    template_locale: str
    format_locale: str
    # True when no template exists in the borrower's language and the default locale was used.
    fallback: bool


class _TemplateSandbox(ImmutableSandboxedEnvironment):
    # Templates print pre-formatted strings and do no arithmetic; refusing * and ** keeps a template
    # from building a gigabyte string ('x' * 10**9) inside the lint run or a sender Lambda.
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        raise SecurityError(f"operator {operator!r} is not allowed in templates")


def sandbox_environment() -> ImmutableSandboxedEnvironment:
    """The Jinja2 environment every template runs in: immutable sandbox, strict undefined, no globals.

    No globals means no ``range``, ``cycler``, ``joiner``, ``namespace`` or ``lipsum`` to reach Python
    objects through; with StrictUndefined an attribute the sandbox refuses raises ``SecurityError``
    instead of printing as an empty string; ``*`` and ``**`` are refused outright.
    """
    environment = _TemplateSandbox(
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    environment.globals.clear()
    return environment


class TemplateCatalog:
    """All locale files, compiled once; answers which templates serve a borrower's locale."""

    def __init__(self, locales: Mapping[str, LocaleTemplates], *, origin: str = "<memory>") -> None:
        if DEFAULT_LOCALE not in locales:
            raise CatalogError(f"{origin}: the default locale {DEFAULT_LOCALE} has no templates")
        self.origin = origin
        self.environment = sandbox_environment()
        self._locales = dict(locales)
        expected = set(self._locales[DEFAULT_LOCALE].templates)
        self._compiled: dict[tuple[str, str, Channel, str], Template] = {}
        for tag, locale in self._locales.items():
            if set(locale.templates) != expected:
                raise CatalogError(
                    f"{origin}: {tag} has templates {sorted(locale.templates)}, {DEFAULT_LOCALE} has "
                    f"{sorted(expected)}; every template must exist in every locale"
                )
            for template_id in locale.templates:
                for channel in Channel:
                    for field, source in locale.sources(template_id, channel).items():
                        try:
                            compiled = self.environment.from_string(source)
                        except TemplateSyntaxError as exc:
                            raise CatalogError(
                                f"{origin}: {tag}/{template_id}/{channel}/{field} line {exc.lineno}: "
                                f"{exc.message}"
                            ) from exc
                        self._compiled[(tag, template_id, channel, field)] = compiled

    @property
    def locales(self) -> tuple[str, ...]:
        """The locale tags that have templates, sorted."""
        return tuple(sorted(self._locales))

    @property
    def template_ids(self) -> tuple[str, ...]:
        """The template ids (the same in every locale), sorted."""
        return tuple(sorted(self._locales[DEFAULT_LOCALE].templates))

    def locale(self, tag: str) -> LocaleTemplates:
        """The parsed locale file for an exact tag."""
        return self._locales[tag]

    def compiled(self, locale: str, template: str, channel: Channel, field: str) -> Template:
        """The compiled template of one field."""
        return self._compiled[(locale, template, channel, field)]

    def resolve_locale(self, requested: str) -> LocaleChoice:
        """Pick the templates and the Babel locale for a borrower's locale tag; never fails.

        Exact tag first; then a template locale of the same language (the same region preferred, then
        the language's most likely region per CLDR, e.g. zh → zh-Hans-CN → zh-CN); then the default.
        Babel formats with the borrower's own locale when it shares the template's language (en-GB gets
        the en-US wording with "2 Mar 2026"), with the template locale otherwise.
        """
        tag = requested.replace("_", "-")
        by_lower = {existing.lower(): existing for existing in self._locales}
        parsed = _parse_locale(tag)
        language = (parsed.language if parsed else tag.split("-")[0]).lower()
        exact = by_lower.get(tag.lower())
        chosen = exact
        if chosen is None:
            same_language = sorted(t for t in self._locales if t.split("-")[0].lower() == language)
            regions = [r for r in (_region(parsed, tag), _likely_region(language)) if r]
            chosen = next(
                (t for region in regions for t in same_language if _region(_parse_locale(t), t) == region),
                same_language[0] if same_language else None,
            )
        fallback = chosen is None
        template_locale = chosen or DEFAULT_LOCALE
        if parsed is not None and not fallback and exact is None:
            format_locale = str(parsed).replace("_", "-")
        else:
            format_locale = template_locale
        return LocaleChoice(requested, template_locale, format_locale, fallback)


def _parse_locale(tag: str) -> Locale | None:
    # A tag Babel does not know in full (en-XX) still formats well by its language alone.
    for candidate in (tag, tag.split("-")[0]):
        try:
            return Locale.parse(candidate.replace("-", "_"))
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    return None


def _region(parsed: Locale | None, tag: str) -> str | None:
    if parsed is not None and parsed.territory:
        return str(parsed.territory)
    regions = [part.upper() for part in tag.split("-")[1:] if len(part) == 2 or part.isdigit()]
    return regions[-1] if regions else None


def _likely_region(language: str) -> str | None:
    likely = get_global("likely_subtags").get(language)
    if not likely:
        return None
    return _region(_parse_locale(likely), likely.replace("_", "-"))


def _load_templates(directory: Path) -> TemplateCatalog:
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise CatalogError(f"{directory}: no <locale>.yaml template files")
    locales: dict[str, LocaleTemplates] = {}
    for path in files:
        try:
            locale = LocaleTemplates.model_validate(read_yaml(path))
        except ValidationError as exc:
            raise CatalogError(f"{path}: {exc}") from exc
        if locale.locale != path.stem:
            raise CatalogError(f"{path}: declares locale {locale.locale!r}, the file name says {path.stem!r}")
        if _parse_locale(locale.locale) is None:
            raise CatalogError(f"{path}: Babel does not know locale {locale.locale!r}")
        locales[locale.locale] = locale
    return TemplateCatalog(locales, origin=str(directory))


@cache
def _default_templates() -> TemplateCatalog:
    return _load_templates(DEFAULT_TEMPLATES_DIR)


def load_templates(directory: Path | None = None) -> TemplateCatalog:
    """Load, validate and compile every ``<locale>.yaml`` in ``directory`` (default cached).

    Raises ``CatalogError`` for a file that does not validate, a template that does not compile, a
    locale that lacks a template another locale has, or a catalog without the default locale.
    """
    return _default_templates() if directory is None else _load_templates(directory)


class RenderedMessage(_Frozen):
    """A message ready to publish: SMS text with its cost, or push title/body (lock-screen safe) + detail."""

    channel: Channel
    locale: str
    requested_locale: str
    format_locale: str
    fallback: bool
    template: str
    step: str | None
    text: str | None = None
    encoding: SmsEncoding | None = None
    segments: int | None = None
    title: str | None = None
    body: str | None = None
    detail: str | None = None

    @model_validator(mode="after")
    def _fields_match_channel(self) -> RenderedMessage:
        sms = (self.text, self.encoding, self.segments)
        push = (self.title, self.body, self.detail)
        if self.channel == Channel.SMS and (None in sms or any(v is not None for v in push)):
            raise ValueError("an SMS carries text, encoding and segments only")
        if self.channel == Channel.PUSH and (None in push or any(v is not None for v in sms)):
            raise ValueError("a push carries title, body and detail only")
        return self


# Inside a name: letters and marks of any script, and the punctuation names use (O'Brien, Jean-Luc, J.).
_NAME_PUNCTUATION = frozenset("'’-.")
# A word that is a link, an address or a path is content, not a name: dropped whole.
_LINK_LIKE = re.compile(r"://|www\.|@|/|\\|[a-z0-9-]+\.[a-z]{2,}", re.IGNORECASE)


def first_name_for_message(name: str) -> str:
    """The borrower's first name as templates get it: data, never content.

    Control and format characters (line breaks, bidi overrides, zero-width characters) separate words;
    a word that looks like a link, an e-mail address or a path is dropped whole; what is left of each
    word is its letters, marks and name punctuation (no emoji, symbols or digits). The result is
    single-spaced and at most 24 characters: a longer name is shortened to its first word, or left out,
    rather than pushing an SMS over its segment limit; templates must read well with an empty name.
    """
    spaced = "".join(" " if unicodedata.category(char)[0] in "CZ" else char for char in name)
    words: list[str] = []
    for word in spaced.split():
        if _LINK_LIKE.search(word):
            continue
        kept = "".join(c for c in word if unicodedata.category(c)[0] in "LM" or c in _NAME_PUNCTUATION)
        if any(unicodedata.category(c)[0] == "L" for c in kept):
            words.append(kept)
    cleaned = " ".join(words)
    if len(cleaned) > _FIRST_NAME_MAX:
        cleaned = words[0]
    return cleaned if len(cleaned) <= _FIRST_NAME_MAX else ""


def format_amount(amount: Decimal, currency: str, locale: str, *, gsm_only: bool = False) -> str:
    """Money as the borrower reads it: ``$1,234.50`` (en-US), ``¥1,234.50`` / ``US$1,234.50`` (zh-CN).

    With ``gsm_only`` (Latin-script SMS), a currency symbol GSM-7 lacks (``₹``, ``CA$`` is fine) is
    written as its ISO code instead (``INR 1,234.50``): one such symbol would switch the whole message
    to UCS-2 and more than double its parts.
    """
    babel_locale = locale.replace("-", "_")
    text = format_currency(amount, currency, locale=babel_locale)
    if gsm_only and not all(is_gsm7(c) for c in text):
        text = format_currency(amount, currency, format="¤¤ #,##0.00", locale=babel_locale)
    return text


def format_due_date(value: date, locale: str, date_format: str = "medium") -> str:
    """A date as the borrower reads it: ``Mar 2, 2026`` (en-US), ``2026年3月2日`` (zh-CN)."""
    return format_date(value, format=date_format, locale=locale.replace("-", "_"))


def _tidy(text: str) -> str:
    # Templates are written across several YAML lines for review; the message is the words, single-spaced.
    lines = (_HORIZONTAL_SPACE.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _same(text: str) -> str:
    return text


def _lock_screen_leak(text: str) -> str | None:
    for char in text:
        if char.isdigit():
            return f"digit {char!r}"
        if unicodedata.category(char) == "Sc":
            return f"currency symbol {char!r}"
    return None


def render_under_policy(
    decision: Decision,
    loan: Loan,
    borrower: Borrower,
    policy: Policy,
    *,
    profile: LenderProfile | None = None,
) -> RenderedMessage:
    """Render a SEND decision under the loan's merged policy (``dunning.jurisdictions.policy_for``).

    The policy gives the required content, the SMS parts limit and the jurisdictions; raises
    ``RenderError`` as ``render_message`` does.
    """
    return render_message(
        decision,
        loan,
        borrower,
        required_content=policy.required_content,
        max_sms_segments=policy.max_sms_segments,
        profile=profile,
        jurisdictions=tuple(policy.jurisdictions),
    )


def render_message(
    decision: Decision,
    loan: Loan,
    borrower: Borrower,
    *,
    required_content: frozenset[str],
    max_sms_segments: int,
    profile: LenderProfile | None = None,
    catalog: TemplateCatalog | None = None,
    jurisdictions: tuple[str, ...] = (),
    segment_budget: int | None = None,
) -> RenderedMessage:
    """Render the message a SEND decision calls for, or raise ``RenderError``; never a partial message.

    A borrower is never left unreminded because of their name: when the message cannot be rendered with
    it (an emoji or a right-to-left name pushing an SMS over its parts), or when the name alone turns a
    GSM-7 SMS into UCS-2 (two to three times the parts), the message is rendered without it. See
    :func:`_render_message` for the rest.
    """
    options: dict[str, Any] = {
        "required_content": required_content,
        "max_sms_segments": max_sms_segments,
        "profile": profile,
        "catalog": catalog,
        "jurisdictions": jurisdictions,
        "segment_budget": segment_budget,
    }
    if not first_name_for_message(borrower.first_name):
        return _render_message(decision, loan, borrower, **options)
    nameless = borrower.model_copy(update={"first_name": ""})
    try:
        message = _render_message(decision, loan, borrower, **options)
    except RenderError as exc:
        if exc.kind not in _NAME_CAN_CAUSE:
            raise
        return _render_message(decision, loan, nameless, **options)
    # A second render is only worth it when every non-GSM character of the SMS could be the name's.
    name_chars = set(first_name_for_message(borrower.first_name))
    if message.encoding == UCS2 and {c for c in message.text or "" if not is_gsm7(c)} <= name_chars:
        without = _render_message(decision, loan, nameless, **options)
        if without.encoding == GSM7:
            return without
    return message


# What a name can break (everything else fails the same with or without it).
_NAME_CAN_CAUSE: Final = frozenset({"sms_segments", "lock_screen", "push_payload", "required_content"})


def _render_message(
    decision: Decision,
    loan: Loan,
    borrower: Borrower,
    *,
    required_content: frozenset[str],
    max_sms_segments: int,
    profile: LenderProfile | None = None,
    catalog: TemplateCatalog | None = None,
    jurisdictions: tuple[str, ...] = (),
    segment_budget: int | None = None,
) -> RenderedMessage:
    """Render with the borrower's (cleaned) name, or raise ``RenderError``; never a partial message.

    ``required_content`` is what the applicable rulebooks demand (``opt_out``, ``sender_identity``,
    ``licence_number``, ``cn_signature``); each is verified in the output, not assumed from the template.
    ``jurisdictions`` (with the loan's own jurisdiction and their parents) selects the licence numbers
    printed when ``licence_number`` is required. For China the registered 【签名】 is prepended by the
    renderer, so templates never write it.

    An SMS template may have variants (richest first): the first that fits the segment budget with this
    borrower's values is sent, each tried with the first name before without it, so the name goes before
    any meaning does. The budget is ``segment_budget`` or the lender's sending policy (one part; a UCS-2
    message with a licence line may take the policy's allowance), never above ``max_sms_segments``.
    When no variant fits, ``RenderError(kind="sms_segments")`` (rule ``render.too_long``): a message is
    never truncated, and a required disclosure is never dropped to make it fit.
    """
    if max_sms_segments < 1:
        raise ValueError("max_sms_segments must be at least 1")
    unknown = set(required_content) - REQUIRED_CONTENT
    if unknown:
        raise RenderError(f"unknown required content {sorted(unknown)}", kind="required_content")
    if decision.kind != DecisionKind.SEND or decision.channel is None or decision.template is None:
        raise RenderError(
            f"decision {decision.kind} for loan {decision.loan_id} is not a SEND with a channel and a "
            "template",
            kind="not_a_send",
        )
    profile = profile if profile is not None else load_profile()
    catalog = catalog if catalog is not None else load_templates()
    channel, template_id = decision.channel, decision.template
    choice = catalog.resolve_locale(borrower.locale)
    locale = catalog.locale(choice.template_locale)
    where = {"template": template_id, "locale": choice.template_locale, "channel": str(channel)}
    if template_id not in locale.templates:
        raise RenderError(f"no template {template_id!r}", kind="unknown_template", **where)

    lender = profile.resolved(choice.template_locale, loan.jurisdiction)
    licences = profile.licences_for((*jurisdictions, loan.jurisdiction))
    if "licence_number" in required_content and not licences:
        raise RenderError(
            f"a licence number is required but the lender profile has none for "
            f"{sorted({*jurisdictions, loan.jurisdiction})}",
            kind="required_content",
            **where,
        )
    context = {
        "first_name": first_name_for_message(borrower.first_name),
        "amount": format_amount(
            loan.amount_due,
            loan.currency,
            choice.format_locale,
            gsm_only=channel == Channel.SMS and locale.sms_transliterate,
        ),
        "due_date": format_due_date(loan.due_date, choice.format_locale, locale.date_format),
        "lender_name": lender.name,
        "lender_short_name": lender.short_name,
        "pay_url": lender.pay_url,
        "help_phone": lender.help_phone,
        "help_url": lender.help_url,
        "licence": "; ".join(licences) if "licence_number" in required_content else "",
        "opt_out": locale.phrases.opt_out_sms if channel == Channel.SMS else locale.phrases.opt_out_push,
        # Lets a one-segment text skip repeating the lender's name the signature already gives.
        "signature": (
            f"【{profile.cn_signature}】"
            if channel == Channel.SMS and "cn_signature" in required_content and profile.cn_signature
            else ""
        ),
    }
    common = {
        "channel": channel,
        "locale": choice.template_locale,
        "requested_locale": choice.requested,
        "format_locale": choice.format_locale,
        "fallback": choice.fallback,
        "template": template_id,
        "step": decision.step,
    }
    identity = [lender.name, lender.short_name, *([profile.cn_signature] if profile.cn_signature else [])]

    if channel == Channel.SMS:
        fold = gsm_transliterate if locale.sms_transliterate else _same
        names = [context["first_name"], ""] if context["first_name"] else [""]
        licence = "licence_number" in required_content
        tried: list[str] = []
        for field in locale.sources(template_id, channel):
            for name in names:
                values = {**context, "first_name": name}
                text = fold(
                    _render_field(catalog, choice.template_locale, template_id, channel, field, values)
                )
                if "cn_signature" in required_content:
                    text = _with_signature(text, profile, where)
                _check_required(text, required_content, values, identity, licences, where, fold)
                segments, encoding = sms_segments(text), sms_encoding(text)
                budget = (
                    segment_budget
                    if segment_budget is not None
                    else _sending_budget(ucs2=encoding == "UCS-2", licence=licence)
                )
                limit = min(max_sms_segments, budget)
                if segments <= limit:
                    return RenderedMessage(**common, text=text, encoding=encoding, segments=segments)
                tried.append(
                    f"{field}{'' if name else ' without the name'}: {segments} parts ({encoding}, "
                    f"{len(text)} characters), limit {limit}"
                )
        raise RenderError(
            f"no SMS variant fits the segment budget: {'; '.join(tried)}", kind="sms_segments", **where
        )

    fields = {
        field: _render_field(catalog, choice.template_locale, template_id, channel, field, context)
        for field in locale.sources(template_id, channel)
    }
    for field in LOCK_SCREEN_FIELDS:
        leak = _lock_screen_leak(fields[field])
        if leak:
            raise RenderError(
                f"lock-screen text shows a {leak}: amounts must stay in the detail",
                kind="lock_screen",
                field=field,
                **where,
            )
    visible = "\n".join(fields[f] for f in PUSH_FIELDS)
    _check_required(visible, required_content - {"cn_signature"}, context, identity, licences, where, _same)
    return RenderedMessage(**common, title=fields["title"], body=fields["body"], detail=fields["detail"])


def _sending_budget(*, ucs2: bool, licence: bool) -> int:
    # Imported here: the sending policy is only read when an SMS is rendered.
    from dunning.budget import load_sending_policy

    return load_sending_policy().sms_parts_budget(ucs2=ucs2, licence=licence)


def _render_field(
    catalog: TemplateCatalog,
    locale: str,
    template_id: str,
    channel: Channel,
    field: str,
    context: Mapping[str, str],
) -> str:
    where = {"template": template_id, "locale": locale, "channel": str(channel), "field": field}
    try:
        return _tidy(catalog.compiled(locale, template_id, channel, field).render(context))
    except SecurityError as exc:
        raise RenderError(f"sandbox refused: {exc}", kind="sandbox", **where) from exc
    except UndefinedError as exc:
        variable = _undefined_name(str(exc))
        raise RenderError(
            f"undefined variable {variable or ''}: {exc}".replace("  ", " "),
            kind="undefined_variable",
            variable=variable,
            **where,
        ) from exc
    except (TemplateError, TypeError, ValueError, AttributeError, LookupError, ArithmeticError) as exc:
        raise RenderError(
            f"template failed: {type(exc).__name__}: {exc}", kind="template_error", **where
        ) from exc


def _undefined_name(message: str) -> str | None:
    match = re.match(r"^'([^']+)' is undefined", message)
    return match.group(1) if match else None


def _with_signature(text: str, profile: LenderProfile, where: Mapping[str, str]) -> str:
    if not profile.cn_signature:
        raise RenderError(
            "a 【签名】 signature is required but the lender profile has no cn_signature",
            kind="required_content",
            **where,
        )
    if "【" in text or "】" in text:
        # Carriers reject a second bracketed signature; the renderer owns the only one.
        raise RenderError(
            "template writes 【】 itself; the renderer prepends the registered signature",
            kind="required_content",
            **where,
        )
    return f"【{profile.cn_signature}】{text}"


def _check_required(
    text: str,
    required: frozenset[str],
    context: Mapping[str, str],
    identity: list[str],
    licences: list[str],
    where: Mapping[str, str],
    fold: Callable[[str], str],
) -> None:
    # The needles go through the same folding as the text (an SMS spells "más" as "mas").
    missing: list[str] = []
    if "opt_out" in required and fold(context["opt_out"]) not in text:
        missing.append(f"opt_out ({context['opt_out']!r})")
    if "sender_identity" in required and not any(fold(name) in text for name in identity):
        missing.append(f"sender_identity (one of {identity})")
    if "licence_number" in required:
        missing.extend(f"licence_number ({licence!r})" for licence in licences if fold(licence) not in text)
    if "cn_signature" in required and not _SIGNATURE_RE.match(text):
        missing.append("cn_signature (【…】 at the very start)")
    if missing:
        raise RenderError(f"required content missing: {', '.join(missing)}", kind="required_content", **where)


def sns_push_message(message: RenderedMessage) -> str:
    """The ``Message`` for SNS Publish with ``MessageStructure="json"`` to a platform endpoint.

    Only the lock-screen-safe title and body go into what the OS displays (``aps.alert``, FCM
    ``notification``; Android visibility PRIVATE as well); the full detail travels in custom data for the
    app's in-app view. ``default`` is the safe body, for any platform without its own key.
    """
    if message.channel != Channel.PUSH or message.title is None or message.body is None:
        raise ValueError("sns_push_message needs a rendered push message")
    custom = {
        "template": message.template,
        "step": message.step or "",
        "locale": message.locale,
        "detail": message.detail or "",
    }
    apns = {
        "aps": {"alert": {"title": message.title, "body": message.body}, "sound": "default"},
        "dunning": custom,
    }
    gcm = {
        "fcmV1Message": {
            "message": {
                "notification": {"title": message.title, "body": message.body},
                "data": custom,
                "android": {"notification": {"visibility": "PRIVATE"}},
            }
        }
    }
    apns_json = json.dumps(apns, ensure_ascii=False, separators=(",", ":"))
    gcm_json = json.dumps(gcm, ensure_ascii=False, separators=(",", ":"))
    for platform, payload in (("APNS", apns_json), ("GCM", gcm_json)):
        size = len(payload.encode("utf-8"))
        if size > PUSH_PAYLOAD_LIMIT_BYTES:
            raise RenderError(
                f"{platform} payload is {size} bytes, limit {PUSH_PAYLOAD_LIMIT_BYTES}",
                kind="push_payload",
                template=message.template,
                locale=message.locale,
                channel=str(message.channel),
            )
    return json.dumps(
        {"default": message.body, "APNS": apns_json, "APNS_SANDBOX": apns_json, "GCM": gcm_json},
        ensure_ascii=False,
    )
