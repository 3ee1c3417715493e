"""What a borrower's SMS reply means: the STOP family in every spelling, START, HELP, and the rest."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dunning.inbound import (
    PRECEDENCE,
    STOP_KEYWORDS,
    Intent,
    LenderContact,
    classify,
    intents,
    normalise,
    reply_text,
)

STOP_WORDS = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPT OUT",
    "OPTOUT",
    "ARRET",
    "ARRÊT",
    "REMOVE",
    "TD",
    "退订",
]


@pytest.mark.parametrize("word", STOP_WORDS)
def test_every_stop_keyword_is_an_opt_out(word: str) -> None:
    assert classify(word) == Intent.STOP
    assert classify(word.lower()) == Intent.STOP
    assert classify(f"  {word.title()}!! ") == Intent.STOP


@pytest.mark.parametrize(
    "text",
    [
        "stop texting me",
        "Please stop",
        "please STOP.",
        "don't text me",
        "Don’t text me again",
        "do not message me",
        "Stop sending me messages!",
        "no more texts please",
        "remove me from your list",
        "opt-out",
        "Opt me out",
        "quit texting me",
        "cancel these messages",
        "ＳＴＯＰ",
        "ｓｔｏｐ！",
        "不要再发短信了",
        "退订！",
        "回复TD退订",
        "leave me alone",
    ],
)
def test_plain_language_requests_are_opt_outs(text: str) -> None:
    assert classify(text) == Intent.STOP


@pytest.mark.parametrize(
    "text",
    ["paid", "I paid yesterday", "已还款", "who is this?", "call me tomorrow", "this is not fair", "", "  "],
)
def test_anything_else_is_for_a_person(text: str) -> None:
    assert classify(text) == Intent.OTHER


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("START", Intent.START),
        ("unstop", Intent.START),
        ("Help", Intent.HELP),
        ("HELP!", Intent.HELP),
        ("info", Intent.HELP),
        ("帮助", Intent.HELP),
    ],
)
def test_start_and_help(text: str, intent: Intent) -> None:
    assert classify(text) == intent


def test_an_opt_out_wins_over_anything_else_in_the_same_reply() -> None:
    assert classify("help stop") == Intent.STOP
    assert classify("start? no, STOP") == Intent.STOP


# Revocation "by any reasonable means" (FCC 24-24): free text in every template language is a STOP.
FREE_TEXT_STOPS = {
    "en": [
        "please stop texting me",
        "no more messages",
        "No more texts!",
        "I revoke my consent to be texted",
        "I withdraw consent",
        "I don't want any more messages",
        "take me off your list",
        "don't contact me again",
    ],
    "es": [
        "no me manden más mensajes",
        "ya no me escriban",
        "BAJA",
        "baja",
        "Quiero darme de baja",
        "dejen de enviarme mensajes",
        "no quiero recibir más mensajes",
        "Alto",
        "ya no me molesten",
        "no más mensajes por favor",
    ],
    "zh": [
        "别再发了",
        "不要再给我发短信",
        "请勿打扰",
        "不想再收到这些短信",
        "停止",
        "停止发送",
        "別再發了",
    ],
}
WRONG_NUMBERS = {
    "en": [
        "wrong number",
        "You have the wrong number",
        "not me",
        "This isn't Ana's phone",
        "this is not John's number",
        "I'm not the person you are looking for",
        "no one by that name here",
        "I don't know this person",
    ],
    "es": ["número equivocado", "No soy Ana", "no soy yo", "no conozco a esa persona", "Equivocado"],
    "zh": ["打错了", "不是我", "我不是张伟", "发错人了", "没有这个人", "号码错了"],
}
DISPUTES = {
    "en": [
        "I don't owe this",
        "I do not owe you anything",
        "not my debt",
        "This is not my loan",
        "I dispute this",
        "I dispute the amount",
        "I never took out a loan",
        "the amount is wrong",
        "please verify the debt",
    ],
    "es": [
        "no debo nada",
        "No le debo",
        "esa deuda no es mía",
        "no es mi deuda",
        "disputo esta deuda",
        "no reconozco esta deuda",
        "no soy responsable de esta deuda",
        "nunca pedí un préstamo",
    ],
    "zh": ["这不是我的欠款", "我没有欠钱", "我没借过钱", "金额不对", "我对这笔欠款有异议", "不是我的贷款"],
}


def _cases(table: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(language, text) for language, texts in table.items() for text in texts]


@pytest.mark.parametrize(("language", "text"), _cases(FREE_TEXT_STOPS))
def test_free_text_revocation_in_every_template_language_is_a_stop(language: str, text: str) -> None:
    assert classify(text) == Intent.STOP


@pytest.mark.parametrize(("language", "text"), _cases(WRONG_NUMBERS))
def test_a_reply_that_the_number_is_not_the_borrowers_is_a_wrong_number(language: str, text: str) -> None:
    assert classify(text) == Intent.WRONG_NUMBER


@pytest.mark.parametrize(("language", "text"), _cases(DISPUTES))
def test_a_reply_denying_the_debt_is_a_dispute(language: str, text: str) -> None:
    assert classify(text) == Intent.DISPUTE


@pytest.mark.parametrize(
    ("text", "intent", "also"),
    [
        ("I don't owe this, stop texting me", Intent.STOP, Intent.DISPUTE),
        ("no debo nada, no me manden más mensajes", Intent.STOP, Intent.DISPUTE),
        ("这不是我的欠款，别再发了", Intent.STOP, Intent.DISPUTE),
        ("wrong number, stop", Intent.STOP, Intent.WRONG_NUMBER),
        ("no soy Ana, ya no me escriban", Intent.STOP, Intent.WRONG_NUMBER),
        ("wrong number, I don't owe anything", Intent.WRONG_NUMBER, Intent.DISPUTE),
        ("打错了，我没有欠钱", Intent.WRONG_NUMBER, Intent.DISPUTE),
    ],
)
def test_a_reply_saying_two_things_is_handled_by_precedence_and_keeps_both(
    text: str, intent: Intent, also: Intent
) -> None:
    assert classify(text) == intent
    assert also in intents(text)


def test_precedence_puts_the_opt_out_first_then_wrong_number_then_dispute() -> None:
    assert PRECEDENCE[:3] == (Intent.STOP, Intent.WRONG_NUMBER, Intent.DISPUTE)


_CATEGORY_PHRASES = {
    # Whole-reply keywords ("Alto" is also "tall") only mean STOP on their own; sentences mean it anywhere.
    Intent.STOP: [
        t for texts in FREE_TEXT_STOPS.values() for t in texts if normalise(t) not in STOP_KEYWORDS
    ],
    Intent.WRONG_NUMBER: [t for texts in WRONG_NUMBERS.values() for t in texts],
    Intent.DISPUTE: [t for texts in DISPUTES.values() for t in texts],
}


@given(
    st.lists(
        st.sampled_from(sorted(_CATEGORY_PHRASES)).flatmap(
            lambda intent: st.tuples(st.just(intent), st.sampled_from(_CATEGORY_PHRASES[intent]))
        ),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from([". ", ", ", "! ", "。", "，", " - "]),
)
def test_a_mixed_reply_is_classified_as_its_highest_ranked_meaning(
    parts: list[tuple[Intent, str]], separator: str
) -> None:
    text = separator.join(phrase for _, phrase in parts)
    expected = next(intent for intent in PRECEDENCE if intent in {i for i, _ in parts})
    assert classify(text) == expected


@given(st.one_of(st.text(max_size=300), st.binary(max_size=50).map(lambda b: b.decode("latin-1"))))
def test_classify_and_intents_never_raise(text: str) -> None:
    found = intents(text)
    assert classify(text) == next((i for i in PRECEDENCE if i in found), Intent.OTHER)


_punctuation = st.sampled_from(list(" .,!?;:-_*()[]\"'~…。！，？、　\t\n"))
_padding = st.text(alphabet=_punctuation, max_size=6)


def _to_fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else ("\u3000" if c == " " else c) for c in text)


@given(
    word=st.sampled_from(sorted(STOP_KEYWORDS)),
    before=_padding,
    after=_padding,
    case=st.sampled_from(["upper", "lower", "title", "swap"]),
    fullwidth=st.booleans(),
)
def test_stop_keywords_survive_case_space_punctuation_and_width(
    word: str, before: str, after: str, case: str, fullwidth: bool
) -> None:
    cased = {"upper": word.upper(), "lower": word.lower(), "title": word.title(), "swap": word.swapcase()}[
        case
    ]
    text = before + cased + after
    if fullwidth:
        text = _to_fullwidth(text)
    assert classify(text) == Intent.STOP


@given(st.text(max_size=200))
def test_classify_never_raises_and_normalising_is_idempotent(text: str) -> None:
    assert classify(text) in set(Intent)
    once = normalise(text)
    assert normalise(once) == once


@given(st.text(alphabet=st.characters(whitelist_categories=("Nd", "Zs", "Po")), max_size=40))
def test_digits_and_punctuation_alone_are_never_an_opt_out_or_a_command(text: str) -> None:
    assert classify(text) == Intent.OTHER


@given(
    word=st.sampled_from(["STOP", "UNSUBSCRIBE", "OPT OUT", "REVOKE"]),
    sentence=st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Zs")), max_size=30),
)
def test_a_strong_opt_out_word_anywhere_is_an_opt_out(word: str, sentence: str) -> None:
    assert classify(f"{sentence} {word} {sentence}") == Intent.STOP


LENDER = LenderContact(
    name="Example Lending Co.",
    help_phone="(212) 555-0142",
    help_url="https://example.com/help",
    cn_name="示例金融",
    cn_signature="示例金融",
)


def test_the_stop_confirmation_names_the_lender_and_promises_silence() -> None:
    text = reply_text(Intent.STOP, LENDER, chinese=False)
    assert text is not None
    assert "Example Lending Co." in text
    assert "no further messages" in text
    zh = reply_text(Intent.STOP, LENDER, chinese=True)
    assert zh is not None
    assert zh.startswith("【示例金融】")
    assert "不再" in zh


def test_the_help_reply_has_the_contact_and_the_way_out() -> None:
    text = reply_text(Intent.HELP, LENDER, chinese=False)
    assert text is not None
    assert "(212) 555-0142" in text
    assert "https://example.com/help" in text
    assert "STOP" in text
    assert reply_text(Intent.OTHER, LENDER, chinese=False) is None


def test_normalise_folds_width_accents_and_case() -> None:
    assert normalise("ＡＲＲÊＴ！") == "arret"
    assert unicodedata.normalize("NFKC", "ＴＤ") == "TD"
