"""Dynamo's batch operations under throttling: a request refused whole is retried like unprocessed items.

botocore retries a throttled request a few times itself; past that, BatchWriteItem and BatchGetItem raise.
A sender's ledger write carries the records of messages SNS already accepted, so giving it up after
botocore's few quick attempts (seen at 30 % faults in the demo: a sent SMS with no MESSAGE item) is not an
option while the batch still has its own backoff budget.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from dunning.adapters.dynamo import MAX_ATTEMPTS, Dynamo, WriteOp


def _throttle(code: str = "ThrottlingException") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "Rate of requests exceeds the allowed throughput."}}, "X"
    )


class _Client:
    """A DynamoDB client that refuses the first ``refusals`` requests with ``error``."""

    def __init__(self, refusals: int, error: ClientError) -> None:
        self.refusals, self.error = refusals, error
        self.writes: list[dict[str, Any]] = []
        self.gets = 0

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        if self.refusals > 0:
            self.refusals -= 1
            raise self.error
        self.writes.append(RequestItems)
        return {"UnprocessedItems": {}}

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.gets += 1
        if self.refusals > 0:
            self.refusals -= 1
            raise self.error
        return {"Responses": {"T": [{"pk": {"S": "a"}}]}, "UnprocessedKeys": {}}


def _dynamo(client: _Client) -> Dynamo:
    return Dynamo(client, sleep=lambda _seconds: None)  # type: ignore[arg-type]


OPS = [WriteOp.put("T", {"pk": f"k{i}", "n": i}, ["pk"]) for i in range(3)]


@pytest.mark.parametrize("code", ["ThrottlingException", "ProvisionedThroughputExceededException"])
def test_a_write_refused_whole_for_throttling_is_retried_until_it_lands(code: str) -> None:
    client = _Client(refusals=MAX_ATTEMPTS - 1, error=_throttle(code))

    requests = _dynamo(client).batch_write(OPS)

    assert requests == MAX_ATTEMPTS
    assert len(client.writes) == 1
    assert len(client.writes[0]["T"]) == 3


def test_a_write_throttled_on_every_attempt_raises_the_throttle() -> None:
    client = _Client(refusals=MAX_ATTEMPTS, error=_throttle())

    with pytest.raises(ClientError) as raised:
        _dynamo(client).batch_write(OPS)

    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert client.writes == []


def test_a_write_refused_for_another_reason_is_not_retried() -> None:
    client = _Client(refusals=1, error=_throttle("ValidationException"))

    with pytest.raises(ClientError):
        _dynamo(client).batch_write(OPS)

    assert client.refusals == 0
    assert client.writes == []


def test_a_read_refused_whole_for_throttling_is_retried() -> None:
    client = _Client(refusals=2, error=_throttle("ProvisionedThroughputExceededException"))

    found = _dynamo(client).batch_get({"T": [{"pk": "a"}]})

    assert found == {"T": [{"pk": "a"}]}
    assert client.gets == 3
