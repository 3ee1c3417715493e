"""The demo's phone network: delivery-status logs for what the stack published, and borrowers' replies.

On embedded moto the SMS log and the push endpoints' messages can be read back; the carrier turns them
into the CloudWatch Logs subscription events the receipts function gets in AWS (a tenth a tick late),
and some borrowers answer (STOP late at night, HELP, a few words), delivered to the inbound function
through the InboundTopic at the instant they were written.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dunning_local import lambda_events as ev
from dunning_local import portfolio
from dunning_local.prices import sms_part_price
from dunning_local.stack import LocalStack

LENDER_NUMBER = "+18885550100"  # the lender's (fictional) toll-free origination number
STOP_WORDS = ["STOP", "stop", "Stop texting me", "UNSUBSCRIBE", "revoke", "退订"]
FREE_TEXT = {"en": ["paid", "I dispute this", "I lost my job, can we talk?"], "zh": ["已还款", "我有异议"]}


@dataclass
class _Reply:
    at: datetime
    phone: str
    body: str


@dataclass
class Carrier:
    """The carrier and the borrowers' phones around one local stack (``call`` invokes a function)."""

    stack: LocalStack
    rng: random.Random
    call: Callable[[str, Any, datetime], Any]
    # The book is generated when the simulation seeds; a carrier without one has no borrowers.
    book: Callable[[], portfolio.Portfolio]
    # In-process moto only: the SMS log and endpoint messages cannot be read back from a server.
    embedded: bool = True
    sms_seen: int = 0
    push_seen: dict[str, int] = field(default_factory=dict)
    late_receipts: list[tuple[str, list[tuple[datetime, dict[str, Any]]]]] = field(default_factory=list)
    replies: list[_Reply] = field(default_factory=list)
    replied: set[str] = field(default_factory=set)
    inbound_count: Counter[str] = field(default_factory=Counter)

    def report(self, at: datetime) -> None:
        """Delivery-status logs for everything published since the last call (some arrive a tick late)."""
        if not self.embedded:
            return
        from moto.sns.models import sns_backends

        backend = sns_backends[self.stack.account_id][self.stack.region]
        region, account = self.stack.region, self.stack.account_id
        sms_items = list(backend.sms_messages.items())[self.sms_seen :]
        self.sms_seen += len(sms_items)
        by_group: dict[str, list[tuple[datetime, dict[str, Any]]]] = defaultdict(list)
        book = self.book()
        by_phone = {b.get("phone"): b for b in book.borrowers if b.get("phone")}
        for message_id, (phone, _body) in sms_items:
            ok = phone not in book.unreachable
            group = f"sns/{region}/{account}/DirectPublishToPhoneNumber" + ("" if ok else "/Failure")
            country = (by_phone.get(phone) or {}).get("address", {}).get("country", "US")
            by_group[group].append(
                (
                    at,
                    ev.sms_delivery_record(message_id, phone, at, success=ok, price=sms_part_price(country)),
                )
            )
            if ok and phone in by_phone:
                self._maybe_reply(by_phone[phone], at)
        apps_prefix = f"sns/{region}/{account}/app"
        for app in backend.applications.values():
            for endpoint in backend.platform_endpoints.values():
                if endpoint.application.arn != app.arn:
                    continue
                seen = self.push_seen.get(endpoint.arn, 0)
                new = list(endpoint.messages.items())[seen:]
                self.push_seen[endpoint.arn] = seen + len(new)
                for message_id, _ in new:
                    by_group[f"{apps_prefix}/{app.platform}/{app.name}"].append(
                        (at, ev.push_delivery_record(message_id, endpoint.arn, at, success=True))
                    )
        for group, records in self.late_receipts:
            by_group[group] += [(at, r) for _, r in records]
        self.late_receipts.clear()
        for group, records in by_group.items():
            now_part: list[tuple[datetime, dict[str, Any]]] = []
            later: list[tuple[datetime, dict[str, Any]]] = []
            for record in records:
                (later if self.rng.random() < 0.1 else now_part).append(record)
            if later:
                self.late_receipts.append((group, later))
            for i in range(0, len(now_part), 200):
                self.call(
                    "receipts",
                    ev.logs_subscription_event(group, now_part[i : i + 200]),
                    at + timedelta(minutes=1),
                )

    def _maybe_reply(self, borrower: dict[str, Any], at: datetime) -> None:
        """Some borrowers answer: STOP (late at night), HELP, or a few words for a person to read."""
        phone = borrower["phone"]
        if phone in self.replied or not phone.startswith("+1"):
            return  # example numbers outside North America are shared by many borrowers
        roll = self.rng.random()
        zone_name = borrower.get("time_zone") or "America/New_York"
        try:
            from zoneinfo import ZoneInfo

            zone = ZoneInfo(zone_name)
        except (KeyError, ValueError):
            zone = ZoneInfo("America/New_York")
        if roll < 0.04:
            local = at.astimezone(zone)
            night = local.replace(hour=23, minute=0, second=0, microsecond=0)
            if night <= local:
                night += timedelta(days=1)
            self.replied.add(phone)
            self.replies.append(_Reply(night.astimezone(UTC), phone, self.rng.choice(STOP_WORDS)))
            if self.rng.random() < 0.25:
                self.replies.append(_Reply(night.astimezone(UTC) + timedelta(hours=30), phone, "START"))
        elif roll < 0.05:
            self.replied.add(phone)
            self.replies.append(_Reply(at + timedelta(minutes=40), phone, "HELP"))
        elif roll < 0.07:
            self.replied.add(phone)
            lang = "zh" if borrower.get("locale", "").startswith("zh") else "en"
            self.replies.append(_Reply(at + timedelta(hours=2), phone, self.rng.choice(FREE_TEXT[lang])))

    def deliver_replies(self, until: datetime) -> None:
        due = sorted((r for r in self.replies if r.at <= until), key=lambda r: r.at)
        self.replies = [r for r in self.replies if r.at > until]
        for n, reply in enumerate(due):
            payload = ev.inbound_sms(
                reply.phone, LENDER_NUMBER, reply.body, inbound_id=f"in-{reply.at:%Y%m%d%H%M}-{n}"
            )
            self.inbound_count[reply.body.split()[0].upper() if reply.body.isascii() else reply.body] += 1
            self.call("inbound", ev.sns_event(self.stack.topics["InboundTopic"], payload, reply.at), reply.at)
