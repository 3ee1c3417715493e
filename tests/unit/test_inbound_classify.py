"""What a borrower's SMS reply means: the STOP family in every spelling, START, HELP, and the rest."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dunning.inbound import STOP_KEYWORDS, Intent, LenderContact, classify, normalise, reply_text

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
    ["paid", "I paid yesterday", "已还款", "I dispute this", "who is this?", "call me tomorrow", "", "  "],
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
    assert "Example Lending Co." in text and "no further messages" in text
    zh = reply_text(Intent.STOP, LENDER, chinese=True)
    assert zh is not None and zh.startswith("【示例金融】") and "不再" in zh


def test_the_help_reply_has_the_contact_and_the_way_out() -> None:
    text = reply_text(Intent.HELP, LENDER, chinese=False)
    assert text is not None
    assert "(212) 555-0142" in text and "https://example.com/help" in text and "STOP" in text
    assert reply_text(Intent.OTHER, LENDER, chinese=False) is None


def test_normalise_folds_width_accents_and_case() -> None:
    assert normalise("ＡＲＲÊＴ！") == "arret"
    assert unicodedata.normalize("NFKC", "ＴＤ") == "TD"
