"""The item contract of the lender's Loans and Borrowers tables, and the timestamp format of every item.

An item arrives as boto3's resource layer or ``TypeDeserializer`` gives it (numbers as ``Decimal``,
string sets as ``set``, maps as ``dict``) and leaves as a domain :class:`~dunning.models.Loan` or
:class:`~dunning.models.Borrower`, or as :class:`InvalidItem` with a one-line reason naming the field.
Callers record an invalid item and skip it: one bad item never takes a batch down.

Attributes the contract does not know are ignored (lenders keep their own bookkeeping in these tables),
except when the name is a near miss of a contract attribute (``flag`` for ``flags``): silently ignoring
a misspelt ``cease_and_desist`` flag would be a compliance failure, so that is an error.
The contract itself is documented in docs/pipeline.md.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from dunning.ids import storable_id
from dunning.models import Borrower, Loan, LoanFlags, LoanStatus

ItemKind = Literal["loan", "borrower"]

# One textual form for every timestamp the project writes: sortable as a string (the due-index range
# key and the ledger sort keys compare lexicographically), UTC, second precision.
ISO_UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


# Recent instants and their text: a tick writes the same few instants (the tick's, window openings)
# on thousands of items. A naive datetime is never equal to an aware one, so it never hits.
_ISO_TEXTS: dict[datetime, str] = {}
_ISO_TEXTS_MAX = 4096


def iso_utc(moment: datetime) -> str:
    """``2026-03-02T14:00:00Z`` for an aware datetime (fractions of a second are dropped)."""
    text = _ISO_TEXTS.get(moment)
    if text is None:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("naive datetime: every timestamp must carry a time zone")
        text = moment.astimezone(UTC).strftime(ISO_UTC_FORMAT)
        if len(_ISO_TEXTS) >= _ISO_TEXTS_MAX:
            _ISO_TEXTS.clear()
        _ISO_TEXTS[moment] = text
    return text


def iso_utc_precise(moment: datetime) -> str:
    """``2026-03-02T14:00:00.123456Z``: :func:`iso_utc` to the microsecond, for instants that must be
    ordered against others within the same second (a confirmation's claim against receipt stamps)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: every timestamp must carry a time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# Recent texts and the instants they parse to: a borrower's sends were stamped at ticks, which many
# borrowers share. Only texts that parsed are kept, so an error is raised as always.
_PARSED: dict[str, datetime] = {}


def parse_iso_utc(text: str) -> datetime:
    """Parse an ISO-8601 timestamp with an offset or ``Z`` into an aware UTC datetime."""
    found = _PARSED.get(text) if type(text) is str else None
    if found is None:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"timestamp without a time zone: {text!r}")
        found = moment.astimezone(UTC)
        if type(text) is str:
            if len(_PARSED) >= _ISO_TEXTS_MAX:
                _PARSED.clear()
            _PARSED[text] = found
    return found


class InvalidItem(ValueError):
    """A Loans or Borrowers item that does not satisfy the contract."""

    def __init__(self, kind: ItemKind, item_id: str, reason: str) -> None:
        super().__init__(f"{kind} {item_id}: {reason}")
        self.kind = kind
        self.item_id = item_id
        self.reason = reason


def summarise_validation_error(exc: ValidationError) -> str:
    """One line naming the first offending field; input values are left out (they may be a phone number)."""
    errors = exc.errors(include_input=False, include_url=False)
    if not errors:
        return "invalid item"
    first = errors[0]
    location = ".".join(str(part) for part in first["loc"]) or "item"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{location}: {first['msg']}{more}"


def _plain(value: Any) -> Any:
    """DynamoDB shapes → what the pydantic models accept: sets become sorted lists, integral Decimals ints."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value  # most attributes: nothing to convert
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if (
        isinstance(value, Decimal)
        and value.is_finite()  # NaN and infinities are left for the model to refuse
        and value == value.to_integral_value()
        and value.as_tuple().exponent == 0
    ):
        return int(value)
    return value


@cache
def _field_names(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(model.model_fields)


def _known_fields(model: type[BaseModel], item: Mapping[str, Any], kind: ItemKind, item_id: str) -> dict:
    known = _field_names(model)
    picked: dict[str, Any] = {}
    for name, value in item.items():
        if name in known:
            picked[name] = _plain(value)
            continue
        near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
        if near and near[0] not in item:
            raise InvalidItem(kind, item_id, f"{name}: unknown attribute (did you mean {near[0]!r}?)")
    return picked


# Validating an item as it is, without ``_known_fields``, is the same as validating what that picks
# and converts when every attribute is a contract attribute: nothing is picked out and no near miss is
# possible, and what ``_plain`` converts the models take unconverted with the same result (a set for a
# frozenset, a list for a tuple, an integral Decimal for a Decimal, an int or a bool: pydantic's lax
# mode reads ``Decimal("2")`` as ``2``). Two exceptions are kept out: ``Decimal("-0")``, which
# ``_plain`` makes 0 (an amount of ``-0`` would keep its sign), and the empty strings
# ``borrower_from_item`` reads as unset. A validation error is never reported from this first try:
# the item is validated again the long way, so an invalid item gets the same reason as always.
# tests/property/test_fast_paths.py checks both ways on random items.
_LOAN_FIELDS = frozenset(Loan.model_fields)
_BORROWER_FIELDS = frozenset(Borrower.model_fields)
_EMPTY_IS_UNSET = ("time_zone", "phone", "address")


def _negative_zero(value: object) -> bool:
    return isinstance(value, Decimal) and value.is_zero() and value.is_signed()


def _item_id(item: Mapping[str, Any], key: str) -> str:
    # An id that is not a valid id is named by its digest: it may be 2 kB of anything (a name, a number).
    value = item.get(key)
    return storable_id(value) if isinstance(value, str) and value else "<missing id>"


def loan_from_item(item: Mapping[str, Any]) -> Loan:
    """Parse a Loans item; raise :class:`InvalidItem` with the reason if it breaks the contract."""
    if _LOAN_FIELDS.issuperset(item) and not _negative_zero(item.get("amount_due")):
        # The common item: only contract attributes. Validated as it is, it gives the model
        # :func:`validated_loan` gives (see the note above ``_LOAN_FIELDS``); anything else goes that way.
        try:
            # ``model_validate`` without its Python frame (the same call with the same defaults).
            return Loan.__pydantic_validator__.validate_python(item)
        except ValidationError:
            pass
    return validated_loan(item)


def validated_loan(item: Mapping[str, Any]) -> Loan:
    """:func:`loan_from_item` the long way: contract attributes picked (a near miss refused) and
    converted from DynamoDB's shapes, then validated."""
    item_id = _item_id(item, "loan_id")
    fields = _known_fields(Loan, item, "loan", item_id)
    flags = fields.get("flags")
    if isinstance(flags, dict):
        # Flags are strict (extra="forbid" on LoanFlags): an unknown flag is an error, not ignored.
        for name in flags:
            if name not in LoanFlags.model_fields:
                raise InvalidItem("loan", item_id, f"flags.{name}: unknown flag")
    try:
        return Loan.model_validate(fields)
    except ValidationError as exc:
        raise InvalidItem("loan", item_id, summarise_validation_error(exc)) from None


def borrower_from_item(item: Mapping[str, Any]) -> Borrower:
    """Parse a Borrowers item; raise :class:`InvalidItem` with the reason if it breaks the contract."""
    unset = (item.get("time_zone"), item.get("phone"), item.get("address"))  # _EMPTY_IS_UNSET
    if _BORROWER_FIELDS.issuperset(item) and "" not in unset:
        try:  # as in loan_from_item
            return Borrower.__pydantic_validator__.validate_python(item)
        except ValidationError:
            pass
    return validated_borrower(item)


def validated_borrower(item: Mapping[str, Any]) -> Borrower:
    """:func:`borrower_from_item` the long way (as :func:`validated_loan`)."""
    item_id = _item_id(item, "borrower_id")
    fields = _known_fields(Borrower, item, "borrower", item_id)
    # An empty string is how many writers say "not set"; the model says it with None.
    for optional in _EMPTY_IS_UNSET:
        if fields.get(optional) == "":
            fields[optional] = None
    try:
        return Borrower.model_validate(fields)
    except ValidationError as exc:
        raise InvalidItem("borrower", item_id, summarise_validation_error(exc)) from None


# The statuses that end a loan: no reminder is planned or sent for it (the engine's ``status.*`` STOPs,
# the indexer takes it out of the due-index, the sender prunes its old claims).
TERMINAL = frozenset({LoanStatus.PAID, LoanStatus.CLOSED, LoanStatus.CHARGED_OFF})


def raw_status(item: Mapping[str, Any] | None) -> LoanStatus | None:
    """The ``status`` of a Loans item even when the rest of it is invalid (a paid loan stops regardless)."""
    if not item:
        return None
    value = item.get("status", LoanStatus.ACTIVE.value)
    try:
        return LoanStatus(value)
    except ValueError:
        return None


def _dynamo_value(value: Any) -> Any:
    """Domain values → DynamoDB-ready values: no floats, no empty sets, dates as ISO strings."""
    if isinstance(value, BaseModel):
        return _dynamo_value(value.model_dump(mode="python", exclude_defaults=True))
    if isinstance(value, Mapping):
        converted = {k: _dynamo_value(v) for k, v in value.items()}
        return {k: v for k, v in converted.items() if v is not None}
    if isinstance(value, frozenset | set):
        return {str(v) for v in value} or None
    if isinstance(value, tuple | list):
        return [_dynamo_value(v) for v in value]
    if isinstance(value, datetime):
        return iso_utc(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bool | int | str | Decimal):
        return str(value) if isinstance(value, str) else value
    raise TypeError(f"cannot store {type(value).__name__} in an item")


def _to_item(model: BaseModel) -> dict[str, Any]:
    item = _dynamo_value(model.model_dump(mode="python", exclude_defaults=True))
    # Empty sets and maps are not storable (sets) or not meaningful (maps): leave the attribute out.
    return {k: v for k, v in item.items() if v not in (None, {}, [])}


def loan_to_item(loan: Loan) -> dict[str, Any]:
    """A Loans item in the contract's shape (what the lender writes; used by the demo and the tests)."""
    item = _to_item(loan)
    item.setdefault("status", loan.status.value)
    item.setdefault("jurisdiction", loan.jurisdiction)
    return item


def borrower_to_item(borrower: Borrower) -> dict[str, Any]:
    """A Borrowers item in the contract's shape."""
    return _to_item(borrower)


# The name the CLI and other callers catch; one exception type for "this item breaks the contract".
ItemError = InvalidItem
