"""What a failed Publish means for the claim: only a proven refusal may release it (issue 10, break 3)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from dunning.adapters.messaging import PUBLISH_CONFIG, FailureKind, classify


def client_error(code: str, status: int, message: str = "") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "Publish",
    )


@pytest.mark.parametrize(
    ("code", "status", "message", "kind"),
    [
        ("Throttling", 400, "Rate exceeded", FailureKind.RETRYABLE),
        ("ThrottledException", 429, "", FailureKind.RETRYABLE),
        ("AuthorizationError", 403, "not authorized to perform SNS:Publish", FailureKind.RETRYABLE),
        ("KMSAccessDenied", 400, "", FailureKind.RETRYABLE),
        ("InvalidParameter", 400, "Invalid parameter: PhoneNumber", FailureKind.CONTACT_POINT),
        ("EndpointDisabled", 400, "Endpoint is disabled", FailureKind.CONTACT_POINT),
        ("InvalidParameter", 400, "Invalid parameter: Message too long", FailureKind.REJECTED),
        ("ValidationError", 400, "", FailureKind.REJECTED),
        ("OptedOut", 400, "", FailureKind.REJECTED),
        ("SomethingNew", 400, "", FailureKind.REJECTED),  # a 4xx answer is a refusal
        ("InternalError", 500, "", FailureKind.UNKNOWN),  # may follow an acceptance
        ("ServiceUnavailable", 503, "", FailureKind.UNKNOWN),
        ("InternalFailure", 500, "", FailureKind.UNKNOWN),
        ("", 0, "", FailureKind.UNKNOWN),
    ],
)
def test_an_answer_sorts_into_what_the_claim_may_do(
    code: str, status: int, message: str, kind: FailureKind
) -> None:
    assert classify(client_error(code, status, message)).kind == kind


@pytest.mark.parametrize(
    "exc",
    [
        ReadTimeoutError(endpoint_url="https://sns.us-east-1.amazonaws.com/"),
        ConnectionClosedError(endpoint_url="https://sns.us-east-1.amazonaws.com/"),
        EndpointConnectionError(endpoint_url="https://sns.us-east-1.amazonaws.com/"),
        RuntimeError("anything else"),
    ],
)
def test_no_answer_is_unknown_and_keeps_the_claim(exc: Exception) -> None:
    assert classify(exc).kind == FailureKind.UNKNOWN


def test_the_publish_client_makes_one_attempt() -> None:
    assert PUBLISH_CONFIG.retries == {"mode": "standard", "total_max_attempts": 1}
