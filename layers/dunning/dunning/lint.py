"""Template lint: find at build time every message that would be refused, or should be, at send time.

Each locale x template x channel is checked twice. Statically, from the Jinja source: only documented
variables, no reach for Python internals, no amount or date on a push lock screen, no forbidden phrase
or debt word in the literal text (so a branch the samples do not take is still read). Dynamically, by
rendering it through ``render_message`` for every sample borrower under the required content of every
sample jurisdiction (``data/templates/lint.yaml``): whatever the renderer would refuse (missing
variable, sandbox violation, missing opt-out / sender / licence / 【签名】, too many SMS parts) becomes a
problem, and the rendered text is checked for forbidden phrases, lock-screen leaks and SMS encoding.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Annotated, Final

import yaml
from babel.numbers import list_currencies
from jinja2 import meta, nodes
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dunning.models import Borrower, Channel, Decision, DecisionKind, JurisdictionCode, Loan
from dunning.profile import CatalogError, LenderProfile, load_profile
from dunning.render import (
    DATA_DIR,
    LOCK_SCREEN_FIELDS,
    LOCK_SCREEN_VARIABLES,
    TEMPLATE_VARIABLES,
    RenderedMessage,
    RenderError,
    RequiredContent,
    TemplateCatalog,
    load_templates,
    render_message,
    sns_push_message,
)
from dunning.sms import gsm_transliterate, non_gsm_characters

DEFAULT_POLICY_PATH: Final = DATA_DIR / "templates" / "lint.yaml"

# RenderError.kind → lint rule.
_RULE_BY_KIND: Final = {
    "not_a_send": "template_error",
    "unknown_template": "missing_template",
    "undefined_variable": "undefined_variable",
    "sandbox": "sandbox_escape",
    "template_error": "template_error",
    "required_content": "required_content",
    "sms_segments": "sms_segments",
    "lock_screen": "push_lock_screen_amount",
    "push_payload": "push_payload",
}
_CURRENCY_CODES: Final = frozenset(list_currencies()) | {"RMB"}
_CODE_RE: Final = re.compile(r"\b[A-Z]{3}\b")

# add(rule, message) for one locale/template/channel.
_Add = Callable[[str, str], None]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LintProblem(_Frozen):
    """One finding: where (locale, template, channel), which rule, and what to fix."""

    locale: str
    template: str
    channel: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.locale}/{self.template}/{self.channel} [{self.rule}] {self.message}"


class Pattern(_Frozen):
    pattern: str
    reason: Annotated[str, Field(min_length=1)]

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
        return value

    def search(self, text: str) -> str | None:
        """The first match of the pattern in ``text`` (case-insensitive), if any."""
        match = re.search(self.pattern, text, re.IGNORECASE)
        return match.group(0) if match else None


class SampleJurisdiction(_Frozen):
    code: JurisdictionCode
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    required_content: frozenset[RequiredContent]
    # None: every locale of the catalog.
    locales: tuple[str, ...] | None = None


class SampleBorrower(_Frozen):
    label: Annotated[str, Field(min_length=1)]
    amount: Annotated[Decimal, Field(ge=0)]
    # Language ("en", "zh") → first name; "*" for any other language.
    first_names: dict[str, str]

    def first_name(self, locale: str) -> str:
        """The sample's first name for a template locale."""
        return self.first_names.get(locale.split("-")[0], self.first_names.get("*", ""))


class LintPolicy(_Frozen):
    """What the lint checks against: samples, limits and the phrase lists (``data/templates/lint.yaml``)."""

    required_locales: tuple[str, ...]
    template_steps: dict[str, tuple[str, ...]]
    max_sms_segments: Annotated[int, Field(ge=1, le=10)]
    sample_jurisdictions: tuple[SampleJurisdiction, ...]
    sample_due_date: date
    samples: tuple[SampleBorrower, ...]
    forbidden_phrases: tuple[Pattern, ...]
    lock_screen_words: tuple[Pattern, ...]


@cache
def _default_policy() -> LintPolicy:
    return _load_policy(DEFAULT_POLICY_PATH)


def _load_policy(path: Path) -> LintPolicy:
    try:
        with path.open(encoding="utf-8") as handle:
            return LintPolicy.model_validate(yaml.safe_load(handle))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise CatalogError(f"{path}: {exc}") from exc


def load_lint_policy(path: Path | None = None) -> LintPolicy:
    """Load and validate the lint policy; the packaged default is loaded once and cached."""
    return _default_policy() if path is None else _load_policy(path)


class _Findings:
    """Collects problems once each: the static and the rendered pass often see the same phrase."""

    def __init__(self) -> None:
        self.problems: dict[tuple[str, str, str, str, str], LintProblem] = {}

    def add(self, locale: str, template: str, channel: str, rule: str, message: str) -> None:
        key = (locale, template, channel, rule, message)
        self.problems.setdefault(key, LintProblem(**dict(zip(LintProblem.model_fields, key, strict=True))))


def lint_templates(
    catalog: TemplateCatalog | None = None,
    profile: LenderProfile | None = None,
    *,
    policy: LintPolicy | None = None,
) -> list[LintProblem]:
    """Lint every locale x template x channel; an empty list means every template is fit to send.

    Rules: ``missing_locale``, ``missing_template``, ``unknown_variable``, ``sandbox_escape``,
    ``undefined_variable``, ``template_error``, ``required_content``, ``cn_signature``,
    ``forbidden_phrase``, ``push_lock_screen_variable``, ``push_lock_screen_amount``,
    ``push_lock_screen_debt_word``, ``push_payload``, ``sms_segments``, ``sms_encoding``.
    """
    run = _Run(
        catalog=catalog if catalog is not None else load_templates(),
        profile=profile if profile is not None else load_profile(),
        policy=policy if policy is not None else load_lint_policy(),
        findings=_Findings(),
    )
    catalog, policy, findings = run.catalog, run.policy, run.findings
    for locale in policy.required_locales:
        if locale not in catalog.locales:
            findings.add(locale, "*", "*", "missing_locale", f"no templates for required locale {locale}")
    for locale in catalog.locales:
        for template_id in policy.template_steps:
            if template_id not in catalog.locale(locale).templates:
                findings.add(locale, template_id, "*", "missing_template", "no such template in this locale")

    for locale in catalog.locales:
        for template_id in catalog.template_ids:
            for channel in Channel:
                _lint_source(run, locale, template_id, channel)

    for jurisdiction in policy.sample_jurisdictions:
        for locale in jurisdiction.locales or catalog.locales:
            if locale not in catalog.locales:
                findings.add(locale, "*", "*", "missing_locale", f"sample {jurisdiction.code} needs {locale}")
                continue
            for sample in policy.samples:
                for template_id in catalog.template_ids:
                    for channel in Channel:
                        _lint_render(run, jurisdiction, sample, locale, template_id, channel)
    return list(findings.problems.values())


@dataclass(frozen=True)
class _Run:
    catalog: TemplateCatalog
    profile: LenderProfile
    policy: LintPolicy
    findings: _Findings


def _lint_source(run: _Run, locale: str, template_id: str, channel: Channel) -> None:
    add = _adder(run.findings, locale, template_id, channel)
    for field, source in run.catalog.locale(locale).sources(template_id, channel).items():
        tree = run.catalog.environment.parse(source)
        variables = meta.find_undeclared_variables(tree)
        for name in sorted(variables - set(TEMPLATE_VARIABLES)):
            add(
                "unknown_variable",
                f"{field}: {{{{ {name} }}}} is not a template variable (docs/templates.md)",
            )
        if channel == Channel.PUSH and field in LOCK_SCREEN_FIELDS:
            for name in sorted((variables & set(TEMPLATE_VARIABLES)) - LOCK_SCREEN_VARIABLES):
                add(
                    "push_lock_screen_variable", f"{field}: {{{{ {name} }}}} must not appear on a lock screen"
                )
        for attribute in _private_attributes(tree):
            add("sandbox_escape", f"{field}: reaches for {attribute!r}; templates get strings only")
        literal = "\n".join(_literal_text(tree))
        _check_text(run.policy, add, channel, field, literal)
        if channel == Channel.SMS and run.catalog.locale(locale).sms_transliterate:
            # Found in the source too: a sample render that is refused as too long never reaches the
            # rendered-encoding check, and the character is what makes it too long.
            forced = non_gsm_characters(gsm_transliterate(literal))
            if forced:
                add("sms_encoding", f"{field}: {forced} force UCS-2 (70 characters a part) in a GSM-7 locale")
        if "【" in literal or "】" in literal:
            add(
                "cn_signature", f"{field}: writes 【】 itself; the renderer prepends the registered signature"
            )


def _lint_render(
    run: _Run,
    jurisdiction: SampleJurisdiction,
    sample: SampleBorrower,
    locale: str,
    template_id: str,
    channel: Channel,
) -> None:
    add = _adder(run.findings, locale, template_id, channel)
    policy = run.policy
    steps = policy.template_steps.get(template_id) or ("D+0",)
    loan = Loan(
        loan_id="LINT-LOAN-1",
        borrower_id="LINT-BORROWER-1",
        currency=jurisdiction.currency,
        amount_due=sample.amount,
        due_date=policy.sample_due_date,
        jurisdiction=jurisdiction.code,
    )
    borrower = Borrower(borrower_id="LINT-BORROWER-1", first_name=sample.first_name(locale), locale=locale)
    decision = Decision(
        kind=DecisionKind.SEND,
        loan_id=loan.loan_id,
        borrower_id=borrower.borrower_id,
        at=datetime.combine(policy.sample_due_date, datetime.min.time(), tzinfo=UTC),
        rule_id="lint.sample",
        reason="template lint sample",
        channel=channel,
        step=steps[0],
        template=template_id,
    )
    context = f"[{jurisdiction.code}, {sample.label}]"
    try:
        message = render_message(
            decision,
            loan,
            borrower,
            required_content=frozenset(jurisdiction.required_content),
            max_sms_segments=policy.max_sms_segments,
            profile=run.profile,
            catalog=run.catalog,
            jurisdictions=(jurisdiction.code,),
        )
        if channel == Channel.PUSH:
            sns_push_message(message)
    except RenderError as exc:
        add(_RULE_BY_KIND[exc.kind], f"{context} {exc}")
        return
    for field, text in _rendered_fields(message):
        _check_text(policy, add, channel, field, text)
    if (
        channel == Channel.SMS
        and message.encoding == "UCS-2"
        and run.catalog.locale(message.locale).sms_transliterate
    ):
        add(
            "sms_encoding",
            f"{context} text: {non_gsm_characters(message.text or '')} force UCS-2 (70 characters a part) in "
            "a GSM-7 locale",
        )


def _adder(findings: _Findings, locale: str, template_id: str, channel: Channel) -> _Add:
    def add(rule: str, message: str) -> None:
        findings.add(locale, template_id, str(channel), rule, message)

    return add


def _rendered_fields(message: RenderedMessage) -> Iterator[tuple[str, str]]:
    if message.channel == Channel.SMS:
        yield "text", message.text or ""
    else:
        yield "title", message.title or ""
        yield "body", message.body or ""
        yield "detail", message.detail or ""


def _check_text(policy: LintPolicy, add: _Add, channel: Channel, field: str, text: str) -> None:
    for phrase in policy.forbidden_phrases:
        found = phrase.search(text)
        if found:
            add("forbidden_phrase", f"{field}: {found!r} ({phrase.reason})")
    if channel != Channel.PUSH or field not in LOCK_SCREEN_FIELDS:
        return
    for leak in lock_screen_amount_leaks(text):
        add("push_lock_screen_amount", f"{field}: shows {leak} on the lock screen")
    for word in policy.lock_screen_words:
        found = word.search(text)
        if found:
            add("push_lock_screen_debt_word", f"{field}: {found!r} on the lock screen ({word.reason})")


def lock_screen_amount_leaks(text: str) -> list[str]:
    """What in ``text`` could tell a bystander an amount: digits, currency symbols, currency codes."""
    leaks: list[str] = []
    if any(char.isdigit() for char in text):
        leaks.append("a number")
    symbols = sorted({char for char in text if _is_currency_symbol(char)})
    leaks.extend(f"currency symbol {symbol!r}" for symbol in symbols)
    codes = sorted({code for code in _CODE_RE.findall(text) if code in _CURRENCY_CODES})
    leaks.extend(f"currency code {code!r}" for code in codes)
    return leaks


def _is_currency_symbol(char: str) -> bool:
    return unicodedata.category(char) == "Sc"


def _private_attributes(tree: nodes.Template) -> list[str]:
    # The sandbox refuses these at render time too; lint names them even in a branch samples never take.
    found: list[str] = []
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            found.append(node.attr)
    for item in tree.find_all(nodes.Getitem):
        if isinstance(item, nodes.Getitem) and isinstance(item.arg, nodes.Const):
            key = item.arg.value
            if isinstance(key, str) and key.startswith("_"):
                found.append(key)
    return found


def _literal_text(tree: nodes.Template) -> Iterator[str]:
    for data in tree.find_all(nodes.TemplateData):
        if isinstance(data, nodes.TemplateData):
            yield data.data
    for const in tree.find_all(nodes.Const):
        if isinstance(const, nodes.Const) and isinstance(const.value, str):
            yield const.value


def main() -> int:
    """``python -m dunning.lint``: print every problem of the packaged templates; exit 1 if any."""
    problems = lint_templates()
    for problem in problems:
        print(problem)
    print(f"{len(problems)} template problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
