"""DynamoDB item sizes and capacity units by AWS's published rules (moto's ConsumedCapacity is made up).

Item size (Developer Guide, "DynamoDB item sizes and formats"): the sum over attributes of the UTF-8
length of the name plus the value's size: strings their UTF-8 bytes, numbers about one byte per two
significant digits plus one, binary its raw bytes, booleans and nulls one byte, lists and maps three
bytes plus their elements (each element one byte more; map elements carry their names), sets the sum of
their members.

Capacity (Developer Guide, "DynamoDB read and write operations" and "Global secondary indexes:
provisioned throughput considerations"):

- a read is one unit per started 4 KB, half of it when eventually consistent; GetItem and BatchGetItem
  round each item (a key that finds nothing still costs one minimum read); Query and Scan sum the sizes
  of the items one request reads and round the sum once;
- a write is one unit per started KB of the larger of the item before and after (PutItem, UpdateItem),
  of the deleted item (DeleteItem); BatchWriteItem counts each put or delete on its own; a write whose
  condition fails still costs the item's size; transactional writes cost double;
- a global secondary index costs extra writes for each table write that changes it: putting an entry
  (the item gains the index keys), deleting one (it loses them), both (an index key changes value:
  delete + put), or one write when only projected attributes change; nothing when the entry is the same.

Items here are in DynamoDB's wire format (``{"name": {"S": "..."}}``), as botocore sends and parses them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

READ_UNIT_BYTES = 4096
WRITE_UNIT_BYTES = 1024

WireItem = Mapping[str, Mapping[str, Any]]


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))


def number_size(text: str) -> int:
    """Bytes of a number: one per two significant digits, plus one (leading/trailing zeros trimmed)."""
    digits = text.strip().lstrip("+-")
    if "e" in digits.lower():
        digits = digits.lower().split("e", 1)[0]
    digits = digits.replace(".", "").strip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def _binary_size(value: Any) -> int:
    return len(value) if isinstance(value, bytes | bytearray) else _utf8(str(value))


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one attribute value (without its name)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return _utf8(str(inner))
    if kind == "N":
        return number_size(str(inner))
    if kind == "B":
        return _binary_size(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(_utf8(str(v)) for v in inner)
    if kind == "NS":
        return sum(number_size(str(v)) for v in inner)
    if kind == "BS":
        return sum(_binary_size(v) for v in inner)
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    if kind == "M":
        return 3 + sum(_utf8(str(k)) + value_size(v) + 1 for k, v in inner.items())
    raise ValueError(f"not a DynamoDB attribute value type: {kind!r}")


def item_size(item: WireItem | None) -> int:
    """Bytes of an item: attribute names plus values (0 for no item)."""
    if not item:
        return 0
    return sum(_utf8(name) + value_size(value) for name, value in item.items())


def read_units(size: int, *, consistent: bool) -> float:
    """Read units of reading ``size`` bytes once (at least one started 4 KB, even for nothing found)."""
    blocks = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(blocks) if consistent else blocks / 2


def write_units(size: int) -> int:
    """Write units of writing an item of ``size`` bytes (at least one)."""
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


@dataclass(frozen=True)
class IndexSpec:
    """A global secondary index: its key attributes and what it projects."""

    name: str
    hash_key: str
    range_key: str | None
    projection: str  # KEYS_ONLY, INCLUDE or ALL
    non_key: tuple[str, ...] = ()

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> IndexSpec:
        """From a ``GlobalSecondaryIndexes`` entry of DescribeTable / CreateTable."""
        keys = {k["KeyType"]: k["AttributeName"] for k in description["KeySchema"]}
        projection = description.get("Projection", {})
        return cls(
            name=str(description["IndexName"]),
            hash_key=keys["HASH"],
            range_key=keys.get("RANGE"),
            projection=str(projection.get("ProjectionType", "ALL")),
            non_key=tuple(projection.get("NonKeyAttributes", ())),
        )

    def key_attributes(self) -> tuple[str, ...]:
        return (self.hash_key, self.range_key) if self.range_key else (self.hash_key,)

    def entry(self, item: WireItem | None, table_keys: tuple[str, ...]) -> dict[str, Any] | None:
        """The index entry ``item`` has in this index, or None (sparse: an index key is missing)."""
        if not item or any(k not in item for k in self.key_attributes()):
            return None
        if self.projection == "ALL":
            return dict(item)
        wanted = set(table_keys) | set(self.key_attributes())
        if self.projection == "INCLUDE":
            wanted |= set(self.non_key)
        return {k: v for k, v in item.items() if k in wanted}


@dataclass(frozen=True)
class IndexWrite:
    """What a table write did to one index: ``kind`` is put, delete, move, update or none."""

    index: str
    kind: str
    units: int


def index_write(
    spec: IndexSpec, before: WireItem | None, after: WireItem | None, table_keys: tuple[str, ...]
) -> IndexWrite:
    """The index writes (and their units) caused by a table item going from ``before`` to ``after``."""
    old, new = spec.entry(before, table_keys), spec.entry(after, table_keys)
    if old is None and new is None:
        return IndexWrite(spec.name, "none", 0)
    if old is None:
        return IndexWrite(spec.name, "put", write_units(item_size(new)))
    if new is None:
        return IndexWrite(spec.name, "delete", write_units(item_size(old)))
    keys = spec.key_attributes()
    if any(old.get(k) != new.get(k) for k in keys):
        return IndexWrite(spec.name, "move", write_units(item_size(old)) + write_units(item_size(new)))
    if old != new:
        return IndexWrite(spec.name, "update", write_units(max(item_size(old), item_size(new))))
    return IndexWrite(spec.name, "none", 0)


@dataclass(frozen=True)
class WriteCost:
    """Units of one item write: on the table and on each index it touched."""

    base: int
    indexes: tuple[IndexWrite, ...]

    @property
    def total(self) -> int:
        return self.base + sum(i.units for i in self.indexes)


def item_write(
    before: WireItem | None,
    after: WireItem | None,
    *,
    table_keys: tuple[str, ...],
    indexes: tuple[IndexSpec, ...] = (),
    failed: bool = False,
    transactional: bool = False,
) -> WriteCost:
    """The cost of writing one item: ``after`` None is a delete; ``failed`` a condition that failed.

    A failed condition changes nothing, so it touches no index, but the table write is still paid.
    """
    factor = 2 if transactional else 1
    if failed:
        return WriteCost(factor * write_units(item_size(before)), ())
    base = factor * write_units(max(item_size(before), item_size(after)))
    touched = tuple(
        IndexWrite(w.index, w.kind, factor * w.units)
        for w in (index_write(spec, before, after, table_keys) for spec in indexes)
        if w.kind != "none"
    )
    return WriteCost(base, touched)
