"""Rendering reminders: locale formatting and fallback, required content, failing closed, SNS push JSON."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dunning import profile
from dunning.models import Borrower, Channel, Decision, DecisionKind, Loan
from dunning.render import (
    DEFAULT_TEMPLATES_DIR,
    CatalogError,
    LenderProfile,
    LocaleTemplates,
    RenderedMessage,
    RenderError,
    TemplateCatalog,
    first_name_for_message,
    format_amount,
    format_due_date,
    load_profile,
    load_templates,
    render_message,
    sns_push_message,
)

US_REQUIRED = frozenset({"opt_out", "sender_identity"})
NYC_REQUIRED = frozenset({"opt_out", "sender_identity", "licence_number"})
CN_REQUIRED = frozenset({"opt_out", "sender_identity", "cn_signature"})
TEMPLATES = ("pre_due", "due_reminder", "overdue", "final_notice")
STEP_OF = {"pre_due": "D-3", "due_reminder": "D+1", "overdue": "D+7", "final_notice": "D+30"}
CN_SIGNATURE = re.compile(r"^【[\u4e00-\u9fff]{2,}】")


def send(template: str = "pre_due", channel: Channel = Channel.SMS) -> Decision:
    return Decision(
        kind=DecisionKind.SEND,
        loan_id="L-100",
        borrower_id="B-100",
        at=datetime(2026, 2, 27, 15, 0, tzinfo=UTC),
        rule_id="cadence.step",
        reason="step due",
        channel=channel,
        step=STEP_OF.get(template, "D+1"),
        template=template,
    )


def loan(currency: str = "USD", amount: str = "1234.50", jurisdiction: str = "US-NY") -> Loan:
    return Loan(
        loan_id="L-100",
        borrower_id="B-100",
        currency=currency,
        amount_due=Decimal(amount),
        due_date=date(2026, 3, 2),
        jurisdiction=jurisdiction,
    )


def borrower(locale: str = "en-US", first_name: str = "Alex") -> Borrower:
    return Borrower(borrower_id="B-100", first_name=first_name, locale=locale, phone="+12125550142")


def render(
    template: str = "pre_due",
    channel: Channel = Channel.SMS,
    *,
    the_loan: Loan | None = None,
    the_borrower: Borrower | None = None,
    required: frozenset[str] = US_REQUIRED,
    max_segments: int = 3,
    **kwargs: Any,
) -> RenderedMessage:
    return render_message(
        send(template, channel),
        the_loan or loan(),
        the_borrower or borrower(),
        required_content=required,
        max_sms_segments=max_segments,
        # These examples are about the richest variant; the one-segment budget has its own tests.
        **{"segment_budget": max_segments, **kwargs},
    )


def en_us_with(template: str, channel: str, source: str | dict[str, str]) -> TemplateCatalog:
    """The shipped en-US templates with one template replaced: a catalog for one scenario."""
    data = yaml.safe_load((DEFAULT_TEMPLATES_DIR / "en-US.yaml").read_text(encoding="utf-8"))
    if channel == "sms":
        data["templates"][template]["sms"] = source
    else:
        data["templates"][template]["push"].update(source)
    return TemplateCatalog({"en-US": LocaleTemplates.model_validate(data)})


# --- formatting -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        ("1234.50", "USD", "en-US", "$1,234.50"),
        ("1234.5", "CNY", "zh-CN", "¥1,234.50"),
        ("1234.50", "USD", "zh-CN", "US$1,234.50"),
        ("1234.50", "USD", "en-GB", "US$1,234.50"),
        ("1234.50", "USD", "es-US", "$1,234.50"),
        ("1234", "JPY", "en-US", "¥1,234"),
    ],
)
def test_money_is_formatted_for_the_locale_and_the_loan_currency(
    amount: str, currency: str, locale: str, expected: str
) -> None:
    assert format_amount(Decimal(amount), currency, locale) == expected


@pytest.mark.parametrize(
    ("locale", "expected"),
    [("en-US", "Mar 2, 2026"), ("zh-CN", "2026年3月2日"), ("en-GB", "2 Mar 2026"), ("es-US", "2 mar 2026")],
)
def test_dates_are_formatted_for_the_locale(locale: str, expected: str) -> None:
    assert format_due_date(date(2026, 3, 2), locale) == expected


def test_en_us_sms_carries_amount_date_name_lender_and_opt_out() -> None:
    message = render("pre_due")
    assert message.channel == Channel.SMS
    assert message.text is not None
    assert message.text.startswith("Example Lending Co.: Hi Alex,")
    for part in ("$1,234.50", "Mar 2, 2026", "https://example.com/pay", "(212) 555-0142"):
        assert part in message.text
    assert message.text.endswith("Reply STOP to opt out.")
    assert message.encoding == "GSM-7"
    assert message.segments == 2
    assert (message.locale, message.fallback, message.step) == ("en-US", False, "D-3")


def test_zh_cn_sms_in_china_starts_with_the_registered_signature() -> None:
    message = render(
        "overdue",
        the_loan=loan("CNY", jurisdiction="CN"),
        the_borrower=borrower("zh-CN", "小明"),
        required=CN_REQUIRED,
    )
    assert message.text is not None
    assert message.text.startswith("【示例金融】小明，您好！")
    assert CN_SIGNATURE.match(message.text)
    assert message.text.count("【") == 1
    assert "¥1,234.50" in message.text
    assert "2026年3月2日" in message.text
    assert message.text.endswith("回复TD退订")
    assert "+86 131 2345 6789" in message.text  # the CN help line for a loan in China
    assert message.encoding == "UCS-2"
    assert message.segments is not None
    assert message.segments <= 3


def test_zh_cn_borrower_of_a_us_loan_gets_us_dollars_the_us_help_line_and_no_signature() -> None:
    message = render("pre_due", the_borrower=borrower("zh-CN", "小明"))
    assert message.text is not None
    assert "US$1,234.50" in message.text
    assert "(212) 555-0142" in message.text
    assert not message.text.startswith("【")


def test_spanish_sms_is_folded_to_gsm7_while_push_detail_keeps_accents() -> None:
    sms = render("due_reminder", the_borrower=borrower("es-US", "Sofía"))
    push = render("due_reminder", Channel.PUSH, the_borrower=borrower("es-US", "Sofía"))
    assert sms.text is not None
    assert push.detail is not None
    assert sms.encoding == "GSM-7"
    assert "Hola Sofia," in sms.text
    assert "Responda STOP para no recibir mas mensajes." in sms.text
    assert "Sofía" in push.detail
    assert "préstamo" in push.detail


@pytest.mark.parametrize("locale", ["en-US", "zh-CN", "es-US"])
@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("channel", list(Channel))
def test_every_locale_template_and_channel_renders(locale: str, template: str, channel: Channel) -> None:
    cn = locale == "zh-CN"
    message = render(
        template,
        channel,
        the_loan=loan("CNY" if cn else "USD", jurisdiction="CN" if cn else "US-NY-NYC"),
        the_borrower=borrower(locale, "小明" if cn else "Alex"),
        required=CN_REQUIRED if cn else NYC_REQUIRED,
    )
    assert message.locale == locale
    assert message.template == template
    if channel == Channel.SMS:
        assert message.segments is not None
        assert 1 <= message.segments <= 3
    else:
        assert message.title
        assert message.body
        assert message.detail
        assert not re.search(r"\d", message.title + message.body)
        assert "1,234.50" in message.detail


# --- locale resolution ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "template_locale", "format_locale", "fallback"),
    [
        ("en-US", "en-US", "en-US", False),
        ("zh-Hans-CN", "zh-CN", "zh-Hans-CN", False),
        ("zh", "zh-CN", "zh", False),
        ("en-GB", "en-US", "en-GB", False),
        ("es-MX", "es-US", "es-MX", False),
        ("fr-FR", "en-US", "en-US", True),
        ("xx", "en-US", "en-US", True),
        ("en-XX", "en-US", "en", False),
    ],
)
def test_locale_resolution(requested: str, template_locale: str, format_locale: str, fallback: bool) -> None:
    choice = load_templates().resolve_locale(requested)
    assert (choice.template_locale, choice.format_locale, choice.fallback) == (
        template_locale,
        format_locale,
        fallback,
    )


def test_unknown_locale_falls_back_to_en_us_and_records_it() -> None:
    message = render("due_reminder", the_borrower=borrower("fr-FR", "Zoé"))
    assert message.locale == "en-US"
    assert message.requested_locale == "fr-FR"
    assert message.fallback is True
    assert message.text is not None
    assert "$1,234.50" in message.text
    assert "Mar 2, 2026" in message.text


def test_en_gb_reads_the_en_us_wording_with_british_formats() -> None:
    message = render("pre_due", the_borrower=borrower("en-GB"))
    assert message.text is not None
    assert "US$1,234.50" in message.text
    assert "2 Mar 2026" in message.text
    assert message.fallback is False


# --- names ------------------------------------------------------------------------------------------


def test_first_name_is_cleaned_and_kept_short() -> None:
    assert first_name_for_message("  Alex\u0007 ") == "Alex"
    assert first_name_for_message("Maria  Guadalupe") == "Maria Guadalupe"
    assert first_name_for_message("Maximiliana Josephine Alexandra") == "Maximiliana"
    assert first_name_for_message("X" * 30) == ""


def test_accented_name_does_not_switch_an_english_sms_to_ucs2() -> None:
    message = render(the_borrower=borrower(first_name="Zoë"))
    assert message.encoding == "GSM-7"
    assert message.text is not None
    assert "Hi Zoe," in message.text


def test_rupee_sign_does_not_switch_an_english_sms_to_ucs2() -> None:
    message = render(the_loan=loan(currency="INR", amount="12345.50", jurisdiction="IN"))
    assert message.encoding == "GSM-7"
    assert message.text is not None
    assert "INR 12,345.50" in message.text
    detail = render(
        "pre_due", Channel.PUSH, the_loan=loan(currency="INR", amount="12345.50", jurisdiction="IN")
    )
    assert detail.detail is not None
    assert "₹12,345.50" in detail.detail


def test_no_first_name_still_reads_well() -> None:
    message = render(the_borrower=borrower(first_name=""))
    assert message.text is not None
    assert "Hi, a reminder" in message.text


# --- names are data, never content -----------------------------------------------------------------

_BIDI_CONTROLS = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Ada\nhttps://evil.example/pay", "Ada"),
        ("Ada www.evil.example", "Ada"),
        ("Ada pay@evil.example", "Ada"),
        ("Ana 😀🎉", "Ana"),
        ("\u202eAna\u202c", "Ana"),
        ("Jean-Luc", "Jean-Luc"),
        ("O'Brien", "O'Brien"),
        ("محمد", "محمد"),
        ("王小明", "王小明"),
        ("😀🎉", ""),
        ("call 2125550142", "call"),
    ],
)
def test_a_name_keeps_its_letters_and_loses_links_controls_and_symbols(name: str, expected: str) -> None:
    assert first_name_for_message(name) == expected


def test_a_name_with_a_line_break_and_a_link_reaches_the_sms_as_the_name_only() -> None:
    message = render(the_borrower=borrower(first_name="Ada\nVisit https://evil.example/pay now"))
    assert message.text is not None
    assert "Hi Ada Visit now," in message.text
    assert "evil.example" not in message.text
    assert message.text.count("\n") == render(the_borrower=borrower(first_name="Ada")).text.count("\n")


@pytest.mark.parametrize("template", TEMPLATES)
def test_an_emoji_name_renders_with_its_letters_in_gsm7(template: str) -> None:
    message = render(template, the_borrower=borrower(first_name="Ana 😀🎉"))
    assert message.encoding == "GSM-7"
    assert message.text is not None
    assert "Ana" in message.text


@pytest.mark.parametrize("template", TEMPLATES)
def test_a_right_to_left_name_is_left_out_rather_than_turning_an_english_sms_into_ucs2(template: str) -> None:
    message = render(template, the_borrower=borrower(first_name="محمد"))
    assert message.encoding == "GSM-7"
    assert message.text is not None
    assert "محمد" not in message.text


def test_a_name_stays_in_a_message_that_is_ucs2_anyway() -> None:
    message = render(
        the_loan=loan(currency="CNY", jurisdiction="CN"),
        the_borrower=borrower(locale="zh-CN", first_name="王小明"),
        required=CN_REQUIRED,
    )
    assert message.text is not None
    assert "王小明" in message.text


@settings(max_examples=150, deadline=None)
@given(
    name=st.text(max_size=64),
    locale=st.sampled_from(["en-US", "es-US", "zh-CN"]),
    template=st.sampled_from(TEMPLATES),
)
def test_any_name_renders_whenever_the_message_renders_without_a_name(
    name: str, locale: str, template: str
) -> None:
    chinese = locale == "zh-CN"
    options: dict[str, Any] = {
        "the_loan": loan(currency="CNY", jurisdiction="CN") if chinese else loan(),
        "required": CN_REQUIRED if chinese else US_REQUIRED,
    }
    nameless = render(template, the_borrower=borrower(locale, ""), **options)
    message = render(template, the_borrower=borrower(locale, name), **options)
    assert message.text is not None
    assert nameless.text is not None
    assert message.text.count("\n") == nameless.text.count("\n")
    assert not _BIDI_CONTROLS & set(message.text)
    assert message.text.count("://") == nameless.text.count("://")
    assert message.segments is not None
    assert nameless.segments is not None


# --- required content -------------------------------------------------------------------------------


def test_licence_number_is_printed_where_required() -> None:
    message = render("overdue", the_loan=loan(jurisdiction="US-NY-NYC"), required=NYC_REQUIRED)
    assert message.text is not None
    assert "NYC DCWP Lic. 0000000-DCA." in message.text
    assert "Lic." not in (render("overdue").text or "")


def test_licence_number_required_but_missing_from_the_profile_fails_closed() -> None:
    with pytest.raises(RenderError) as caught:
        render(the_loan=loan(jurisdiction="US-WA"), required=NYC_REQUIRED)
    assert caught.value.kind == "required_content"
    assert "licence" in str(caught.value)


def test_template_without_opt_out_fails_closed() -> None:
    catalog = en_us_with("pre_due", "sms", "{{ lender_name }}: {{ amount }} due {{ due_date }}.")
    with pytest.raises(RenderError) as caught:
        render(catalog=catalog)
    assert caught.value.kind == "required_content"
    assert "opt_out" in str(caught.value)
    assert "en-US/pre_due/sms" in str(caught.value)


def test_cn_signature_required_but_profile_has_none_fails_closed() -> None:
    profile = load_profile().model_copy(update={"cn_signature": None})
    with pytest.raises(RenderError, match="cn_signature"):
        render(the_borrower=borrower("zh-CN"), required=CN_REQUIRED, profile=profile)


def test_template_writing_its_own_brackets_cannot_double_the_signature() -> None:
    catalog = en_us_with("pre_due", "sms", "【示例金融】{{ lender_name }} {{ amount }} {{ opt_out }}")
    with pytest.raises(RenderError, match="【】"):
        render(catalog=catalog, required=CN_REQUIRED)


@pytest.mark.parametrize("bad", ["示", "Example", "【示例金融】", "示例金融示例金融示例金融示例"])
def test_cn_signature_shape_is_validated(bad: str) -> None:
    data = load_profile().model_dump()
    data["cn_signature"] = bad
    with pytest.raises(ValueError):
        LenderProfile.model_validate(data)


def test_unknown_required_content_is_refused() -> None:
    with pytest.raises(RenderError):
        render(required=frozenset({"opt_out", "mini_miranda"}))


# --- fail closed ------------------------------------------------------------------------------------


def test_sms_over_the_segment_limit_is_refused() -> None:
    long_text = "{{ lender_name }}: your payment of {{ amount }} is overdue. " * 4 + "{{ opt_out }}"
    with pytest.raises(RenderError) as caught:
        render("overdue", max_segments=1, catalog=en_us_with("overdue", "sms", long_text))
    assert caught.value.kind == "sms_segments"
    assert caught.value.rule_id == "render.too_long"
    assert "2 parts" in str(caught.value)


def test_missing_variable_names_template_locale_and_variable() -> None:
    catalog = en_us_with("overdue", "sms", "{{ lender_name }}: pay {{ balance }}. {{ opt_out }}")
    with pytest.raises(RenderError) as caught:
        render("overdue", catalog=catalog)
    error = caught.value
    assert (error.kind, error.variable, error.template, error.locale) == (
        "undefined_variable",
        "balance",
        "overdue",
        "en-US",
    )
    assert "balance" in str(error)
    assert "en-US/overdue/sms" in str(error)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ amount.__class__.__base__.__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ amount['__class__'] }}",
        "{{ amount|attr('__class__') }}",
        "{{ ''.format.__self__ }}",
        "{{ 'x' * 1000000000 }}",
        "{{ 9 ** 9 ** 9 }}",
    ],
)
def test_sandbox_escape_fails_closed(source: str) -> None:
    catalog = en_us_with("pre_due", "sms", source + " {{ lender_name }} {{ opt_out }}")
    with pytest.raises(RenderError) as caught:
        render(catalog=catalog)
    assert caught.value.kind in {"sandbox", "undefined_variable"}


def test_non_send_decision_is_refused() -> None:
    defer = send().model_copy(update={"kind": DecisionKind.DEFER, "channel": None, "template": None})
    with pytest.raises(RenderError) as caught:
        render_message(defer, loan(), borrower(), required_content=US_REQUIRED, max_sms_segments=3)
    assert caught.value.kind == "not_a_send"


def test_unknown_template_id_is_refused() -> None:
    with pytest.raises(RenderError) as caught:
        render("courtesy_call")
    assert caught.value.kind == "unknown_template"


def test_amount_on_the_lock_screen_is_refused_at_render_time() -> None:
    catalog = en_us_with("pre_due", "push", {"body": "You owe {{ amount }}"})
    with pytest.raises(RenderError) as caught:
        render("pre_due", Channel.PUSH, catalog=catalog)
    assert caught.value.kind == "lock_screen"
    assert caught.value.field == "body"


def test_catalog_rejects_a_syntax_error_at_load(tmp_path: Any) -> None:
    text = (DEFAULT_TEMPLATES_DIR / "en-US.yaml").read_text(encoding="utf-8")
    (tmp_path / "en-US.yaml").write_text(text.replace("{{ opt_out }}", "{{ opt_out }", 1), encoding="utf-8")
    with pytest.raises(CatalogError, match="en-US/pre_due/sms"):
        load_templates(tmp_path)


def test_catalog_rejects_a_locale_missing_a_template(tmp_path: Any) -> None:
    for name in ("en-US.yaml", "zh-CN.yaml"):
        (tmp_path / name).write_text((DEFAULT_TEMPLATES_DIR / name).read_text(encoding="utf-8"), "utf-8")
    data = yaml.safe_load((tmp_path / "zh-CN.yaml").read_text(encoding="utf-8"))
    del data["templates"]["final_notice"]
    (tmp_path / "zh-CN.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(CatalogError, match="every template must exist in every locale"):
        load_templates(tmp_path)


# --- push -------------------------------------------------------------------------------------------


def test_push_lock_screen_is_generic_and_the_detail_is_complete() -> None:
    message = render("overdue", Channel.PUSH)
    assert message.title == "ExampleLend"
    assert message.body == "Hi Alex, you have a new message. Open the app to read it."
    assert message.detail is not None
    assert "$1,234.50" in message.detail
    assert "Mar 2, 2026" in message.detail
    assert "turn them off in the app settings" in message.detail
    assert message.text is None
    assert message.segments is None


def test_sns_push_message_is_json_with_safe_text_only_in_visible_fields() -> None:
    message = render("final_notice", Channel.PUSH, the_borrower=borrower("zh-CN", "小明"))
    payload = json.loads(sns_push_message(message))
    assert set(payload) == {"default", "APNS", "APNS_SANDBOX", "GCM"}
    assert payload["default"] == message.body
    assert isinstance(payload["APNS"], str)
    assert isinstance(payload["GCM"], str)

    apns = json.loads(payload["APNS"])
    assert apns["aps"]["alert"] == {"title": message.title, "body": message.body}
    assert apns["dunning"]["detail"] == message.detail
    assert json.loads(payload["APNS_SANDBOX"]) == apns

    fcm = json.loads(payload["GCM"])["fcmV1Message"]["message"]
    assert fcm["notification"] == {"title": message.title, "body": message.body}
    assert fcm["android"]["notification"]["visibility"] == "PRIVATE"
    assert fcm["data"]["detail"] == message.detail
    assert all(isinstance(value, str) for value in fcm["data"].values())

    visible = json.dumps([apns["aps"], fcm["notification"], payload["default"]], ensure_ascii=False)
    assert "1,234.50" not in visible
    assert "2026" not in visible
    assert "借款" not in visible


def test_sns_push_message_refuses_an_sms() -> None:
    with pytest.raises(ValueError):
        sns_push_message(render())


def test_the_renderer_reads_the_lender_profile_of_dunning_profile() -> None:
    assert load_profile() is profile.load_profile()
    assert LenderProfile is profile.LenderProfile
    assert CatalogError is profile.CatalogError


_CONTACT_ONLY = """
import sys
from dunning.inbound import lender_contact
import dunning.reconcile
print(lender_contact().name)
print(sorted(name for name in ("jinja2", "babel", "dunning.render") if name in sys.modules))
"""


def test_the_lender_contact_of_replies_and_confirmations_loads_no_jinja2_or_babel() -> None:
    # The inbound and reconcile functions quote the lender in fixed texts: no renderer on their cold start.
    done = subprocess.run([sys.executable, "-c", _CONTACT_ONLY], capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [load_profile().name, "[]"]
