"""DynamoDB batch mechanics shared by the table adapters: BatchGetItem and BatchWriteItem done right.

BatchGetItem takes at most 100 keys and BatchWriteItem 25 items per request, across tables; both may
return part of the work as ``UnprocessedKeys`` / ``UnprocessedItems`` under throttling, which must be
retried with backoff or it is silently lost; a request refused whole for throttling (after botocore's
own few retries) is retried the same way. Everything here speaks plain Python items (as the boto3
resource layer does: ``Decimal`` numbers, ``set`` for string sets); the wire format stays inside.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

Item = dict[str, Any]
Key = dict[str, Any]

BATCH_GET_LIMIT = 100
BATCH_WRITE_LIMIT = 25
# TransactWriteItems takes at most 100 items (all in one account and region, no key twice).
TRANSACT_LIMIT = 100
# Enough for a throttled table to recover (about 6 s in total with the backoff below) without
# outliving a Lambda invocation; what is still unprocessed after that is an error, never dropped.
MAX_ATTEMPTS = 8

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class UnprocessedError(RuntimeError):
    """DynamoDB kept returning unprocessed keys or items after every retry."""


# Error codes that mean "not now, nothing applied": the whole request is retried like unprocessed items.
# botocore retries them too, a few times; past that, a batch whose items matter (a sent message's
# record) must not be given up after three quick refusals while it still has seconds to spend.
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
    }
)


def is_throttling(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in THROTTLING_CODES


def to_wire(item: Mapping[str, Any]) -> dict[str, AttributeValueTypeDef]:
    return {k: _serializer.serialize(v) for k, v in item.items()}


def from_wire(item: Mapping[str, Any]) -> Item:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def value_to_wire(value: Any) -> AttributeValueTypeDef:
    return _serializer.serialize(value)


def _key_id(table: str, key: Mapping[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return table, tuple(sorted((k, repr(v)) for k, v in key.items()))


_PK_SK = ("pk", "sk")  # the key names of every table of the project's own


@dataclass(frozen=True)
class WriteOp:
    """One item of a BatchWriteItem: a put of ``item`` or, when ``item`` is None, a delete of ``key``."""

    table: str
    key: Key
    item: Item | None = None

    @classmethod
    def put(cls, table: str, item: Item, key_names: Sequence[str]) -> WriteOp:
        # What the dataclass's ``__init__`` sets, set at once: a planner makes one or two per loan.
        pk_sk = key_names == _PK_SK
        key = {"pk": item["pk"], "sk": item["sk"]} if pk_sk else {k: item[k] for k in key_names}
        op = object.__new__(cls)
        object.__setattr__(op, "__dict__", {"table": table, "key": key, "item": item})
        return op

    @classmethod
    def delete(cls, table: str, key: Key) -> WriteOp:
        return cls(table=table, key=key, item=None)


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


class Dynamo:
    """The DynamoDB client (created on first use) and the batch operations every table adapter uses."""

    def __init__(
        self,
        client: DynamoDBClient | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        base_delay: float = 0.05,
    ) -> None:
        self._client = client
        self._sleep = sleep
        self._base_delay = base_delay

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = boto3.client("dynamodb")
        return self._client

    def _backoff(self, attempt: int) -> None:
        # Full jitter: concurrent Lambdas throttled together should not retry in lockstep.
        self._sleep(random.uniform(0, self._base_delay * (2**attempt)))

    def _unless_throttled(self, call: Callable[..., Any], request: dict[str, Any], attempt: int) -> Any:
        """``call(RequestItems=request)``'s response, or None after a backoff when the whole request was
        refused for throttling and attempts are left (then it is sent again, like unprocessed items)."""
        try:
            return call(RequestItems=request)
        except ClientError as exc:
            if not is_throttling(exc) or attempt == MAX_ATTEMPTS - 1:
                raise
            self._backoff(attempt)
            return None

    def batch_get(
        self, requests: Mapping[str, Iterable[Key]], *, consistent: bool = False
    ) -> dict[str, list[Item]]:
        """Read every key of every table, 100 keys per request, retrying unprocessed keys.

        Duplicate keys are read once. Returns the items found per table (missing keys are simply absent).
        """
        pending: list[tuple[str, Key]] = []
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for table, keys in requests.items():
            for key in keys:
                ident = _key_id(table, key)
                if ident not in seen:
                    seen.add(ident)
                    pending.append((table, key))
        found: dict[str, list[Item]] = {table: [] for table in requests}
        for chunk in _chunks(pending, BATCH_GET_LIMIT):
            request: dict[str, Any] = {}
            for table, key in chunk:
                entry = request.setdefault(table, {"Keys": [], "ConsistentRead": consistent})
                entry["Keys"].append(to_wire(key))
            for attempt in range(MAX_ATTEMPTS):
                response = self._unless_throttled(self.client.batch_get_item, request, attempt)
                if response is None:
                    continue
                for table, items in response.get("Responses", {}).items():
                    found.setdefault(table, []).extend(from_wire(i) for i in items)
                request = dict(response.get("UnprocessedKeys") or {})
                if not request:
                    break
                self._backoff(attempt)
            else:
                raise UnprocessedError(f"BatchGetItem left keys unprocessed in {sorted(request)}")
        return found

    def batch_write(self, ops: Iterable[WriteOp]) -> int:
        """Apply puts and deletes, 25 per request, retrying unprocessed items; returns the request count.

        Within one call the last operation on a key wins (BatchWriteItem rejects a request that names the
        same key twice).
        """
        latest: dict[tuple[str, tuple[tuple[str, str], ...]], WriteOp] = {}
        for op in ops:
            ident = _key_id(op.table, op.key)
            latest.pop(ident, None)
            latest[ident] = op
        requests = 0
        for chunk in _chunks(list(latest.values()), BATCH_WRITE_LIMIT):
            request: dict[str, Any] = {}
            for op in chunk:
                wire = (
                    {"PutRequest": {"Item": to_wire(op.item)}}
                    if op.item is not None
                    else {"DeleteRequest": {"Key": to_wire(op.key)}}
                )
                request.setdefault(op.table, []).append(wire)
            for attempt in range(MAX_ATTEMPTS):
                requests += 1
                response = self._unless_throttled(self.client.batch_write_item, request, attempt)
                if response is None:
                    continue
                request = dict(response.get("UnprocessedItems") or {})
                if not request:
                    break
                self._backoff(attempt)
            else:
                raise UnprocessedError(f"BatchWriteItem left items unprocessed in {sorted(request)}")
        return requests

    def query_pages(self, **kwargs: Any) -> Iterator[tuple[list[Item], Key | None]]:
        """Run a Query page by page: yields (items, LastEvaluatedKey) with items in plain form.

        ``ExpressionAttributeValues`` and ``ExclusiveStartKey`` are given in plain form too.
        """
        params = dict(kwargs)
        if "ExpressionAttributeValues" in params:
            params["ExpressionAttributeValues"] = to_wire(params["ExpressionAttributeValues"])
        if params.get("ExclusiveStartKey"):
            params["ExclusiveStartKey"] = to_wire(params["ExclusiveStartKey"])
        else:
            params.pop("ExclusiveStartKey", None)
        while True:
            response = self.client.query(**params)
            last = response.get("LastEvaluatedKey")
            yield [from_wire(i) for i in response.get("Items", [])], (from_wire(last) if last else None)
            if not last:
                return
            params["ExclusiveStartKey"] = last

    def scan_pages(self, **kwargs: Any) -> Iterator[list[Item]]:
        """Run a (segment of a) Scan page by page, items in plain form."""
        params = dict(kwargs)
        while True:
            response = self.client.scan(**params)
            yield [from_wire(i) for i in response.get("Items", [])]
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last

    def get(self, table: str, key: Key, *, consistent: bool = True) -> Item | None:
        response = self.client.get_item(TableName=table, Key=to_wire(key), ConsistentRead=consistent)
        item = response.get("Item")
        return from_wire(item) if item else None

    def put_new(self, table: str, item: Mapping[str, Any], key_attribute: str) -> bool:
        """PutItem only if no item with this key exists; False when one does (a redelivery)."""
        return self.put_if(table, item, "attribute_not_exists(#k)", names={"#k": key_attribute})

    def put_if(
        self,
        table: str,
        item: Mapping[str, Any],
        condition: str,
        *,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> bool:
        """PutItem under a condition; False when the condition does not hold."""
        params: dict[str, Any] = {"TableName": table, "Item": to_wire(item), "ConditionExpression": condition}
        if names:
            params["ExpressionAttributeNames"] = dict(names)
        if values:
            params["ExpressionAttributeValues"] = to_wire(values)
        try:
            self.client.put_item(**params)
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def update(
        self,
        table: str,
        key: Key,
        *,
        update: str,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        condition: str | None = None,
        return_new: bool = False,
    ) -> Item | None:
        """UpdateItem with plain values; ``ConditionalCheckFailedException`` propagates to the caller."""
        params: dict[str, Any] = {"TableName": table, "Key": to_wire(key), "UpdateExpression": update}
        if names:
            params["ExpressionAttributeNames"] = dict(names)
        if values:
            params["ExpressionAttributeValues"] = to_wire(values)
        if condition:
            params["ConditionExpression"] = condition
        if return_new:
            params["ReturnValues"] = "ALL_NEW"
        response = self.client.update_item(**params)
        attributes = response.get("Attributes")
        return from_wire(attributes) if attributes else None

    def transact_write(self, actions: Sequence[Mapping[str, Any]]) -> None:
        """TransactWriteItems of plain-valued actions (at most :data:`TRANSACT_LIMIT`), all or nothing.

        Each action is ``{"Update"|"Put"|"ConditionCheck"|"Delete": {...}}`` with ``Key``, ``Item`` and
        ``ExpressionAttributeValues`` in plain form. A failed condition raises
        ``TransactionCanceledException`` (see :func:`is_transaction_conflict`).
        """
        if len(actions) > TRANSACT_LIMIT:
            raise ValueError(f"a transaction holds at most {TRANSACT_LIMIT} items, not {len(actions)}")
        wire: list[Any] = []
        for action in actions:
            ((kind, params),) = action.items()
            converted = dict(params)
            for name in ("Key", "Item", "ExpressionAttributeValues"):
                if name in converted:
                    converted[name] = to_wire(converted[name])
            wire.append({kind: converted})
        self.client.transact_write_items(TransactItems=wire)


def is_conditional_failure(exc: Exception) -> bool:
    """True for a failed ConditionExpression (the expected outcome of a lost race, not an error)."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code == "ConditionalCheckFailedException"


def is_transaction_conflict(exc: Exception) -> bool:
    """True for a transaction cancelled because a condition failed or another transaction held an item."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("TransactionCanceledException", "TransactionConflictException")
