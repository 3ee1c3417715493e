"""SMS encoding and segment counting: what a text costs before it is sent.

Carriers bill, rate-limit and (in China) check SMS by parts, not by characters, so the renderer and the
template lint need the same count a handset would make (3GPP TS 23.038 / 23.040):

- a text made only of GSM 03.38 characters is sent as GSM-7: 160 septets in one part, 153 per part when
  split (the user-data header takes the rest); characters of the extension table (``€ [ ] { } ^ ~ | \\``
  and form feed) are an escape plus a character, two septets, and the pair is never split across parts;
- any other character switches the whole text to UCS-2: 70 UTF-16 code units in one part, 67 per part
  when split; a character outside the BMP (most emoji) is a surrogate pair, two units, never split.
"""

from __future__ import annotations

import unicodedata
from typing import Final, Literal

SmsEncoding = Literal["GSM-7", "UCS-2"]

GSM7: Final = "GSM-7"
UCS2: Final = "UCS-2"

# GSM 03.38 default alphabet. ESC (0x1B) is left out on purpose: it only introduces the extension table
# and a literal one in a message is not text.
GSM7_BASIC: Final[frozenset[str]] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION: Final[frozenset[str]] = frozenset("\f^{}\\[]~|€")

_LIMITS: Final[dict[str, tuple[int, int]]] = {GSM7: (160, 153), UCS2: (70, 67)}

# Look-alikes that word processors and translators introduce; each has a plain GSM-7 equivalent, and one
# of them left in a text would triple its cost (UCS-2).
_GSM_LOOKALIKES: Final[dict[str, str]] = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u2032": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u2033": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2212": "-",
    "\u2026": "...",
    "\u00a0": " ",
    "\u2007": " ",
    "\u2009": " ",
    "\u202f": " ",
    "\u00b7": ".",
    "\u2022": "-",
    "\t": " ",
}


def is_gsm7(char: str) -> bool:
    """True when ``char`` can be sent in GSM-7 (basic alphabet or extension table)."""
    return char in GSM7_BASIC or char in GSM7_EXTENSION


def non_gsm_characters(text: str) -> list[str]:
    """The distinct characters of ``text`` that force UCS-2, in order of first appearance."""
    return list(dict.fromkeys(char for char in text if not is_gsm7(char)))


def sms_encoding(text: str) -> SmsEncoding:
    """The encoding a handset would use for ``text``: "GSM-7" unless any character is outside GSM 03.38."""
    return GSM7 if all(is_gsm7(char) for char in text) else UCS2


def _unit_widths(text: str, encoding: SmsEncoding) -> list[int]:
    if encoding == GSM7:
        return [2 if char in GSM7_EXTENSION else 1 for char in text]
    return [2 if ord(char) > 0xFFFF else 1 for char in text]


def sms_length(text: str) -> int:
    """Length in the units the encoding counts: septets for GSM-7, UTF-16 code units for UCS-2."""
    return sum(_unit_widths(text, sms_encoding(text)))


def sms_segments(text: str) -> int:
    """Number of SMS parts ``text`` is sent as (0 for an empty text).

    Split parts are packed the way handsets pack them: an extension character (two septets) or a
    surrogate pair (two code units) that does not fit in what is left of a part moves whole to the next
    one, so a part may hold one unit less than 153 / 67.
    """
    encoding = sms_encoding(text)
    widths = _unit_widths(text, encoding)
    single, per_part = _LIMITS[encoding]
    total = sum(widths)
    if total == 0:
        return 0
    if total <= single:
        return 1
    parts, used = 1, 0
    for width in widths:
        if used + width > per_part:
            parts += 1
            used = 0
        used += width
    return parts


def gsm_transliterate(text: str) -> str:
    """Replace characters outside GSM-7 by their closest GSM-7 spelling where one exists.

    Typographic quotes, dashes and spaces become their ASCII forms; accented letters GSM-7 lacks lose the
    accent (``á`` → ``a``, ``ç`` → ``c``, ``ë`` → ``e``) while those it has stay (``é``, ``ñ``, ``ü``).
    Characters with no GSM-7 spelling (Chinese, emoji) are kept, so the result may still be UCS-2.
    """
    out: list[str] = []
    for char in text:
        if is_gsm7(char):
            out.append(char)
        elif char in _GSM_LOOKALIKES:
            out.append(_GSM_LOOKALIKES[char])
        else:
            base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
            out.append(base if base and all(is_gsm7(c) for c in base) else char)
    return "".join(out)
