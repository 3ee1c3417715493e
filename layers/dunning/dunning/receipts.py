"""Receipts: delivery status from SNS delivery-status logs and End User Messaging SMS events → ledger.

Two sources, both untrusted until checked:

- CloudWatch Logs subscription events (``{"awslogs": {"data": base64(gzip(json))}}``) from the SNS
  delivery-status log groups for SMS and push, success and failure; only the log groups named in
  RECEIPT_LOG_GROUPS are accepted, ``CONTROL_MESSAGE`` reachability checks are ignored;
- SNS notifications carrying End User Messaging SMS v2 events, from DELIVERY_EVENTS_TOPIC_ARN only.

Each receipt is matched to its ``MSG#<id>/MESSAGE`` item (one BatchGetItem for the batch): found → the
item becomes DELIVERED or FAILED with the provider's response, price, carrier, dwell time and receipt
time; not found → kept as ``MSG#<id>/RECEIPT`` (receipts may arrive before the sender's ledger write,
or belong to a message sent by something else), counted as UnknownMessageId and pointed out to the
daily sweep, which merges it into the MESSAGE once that exists (``dunning.reconcile``). A permanent
failure (invalid number, InvalidToken, EndpointDisabled) marks the contact point unusable at once; a
repeated one (blocked, unknown error) is counted, and at HARD_FAILURE_THRESHOLD the point is unusable; a
transient one (unreachable, carrier temporarily down) is never counted; a later DELIVERED resets the
count. End User Messaging events are read from SNS or from a Logs subscription of their log group. One
unreadable log event is counted and skipped; it never fails the batch.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from dunning import clock
from dunning.adapters.consent import CONFIRMATION_SENT
from dunning.adapters.dynamo import Dynamo, WriteOp
from dunning.adapters.ledger import Ledger, Status
from dunning.adapters.state import StateStore
from dunning.items import iso_utc, parse_iso_utc
from dunning.observability import MetricsRecorder, PackageLogger, mask_contact_point
from dunning.receipt_matching import prove
from dunning.settings import ReceiptsSettings

if TYPE_CHECKING:  # the service's collaborators, as types only: nothing of dunning.ports runs
    from dunning.ports import ConsentRegistry, ContactWriter, LedgerWriter

logger = PackageLogger(__name__)

# How a failed delivery counts against its contact point (RULES.md, "Delivery failures"):
# - PERMANENT: the number or token is dead (invalid number, InvalidToken, EndpointDisabled): unusable at once;
# - REPEATED: says something about the number but not for sure (blocked, an unknown error): counted, and
#   unusable at HARD_FAILURE_THRESHOLD;
# - TRANSIENT: the phone is off or out of coverage, the carrier is temporarily down: never counted;
# - anything else (spam filter, price cap, message too long) says nothing about the number: not counted.
PERMANENT, REPEATED, TRANSIENT = "permanent", "repeated", "transient"
# Provider responses, lowercased with spaces removed; checked in this order.
_SMS_FAILURES = (
    (PERMANENT, ("invalidphonenumber", "notavalidphonenumber", "invaliddestination", "numberisinvalid")),
    (TRANSIENT, ("unreachable", "unavailable", "temporar", "throttl", "timedout", "timeout", "ttlexpired")),
    (
        REPEATED,
        (
            "unknownerrorattemptingtoreachphone",
            "phonehasblockedsms",
            "phoneisonablockedlist",
            "destinationisonablockedlist",
            "phonenumberisoptedout",
            "phoneisoptedout",
        ),
    ),
)
# Push provider responses that say the device token is dead; any other push failure is transient.
_DEAD_PUSH_RESPONSES = (
    "invalidtoken",
    "unregistered",
    "baddevicetoken",
    "notregistered",
    "invalidregistration",
    "endpointdisabled",
    "devicetokennotfortopic",
)
_EUM_DELIVERED = frozenset({"TEXT_DELIVERED", "TEXT_SUCCESSFUL"})
_EUM_FAILURES = {
    "TEXT_INVALID": PERMANENT,
    "TEXT_BLOCKED": REPEATED,
    "TEXT_UNKNOWN": REPEATED,
    "TEXT_UNREACHABLE": TRANSIENT,
    "TEXT_CARRIER_UNREACHABLE": TRANSIENT,
    "TEXT_TTL_EXPIRED": TRANSIENT,
}


def sms_failure_kind(provider_response: str) -> str | None:
    """PERMANENT, REPEATED, TRANSIENT or None (says nothing about the number) for an SMS failure."""
    lowered = provider_response.lower().replace(" ", "")
    for kind, phrases in _SMS_FAILURES:
        if any(phrase in lowered for phrase in phrases):
            return kind
    return None


def push_failure_kind(provider_response: str) -> str:
    """PERMANENT for a dead token or a disabled endpoint, TRANSIENT for any other push failure."""
    lowered = provider_response.lower().replace(" ", "")
    return PERMANENT if any(word in lowered for word in _DEAD_PUSH_RESPONSES) else TRANSIENT


class BadReceipt(ValueError):
    """A log event or notification that is not a delivery receipt we can read."""


@dataclass(frozen=True)
class Receipt:
    message_id: str
    delivered: bool
    at: datetime
    source: str  # "sns-sms", "sns-push", "eum-sms"
    provider_response: str = ""
    destination: str | None = None
    price_usd: Decimal | None = None
    carrier: str | None = None
    dwell_ms: int | None = None
    # PERMANENT / REPEATED / TRANSIENT for a failure (None: says nothing about the contact point).
    failure_kind: str | None = None

    @property
    def hard(self) -> bool:
        """Counts against the contact point (at once when permanent)."""
        return self.failure_kind in (PERMANENT, REPEATED)

    @property
    def status(self) -> str:
        return Status.DELIVERED if self.delivered else Status.FAILED

    @property
    def channel(self) -> str:
        return "push" if self.source == "sns-push" else "sms"

    def fields(self) -> dict[str, Any]:
        """What the receipt adds to the ledger item (the MESSAGE, or a RECEIPT of its own): the ledger's
        ``RECEIPT_FIELDS``, which the reconcile sweep merges from a RECEIPT into its MESSAGE."""
        return {
            "status": self.status,
            "provider_response": self.provider_response[:500] or None,
            "price_usd": self.price_usd,
            "carrier": self.carrier,
            "dwell_ms": self.dwell_ms,
            "receipt_at": iso_utc(self.at),
            "receipt_source": self.source,
            "hard_failure": self.hard or None,
            "failure_kind": self.failure_kind,
        }


# Bounds on what a receipt may carry into the ledger: a value DynamoDB cannot store (NaN, a number of
# more than 38 digits, a key over its size limit) would fail the write of the whole batch of receipts.
_MAX_PRICE_USD = Decimal(1000)
_MAX_DWELL_MS = 10**12
_MESSAGE_ID = re.compile(r"^[\x21-\x7e]{1,200}$")
_EARLIEST, _LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and 0 <= number <= _MAX_PRICE_USD else None


def _int(value: Any) -> int | None:
    try:
        number = int(value) if value is not None else None
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number is None or 0 <= number <= _MAX_DWELL_MS else None


def _text(value: Any, limit: int) -> str | None:
    return str(value)[:limit] if value not in (None, "") else None


def _message_id(value: Any) -> str:
    if not isinstance(value, str) or not _MESSAGE_ID.match(value):
        raise BadReceipt("message id missing, too long or not printable")
    return value


def _in_range(moment: datetime) -> datetime:
    if not _EARLIEST <= moment < _LATEST:
        raise BadReceipt("receipt time out of range")
    return moment


def _sns_log_time(text: str) -> datetime:
    # "2026-03-02 14:05:11.221" (UTC, no zone in the record)
    try:
        return _in_range(datetime.fromisoformat(text.replace(" ", "T")).replace(tzinfo=UTC))
    except ValueError:
        raise BadReceipt(f"unreadable notification timestamp {text[:40]!r}") from None


def parse_sns_delivery_log(record: Mapping[str, Any], log_group: str) -> Receipt:
    """One SNS delivery-status log record (SMS or push; success or failure) → :class:`Receipt`."""
    notification = record.get("notification")
    delivery = record.get("delivery")
    status = record.get("status")
    if not isinstance(notification, Mapping) or not isinstance(delivery, Mapping):
        raise BadReceipt("not an SNS delivery-status record (notification/delivery missing)")
    message_id = _message_id(notification.get("messageId"))
    if status not in ("SUCCESS", "FAILURE"):
        raise BadReceipt(f"unknown delivery status {status!r}")
    push = "/app/" in log_group or "statusCode" in delivery or "token" in delivery
    response = str(delivery.get("providerResponse") or "")
    kind: str | None = None
    if status == "FAILURE":
        kind = push_failure_kind(response) if push else sms_failure_kind(response)
    return Receipt(
        message_id=message_id,
        delivered=status == "SUCCESS",
        at=_sns_log_time(str(notification.get("timestamp", ""))),
        source="sns-push" if push else "sns-sms",
        provider_response=response,
        destination=_text(delivery.get("destination"), 300),
        price_usd=_decimal(delivery.get("priceInUSD")),
        carrier=_text(delivery.get("phoneCarrier"), 100),
        dwell_ms=_int(delivery.get("dwellTimeMs")),
        failure_kind=kind,
    )


def parse_eum_event(event: Mapping[str, Any]) -> Receipt | None:
    """An End User Messaging SMS v2 event → :class:`Receipt`; None for a non-final (progress) event."""
    event_type = event.get("eventType")
    if not isinstance(event_type, str) or not event_type:
        raise BadReceipt("not an End User Messaging SMS event (eventType missing)")
    message_id = _message_id(event.get("messageId"))
    if not event.get("isFinal", False):
        return None
    stamp = event.get("eventTimestamp")
    try:
        at = _in_range(datetime.fromtimestamp(int(stamp) / 1000, UTC))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        raise BadReceipt("unreadable eventTimestamp") from None
    description = str(event.get("messageStatusDescription") or event.get("messageStatus") or event_type)
    return Receipt(
        message_id=message_id,
        delivered=event_type in _EUM_DELIVERED,
        at=at,
        source="eum-sms",
        provider_response=f"{event_type[:100]}: {description[:300]}",
        destination=_text(event.get("destinationPhoneNumber"), 300),
        price_usd=_decimal(event.get("totalMessagePrice")),
        carrier=None,
        failure_kind=None if event_type in _EUM_DELIVERED else _EUM_FAILURES.get(event_type),
    )


def decode_awslogs(data: str) -> dict[str, Any]:
    """``awslogs.data`` (base64 of gzip of JSON) → the subscription payload."""
    try:
        return dict(json.loads(gzip.decompress(base64.b64decode(data))))
    except (ValueError, OSError, TypeError, EOFError, zlib.error, RecursionError) as exc:
        raise BadReceipt(f"awslogs data not base64/gzip/JSON ({exc.__class__.__name__})") from None


@dataclass
class ReceiptsService:
    state: ContactWriter
    ledger: LedgerWriter
    log_groups: frozenset[str]
    delivery_events_topic_arn: str
    hard_failure_threshold: int
    clock: Callable[[], datetime] = clock.now
    # The consent registry, for receipts that prove a confirmation in doubt (None: not looked at).
    consents: ConsentRegistry | None = None

    def process(self, event: Any, metrics: MetricsRecorder) -> int:
        """Handle a Logs subscription event or an SNS event; returns the number of receipts applied."""
        if not isinstance(event, Mapping):
            logger.warning("event of an unknown shape ignored")
            metrics.count("ReceiptRejected", source="unknown")
            return 0
        receipts = list(self._receipts(event, metrics))
        metrics.count("Receipts", len(receipts))
        if receipts:
            self.apply(receipts, metrics)
        return len(receipts)

    # ---- reading the two event shapes --------------------------------------------------------------

    def _receipts(self, event: Mapping[str, Any], metrics: MetricsRecorder) -> Iterable[Receipt]:
        if isinstance(event.get("awslogs"), Mapping):
            yield from self._from_logs(event, metrics)
        elif isinstance(event.get("Records"), list):
            yield from self._from_sns(event, metrics)
        else:
            logger.warning("event of an unknown shape ignored")
            metrics.count("ReceiptRejected", source="unknown")

    def _from_logs(self, event: Mapping[str, Any], metrics: MetricsRecorder) -> Iterable[Receipt]:
        try:
            payload = decode_awslogs(str((event.get("awslogs") or {}).get("data", "")))
        except BadReceipt as exc:
            logger.warning("unreadable log subscription event", extra={"error": str(exc)})
            metrics.count("BadReceipt")
            return
        if payload.get("messageType") == "CONTROL_MESSAGE":
            return
        log_group = str(payload.get("logGroup", ""))
        if log_group not in self.log_groups:
            logger.warning("log group not accepted for receipts", extra={"log_group": log_group})
            metrics.count("ReceiptRejected", source="logs")
            return
        log_events = payload.get("logEvents") or []
        if not isinstance(log_events, list):
            logger.warning(
                "log subscription event without a list of log events", extra={"log_group": log_group}
            )
            metrics.count("BadReceipt")
            return
        for log_event in log_events:
            event_id = str(log_event.get("id", ""))[:64] if isinstance(log_event, Mapping) else ""
            try:
                if not isinstance(log_event, Mapping):
                    raise BadReceipt("log event is not a JSON object")
                record = json.loads(str(log_event.get("message", "")))
                if not isinstance(record, dict):
                    raise BadReceipt("log message is not a JSON object")
                if "eventType" in record:
                    # An End User Messaging SMS v2 event delivered to a CloudWatch Logs destination.
                    receipt = parse_eum_event(record)
                    if receipt is not None:
                        yield receipt
                    continue
                yield parse_sns_delivery_log(record, log_group)
            except (BadReceipt, ValueError, RecursionError) as exc:
                logger.warning(
                    "log event is not a readable receipt",
                    extra={"log_group": log_group, "event_id": event_id, "error": str(exc)[:200]},
                )
                metrics.count("BadReceipt")

    def _from_sns(self, event: Mapping[str, Any], metrics: MetricsRecorder) -> Iterable[Receipt]:
        for record in event.get("Records") or []:
            sns = record.get("Sns") if isinstance(record, Mapping) else None
            if not isinstance(sns, Mapping):
                logger.warning("record is not an SNS notification")
                metrics.count("BadReceipt")
                continue
            topic = sns.get("TopicArn")
            if topic != self.delivery_events_topic_arn:
                logger.warning("notification from a topic not accepted for receipts", extra={"topic": topic})
                metrics.count("ReceiptRejected", source="sns")
                continue
            try:
                message = json.loads(str(sns.get("Message", "")))
                if not isinstance(message, dict):
                    raise BadReceipt("SNS message is not a JSON object")
                receipt = parse_eum_event(message)
            except (BadReceipt, ValueError, RecursionError) as exc:
                logger.warning("notification is not a readable receipt", extra={"error": str(exc)[:200]})
                metrics.count("BadReceipt")
                continue
            if receipt is not None:
                yield receipt

    # ---- applying them ---------------------------------------------------------------------------------

    def apply(self, receipts: list[Receipt], metrics: MetricsRecorder) -> None:
        latest: dict[str, Receipt] = {}
        for receipt in receipts:
            known = latest.get(receipt.message_id)
            if known is None or receipt.at >= known.at:
                latest[receipt.message_id] = receipt
        messages = self.ledger.get_messages(latest)
        writes: list[WriteOp] = []
        # (borrower, point) → the latest failure that counts / the latest delivery, in this batch.
        failures: dict[tuple[str, str], Receipt] = {}
        deliveries: dict[tuple[str, str], Receipt] = {}
        for message_id, receipt in latest.items():
            message = messages.get(message_id)
            if message is None:
                # Kept, and pointed out to the daily sweep: the sender may write the MESSAGE after this
                # (its batch's ledger write comes after its last publish).
                writes.append(self.ledger.receipt_op(message_id, receipt.fields(), receipt.at))
                writes.append(self.ledger.early_receipt_op(message_id, receipt.at))
                metrics.count("UnknownMessageId")
                logger.info("receipt for an unknown message id kept", extra={"message_id": message_id})
                # Confirmations are not in the ledger: one whose Publish is in doubt is proven by this.
                if self.consents is not None and receipt.channel == "sms" and receipt.destination:
                    settled = settle_confirmation_by_receipt(
                        self.consents, receipt.destination, message_id, receipt.at, self.clock()
                    )
                    if settled:
                        metrics.count("ConfirmationReceipt", len(settled))
                        logger.info("confirmation proven by its receipt", extra={"message_id": message_id})
                continue
            previous = message.get("receipt_at")
            if isinstance(previous, str):
                if parse_iso_utc(previous) > receipt.at:
                    continue  # an older receipt arriving late does not overwrite a newer one
                if previous == iso_utc(receipt.at) and message.get("status") == receipt.status:
                    continue  # the same receipt delivered again: already applied and counted
            writes.append(self.ledger.merged_message_op(message, receipt.fields()))
            channel = str(message.get("channel") or receipt.channel)
            metrics.count("Delivered" if receipt.delivered else "Failed", channel=channel)
            if message.get("borrower_id") and message.get("contact_point"):
                pair = (str(message["borrower_id"]), str(message["contact_point"]))
                # Only a message sent while failures were counted against its point can reset them.
                may_reset = receipt.delivered and bool(message.get("failures_counted"))
                seen = failures if receipt.hard else deliveries if may_reset else None
                if seen is not None and (pair not in seen or receipt.at >= seen[pair].at):
                    seen[pair] = receipt
        if writes:
            self.ledger.write(writes)
        # A delivery newer than every counted failure of its point in this batch proves the point works.
        resets = [p for p, d in deliveries.items() if p not in failures or d.at > failures[p].at]
        if resets:
            metrics.count("HardFailuresReset", self.state.reset_hard_failures(resets))
        for (borrower_id, point), receipt in failures.items():
            permanent = receipt.failure_kind == PERMANENT
            if self.state.record_hard_failure(
                borrower_id, point, threshold=self.hard_failure_threshold, permanent=permanent
            ):
                metrics.count("ContactPointUnusable")
                logger.warning(
                    "contact point marked unusable",
                    extra={
                        "borrower_id": borrower_id,
                        "contact": mask_contact_point(point),
                        "failure_kind": receipt.failure_kind,
                    },
                )


def settle_confirmation_by_receipt(
    state: ConsentRegistry, phone: str, message_id: str, receipt_at: datetime, at: datetime
) -> list[str]:
    """A delivery receipt whose message id the ledger does not know, for ``phone``, with the
    confirmations CLAIMED or AMBIGUOUS on that number. It is kept on each whose window holds it
    (:data:`dunning.receipt_matching.RECEIPT_WINDOW` after its claim; SNS stamps its SMS log with the
    publish time). Then every confirmation that this receipt and those kept before it prove sent,
    whatever other reply in doubt each receipt may be from, becomes SENT with the message id one
    consistent matching gives it (:func:`dunning.receipt_matching.prove`). A receipt already recorded as
    some message's changes nothing. Returns the inbound ids settled. One GetItem of the consent item,
    then an update per entry."""
    entries = state.confirmations_of(phone)
    proof = prove(entries, message_id, receipt_at)
    for inbound_id in proof.keep_on:
        if inbound_id not in proof.settle:
            state.note_confirmation_receipt(phone, inbound_id, message_id, receipt_at)
    settled: list[str] = []
    for inbound_id, own_id in sorted(proof.settle.items()):
        status = str(entries[inbound_id].get("status"))
        if state.resolve_confirmation(
            phone, inbound_id, status, CONFIRMATION_SENT, at, message_id=own_id, code="receipt"
        ):
            settled.append(inbound_id)
    return settled


def build_receipts(settings: ReceiptsSettings) -> ReceiptsService:
    """The receipts service wired to AWS as the settings say (clients are created on first use)."""
    dynamo = Dynamo()
    state = StateStore(dynamo, settings.state_table)
    return ReceiptsService(
        state=state.contact,
        consents=state.consent,
        ledger=Ledger(dynamo, settings.ledger_table, settings.ledger_retention_days),
        log_groups=settings.log_groups,
        delivery_events_topic_arn=settings.delivery_events_topic_arn,
        hard_failure_threshold=settings.hard_failure_threshold,
    )
