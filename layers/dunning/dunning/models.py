"""Domain models shared by the engine, the services and the CLI.

These are the *domain* shapes: the DynamoDB item shapes of the lender's Loans and Borrowers tables are
the same fields (documented in the README), parsed by ``dunning.items``; the project's own state items
have their own mapping in ``dunning.adapters.state``.
"""

# No ``from __future__ import annotations`` here: pydantic would evaluate every field's annotation from its
# text when a model is defined (a compile per field: about 1.5 ms of every cold start for these models).
# The annotations are evaluated once, as the class body runs.
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from dunning.ids import ID_MAX_LENGTH, ID_PATTERN

# Loan and borrower ids: limits and why in ``dunning.ids``.
Id = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
# The pattern as pydantic reads it: its ``$`` is the end of the text (in Python's re it would also let a
# final newline through), hence fullmatch without the anchors.
_ID_FULL = re.compile(ID_PATTERN.removeprefix("^").removesuffix("$"))


def is_model_id(value: str) -> bool:
    """Whether ``Id`` accepts ``value``, as validating it would say."""
    return 0 < len(value) <= ID_MAX_LENGTH and _ID_FULL.fullmatch(value) is not None


# "US", "US-MA", "US-NY-NYC", "CN", "CA-ON", ...: ISO 3166-1 alpha-2, then subdivisions.
JurisdictionCode = Annotated[str, Field(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,4}){0,2}$")]


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a time zone (UTC)")
    return value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_aware_utc)]


class Channel(StrEnum):
    SMS = "sms"
    PUSH = "push"


class LoanStatus(StrEnum):
    ACTIVE = "ACTIVE"
    PAID = "PAID"
    CLOSED = "CLOSED"
    CHARGED_OFF = "CHARGED_OFF"


class Frozen(BaseModel):
    # defer_build: a model's validator is built when it is first used, or by ``build_validators`` in the
    # services whose every record validates it (the indexer, the reads behind every decision). The
    # receipts and inbound functions validate none of these models: they never build them.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


def build_validators(*models: type[BaseModel]) -> None:
    """Build the validators of ``models`` now: a service that validates them on every record builds them
    with itself (its cold start), not on its first record."""
    for model in models:
        model.model_rebuild()


M = TypeVar("M", bound=BaseModel)
_new = object.__new__
_set_dict = object.__setattr__
# BaseModel's slots, set as pydantic's own ``model_construct`` and ``__copy__`` set them.
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__
_DEFAULTS: dict[type[BaseModel], dict[str, Any]] = {}


def _defaults(model: type[BaseModel]) -> dict[str, Any]:
    # Every field's default in declaration order (``PydanticUndefined`` for a required field): the
    # default object itself, as validation leaves it (none of these models has a default factory).
    if any(f.default_factory is not None for f in model.model_fields.values()):
        raise TypeError(f"{model.__name__} has a default factory: not built by trusted()")
    found = _DEFAULTS[model] = {name: f.default for name, f in model.model_fields.items()}
    return found


def trusted(model: type[M], values: dict[str, Any]) -> M:
    """The instance of ``model`` that validating ``values`` gives, built without validating them.

    Only for values that already are of their fields' types and within their constraints, with every
    required field given: the engine's own results (a ``Decision``) and a state item's parsed values
    (``dunning.adapters.contact``). Validation would return those values unchanged (an aware UTC
    datetime, an enum member, a tuple of models), so the instance is the same, and so are the fields
    set (``model_dump(exclude_unset=True)``); validating costs about twice as much, and the planner
    builds several of these for every loan it decides. tests/property/test_fast_paths.py compares
    both ways.
    """
    data = (_DEFAULTS.get(model) or _defaults(model)).copy()
    data.update(values)
    return _made(model, data, set(values))


def _made(model: type[M], data: dict[str, Any], fields_set: set[str]) -> M:
    """An instance of ``model`` whose ``__dict__`` is ``data`` itself, with ``fields_set`` as set."""
    instance: M = _new(model)
    _set_dict(instance, "__dict__", data)
    _set_fields_set(instance, fields_set)
    _set_extra(instance, None)
    _set_private(instance, None)
    return instance


def trusted_whole(model: type[M], values: dict[str, Any]) -> M:
    """:func:`trusted` for ``values`` that name every field of ``model``, in declaration order.

    The dict itself becomes the instance's ``__dict__`` (the caller hands it over): no defaults to
    merge, so it is the dict ``trusted`` would build. For the models the planner builds most often
    (a contact state, its sends).
    """
    return _made(model, values, set(values))


def trusted_given(model: type[M], values: dict[str, Any], given: frozenset[str]) -> M:
    """:func:`trusted_whole` for ``values`` that also hold the defaults of the fields not ``given``:
    the instance ``trusted`` builds from the ``given`` values alone (the default objects themselves
    for the others), with ``given`` as the fields set."""
    return _made(model, values, set(given))


class Dispute(Frozen):
    """A dispute pauses collection; without ``until`` it holds until the lender clears it."""

    opened_on: date
    until: date | None = None


class PromiseToPay(Frozen):
    until: date
    grace_days: Annotated[int, Field(ge=0, le=60)] = 0


class LoanFlags(Frozen):
    dispute: Dispute | None = None
    promise_to_pay: PromiseToPay | None = None
    hardship_until: date | None = None
    cease_and_desist: bool = False
    bankruptcy: bool = False
    deceased: bool = False
    attorney_represented: bool = False


@cache
def currencies_in_use() -> frozenset[str]:
    """ISO 4217 codes legal tender somewhere today (CLDR's territory currencies, through Babel)."""
    from babel.core import get_global  # imported when first needed: the indexer's cold start stays light

    return frozenset(
        code
        for entries in get_global("territory_currencies").values()
        for code, _start, end, tender in entries
        if end is None and tender
    )


def _iso_4217(code: str) -> str:
    # The message must not echo the code (a reason never carries the offending value).
    if code not in currencies_in_use():
        raise ValueError("not an ISO 4217 currency code in use")
    return code


CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$"), AfterValidator(_iso_4217)]


class Loan(Frozen):
    loan_id: Id
    borrower_id: Id
    currency: CurrencyCode
    amount_due: Annotated[Decimal, Field(ge=0, le=Decimal("1000000000"), max_digits=14, decimal_places=2)]
    due_date: date
    status: LoanStatus = LoanStatus.ACTIVE
    product: Annotated[str, Field(min_length=1, max_length=64)] = "default"
    jurisdiction: JurisdictionCode
    flags: LoanFlags = LoanFlags()


class PushEndpoint(Frozen):
    arn: Annotated[
        str, Field(pattern=r"^arn:aws[a-z\-]*:sns:[a-z0-9\-]+:\d{12}:endpoint/.+$", max_length=512)
    ]
    platform: Literal["APNS", "APNS_SANDBOX", "GCM"]


class Address(Frozen):
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    region: Annotated[str, Field(max_length=8)] | None = None


class Consent(Frozen):
    """Prior express consent per channel, as the lender recorded it."""

    sms: bool = False
    push: bool = False


class Borrower(Frozen):
    borrower_id: Id
    first_name: Annotated[str, Field(max_length=64)] = ""
    locale: Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] = "en-US"
    # Kept as given: an invalid zone is the engine's business (conservative), not a load error.
    time_zone: Annotated[str, Field(max_length=64)] | None = None
    address: Address | None = None
    # Kept as given, validated by the engine with phonenumbers: a bad number makes SMS unusable,
    # it does not make the borrower unreadable (push may still be usable).
    phone: Annotated[str, Field(max_length=32)] | None = None
    push_endpoints: tuple[PushEndpoint, ...] = ()
    consent: Consent = Consent()
    opt_outs: frozenset[Channel] = frozenset()
    # Contact points (E.164 numbers or endpoint ARNs) known not to work.
    invalid_contacts: frozenset[str] = frozenset()


class SendRecord(Frozen):
    at: UtcDateTime
    channel: Channel
    loan_id: Id
    step: str


class ContactState(Frozen):
    """What we know about contacting one borrower: the unit of compliance (windows and caps are per person).

    Assembled from the project's state table: the borrower's contact item (sends, claims, pause,
    unusable points) and the consent registry item of the borrower's phone number.
    """

    borrower_id: Id
    version: int = 0
    sends: tuple[SendRecord, ...] = ()
    # "<loan_id>#<step>" for every cadence step claimed: at most one send per loan and step. Claims of a
    # loan that ended are dropped once its last send is out of ``sends`` (adapters.contact.prunable_claims).
    claims: frozenset[str] = frozenset()
    paused_until: UtcDateTime | None = None
    sms_opted_out: bool = False
    unusable: frozenset[str] = frozenset()
    # Loans of this borrower with an open dispute (a reply disputing the debt) awaiting verification.
    disputed_loans: frozenset[str] = frozenset()

    @staticmethod
    def claim_key(loan_id: str, step: str) -> str:
        return f"{loan_id}#{step}"


class DecisionKind(StrEnum):
    SEND = "SEND"
    DEFER = "DEFER"
    STOP = "STOP"


JurisdictionSource = Literal["loan", "address", "phone"]


class AppliedJurisdiction(Frozen):
    """A jurisdiction a decision took into account: its code, which signal gave it, and its rulebook.

    ``rulebook`` is the code of the rulebook this jurisdiction brings, or None when there is none for
    that region (a New Jersey area code: shown, adds nothing). ``code`` is kept as the data gave it (an
    address region is free text), so it is not held to the rulebook code pattern.
    """

    code: Annotated[str, Field(min_length=2, max_length=16)]
    source: JurisdictionSource
    rulebook: str | None = None

    @model_serializer(mode="wrap")
    def _rulebook_always_shown(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # ``rulebook: null`` is information ("no rules of its own"): kept even under exclude_none.
        data: dict[str, Any] = handler(self)
        data.setdefault("rulebook", self.rulebook)
        return data


class Decision(Frozen):
    """The engine's answer for one loan at one instant, with the rule and the reason for the audit trail."""

    kind: DecisionKind
    loan_id: str
    borrower_id: str
    at: UtcDateTime
    rule_id: str
    reason: str
    citation: str | None = None
    channel: Channel | None = None
    step: str | None = None
    template: str | None = None
    not_before: UtcDateTime | None = None
    # For a SEND: when the next cadence step falls due (None after the last step).
    follow_up_at: UtcDateTime | None = None
    skipped_steps: tuple[str, ...] = ()
    # Which jurisdictions applied and why (loan, address, phone): see dunning.jurisdictions.
    jurisdictions: tuple[AppliedJurisdiction, ...] = ()

    def jurisdictions_record(self) -> list[dict[str, str | None]]:
        """``jurisdictions`` as the ledger stores it: a list of ``{code, source, rulebook}``."""
        return [{"code": j.code, "source": j.source, "rulebook": j.rulebook} for j in self.jurisdictions]
