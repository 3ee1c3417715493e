"""Template lint: the shipped catalog is clean, and each kind of bad template is caught before sending."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dunning.lint import LintProblem, lint_templates, load_lint_policy, lock_screen_amount_leaks
from dunning.render import DEFAULT_TEMPLATES_DIR, CatalogError, TemplateCatalog, load_templates


def catalog_with(tmp_path: Path, edits: dict[tuple[str, str, str], str]) -> TemplateCatalog:
    """A copy of the shipped catalog in a temporary directory with some fields replaced.

    Keys are (locale, template, field) where field is "sms" or "title" / "body" / "detail" of the push.
    """
    for source in DEFAULT_TEMPLATES_DIR.glob("*.yaml"):
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
        for (locale, template, field), text in edits.items():
            if locale != data["locale"]:
                continue
            if field == "sms":
                data["templates"][template]["sms"] = text
            else:
                data["templates"][template]["push"][field] = text
        dumped = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1000)
        (tmp_path / source.name).write_text(dumped, encoding="utf-8")
    return load_templates(tmp_path)


def rules(problems: list[LintProblem], locale: str, template: str, channel: str) -> set[str]:
    return {p.rule for p in problems if (p.locale, p.template, p.channel) == (locale, template, channel)}


EN_SMS_NO_LICENCE = (
    "{{ lender_name }}: Hi {{ first_name }}, {{ amount }} was due {{ due_date }}. "
    "Pay at {{ pay_url }}. {{ opt_out }}"
)
EN_SMS = EN_SMS_NO_LICENCE + "{% if licence %} {{ licence }}.{% endif %}"
ZH_SMS = (
    "{{ first_name }}您好！您在{{ lender_name }}的借款{{ amount }}已到期。"
    "还款请访问 {{ pay_url }} 。{{ opt_out }}"
)


def test_shipped_templates_pass_lint() -> None:
    problems = lint_templates()
    assert problems == [], "\n".join(str(p) for p in problems)


def test_shipped_catalog_has_every_locale_template_and_channel() -> None:
    catalog = load_templates()
    assert {"en-US", "zh-CN"} <= set(catalog.locales)
    assert set(catalog.template_ids) == set(load_lint_policy().template_steps)


def test_an_unmodified_copy_is_clean(tmp_path: Path) -> None:
    assert lint_templates(catalog_with(tmp_path, {})) == []


def test_undefined_variable_fails_at_lint_not_at_send(tmp_path: Path) -> None:
    catalog = catalog_with(tmp_path, {("en-US", "overdue", "sms"): EN_SMS + " Balance: {{ outstanding }}"})
    problems = lint_templates(catalog)
    assert rules(problems, "en-US", "overdue", "sms") == {"unknown_variable", "undefined_variable"}
    assert any("outstanding" in p.message for p in problems)
    assert all(p.template == "overdue" for p in problems)


def test_undefined_variable_in_an_untaken_branch_is_still_caught(tmp_path: Path) -> None:
    source = EN_SMS + "{% if licence and first_name == 'nobody' %} {{ account_number }}{% endif %}"
    problems = lint_templates(catalog_with(tmp_path, {("en-US", "pre_due", "sms"): source}))
    assert rules(problems, "en-US", "pre_due", "sms") == {"unknown_variable"}


@pytest.mark.parametrize(
    "escape",
    ["{{ ''.__class__.__mro__ }}", "{{ cycler.__init__.__globals__ }}", "{{ amount['__class__'] }}"],
)
def test_sandbox_escape_fails_closed_and_is_reported(tmp_path: Path, escape: str) -> None:
    problems = lint_templates(catalog_with(tmp_path, {("en-US", "pre_due", "sms"): EN_SMS + " " + escape}))
    found = rules(problems, "en-US", "pre_due", "sms")
    assert found & {"sandbox_escape", "undefined_variable"}
    # It is never rendered: every sample render of that template failed.
    assert found <= {"sandbox_escape", "undefined_variable", "unknown_variable"}


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        ("Pay now or we will take legal action.", "'legal action'"),
        ("This is your FINAL WARNING.", "'FINAL WARNING'"),
        ("Police may be informed.", "'Police'"),
        ("We will contact your employer.", "'employer'"),
        ("You will be blacklisted.", "'blacklist'"),
    ],
)
def test_english_forbidden_phrases_are_caught(tmp_path: Path, phrase: str, expected: str) -> None:
    problems = lint_templates(
        catalog_with(tmp_path, {("en-US", "final_notice", "sms"): EN_SMS + " " + phrase})
    )
    messages = [p.message for p in problems if p.rule == "forbidden_phrase"]
    assert messages
    assert all(p.locale == "en-US" for p in problems)
    assert any(expected in message for message in messages)


def test_chinese_forbidden_phrases_are_caught(tmp_path: Path) -> None:
    source = "请立即还款，否则将列入黑名单并通知您的家人。" + ZH_SMS
    problems = lint_templates(catalog_with(tmp_path, {("zh-CN", "overdue", "sms"): source}))
    reasons = {p.message for p in problems if p.rule == "forbidden_phrase" and p.locale == "zh-CN"}
    assert any("立即" in m for m in reasons)
    assert any("黑名单" in m for m in reasons)
    assert any("家人" in m for m in reasons)


def test_spanish_forbidden_phrase_is_caught_even_after_folding(tmp_path: Path) -> None:
    source = EN_SMS + " Esta es su última oportunidad."
    problems = lint_templates(catalog_with(tmp_path, {("es-US", "final_notice", "sms"): source}))
    assert "forbidden_phrase" in rules(problems, "es-US", "final_notice", "sms")


def test_forbidden_phrase_in_a_branch_samples_never_take_is_caught(tmp_path: Path) -> None:
    source = EN_SMS + "{% if first_name == 'nobody' %} We will sue you.{% endif %}"
    problems = lint_templates(catalog_with(tmp_path, {("en-US", "overdue", "sms"): source}))
    assert rules(problems, "en-US", "overdue", "sms") == {"forbidden_phrase"}


def test_amount_on_the_push_lock_screen_is_flagged(tmp_path: Path) -> None:
    catalog = catalog_with(
        tmp_path, {("en-US", "overdue", "body"): "Hi {{ first_name }}, {{ amount }} is open."}
    )
    found = rules(lint_templates(catalog), "en-US", "overdue", "push")
    assert {"push_lock_screen_variable", "push_lock_screen_amount"} <= found


def test_literal_currency_on_the_push_lock_screen_is_flagged(tmp_path: Path) -> None:
    catalog = catalog_with(tmp_path, {("en-US", "pre_due", "title"): "Reminder: USD 50"})
    problems = [p for p in lint_templates(catalog) if p.rule == "push_lock_screen_amount"]
    assert problems
    assert all((p.locale, p.template, p.channel) == ("en-US", "pre_due", "push") for p in problems)


@pytest.mark.parametrize(
    ("locale", "field", "text"),
    [
        ("en-US", "body", "Hi {{ first_name }}, your payment is overdue."),
        ("en-US", "title", "{{ lender_short_name }} debt reminder"),
        ("zh-CN", "body", "{{ first_name }}您好，您的借款已逾期。"),
        ("es-US", "body", "Hola {{ first_name }}, su pago está vencido."),
    ],
)
def test_debt_word_on_the_push_lock_screen_is_flagged(
    tmp_path: Path, locale: str, field: str, text: str
) -> None:
    problems = lint_templates(catalog_with(tmp_path, {(locale, "due_reminder", field): text}))
    assert "push_lock_screen_debt_word" in rules(problems, locale, "due_reminder", "push")


def test_debt_words_in_the_push_detail_are_fine(tmp_path: Path) -> None:
    detail = (
        "Hi {{ first_name }}, your payment of {{ amount }} to {{ lender_name }} is overdue. "
        "{% if licence %}{{ licence }}. {% endif %}{{ opt_out }}"
    )
    assert lint_templates(catalog_with(tmp_path, {("en-US", "overdue", "detail"): detail})) == []


def test_sms_over_the_segment_limit_is_flagged(tmp_path: Path) -> None:
    padding = " Thank you for being our customer." * 12
    problems = lint_templates(catalog_with(tmp_path, {("en-US", "pre_due", "sms"): EN_SMS + padding}))
    over = [p for p in problems if p.rule == "sms_segments"]
    assert over
    assert "limit 1" in over[0].message


def test_emoji_in_a_gsm_locale_is_flagged(tmp_path: Path) -> None:
    problems = lint_templates(catalog_with(tmp_path, {("en-US", "pre_due", "sms"): EN_SMS + " 🙂"}))
    assert "sms_encoding" in rules(problems, "en-US", "pre_due", "sms")


def test_missing_opt_out_is_flagged_for_every_sample_jurisdiction(tmp_path: Path) -> None:
    source = "{{ lender_name }}: {{ amount }} was due {{ due_date }}. Pay at {{ pay_url }}."
    problems = lint_templates(catalog_with(tmp_path, {("en-US", "due_reminder", "sms"): source}))
    required = [p for p in problems if p.rule == "required_content"]
    assert {p.message.split("]")[0] for p in required} >= {"[US, typical", "[US-NY-NYC, typical"}
    assert all("opt_out" in p.message for p in required)


def test_missing_licence_is_flagged_only_where_a_licence_is_required(tmp_path: Path) -> None:
    problems = lint_templates(catalog_with(tmp_path, {("en-US", "pre_due", "sms"): EN_SMS_NO_LICENCE}))
    jurisdictions = {p.message.split(",")[0].lstrip("[") for p in problems if p.rule == "required_content"}
    assert jurisdictions == {"US-NY-NYC", "US-CA"}


def test_template_writing_its_own_signature_is_flagged(tmp_path: Path) -> None:
    problems = lint_templates(catalog_with(tmp_path, {("zh-CN", "pre_due", "sms"): "【示例金融】" + ZH_SMS}))
    assert {"cn_signature", "required_content"} <= rules(problems, "zh-CN", "pre_due", "sms")


def test_missing_required_locale_is_flagged(tmp_path: Path) -> None:
    (tmp_path / "en-US.yaml").write_text((DEFAULT_TEMPLATES_DIR / "en-US.yaml").read_text("utf-8"), "utf-8")
    problems = lint_templates(load_templates(tmp_path))
    assert {p.locale for p in problems if p.rule == "missing_locale"} == {"zh-CN"}


def test_policy_with_a_broken_pattern_fails_at_load(tmp_path: Path) -> None:
    data = yaml.safe_load((DEFAULT_TEMPLATES_DIR.parent / "lint.yaml").read_text(encoding="utf-8"))
    data["forbidden_phrases"].append({"pattern": "(unclosed", "reason": "typo"})
    path = tmp_path / "lint.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(CatalogError, match="unclosed"):
        load_lint_policy(path)


@pytest.mark.parametrize(
    ("text", "leaks"),
    [
        ("You have a new message", []),
        ("Pay $50", ["a number", "currency symbol '$'"]),
        ("¥ reminder", ["currency symbol '¥'"]),
        ("Balance in USD", ["currency code 'USD'"]),
        ("您有一条新消息", []),
        ("还款3000", ["a number"]),
    ],
)
def test_lock_screen_amount_leaks(text: str, leaks: list[str]) -> None:
    assert lock_screen_amount_leaks(text) == leaks
