"""Fault injection on in-process moto: AWS answering "not now" the way it does under load.

:func:`injected` patches moto's service side, never the boto3 clients, so every request still goes
through botocore (retries with backoff, error parsing) and the product's own retry loops exactly as it
would against AWS. With probability ``rate`` per eligible request (one seeded RNG: the same seed and the
same sequence of requests give the same faults):

- SNS ``Publish`` to a phone number or a platform endpoint raises ``Throttling`` / "Rate exceeded"
  (the clients that retry retry it, as they would a real throttle); topic publishes are left alone;
- DynamoDB ``UpdateItem`` (the sender's claim, releases, pauses) and ``PutItem`` raise
  ``ProvisionedThroughputExceededException`` or ``ThrottlingException``;
- DynamoDB ``BatchWriteItem`` either raises one of those or applies only part of the request and
  returns the rest as ``UnprocessedItems``; ``BatchGetItem`` returns part of the keys as
  ``UnprocessedKeys`` (moto itself never does either).

SNS is patched in its backend model (``SNSBackend.publish``). DynamoDB is patched in moto's request
handler (``DynamoHandler``): its backend model has no notion of "part of a batch", and a PutItem fault
raised from the model would also hit every item of a BatchWriteItem half-way through, which AWS never
does.

Time is simulated, so backoff must not cost wall time: inside the context botocore's retry sleep and the
product's own batch-retry backoff are instant. Everything is restored on exit; ``rate=0`` patches
nothing at all.
"""

from __future__ import annotations

import random
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from unittest import mock

# Operation names, as botocore names them; ``operations=`` narrows injection to some of them.
SNS_PUBLISH = "sns.Publish"
DDB_UPDATE_ITEM = "dynamodb.UpdateItem"
DDB_PUT_ITEM = "dynamodb.PutItem"
DDB_BATCH_WRITE = "dynamodb.BatchWriteItem"
DDB_BATCH_GET = "dynamodb.BatchGetItem"
ALL_OPERATIONS = frozenset({SNS_PUBLISH, DDB_UPDATE_ITEM, DDB_PUT_ITEM, DDB_BATCH_WRITE, DDB_BATCH_GET})

_DDB_THROTTLES = (
    (
        "ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API.",
    ),
    ("ThrottlingException", "Rate of requests exceeds the allowed throughput."),
)


@dataclass
class FaultStats:
    """Faults injected so far, by kind: ``"<service>.<Operation>:<what>"``."""

    counts: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class _Injector:
    def __init__(
        self,
        rate: float,
        seed: int,
        operations: Collection[str],
        tables: Collection[str] | None,
        stats: FaultStats,
    ) -> None:
        self.rate = rate
        self.rng = random.Random(seed)
        self.operations = frozenset(operations)
        self.tables = frozenset(tables) if tables is not None else None
        self.stats = stats
        # Handlers may run in threads (two planners at once); the RNG and the counter are shared.
        self.lock = threading.Lock()

    def roll(self, operation: str, tables: Collection[str] = ()) -> random.Random | None:
        """The RNG if this request is to fail, else None (tables filter DynamoDB requests)."""
        if operation not in self.operations:
            return None
        if self.tables is not None and tables and not set(tables) & self.tables:
            return None
        with self.lock:
            return self.rng if self.rng.random() < self.rate else None

    def count(self, kind: str) -> None:
        with self.lock:
            self.stats.counts[kind] += 1

    def pick(self, rng: random.Random, options: tuple[Any, ...]) -> Any:
        with self.lock:
            return rng.choice(options)

    def split(self, rng: random.Random, entries: list[Any]) -> tuple[list[Any], list[Any]]:
        """(kept, left over): each entry is left over with probability 1/2, at least one of them."""
        with self.lock:
            left = [rng.random() < 0.5 for _ in entries]
            if not any(left):
                left[rng.randrange(len(entries))] = True
        kept = [e for e, out in zip(entries, left, strict=True) if not out]
        over = [e for e, out in zip(entries, left, strict=True) if out]
        return kept, over

    # ---- SNS -------------------------------------------------------------------------------------

    def sns_publish(self, original: Callable[..., Any]) -> Callable[..., Any]:
        from moto.sns.exceptions import SNSException

        injector = self

        def publish(backend: Any, message: str, arn: str | None = None, *args: Any, **kwargs: Any) -> Any:
            phone_number = kwargs.get("phone_number")
            direct = bool(phone_number) or ":endpoint/" in str(arn or "")
            if direct and injector.roll(SNS_PUBLISH):
                injector.count(f"{SNS_PUBLISH}:Throttling")
                raise SNSException("Throttling", "Rate exceeded")
            return original(backend, message, arn, *args, **kwargs)

        return publish

    # ---- DynamoDB --------------------------------------------------------------------------------

    def _throttle(self, operation: str, rng: random.Random) -> Exception:
        from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException

        code, message = self.pick(rng, _DDB_THROTTLES)
        self.count(f"{operation}:{code}")
        return DynamodbException(ERROR_TYPE_PREFIX + code, message)

    def single_item(self, operation: str, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
        injector = self

        def handler(response: Any) -> Any:
            rng = injector.roll(operation, [str(response.body.get("TableName", ""))])
            if rng is not None:
                raise injector._throttle(operation, rng)
            return original(response)

        return handler

    def batch_write(self, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
        injector = self

        def handler(response: Any) -> Any:
            request_items: dict[str, list[Any]] = response.body.get("RequestItems") or {}
            rng = injector.roll(DDB_BATCH_WRITE, list(request_items))
            if rng is None:
                return original(response)
            entries = [(table, entry) for table, requests in request_items.items() for entry in requests]
            if len(entries) < 2 or injector.pick(rng, ("throttle", "partial")) == "throttle":
                # AWS throttles the whole request when it can process none of it.
                raise injector._throttle(DDB_BATCH_WRITE, rng)
            kept, over = injector.split(rng, entries)
            if not kept:
                raise injector._throttle(DDB_BATCH_WRITE, rng)
            response.body["RequestItems"] = _group(kept)
            result = original(response)
            result.result["UnprocessedItems"] = _group(over)
            injector.count(f"{DDB_BATCH_WRITE}:UnprocessedItems")
            return result

        return handler

    def batch_get(self, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
        injector = self

        def handler(response: Any) -> Any:
            request_items: dict[str, dict[str, Any]] = response.body.get("RequestItems") or {}
            rng = injector.roll(DDB_BATCH_GET, list(request_items))
            if rng is None:
                return original(response)
            entries = [(table, key) for table, spec in request_items.items() for key in spec.get("Keys", [])]
            if not entries:
                return original(response)
            kept, over = injector.split(rng, entries)
            specs = {
                table: {k: v for k, v in spec.items() if k != "Keys"} for table, spec in request_items.items()
            }
            response.body["RequestItems"] = {
                table: {**specs[table], "Keys": keys} for table, keys in _group(kept).items()
            }
            result = original(response) if kept else _empty_batch_get()
            result.result["UnprocessedKeys"] = {
                table: {**specs[table], "Keys": keys} for table, keys in _group(over).items()
            }
            injector.count(f"{DDB_BATCH_GET}:UnprocessedKeys")
            return result

        return handler


def _group(entries: list[tuple[str, Any]]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for table, entry in entries:
        grouped.setdefault(table, []).append(entry)
    return grouped


def _empty_batch_get() -> Any:
    from moto.dynamodb.responses import DynamoResult

    return DynamoResult({"ConsumedCapacity": [], "Responses": {}, "UnprocessedKeys": {}})


def _instant_time() -> SimpleNamespace:
    """``botocore.endpoint``'s view of the ``time`` module, with a sleep that returns at once."""
    import time

    clock = {name: getattr(time, name) for name in dir(time) if not name.startswith("_")}
    clock["sleep"] = lambda seconds: None
    return SimpleNamespace(**clock)


@contextmanager
def injected(
    rate: float,
    seed: int,
    *,
    operations: Collection[str] = ALL_OPERATIONS,
    tables: Collection[str] | None = None,
) -> Iterator[FaultStats]:
    """Inject faults into in-process moto with probability ``rate`` per eligible request.

    ``operations`` narrows injection to some of :data:`ALL_OPERATIONS`; ``tables`` to DynamoDB requests
    that touch one of these table names (a targeted test: "throttle only the ledger writes").
    Yields the live :class:`FaultStats`; everything is put back on exit.
    """
    if not 0 <= rate <= 1:
        raise ValueError("rate must be between 0 and 1")
    unknown = set(operations) - ALL_OPERATIONS
    if unknown:
        raise ValueError(f"unknown operations {sorted(unknown)}; known: {sorted(ALL_OPERATIONS)}")
    stats = FaultStats()
    if rate == 0:
        yield stats
        return

    import botocore.endpoint
    from moto.dynamodb.responses import DynamoHandler
    from moto.sns.models import SNSBackend

    from dunning.adapters.dynamo import Dynamo

    injector = _Injector(rate, seed, operations, tables, stats)
    with ExitStack() as patches:
        patches.enter_context(
            mock.patch.object(SNSBackend, "publish", injector.sns_publish(SNSBackend.publish))
        )
        for name, operation in (("update_item", DDB_UPDATE_ITEM), ("put_item", DDB_PUT_ITEM)):
            original = getattr(DynamoHandler, name)
            patches.enter_context(
                mock.patch.object(DynamoHandler, name, injector.single_item(operation, original))
            )
        patches.enter_context(
            mock.patch.object(
                DynamoHandler, "batch_write_item", injector.batch_write(DynamoHandler.batch_write_item)
            )
        )
        patches.enter_context(
            mock.patch.object(
                DynamoHandler, "batch_get_item", injector.batch_get(DynamoHandler.batch_get_item)
            )
        )
        # Backoff costs no wall time: botocore sleeps in its endpoint, the batch adapter in _backoff.
        patches.enter_context(mock.patch.object(botocore.endpoint, "time", _instant_time()))
        patches.enter_context(mock.patch.object(Dynamo, "_backoff", lambda self, attempt: None))
        # moto warns that "Throttling" is not an error shape of the SNS model; AWS sends it all the same.
        patches.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", message=r"Exception\(SNSException\) with code Throttling")
        yield stats
