"""Two-way SMS: what a borrower's reply means, and what we do about it.

:func:`classify` is pure: STOP family (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPT OUT,
OPTOUT, ARRET, REMOVE, TD, 退订, BAJA and plain-language revocations in every template language, such as
"stop texting me", "no more messages", "no me manden más mensajes", "别再发了"), WRONG_NUMBER ("wrong
number", "this isn't Ana's phone", "no soy …", "打错了"), DISPUTE ("I don't owe this", "no debo", "这不是
我的欠款"), START/UNSTOP, HELP, or anything else. Case, spacing, punctuation, accents and full-width
forms do not matter. When in doubt between an opt-out and something else, it is an opt-out: a missed
opt-out is a violation, a mistaken one costs a reply "START". :func:`intents` gives every meaning a
reply carries, for a reply that says two things at once (precedence in :data:`PRECEDENCE`).

Then, for a reply from a number (:class:`InboundService` records it and dispatches; consent changes are
:class:`ConsentReplies`, disputes :class:`DisputeReplies`):

- STOP → the consent registry item ``PHONE#<e164>/CONSENT`` is opted out for that number across all
  loans, ordered by the reply's received time (an older reply than the recorded change, or a
  redelivered one, changes nothing), in one transaction that also blocks the number on the contact item
  of every borrower with it (a send decided a moment before fails its claim and re-decides) and records
  the confirmation as owed. Exactly one confirmation per effective opt-out then names the lender and
  says no further messages follow (:class:`Confirmer`: a retry or the reconcile sweep completes it);
- START / UNSTOP → opted back in the same way, confirmed, and the borrowers' active loans re-planned now
  (an opt-out had taken them out of the due-index);
- a wrong number / not the borrower → the number is blocked like an opt-out (reason ``wrong_number``) for
  every borrower using it, with no text back, and an attention event; only a new consent lifts it (a
  START, or the lender's data giving SMS consent again: :mod:`dunning.indexer`);
- a dispute of the debt → an open dispute on the loan replied to (``previousPublishedMessageId``), else
  on every active loan of the borrowers with that number: the engine stops collection messages for it
  until verification is recorded (:func:`close_dispute`), and an attention event;
- HELP → a reply with the lender's name, help line and site, and how to opt out;
- anything else ("paid", "已还款") → recorded, reminders to the borrowers with that number paused for
  INBOUND_PAUSE_DAYS, and an event on the AttentionTopic for a person to act on.

Every reply is recorded in the ledger (the body too: the ledger and the attention event may hold it;
logs never do).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from dunning import clock
from dunning.adapters import Adapters
from dunning.adapters.attention import Attention
from dunning.adapters.consent import (
    CONFIRMATION_AMBIGUOUS,
    CONFIRMATION_CLAIMED,
    CONFIRMATION_FAILED,
    CONFIRMATION_OWED,
    CONFIRMATION_SENT,
)
from dunning.adapters.dynamo import Dynamo
from dunning.adapters.ledger import Ledger
from dunning.adapters.lender import Lender
from dunning.adapters.messaging import FailureKind, Messaging, PublishError, SmsOptions
from dunning.adapters.state import StateStore
from dunning.event_shapes import records_of
from dunning.ids import id_problem, storable_id
from dunning.items import iso_utc, parse_iso_utc, raw_status
from dunning.models import LoanStatus
from dunning.observability import MetricsRecorder, PackageLogger, mask_phone
from dunning.receipt_matching import PUBLISH_DEADLINE, RECEIPT_WINDOW, TURN_MARGIN
from dunning.settings import InboundSettings

if TYPE_CHECKING:  # the services' collaborators, as types only: nothing of dunning.ports runs
    from dunning.ports import (
        AttentionPublisher,
        CadenceReplanner,
        ConsentRegistry,
        ContactWriter,
        LedgerWriter,
        LenderReader,
        SmsSender,
    )

logger = PackageLogger(__name__)


class Intent(StrEnum):
    STOP = "STOP"
    START = "START"
    HELP = "HELP"
    # "wrong number", "not me": the number may be reassigned; consent belongs to its current subscriber.
    WRONG_NUMBER = "WRONG_NUMBER"
    # The borrower disputes the debt (FDCPA §809(b), Reg F §1006.38): no collection until verification.
    DISPUTE = "DISPUTE"
    OTHER = "OTHER"


# A whole reply equal to one of these (after normalising) is an opt-out.
STOP_KEYWORDS = frozenset(
    {
        "stop",
        "stopall",
        "stop all",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "revoke",
        "opt out",
        "optout",
        "arret",
        "remove",
        "td",
        "退订",
        "退訂",
        # Spanish: what es-US borrowers write to stop a program ("BAJA" is the common opt-out keyword).
        "baja",
        "alto",
        "para",
        "parar",
        "pare",
        "paren",
        "detener",
        "cancelar",
        "basta",
        "fin",
        # Chinese single words.
        "停止",
        "停",
        "取消",
    }
)
# These words anywhere in a reply are an opt-out: nobody writes them to mean something else.
_STRONG_STOP = re.compile(
    r"\b(stop|stopall|unsubscribe|optout|opt out|revoke)\b|退订|退訂|取消订阅|拒收|停止"
)
# Plain-language requests built on weaker words.
_PLAIN_STOP = (
    re.compile(
        r"\b(do not|dont|don't|never|no more)\b.{0,20}\b(text|texts|texting|message|messages|sms|contact)"
    ),
    re.compile(
        r"\b(quit|end|cancel|cease)\b.{0,20}\b(text|texts|texting|message|messages|messaging|sms|contact|contacting)"
    ),
    re.compile(r"\b(remove|take) (me|my number)\b"),
    re.compile(r"\b(leave me alone|opt me out)\b"),
    re.compile(r"\b(revoke|withdraw|cancel)\b.{0,20}\bconsent\b"),
    re.compile(r"\bno (more )?(texts|messages|sms|text messages)\b"),
    re.compile(r"\bi don'?t want\b.{0,20}\b(texts|messages|sms|reminders)\b"),
    # Spanish (accents are folded: "más" is "mas").
    re.compile(r"\bde baja\b"),
    re.compile(
        r"\bno\b(.{0,12})\b(me |nos )?(manden|mande|envien|envie|escriban|escriba|contacten|contacte)\b"
    ),
    re.compile(r"\b(dejen|deje|deja|paren|pare) de (enviar|mandar|escribir|contactar|molestar)"),
    re.compile(r"\bno (quiero|deseo)\b.{0,25}\b(mensajes|textos|sms|recordatorios)\b"),
    re.compile(r"\b(ya no|no mas|nunca mas)\b.{0,15}\b(mensajes|textos|sms)\b"),
    re.compile(r"\b(no|ya no) me molesten\b"),
    # Chinese.
    re.compile(
        r"(不要|别|別|请勿|請勿|勿)再?(给我|給我|跟我)?(发|發|打|联系|聯繫|打扰|打擾|烦|煩)|停止(发送|發送|联系|聯繫)"
    ),
    re.compile(r"不想再?(收到|接收|接到)|不再接收|拒绝接收|拒絕接收"),
)
# "Not the borrower / not their number": the number may be reassigned (TCPA consent belongs to the
# current subscriber). Phrased so that a denial of the *debt* ("this is not my debt", "不是我的欠款",
# "no soy responsable") stays a dispute.
_WRONG_NUMBER = (
    re.compile(r"\bwrong (number|person|phone|guy|girl|lady|man|one|text)\b"),
    re.compile(r"\b(its|it's|it is|that's|thats|this is)? ?not me\b"),
    re.compile(
        r"\b(this|that|it) (is not|isnt|isn't|aint|ain't) (\w+'?s )?(phone|number|cell|mobile|telephone)\b"
    ),
    re.compile(r"\b(this|that) (is not|isnt|isn't) \w+'s$"),
    re.compile(r"\b(i am not|i'm not|im not) (the person|who you|the one|him|her|them|this person)\b"),
    re.compile(r"\bno ?(one|body) (here )?(by|named|with|called) (that|this|the) name\b"),
    re.compile(r"\bi don'?t know (this person|him|her|them|anyone (named|by|called))\b"),
    # Alone it says "you have the wrong one"; after an amount ("el monto está equivocado") it disputes.
    re.compile(r"(?<!monto )(?<!saldo )(?<!cantidad )(?<!esta )\bequivocad[oa]s?\b"),
    re.compile(r"\bno soy\b(?! (responsable|culpable|deudor|deudora|quien debe))"),
    re.compile(r"\bno (conozco|conocemos) a\b|\bno es mi (numero|telefono|celular)\b"),
    re.compile(r"打错|打錯|发错|發錯|错号|錯號|号码错|號碼錯|不是本人|没有这个人|沒有這個人|不认识|不認識"),
    re.compile(r"不是我(?!的)|我不是(?!不|在|说|說|要|想|故意|没|沒)"),
)
# A denial or challenge of the debt (FDCPA §809(b), Reg F §1006.38): collection stops until verified.
_DISPUTE = (
    re.compile(r"\b(i|we) (don'?t|do not|never) owe\b|\bowe (you )?nothing\b"),
    re.compile(r"\bnot (my|our) (debt|loan|account|bill)\b"),
    re.compile(r"\bdisput(e|ed|ing)\b"),
    re.compile(
        r"\bnever (took|borrowed|had|opened|signed|applied for) (out )?(a |an |this |that |the |any )?"
        r"(loan|credit|account|debt|money|card)\b"
    ),
    re.compile(r"\b(wrong|incorrect) (amount|balance)\b|\b(amount|balance) is (wrong|incorrect)\b"),
    re.compile(r"\b(validate|verify|verification of|validation of|prove) (the |this |that |my )?debt\b"),
    re.compile(r"\bidentity theft\b"),
    re.compile(r"\bno (le |les )?(debo|debemos)\b|\bno es (mi|nuestra) deuda\b|\bdeuda no es mia\b"),
    re.compile(r"\b(disputo|disputa|no reconozco)\b|\bno soy (responsable|deudor|deudora)\b"),
    re.compile(
        r"\bnunca (pedi|saque|tuve|solicite|firme) (un |el |ese |este |ningun )?(prestamo|credito|cuenta)\b"
        r"|\b(monto|cantidad|saldo) (incorrect|equivocad)"
    ),
    re.compile(r"不是我的(欠款|债|債|贷款|貸款|借款|账单|賬單)|我(没|沒)有?(欠|借)|我不欠|没借过|沒借過"),
    re.compile(r"异议|異議|金额不对|金額不對|金额错|金額錯|不认这|不認這|不承认|不承認"),
)
# What a reply that says several things is handled as: an opt-out is never lost to another meaning (a
# missed one is a violation); a wrong number then outranks a dispute (the person is not the debtor, so
# their "I don't owe this" is a consequence, and texts stop for every borrower on the number).
PRECEDENCE = (Intent.STOP, Intent.WRONG_NUMBER, Intent.DISPUTE, Intent.START, Intent.HELP)
START_KEYWORDS = frozenset({"start", "unstop", "resume", "subscribe"})
HELP_KEYWORDS = frozenset({"help", "info", "ayuda", "帮助", "幫助"})
_CJK = re.compile(r"[\u3400-\u9fff]")


def normalise(text: str) -> str:
    """Case-, accent-, width- and punctuation-insensitive form of a reply, single-spaced."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    # Accents off (ARRÊT → arret), then anything that is not a letter, digit or apostrophe becomes space.
    decomposed = unicodedata.normalize("NFKD", folded)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    plain = plain.replace("’", "'")
    cleaned = "".join(ch if (ch.isalnum() or ch == "'") else " " for ch in plain)
    return " ".join(cleaned.split())


def intents(text: str) -> frozenset[Intent]:
    """Every meaning a reply carries ("I don't owe this, stop texting me" is STOP and DISPUTE); empty
    for a reply that means none of them. Pure; never raises."""
    words = normalise(text if isinstance(text, str) else "")
    if not words:
        return frozenset()
    squeezed = words.replace("'", "")
    found: set[Intent] = set()
    if words in STOP_KEYWORDS or squeezed in STOP_KEYWORDS or squeezed.replace(" ", "") in STOP_KEYWORDS:
        found.add(Intent.STOP)
    if _STRONG_STOP.search(squeezed) or any(p.search(words) or p.search(squeezed) for p in _PLAIN_STOP):
        found.add(Intent.STOP)
    if any(p.search(words) or p.search(squeezed) for p in _WRONG_NUMBER):
        found.add(Intent.WRONG_NUMBER)
    if any(p.search(words) or p.search(squeezed) for p in _DISPUTE):
        found.add(Intent.DISPUTE)
    if words in START_KEYWORDS:
        found.add(Intent.START)
    if words in HELP_KEYWORDS:
        found.add(Intent.HELP)
    return frozenset(found)


def classify(text: str) -> Intent:
    """What a borrower's reply asks for: the first of :data:`PRECEDENCE` it carries, else OTHER. Pure;
    never raises."""
    found = intents(text)
    return next((intent for intent in PRECEDENCE if intent in found), Intent.OTHER)


@dataclass(frozen=True)
class LenderContact:
    """What the replies say about the lender (from the lender profile)."""

    name: str
    help_phone: str
    help_url: str
    cn_name: str | None = None
    cn_signature: str | None = None


def reply_text(intent: Intent, lender: LenderContact, *, chinese: bool) -> str | None:
    """The automatic reply for an intent, or None (free text gets no automatic reply)."""
    if chinese:
        who = lender.cn_name or lender.name
        sign = f"【{lender.cn_signature}】" if lender.cn_signature else f"【{who}】"
        return {
            Intent.STOP: f"{sign}您已退订{who}的短信提醒，将不再收到任何短信。回复START可恢复。",
            Intent.START: f"{sign}您已恢复接收{who}的短信提醒。回复TD退订，回复HELP获取帮助。",
            Intent.HELP: f"{sign}{who}客服：{lender.help_phone}，{lender.help_url}。回复TD退订。",
        }.get(intent)
    return {
        Intent.STOP: f"{lender.name}: you are unsubscribed and will receive no further messages from us. "
        "Reply START to resubscribe.",
        Intent.START: f"{lender.name}: you will receive account reminders by text again. "
        "Reply STOP to opt out, HELP for help.",
        Intent.HELP: f"{lender.name}: for help call {lender.help_phone} or visit {lender.help_url}. "
        "Reply STOP to opt out.",
    }.get(intent)


class BadInbound(ValueError):
    """An SNS record that is not a two-way SMS reply."""


@dataclass(frozen=True)
class InboundMessage:
    origination: str  # the borrower's number
    destination: str  # our number they wrote to
    body: str
    inbound_id: str
    received_at: datetime
    # The SNS message id of our message this replies to, when the carrier says so.
    previous_message_id: str = ""

    @classmethod
    def from_sns(cls, sns: Mapping[str, Any], fallback_time: datetime) -> InboundMessage:
        try:
            payload = json.loads(str(sns.get("Message", "")))
        except ValueError:
            raise BadInbound("SNS message is not JSON") from None
        if not isinstance(payload, dict):
            raise BadInbound("SNS message is not a JSON object")
        origination = payload.get("originationNumber")
        if not isinstance(origination, str) or not re.fullmatch(r"\+\d{6,15}", origination):
            raise BadInbound("originationNumber missing or not E.164")
        stamp = sns.get("Timestamp")
        try:
            received = parse_iso_utc(str(stamp)) if stamp else fallback_time
        except ValueError:
            received = fallback_time
        if not _EARLIEST <= received < _LATEST:
            received = fallback_time  # a pause computed from year 9999 would overflow
        return cls(
            origination=origination,
            destination=str(payload.get("destinationNumber") or "")[:64],
            body=str(payload.get("messageBody") or ""),
            inbound_id=_inbound_id(payload.get("inboundMessageId") or sns.get("MessageId") or ""),
            received_at=received,
            previous_message_id=_previous_id(payload.get("previousPublishedMessageId")),
        )


_EARLIEST, _LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
_PLAIN_ID = re.compile(r"^[\x21-\x7e]{0,128}$")


def _previous_id(value: object) -> str:
    return value if isinstance(value, str) and _PLAIN_ID.match(value) else ""


def _inbound_id(value: object) -> str:
    """The reply's id as a ledger key part: as given when it is a plain short id, else a digest of it (a
    key over DynamoDB's size limit would fail the write, and with it an opt-out)."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if _PLAIN_ID.match(text):
        return text
    return "sha256-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class InboundService:
    """Records, classifies and acts on borrowers' replies (consent and disputes in their own classes)."""

    lender: LenderReader
    cadence: CadenceReplanner
    contacts: ContactWriter
    consents: ConsentRegistry
    ledger: LedgerWriter
    messaging: SmsSender
    attention: AttentionPublisher
    profile: LenderContact
    inbound_topic_arn: str
    origination_identity: str
    pause: timedelta
    clock: Callable[[], datetime]
    deferred: list[str] = field(default_factory=list)

    @property
    def confirmer(self) -> Confirmer:
        return Confirmer(self.consents, self.messaging, self.profile, self.origination_identity, self.clock)

    @property
    def consent(self) -> ConsentReplies:
        return ConsentReplies(
            self.lender,
            self.consents,
            self.cadence,
            self.attention,
            self.confirmer,
            self.origination_identity,
        )

    @property
    def disputes(self) -> DisputeReplies:
        return DisputeReplies(self.lender, self.contacts, self.ledger, self.attention)

    def process(self, event: Mapping[str, Any], metrics: MetricsRecorder) -> int:
        """Handle an SNS event of inbound replies; returns how many were acted on."""
        handled = 0
        records = records_of(event, metrics)
        metrics.count("InboundReplies", len(records))
        for record in records:
            sns = record.get("Sns")
            if not isinstance(sns, Mapping) or sns.get("TopicArn") != self.inbound_topic_arn:
                topic = sns.get("TopicArn") if isinstance(sns, Mapping) else None
                logger.warning("notification from a topic not accepted as inbound", extra={"topic": topic})
                metrics.count("InboundRejected")
                continue
            try:
                message = InboundMessage.from_sns(sns, self.clock())
            except BadInbound as exc:
                logger.warning("not a two-way SMS reply", extra={"error": str(exc)})
                metrics.count("InboundRejected")
                continue
            self.handle(message, metrics)
            handled += 1
        if self.deferred:
            # Every reply is recorded and acted on; a confirmation SNS refused for now is still owed. A
            # failed invocation makes Lambda retry the event, and the retry sends it (reconcile too).
            owed, self.deferred = self.deferred, []
            raise ConfirmationOwed(f"{len(owed)} confirmation(s) not accepted by SNS yet: {', '.join(owed)}")
        return handled

    def handle(self, message: InboundMessage, metrics: MetricsRecorder) -> Intent:
        intent = classify(message.body)
        phone, at = message.origination, message.received_at
        borrower_ids = self._borrowers_with_phone(phone, at, metrics)
        logger.info(
            "inbound reply",
            extra={"intent": intent.value, "phone": mask_phone(phone), "borrowers": len(borrower_ids)},
        )
        paused_until = at + self.pause if intent == Intent.OTHER and self.pause else None
        fields = {
            "phone": phone,
            "our_number": message.destination,
            "body": message.body[:1600],
            "intent": intent.value,
            "inbound_id": message.inbound_id,
            "borrower_ids": borrower_ids,
            "paused_until": iso_utc(paused_until) if paused_until else None,
        }
        partitions = [f"BORROWER#{b}" for b in borrower_ids] or [f"PHONE#{phone}"]
        recorded = {**fields, "borrower_ids": None}
        # The first partition's item is the gate: "handled" only once everything below is done, so an
        # invocation that failed half way (and is retried by Lambda) does the rest, while a redelivery
        # of a finished one is a no-op.
        gate = self.ledger.inbound_op(partitions[0], message.inbound_id, {**recorded, "handled": False}, at)
        first_time = self.ledger.put_unfinished(gate)
        if first_time and len(partitions) > 1:
            self.ledger.write(
                [self.ledger.inbound_op(p, message.inbound_id, recorded, at) for p in partitions[1:]]
            )
        chinese = bool(_CJK.search(message.body))
        self._act(message, intent, first_time, borrower_ids, paused_until, chinese, metrics)
        if first_time:
            done = {**recorded, "handled": True}
            self.ledger.write([self.ledger.inbound_op(partitions[0], message.inbound_id, done, at)])
        return intent

    def _act(
        self,
        message: InboundMessage,
        intent: Intent,
        first_time: bool,
        borrower_ids: list[str],
        paused_until: datetime | None,
        chinese: bool,
        metrics: MetricsRecorder,
    ) -> None:
        phone, at = message.origination, message.received_at
        if intent in (Intent.STOP, Intent.START, Intent.WRONG_NUMBER):
            outcome = self.consent.apply(message, intent, first_time, borrower_ids, chinese, metrics)
            if outcome == CONFIRMATION_OWED:
                self.deferred.append(mask_phone(phone))
            return
        if not first_time:
            metrics.count("InboundRedelivered")
            return
        if intent == Intent.HELP:
            self._reply(message, intent, chinese, metrics)
            metrics.count("HelpRequests")
            return
        if intent == Intent.DISPUTE:
            self.disputes.apply(message, borrower_ids, metrics)
            return
        for borrower_id in borrower_ids:
            if paused_until is not None:
                self.contacts.pause(borrower_id, paused_until)
        self.attention.publish(
            "inbound.free_text",
            {
                "phone": phone,
                "borrower_ids": borrower_ids,
                "body": message.body[:1600],
                "received_at": iso_utc(at),
                "inbound_id": message.inbound_id,
                "paused_until": iso_utc(paused_until) if paused_until else None,
            },
        )
        metrics.count("InboundFreeText")

    def _borrowers_with_phone(self, phone: str, at: datetime, metrics: MetricsRecorder) -> list[str]:
        """The borrowers whose number this is, sorted; one whose id cannot be a key part is left out
        (recorded ``data.invalid`` under its stand-in), so it never blocks the others' opt-out."""
        valid: list[str] = []
        for borrower_id in self.lender.borrower_ids_with_phone(phone):
            problem = id_problem(borrower_id)
            if problem is None:
                valid.append(borrower_id)
                continue
            stand_in = storable_id(borrower_id)
            metrics.count("InvalidItem")
            logger.warning("invalid borrower id", extra={"borrower_id": stand_in, "reason": problem})
            reason = f"borrower {stand_in}: borrower_id: {problem} (found by a reply to its number)"
            try:
                self.ledger.write([self.ledger.invalid_id_op("borrower", stand_in, reason, at)])
            except Exception:
                # The record is for the lender to fix the item; the reply must go on without it.
                logger.exception("invalid borrower id not recorded", extra={"borrower_id": stand_in})
        return sorted(valid)

    def _reply(
        self, message: InboundMessage, intent: Intent, chinese: bool, metrics: MetricsRecorder
    ) -> None:
        text = reply_text(intent, self.profile, chinese=chinese)
        if text is None:
            return
        # Reply from the number the borrower wrote to, so the conversation stays on one number.
        origin = message.destination if message.destination.startswith("+") else self.origination_identity
        # Its receipt must not be taken for that of a confirmation in doubt on the same number: announced
        # before the Publish (the invocation may die right after it), told apart by id once it is known.
        answered_at = self.clock()
        announced = self.consents.note_other_reply(message.origination, message.inbound_id, answered_at)
        try:
            message_id = self.messaging.send_sms(
                message.origination, text, SmsOptions(origination_identity=origin)
            )
        except PublishError as exc:
            # A HELP answer is a courtesy: logged and counted, not retried.
            logger.error("reply not sent", extra={"intent": intent.value, "code": exc.code})
            metrics.count("ReplyFailed")
            if exc.kind != FailureKind.UNKNOWN and announced:
                self.consents.note_other_reply(  # SNS did not take it
                    message.origination, message.inbound_id, answered_at, "", announced
                )
            return
        self.consents.note_other_reply(
            message.origination, message.inbound_id, answered_at, message_id, announced
        )
        metrics.count("Replies", intent=intent.value)


@dataclass
class ConsentReplies:
    """STOP, START and wrong-number replies: the consent change, its confirmation and, after a START,
    the re-planning of the borrowers' active loans."""

    lender: LenderReader
    consents: ConsentRegistry
    cadence: CadenceReplanner
    attention: AttentionPublisher
    confirmer: Confirmer
    origination_identity: str

    def apply(
        self,
        message: InboundMessage,
        intent: Intent,
        first_time: bool,
        borrower_ids: list[str],
        chinese: bool,
        metrics: MetricsRecorder,
    ) -> str | None:
        """STOP, START or a wrong number: one ordered, transactional consent change, then its
        confirmation (owed in the same write, so a retry or the sweep sends it if this invocation cannot).
        Returns the confirmation's status after this attempt (None when none is owed)."""
        phone, at = message.origination, message.received_at
        opted_out = intent != Intent.START
        origin = message.destination if message.destination.startswith("+") else self.origination_identity
        # Someone who is not the borrower gets no confirmation: we stop, and text them nothing more.
        owed = (
            None
            if intent == Intent.WRONG_NUMBER
            else {"intent": intent.value, "chinese": chinese, "origin": origin}
        )
        change = self.consents.record_consent(
            phone,
            opted_out=opted_out,
            at=at,
            source="sms-reply",
            reason=_CONSENT_REASON[intent],
            inbound_id=message.inbound_id,
            borrower_ids=borrower_ids,
            confirmation=owed,
        )
        if not change.recorded:
            logger.info("consent change not applied", extra={"intent": intent.value, "why": change.why_not})
            metrics.count("ConsentChangeIgnored")
        else:
            metrics.count({Intent.STOP: "OptOuts", Intent.START: "OptIns"}.get(intent, "WrongNumbers"))
        # This reply is still the latest change when it was recorded now or by an earlier attempt.
        latest = change.recorded or change.why_not == "redelivered"
        if intent == Intent.START and latest and (change.effective or first_time):
            self._replan(borrower_ids, at, metrics)
        if intent == Intent.WRONG_NUMBER and first_time:
            self.attention.publish(
                "inbound.wrong_number",
                {
                    "phone": phone,
                    "borrower_ids": borrower_ids,
                    "received_at": iso_utc(at),
                    "inbound_id": message.inbound_id,
                    "classification": intent.value,
                    "action": "texts to this number stopped for every borrower using it until a new consent",
                },
            )
        if owed is None:
            return None
        return self.confirmer.complete(phone, message.inbound_id, metrics)

    def _replan(self, borrower_ids: list[str], at: datetime, metrics: MetricsRecorder) -> None:
        loan_owner = {
            loan_id: borrower_id
            for borrower_id in borrower_ids
            for loan_id in self.lender.loan_ids_of_borrower(borrower_id)
        }
        if not loan_owner:
            return
        loans, _ = self.lender.get_many(loan_ids=loan_owner)
        for loan_id in loan_owner:
            if raw_status(loans.get(loan_id)) != LoanStatus.ACTIVE:
                continue
            # One conditional update per loan: STARTs are rare, and the update needs no shard count.
            if self.cadence.replan_earlier(
                loan_id, at, at, "consent.sms_restored", "the borrower texted START: reminders may resume"
            ):
                metrics.count("Replanned")


@dataclass
class DisputeReplies:
    """Replies that dispute the debt: a dispute opened on the loans concerned, and an attention event."""

    lender: LenderReader
    contacts: ContactWriter
    ledger: LedgerWriter
    attention: AttentionPublisher

    def apply(self, message: InboundMessage, borrower_ids: list[str], metrics: MetricsRecorder) -> None:
        """Open a dispute on the debt the reply is about (or every active loan of the borrowers with that
        number): collection messages stop until verification is recorded."""
        at = message.received_at
        loans = self._disputed_loans(message, borrower_ids)
        opened = [
            loan_id
            for loan_id, borrower_id in sorted(loans.items())
            if self.contacts.open_dispute(
                borrower_id,
                loan_id,
                at=at,
                inbound_id=message.inbound_id,
                classification=Intent.DISPUTE.value,
            )
        ]
        if opened:
            self.ledger.write(
                [
                    self.ledger.dispute_op(loan_id, loans[loan_id], message.inbound_id, at)
                    for loan_id in opened
                ]
            )
        logger.info("dispute recorded", extra={"loans": len(loans), "opened": len(opened)})
        metrics.count("Disputes")
        self.attention.publish(
            "inbound.dispute",
            {
                "phone": message.origination,
                "borrower_ids": borrower_ids,
                "loan_ids": sorted(loans),
                "body": message.body[:1600],
                "classification": Intent.DISPUTE.value,
                "received_at": iso_utc(at),
                "inbound_id": message.inbound_id,
                "action": "collection messages suppressed until verification is recorded "
                "(dunning.inbound.close_dispute)",
            },
        )

    def _disputed_loans(self, message: InboundMessage, borrower_ids: list[str]) -> dict[str, str]:
        """{loan_id: borrower_id}: the loan of the message replied to, else the borrowers' active loans."""
        if message.previous_message_id:
            replied_to = self.ledger.get_messages([message.previous_message_id]).get(
                message.previous_message_id
            )
            if replied_to is not None and str(replied_to.get("borrower_id")) in borrower_ids:
                return {str(replied_to["loan_id"]): str(replied_to["borrower_id"])}
        owner = {
            loan_id: borrower_id
            for borrower_id in borrower_ids
            for loan_id in self.lender.loan_ids_of_borrower(borrower_id)
        }
        if not owner:
            return {}
        loans, _ = self.lender.get_many(loan_ids=owner)
        return {i: b for i, b in owner.items() if raw_status(loans.get(i)) == LoanStatus.ACTIVE}


_CONSENT_REASON = {Intent.STOP: "stop", Intent.START: "start", Intent.WRONG_NUMBER: "wrong_number"}


class ConfirmationOwed(RuntimeError):
    """Raised after a whole event is handled when SNS refused a confirmation for now: Lambda retries."""


@dataclass
class Confirmer:
    """Sends the confirmation owed for a consent change, exactly once.

    The owed entry is claimed (conditional write: one caller wins) before the Publish, so a retry and the
    sweep never both send it. Accepted → SENT; refused for now → OWED again; refused for good → FAILED;
    no answer → AMBIGUOUS. A claim whose holder died stays CLAIMED until the sweep, after
    :data:`CLAIM_TIMEOUT`, records it AMBIGUOUS (it may have gone out). SNS's delivery receipts settle
    the doubt (:func:`dunning.receipts.settle_confirmation_by_receipt`: a receipt for the number stamped
    after the claim proves the Publish, → SENT); one still CLAIMED or AMBIGUOUS after ``receipt_horizon``
    without a receipt never reached SNS, so the sweep makes it OWED again and sends it, claimed as ever.
    """

    state: ConsentRegistry
    messaging: SmsSender
    profile: LenderContact
    origination_identity: str
    clock: Callable[[], datetime]
    receipt_horizon: timedelta = timedelta(minutes=60)

    def complete(self, phone: str, inbound_id: str, metrics: MetricsRecorder) -> str | None:
        """Send the confirmation of one reply if it is owed; returns its status after, None if none."""
        now = self.clock()
        entry = self.state.claim_confirmation(phone, inbound_id, now)
        if entry is None:
            current = self.state.confirmation(phone, inbound_id)
            return str(current["status"]) if current else None
        intent = Intent(str(entry.get("intent")))
        text = reply_text(intent, self.profile, chinese=bool(entry.get("chinese")))
        origin = str(entry.get("origin") or self.origination_identity)
        if text is None:  # pragma: no cover - STOP and START always have a text
            self._settle(phone, inbound_id, now, CONFIRMATION_FAILED, code="no text")
            return CONFIRMATION_FAILED
        # To the other confirmations in doubt on the number this one is another reply: announced before
        # its Publish and told apart by id after it (as `_reply` does for HELP answers).
        announced = self.state.note_other_reply(phone, inbound_id, now)
        if self.clock() - now > PUBLISH_DEADLINE:
            # Slow writes since the claim: published now, its receipt could fall outside the window
            # that proves it, so it is not published; owed again, Lambda's retry or the sweep sends it.
            self.state.note_other_reply(phone, inbound_id, now, "", announced)
            self._settle(phone, inbound_id, now, CONFIRMATION_OWED, code="late")
            return CONFIRMATION_OWED
        try:
            message_id = self.messaging.send_sms(phone, text, SmsOptions(origination_identity=origin))
        except PublishError as exc:
            status = {
                FailureKind.RETRYABLE: CONFIRMATION_OWED,
                FailureKind.UNKNOWN: CONFIRMATION_AMBIGUOUS,
            }.get(exc.kind, CONFIRMATION_FAILED)
            if exc.kind != FailureKind.UNKNOWN and announced:
                self.state.note_other_reply(phone, inbound_id, now, "", announced)  # SNS did not take it
            self._settle(phone, inbound_id, now, status, code=exc.code)
            logger.error(
                "confirmation not sent", extra={"intent": intent.value, "code": exc.code, "now": status}
            )
            metrics.count("ReplyFailed")
            return status
        self._settle(phone, inbound_id, now, CONFIRMATION_SENT, message_id=message_id)
        self.state.note_other_reply(phone, inbound_id, now, message_id, announced)
        metrics.count("Replies", intent=intent.value)
        return CONFIRMATION_SENT

    def _settle(
        self,
        phone: str,
        inbound_id: str,
        claimed: datetime,
        status: str,
        *,
        message_id: str = "",
        code: str = "",
    ) -> None:
        """Record the outcome of this claim. Unless it is unknown, the number's confirmation turn is given
        back in the same write, if that is well within the turn (nobody else can hold it yet)."""
        at = self.clock()
        self.state.settle_confirmation(
            phone,
            inbound_id,
            status,
            at,
            message_id=message_id,
            code=code,
            give_turn_back=status != CONFIRMATION_AMBIGUOUS and at - claimed < RECEIPT_WINDOW - TURN_MARGIN,
        )

    def sweep(self, now: datetime, metrics: MetricsRecorder) -> dict[str, int]:
        """Complete every confirmation still owed; a claim older than CLAIM_TIMEOUT becomes AMBIGUOUS."""
        done: dict[str, int] = {}
        for pointer in self.state.owed_confirmations():
            phone, inbound_id = str(pointer.get("phone", "")), str(pointer.get("inbound_id", ""))
            entry = self.state.confirmation(phone, inbound_id)
            status = str((entry or {}).get("status", ""))
            outcome: str | None
            if status in (CONFIRMATION_CLAIMED, CONFIRMATION_AMBIGUOUS):
                since = (entry or {}).get("claimed_at") or (entry or {}).get("updated_at")
                age = now - parse_iso_utc(str(since or pointer.get("owed_at")))
                if age >= self.receipt_horizon:
                    # No receipt within the horizon: SNS never accepted it (its delivery-status log
                    # would have said so within minutes), so it is owed and sent, claimed as ever.
                    if not self.state.resolve_confirmation(
                        phone, inbound_id, status, CONFIRMATION_OWED, now, code="no receipt"
                    ):
                        continue  # a receipt or another sweep moved it first
                    metrics.count("ConfirmationResent")
                    outcome = self.complete(phone, inbound_id, metrics)
                elif status == CONFIRMATION_CLAIMED and age >= CLAIM_TIMEOUT:
                    self.state.resolve_confirmation(
                        phone, inbound_id, status, CONFIRMATION_AMBIGUOUS, now, code="claim expired"
                    )
                    outcome = CONFIRMATION_AMBIGUOUS
                else:
                    continue
            elif status == CONFIRMATION_OWED:
                outcome = self.complete(phone, inbound_id, metrics)
            else:
                self.state.settle_confirmation(phone, inbound_id, status or CONFIRMATION_FAILED, now)
                outcome = status or None
            if outcome:
                done[outcome] = done.get(outcome, 0) + 1
        return done


# A claimed confirmation is published within seconds; one claimed longer ago than this lost its sender.
CLAIM_TIMEOUT = timedelta(minutes=15)


def close_dispute(adapters: Adapters, loan_id: str, *, at: datetime, verification: str) -> bool:
    """Close the open dispute of a loan once verification of the debt was sent to the borrower.

    ``verification`` says what was sent and how (it is kept in the ledger). The dispute is removed from
    the borrower's contact item, a ``DISPUTE_CLOSED`` item recorded under the loan, and the loan planned
    again now (the dispute had taken it out of the due-index). Returns False if no dispute was open.
    """
    if not verification.strip():
        raise ValueError("say what verification was sent (it is the record that collection may resume)")
    item = adapters.lender.get_loan(loan_id)
    if item is None or not isinstance(item.get("borrower_id"), str):
        raise ValueError(f"loan {loan_id} not found in the Loans table")
    borrower_id = str(item["borrower_id"])
    record = adapters.state.contact.close_dispute(borrower_id, loan_id)
    if record is None:
        return False
    inbound_id = str(record.get("inbound_id") or "operator")
    adapters.ledger.write(
        [adapters.ledger.dispute_op(loan_id, borrower_id, inbound_id, at, closed_by=verification[:500])]
    )
    adapters.state.cadence.replan_earlier(
        loan_id,
        at,
        at,
        "dispute.verified",
        "verification of the disputed debt was sent: collection may resume",
    )
    logger.info("dispute closed", extra={"loan_id": loan_id})
    return True


def lender_contact() -> LenderContact:
    """The lender's name and help contacts from the lender profile (the same one messages use)."""
    from dunning.profile import load_profile

    profile = load_profile()
    zh = profile.resolved("zh-CN")
    return LenderContact(
        name=profile.name,
        help_phone=profile.help_phone,
        help_url=profile.help_url,
        cn_name=zh.name,
        cn_signature=profile.cn_signature,
    )


def build_inbound(settings: InboundSettings) -> InboundService:
    """The inbound service wired to AWS as the settings say (clients are created on first use)."""
    dynamo = Dynamo()
    state = StateStore(dynamo, settings.state_table)
    return InboundService(
        lender=Lender(dynamo, settings.loans_table, settings.borrowers_table),
        cadence=state.cadence,
        contacts=state.contact,
        consents=state.consent,
        ledger=Ledger(dynamo, settings.ledger_table, settings.ledger_retention_days),
        messaging=Messaging(),
        attention=Attention(settings.attention_topic_arn),
        profile=lender_contact(),
        inbound_topic_arn=settings.inbound_topic_arn,
        origination_identity=settings.sms_origination_identity,
        pause=timedelta(days=settings.inbound_pause_days),
        clock=clock.now,
    )
