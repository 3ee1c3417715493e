"""Count what a boto3 session asks of AWS: requests by service and operation, DynamoDB capacity units.

:class:`Meter` hooks botocore's events on one session (the one the handlers' clients come from):

- ``before-call.*.*`` counts every API call once (retries inside botocore are not new calls);
- ``provide-client-params.dynamodb.*`` keeps the request's parameters and, for writes, reads the items'
  *before* images straight from moto's backend (not through botocore, so they are not counted);
- ``after-call.dynamodb.*`` reads the *after* images the same way and prices the call with
  :mod:`bench.capacity` from the sizes of the items it read or wrote.

Everything is attributed to ``meter.label`` (the function being driven), the table (by logical id) and
the kind of item (cadence, contact, message, decision, ...), so a report can say which writes make up the
cost of a message.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from bench.capacity import IndexSpec, WireItem, item_size, item_write, read_units

_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})


@dataclass(frozen=True)
class TableSpec:
    """What pricing a table's writes needs: its logical id, key attributes and global indexes."""

    logical_id: str
    keys: tuple[str, ...]
    indexes: tuple[IndexSpec, ...]

    def key_of(self, item: WireItem) -> dict[str, Any]:
        return {k: item[k] for k in self.keys}


def describe_tables(client: Any, names: Mapping[str, str]) -> dict[str, TableSpec]:
    """TableSpecs by physical name, from DescribeTable (``names``: logical id -> physical name)."""
    specs: dict[str, TableSpec] = {}
    for logical_id, name in names.items():
        table = client.describe_table(TableName=name)["Table"]
        keys = tuple(
            k["AttributeName"] for k in sorted(table["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
        )
        indexes = tuple(IndexSpec.from_description(i) for i in table.get("GlobalSecondaryIndexes", []))
        specs[name] = TableSpec(logical_id, keys, indexes)
    return specs


def item_kind(logical_id: str, item: Mapping[str, Any]) -> str:
    """A short name for what an item is (wire format or plain), for the capacity breakdown."""

    def text(name: str) -> str:
        value = item.get(name)
        if isinstance(value, Mapping):
            value = value.get("S", "")
        return str(value or "")

    if logical_id == "LoansTable":
        return "loan"
    if logical_id == "BorrowersTable":
        return "borrower"
    pk, sk = text("pk"), text("sk")
    if logical_id == "StateTable" and pk.startswith(("RATE#", "SPEND#")):
        # The send budget's shared counters: send-rate tokens (sender), spend reservations (planner).
        return "send-rate tokens" if pk.startswith("RATE#") else "spend reservation"
    if logical_id == "StateTable":
        return {"CADENCE": "cadence", "CONTACT": "contact", "CONSENT": "consent"}.get(sk, sk.lower() or "?")
    if logical_id == "LedgerTable":
        if pk == "AMBIGUOUS":
            return "ambiguous-pointer"
        for marker, kind in (("#DECISION#", "decision"), ("#INBOUND#", "inbound")):
            if marker in sk:
                return kind
        return sk.lower() or "?"
    return logical_id


class _Backend:
    """Reads items from moto's DynamoDB backend directly (uncounted, no serialisation)."""

    def __init__(self, account: str, region: str) -> None:
        from moto.dynamodb.models import dynamodb_backends

        self._backend = dynamodb_backends[account][region]

    def get(self, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        found = self._backend.get_item(table, dict(key))
        return dict(found.to_json()["Attributes"]) if found is not None else None


@dataclass
class Meter:
    """Requests and capacity units of everything a session's clients do, by ``label``."""

    tables: dict[str, TableSpec]
    account: str
    region: str
    label: str = ""
    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    # (label, table, index or "", operation) -> read units
    read_units: defaultdict[tuple[str, str, str, str], float] = field(
        default_factory=lambda: defaultdict(float)
    )
    # (label, table, item kind, "table" or index name, what happened) -> write units
    write_units: Counter[tuple[str, str, str, str, str]] = field(default_factory=Counter)
    # (label, table, item kind, operation) -> number of item writes
    item_writes: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    # (table, item kind) -> largest item written, bytes
    largest: dict[tuple[str, str], int] = field(default_factory=dict)
    # (table, item kind) -> the item's size after its last write, by key (what the table stores)
    stored: dict[tuple[str, str], dict[tuple[Any, ...], int]] = field(default_factory=dict)
    # label -> Queries that found nothing (a shard with nothing due: a fixed cost per tick)
    empty_queries: Counter[str] = field(default_factory=Counter)
    # label -> seconds spent inside AWS calls (moto here), to tell the handlers' own time from it
    aws_seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    _backend: _Backend | None = None

    def attach(self, session: boto3.Session) -> Meter:
        """Register the hooks on ``session``'s event system; returns self."""
        self._backend = _Backend(self.account, self.region)
        events = session.events
        events.register("before-call.*.*", self._count)
        events.register("after-call.*.*", self._timed)
        events.register("provide-client-params.dynamodb.*", self._before)
        events.register("after-call.dynamodb.*", self._after)
        return self

    # ---- totals ------------------------------------------------------------------------------------

    def total_requests(self, labels: Iterable[str] | None = None) -> int:
        wanted = set(labels) if labels is not None else None
        return sum(n for (label, _, _), n in self.requests.items() if wanted is None or label in wanted)

    def total_read_units(self, labels: Iterable[str] | None = None) -> float:
        wanted = set(labels) if labels is not None else None
        return sum(u for (label, *_), u in self.read_units.items() if wanted is None or label in wanted)

    def total_write_units(self, labels: Iterable[str] | None = None) -> int:
        wanted = set(labels) if labels is not None else None
        return sum(u for (label, *_), u in self.write_units.items() if wanted is None or label in wanted)

    def reset(self) -> None:
        for counter in (self.requests, self.write_units, self.item_writes, self.empty_queries):
            counter.clear()
        self.read_units.clear()
        self.aws_seconds.clear()
        self.largest.clear()

    # ---- hooks -------------------------------------------------------------------------------------

    def _count(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        self.requests[(self.label, model.service_model.service_name, model.name)] += 1
        context["bench_started"] = time.perf_counter()

    def _timed(self, context: dict[str, Any], **_: Any) -> None:
        started = context.get("bench_started")
        if started is not None:
            self.aws_seconds[self.label] += time.perf_counter() - started

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["bench_params"] = params
        if model.name in _WRITES:
            context["bench_before"] = {
                (table, _key_id(key)): self._get(table, key) for table, key in self._written_keys(params)
            }

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        params = context.get("bench_params") or {}
        operation = model.name
        error = (parsed.get("Error") or {}).get("Code") if isinstance(parsed, dict) else None
        if operation in _READS and not error:
            self._price_read(operation, params, parsed)
        elif operation in _WRITES:
            before = context.get("bench_before") or {}
            if error and error not in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                return  # rejected before anything was written (validation): nothing consumed
            self._price_write(operation, params, before, failed=bool(error))

    # ---- reads -------------------------------------------------------------------------------------

    def _table(self, name: str) -> TableSpec | None:
        return self.tables.get(name)

    def _logical(self, name: str) -> str:
        spec = self._table(name)
        return spec.logical_id if spec else name

    def _price_read(self, operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any]) -> None:
        label = self.label
        if operation == "GetItem":
            size = item_size(parsed.get("Item"))
            units = read_units(size, consistent=bool(params.get("ConsistentRead")))
            self.read_units[(label, self._logical(params["TableName"]), "", operation)] += units
        elif operation == "BatchGetItem":
            unprocessed = parsed.get("UnprocessedKeys") or {}
            for table, request in (params.get("RequestItems") or {}).items():
                consistent = bool(request.get("ConsistentRead"))
                found = (parsed.get("Responses") or {}).get(table, [])
                missing = (
                    len(request["Keys"]) - len(found) - len((unprocessed.get(table) or {}).get("Keys", []))
                )
                units = sum(read_units(item_size(i), consistent=consistent) for i in found)
                units += max(0, missing) * read_units(0, consistent=consistent)
                self.read_units[(label, self._logical(table), "", operation)] += units
        elif operation in ("Query", "Scan"):
            # Without a filter every item read is returned, so the response's items are what was read.
            if not parsed.get("Items"):
                self.empty_queries[label] += 1
            size = sum(item_size(i) for i in parsed.get("Items", []))
            index = str(params.get("IndexName") or "")
            consistent = bool(params.get("ConsistentRead")) and not index
            units = read_units(size, consistent=consistent)
            self.read_units[(label, self._logical(params["TableName"]), index, operation)] += units
        elif operation == "TransactGetItems":
            for entry, response in zip(
                params.get("TransactItems", []), parsed.get("Responses", []), strict=False
            ):
                get = entry["Get"]
                units = 2 * read_units(item_size(response.get("Item")), consistent=True)
                self.read_units[(label, self._logical(get["TableName"]), "", operation)] += units

    # ---- writes ------------------------------------------------------------------------------------

    def _written_keys(self, params: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        keys: list[tuple[str, dict[str, Any]]] = []
        if "RequestItems" in params:  # BatchWriteItem
            for table, requests in params["RequestItems"].items():
                spec = self._table(table)
                for request in requests:
                    if "PutRequest" in request and spec:
                        keys.append((table, spec.key_of(request["PutRequest"]["Item"])))
                    elif "DeleteRequest" in request:
                        keys.append((table, dict(request["DeleteRequest"]["Key"])))
        elif "TransactItems" in params:
            for entry in params["TransactItems"]:
                ((action, body),) = entry.items()
                spec = self._table(body["TableName"])
                if action == "Put" and spec:
                    keys.append((body["TableName"], spec.key_of(body["Item"])))
                elif "Key" in body:
                    keys.append((body["TableName"], dict(body["Key"])))
        elif "Item" in params:
            spec = self._table(params["TableName"])
            if spec:
                keys.append((params["TableName"], spec.key_of(params["Item"])))
        elif "Key" in params:
            keys.append((params["TableName"], dict(params["Key"])))
        return keys

    def _get(self, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        assert self._backend is not None, "attach() the meter first"
        return self._backend.get(table, key)

    def _price_write(
        self,
        operation: str,
        params: Mapping[str, Any],
        before: Mapping[tuple[str, tuple[Any, ...]], dict[str, Any] | None],
        *,
        failed: bool,
    ) -> None:
        transactional = operation == "TransactWriteItems"
        for table, key in self._written_keys(params):
            spec = self._table(table)
            if spec is None:
                continue
            old = before.get((table, _key_id(key)))
            new = old if failed else self._get(table, key)
            cost = item_write(
                old,
                new,
                table_keys=spec.keys,
                indexes=spec.indexes,
                failed=failed,
                transactional=transactional,
            )
            kind = item_kind(spec.logical_id, new or old or key)
            what = (
                "failed" if failed else ("delete" if new is None else ("put" if old is None else "replace"))
            )
            self.write_units[(self.label, spec.logical_id, kind, "table", what)] += cost.base
            for index in cost.indexes:
                self.write_units[(self.label, spec.logical_id, kind, index.index, index.kind)] += index.units
            self.item_writes[(self.label, spec.logical_id, kind, operation)] += 1
            size = item_size(new)
            if size > self.largest.get((spec.logical_id, kind), 0):
                self.largest[(spec.logical_id, kind)] = size
            sizes = self.stored.setdefault((spec.logical_id, kind), {})
            if new is None:
                sizes.pop(_key_id(key), None)
            else:
                sizes[_key_id(key)] = size


def _key_id(key: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((name, str(value)) for name, value in key.items()))
