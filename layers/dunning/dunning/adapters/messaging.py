"""SNS as the messaging channel: Publish an SMS to a phone number or a push to a platform endpoint.

PublishBatch cannot target phone numbers or endpoints (AWS, not a moto gap), so each message is one
Publish. Errors are sorted here into what the sender must do about them: retry later, give up on the
contact point, give up on this message, or admit that we do not know whether it went out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

# After botocore's own retries these still mean "not now": the message was not accepted.
_RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "Throttled",
        "ThrottledException",
        "KMSThrottling",
        "KMSThrottlingException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestLimitExceeded",
    }
)
_ENDPOINT_CODES = frozenset({"EndpointDisabled", "EndpointDisabledException"})
_INVALID_PARAMETER_CODES = frozenset(
    {"InvalidParameter", "InvalidParameterValue", "InvalidParameterException"}
)


class FailureKind(StrEnum):
    RETRYABLE = "retryable"  # not accepted; the same message may be tried again later
    CONTACT_POINT = "contact_point"  # the number or endpoint will never work: mark it unusable
    REJECTED = "rejected"  # this message was refused (not the contact point): do not retry it
    UNKNOWN = "unknown"  # no answer: it may or may not have gone out


class PublishError(Exception):
    """A Publish that did not return a message id, with what the sender should do about it."""

    def __init__(self, kind: FailureKind, code: str, detail: str) -> None:
        super().__init__(f"{kind.value}: {code}")
        self.kind = kind
        self.code = code
        self.detail = detail


def classify(exc: Exception) -> PublishError:
    """Sort a Publish exception into a :class:`FailureKind`."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", ""))
        if code in _RETRYABLE_CODES:
            return PublishError(FailureKind.RETRYABLE, code, message)
        if code in _ENDPOINT_CODES:
            return PublishError(FailureKind.CONTACT_POINT, code, message)
        lowered = message.lower()
        if code in _INVALID_PARAMETER_CODES and any(
            word in lowered for word in ("phone", "e164", "targetarn", "endpoint")
        ):
            return PublishError(FailureKind.CONTACT_POINT, code, message)
        return PublishError(FailureKind.REJECTED, code or "ClientError", message)
    if isinstance(exc, BotoCoreError):
        # A read timeout or a dropped connection after the request left: SNS may have accepted it.
        return PublishError(FailureKind.UNKNOWN, exc.__class__.__name__, str(exc))
    return PublishError(FailureKind.UNKNOWN, exc.__class__.__name__, "")


@dataclass(frozen=True)
class SmsOptions:
    """Account-level SMS settings from the sender's settings: origination identity and price cap."""

    origination_identity: str = ""
    max_price_usd: str = ""

    def attributes(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            # Collections reminders are transactional (time-sensitive, not marketing): better routes.
            "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"},
        }
        identity = self.origination_identity
        if identity.startswith("+"):
            attributes["AWS.MM.SMS.OriginationNumber"] = {"DataType": "String", "StringValue": identity}
        elif identity:
            attributes["AWS.SNS.SMS.SenderID"] = {"DataType": "String", "StringValue": identity}
        if self.max_price_usd:
            attributes["AWS.SNS.SMS.MaxPrice"] = {"DataType": "Number", "StringValue": self.max_price_usd}
        return attributes


class Messaging:
    """SNS Publish to phone numbers and platform endpoints (client created on first use)."""

    def __init__(self, client: SNSClient | None = None) -> None:
        self._client = client

    @property
    def client(self) -> SNSClient:
        if self._client is None:
            self._client = boto3.client("sns")
        return self._client

    def send_sms(self, phone: str, text: str, options: SmsOptions) -> str:
        """Publish one SMS; returns the SNS message id or raises :class:`PublishError`."""
        try:
            response = self.client.publish(
                PhoneNumber=phone, Message=text, MessageAttributes=options.attributes()
            )
        except Exception as exc:
            raise classify(exc) from exc
        return response["MessageId"]

    def send_push(self, endpoint_arn: str, message_json: str) -> str:
        """Publish one push (``MessageStructure=json``) to an endpoint; raises :class:`PublishError`."""
        try:
            response = self.client.publish(
                TargetArn=endpoint_arn, Message=message_json, MessageStructure="json"
            )
        except Exception as exc:
            raise classify(exc) from exc
        return response["MessageId"]
