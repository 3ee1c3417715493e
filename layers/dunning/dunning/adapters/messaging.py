"""SNS as the messaging channel: Publish an SMS to a phone number or a push to a platform endpoint.

PublishBatch cannot target phone numbers or endpoints (AWS, not a moto gap), so each message is one
Publish, attempted exactly once: the client has no automatic retries, because a retry after a lost
response (a read timeout once SNS had accepted the message) sends the text twice. Errors are sorted here
into what the sender must do about them: retry later, give up on the contact point, give up on this
message, or admit that we do not know whether it went out. Only an answer proving that SNS did not
accept the message (throttling, validation, authorisation) may release a claim; a timeout, a dropped
connection or a 5xx may follow an acceptance, so it is UNKNOWN.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

# One attempt per Publish (see the module docstring); bounded waits so an invocation is not held for
# botocore's 60 s default on a connection that went quiet.
PUBLISH_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=15
)

# SNS refused the request for now: the message was not accepted and may be tried again later.
_RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "Throttled",
        "ThrottledException",
        "KMSThrottling",
        "KMSThrottlingException",
        "RequestLimitExceeded",
        # Not authorised (a role or key policy being fixed): refused before acceptance; SQS retries and,
        # past maxReceiveCount, the DLQ keeps the job with the reason for a redrive.
        "AuthorizationError",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
        "KMSAccessDenied",
        "KMSAccessDeniedException",
        "KMSDisabled",
        "KMSDisabledException",
        "KMSInvalidState",
        "KMSInvalidStateException",
        "KMSNotFound",
        "KMSNotFoundException",
        "KMSOptInRequired",
    }
)
_ENDPOINT_CODES = frozenset({"EndpointDisabled", "EndpointDisabledException"})
_INVALID_PARAMETER_CODES = frozenset(
    {"InvalidParameter", "InvalidParameterValue", "InvalidParameterException", "ParameterValueInvalid"}
)
# Refused for this message (validation, an opted-out number): not accepted, not worth retrying.
_REJECTED_CODES = _INVALID_PARAMETER_CODES | frozenset(
    {
        "ValidationError",
        "ValidationException",
        "OptedOut",
        "OptedOutException",
        "NotFound",
        "NotFoundException",
    }
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
    """Sort a Publish exception into a :class:`FailureKind`.

    A code that proves refusal decides; otherwise a 4xx answer is a refusal of this message and anything
    else (a 5xx, no answer at all) may have been accepted: UNKNOWN.
    """
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _RETRYABLE_CODES:
            return PublishError(FailureKind.RETRYABLE, code, message)
        if code in _ENDPOINT_CODES:
            return PublishError(FailureKind.CONTACT_POINT, code, message)
        lowered = message.lower()
        if code in _INVALID_PARAMETER_CODES and any(
            word in lowered for word in ("phone", "e164", "targetarn", "endpoint")
        ):
            return PublishError(FailureKind.CONTACT_POINT, code, message)
        if code in _REJECTED_CODES or 400 <= status < 500:
            return PublishError(FailureKind.REJECTED, code or "ClientError", message)
        return PublishError(FailureKind.UNKNOWN, code or f"HTTP {status}", message)
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
            self._client = boto3.client("sns", config=PUBLISH_CONFIG)
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
