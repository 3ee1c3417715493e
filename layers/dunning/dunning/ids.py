"""Loan and borrower ids as key parts: the limits, the check, and a stand-in for an id that fails it.

The lender's tables accept any string key up to DynamoDB's 2,048 bytes, but Dunning builds its own keys
from these ids with prefixes and suffixes (``LOAN#<id>``, ``BORROWER#<id>``, ``JOB#<loan>#<step>``, the
``AMBIGUOUS`` pointers' sort key ``<loan>#<step>``, the ledger's ``ByLoan`` index). An id legal there
can be over DynamoDB's limits here (partition keys 2,048 bytes, sort keys 1,024 bytes, GSI keys too),
and one such write fails its whole BatchWriteItem. So every id is checked where it enters (stream
records, the reconcile scan, the planner's and the sender's reads, the inbound lookup by phone): at most
:data:`ID_MAX_LENGTH` characters of :data:`ID_ALPHABET`, which keeps every key built from it far below
the limits (the longest, ``JOB#<loan>#<step>``, is under 200 bytes). An id that fails is recorded
``data.invalid`` under :func:`storable_id`, a digest that fits every key, and never written as a key.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

ID_MAX_LENGTH: Final = 128
# Letters, digits and ``_ . : -``: ``#`` separates the parts of our keys, so it may not be in an id.
ID_ALPHABET: Final = "A-Z a-z 0-9 _ . : -"
ID_PATTERN: Final = r"^[A-Za-z0-9_.:\-]+$"
_ID = re.compile(ID_PATTERN)
# Outside the alphabet (``~``), so a stand-in can never equal a real id.
_STAND_IN_PREFIX: Final = "~sha256:"


def id_problem(value: object) -> str | None:
    """Why ``value`` cannot be a loan or borrower id (never echoing it), or None when it can."""
    if not isinstance(value, str) or not value:
        return "missing or not a string"
    if len(value) > ID_MAX_LENGTH:
        return f"longer than {ID_MAX_LENGTH} characters"
    if not _ID.match(value):
        return f"characters outside {ID_ALPHABET}"
    return None


def is_valid_id(value: object) -> bool:
    """True when ``value`` can be used in keys as a loan or borrower id."""
    return id_problem(value) is None


def storable_id(value: object) -> str:
    """``value`` itself when it is a valid id, else ``~sha256:<hex>`` of it: what a ledger or state key
    may hold for it (and what logs show: an over-long id may carry anything, a name or a number)."""
    if isinstance(value, str) and is_valid_id(value):
        return value
    text = value if isinstance(value, str) else repr(value)
    return _STAND_IN_PREFIX + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def attribute_id(value: object) -> str:
    """An id as an attribute of our own items: as given when valid (or empty), else its stand-in."""
    text = str(value or "")
    return text if not text or is_valid_id(text) else storable_id(text)
