"""SMS encoding and segment counting at the exact boundaries carriers bill by."""

import pytest

from dunning.sms import (
    gsm_transliterate,
    non_gsm_characters,
    sms_encoding,
    sms_length,
    sms_segments,
)

EXTENSION_CHARS = ["€", "[", "]", "{", "}", "^", "~", "|", "\\", "\f"]


@pytest.mark.parametrize(
    ("length", "parts"),
    [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_gsm7_single_part_holds_160_and_split_parts_153(length: int, parts: int) -> None:
    text = "a" * length
    assert sms_encoding(text) == "GSM-7"
    assert sms_segments(text) == parts


def test_empty_text_is_no_part() -> None:
    assert sms_segments("") == 0


def test_gsm7_basic_table_accents_and_symbols_stay_gsm7() -> None:
    text = "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà\n\r"
    assert sms_encoding(text) == "GSM-7"
    assert sms_length(text) == len(text)


@pytest.mark.parametrize("char", EXTENSION_CHARS)
def test_extension_characters_count_two_septets(char: str) -> None:
    assert sms_encoding(char) == "GSM-7"
    assert sms_length(char) == 2
    # 80 extension characters are 160 septets: one part; one more character tips it over.
    assert sms_segments(char * 80) == 1
    assert sms_segments(char * 80 + "a") == 2


def test_extension_pair_is_never_split_across_parts() -> None:
    # 152 septets then a two-septet "€": it does not fit the 153 of part one, so it moves whole.
    text = "a" * 152 + "€" + "a" * 152
    assert sms_length(text) == 306
    assert sms_segments(text) == 3
    assert sms_segments("a" * 151 + "€" + "a" * 153) == 2


def test_euro_sign_keeps_gsm7_but_costs_two() -> None:
    assert sms_length("Pay €10") == 8
    assert sms_segments("€" * 76 + "a" * 8) == 1  # 152 + 8 = 160


@pytest.mark.parametrize(
    ("length", "parts"),
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)],
)
def test_ucs2_single_part_holds_70_and_split_parts_67(length: int, parts: int) -> None:
    text = "您" * length
    assert sms_encoding(text) == "UCS-2"
    assert sms_segments(text) == parts


def test_one_non_gsm_character_switches_the_whole_text_to_ucs2() -> None:
    text = "a" * 69 + "á"  # á is not in GSM 03.38 (é is)
    assert sms_encoding(text) == "UCS-2"
    assert sms_segments(text) == 1
    assert sms_segments(text + "a") == 2
    assert non_gsm_characters("Zoë and Zoë") == ["ë"]


def test_curly_quote_forces_ucs2() -> None:
    assert sms_encoding("It\u2019s due") == "UCS-2"
    assert sms_encoding("It's due") == "GSM-7"


def test_emoji_counts_two_utf16_units() -> None:
    assert sms_encoding("👍") == "UCS-2"
    assert sms_length("👍") == 2
    assert sms_segments("👍" * 35) == 1  # 70 units
    assert sms_segments("👍" * 35 + "a") == 2
    # Split parts hold 67 units and a surrogate pair is never cut: after 66 units the emoji moves whole
    # to part two, so 134 units take three parts, not two.
    assert sms_segments("a" * 66 + "👍" + "a" * 65) == 2
    assert sms_segments("a" * 66 + "👍" + "a" * 66) == 3
    assert sms_segments("a" * 65 + "👍" + "a" * 67) == 2


def test_chinese_with_signature_counts_characters() -> None:
    text = "【示例金融】" + "您" * 64
    assert sms_length(text) == 70
    assert sms_segments(text) == 1


def test_transliteration_keeps_gsm_letters_and_folds_the_rest() -> None:
    assert gsm_transliterate("Sofía pagó más") == "Sofia pago mas"
    assert gsm_transliterate("José Muñoz Über") == "José Muñoz Über"
    assert gsm_transliterate("\u201cHi\u201d \u2013 it\u2019s\u2026") == '"Hi" - it\'s...'
    assert gsm_transliterate("小明 👍") == "小明 👍"
    assert sms_encoding(gsm_transliterate("Zoë François")) == "GSM-7"
