"""The capacity-unit arithmetic of the benchmarks: item sizes, read and write units, index writes, and the
meter that applies them to real requests (on moto)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from bench.capacity import (
    IndexSpec,
    index_write,
    item_size,
    item_write,
    number_size,
    read_units,
    value_size,
    write_units,
)
from bench.meter import Meter, describe_tables, item_kind

DUE = IndexSpec("DueIndex", "due_shard", "next_contact_at", "INCLUDE", ("borrower_id", "phone"))
KEYS = ("pk", "sk")


def s(text: str) -> dict[str, str]:
    return {"S": text}


# ---- item sizes (Developer Guide, "DynamoDB item sizes and formats") -------------------------------


def test_a_string_attribute_is_its_name_plus_its_utf8_bytes() -> None:
    assert item_size({"pk": s("LOAN#L-1")}) == 2 + 8
    assert item_size({"name": s("伟")}) == 4 + 3  # one Han character is three UTF-8 bytes


def test_a_number_is_one_byte_per_two_significant_digits_plus_one() -> None:
    assert number_size("7") == 2
    assert number_size("1841558520") == 6  # 10 digits
    assert number_size("250.00") == 2  # trailing zeros trimmed: "25"
    assert number_size("-0.00581") == 3  # leading zeros trimmed: "581"
    assert value_size({"N": "0"}) == 2


def test_booleans_nulls_sets_lists_and_maps() -> None:
    assert value_size({"BOOL": True}) == 1
    assert value_size({"NULL": True}) == 1
    assert value_size({"SS": ["L-1#D+1", "L-1#D+3"]}) == 14
    assert value_size({"L": []}) == 3
    # A list: 3 bytes, plus each element and one byte per element.
    assert value_size({"L": [s("ab"), s("c")]}) == 3 + (2 + 1) + (1 + 1)
    # A map: 3 bytes, plus each element's name, value and one byte.
    assert value_size({"M": {"at": s("x"), "step": s("D+1")}}) == 3 + (2 + 1 + 1) + (4 + 3 + 1)
    assert value_size({"B": b"\x00\x01\x02"}) == 3


def test_reads_are_half_a_unit_per_started_4kb_eventually_consistent() -> None:
    assert read_units(0, consistent=False) == 0.5  # a key that finds nothing still costs a read
    assert read_units(4096, consistent=False) == 0.5
    assert read_units(4097, consistent=False) == 1.0
    assert read_units(3500, consistent=True) == 1.0
    assert read_units(10 * 1024, consistent=True) == 3.0


def test_writes_are_one_unit_per_started_kb() -> None:
    assert write_units(0) == 1
    assert write_units(1024) == 1
    assert write_units(1025) == 2


# ---- index writes (Developer Guide, "Global secondary indexes: provisioned throughput") ------------


def cadence(due: str | None, phone: str = "+12125550142", reason: str = "r") -> dict[str, Any]:
    item: dict[str, Any] = {"pk": s("LOAN#L-1"), "sk": s("CADENCE"), "borrower_id": s("B-1")}
    item |= {"phone": s(phone), "last_reason": s(reason)}
    if due is not None:
        item |= {"due_shard": s("DUE#03"), "next_contact_at": s(due)}
    return item


def test_an_index_key_change_is_a_delete_and_a_put() -> None:
    move = index_write(DUE, cadence("2026-03-02T14:00:00Z"), cadence("2026-03-04T14:00:00Z"), KEYS)
    assert (move.kind, move.units) == ("move", 2)


def test_entering_and_leaving_a_sparse_index_is_one_write() -> None:
    assert index_write(DUE, cadence(None), cadence("2026-03-02T14:00:00Z"), KEYS).kind == "put"
    assert index_write(DUE, cadence("2026-03-02T14:00:00Z"), cadence(None), KEYS).kind == "delete"
    assert index_write(DUE, cadence(None), cadence(None, reason="other"), KEYS).units == 0


def test_only_projected_attributes_make_an_update_write() -> None:
    due = "2026-03-02T14:00:00Z"
    # last_reason is not projected: the index entry is the same, nothing to write.
    assert index_write(DUE, cadence(due), cadence(due, reason="another reason"), KEYS).units == 0
    # phone is projected (INCLUDE): one write.
    changed = index_write(DUE, cadence(due), cadence(due, phone="+12125550199"), KEYS)
    assert (changed.kind, changed.units) == ("update", 1)
    keys_only = IndexSpec("DueIndex", "due_shard", "next_contact_at", "KEYS_ONLY")
    assert index_write(keys_only, cadence(due), cadence(due, phone="+12125550199"), KEYS).units == 0


def test_a_put_costs_the_larger_of_before_and_after_and_every_index() -> None:
    big = cadence("2026-03-02T14:00:00Z", reason="x" * 1500)
    small = cadence("2026-03-04T14:00:00Z")
    cost = item_write(big, small, table_keys=KEYS, indexes=(DUE,))
    assert cost.base == 2  # the item before was over 1 KB
    assert cost.total == 4
    assert item_write(None, small, table_keys=KEYS, indexes=(DUE,)).total == 2  # put + index put
    assert item_write(small, None, table_keys=KEYS, indexes=(DUE,)).total == 2  # delete + index delete


def test_a_failed_condition_costs_the_write_but_touches_no_index() -> None:
    cost = item_write(cadence("2026-03-02T14:00:00Z"), None, table_keys=KEYS, indexes=(DUE,), failed=True)
    assert (cost.base, cost.indexes) == (1, ())


def test_a_transactional_write_costs_double() -> None:
    assert item_write(None, cadence(None), table_keys=KEYS, transactional=True).total == 2


def test_items_are_named_by_what_they_are() -> None:
    assert item_kind("StateTable", {"pk": s("LOAN#L-1"), "sk": s("CADENCE")}) == "cadence"
    assert item_kind("LedgerTable", {"pk": "LOAN#L-1", "sk": "2026-03-02T14:00:00Z#DECISION#x"}) == "decision"
    assert item_kind("LedgerTable", {"pk": s("MSG#1"), "sk": s("MESSAGE")}) == "message"


# ---- the meter on real requests ---------------------------------------------------------------------


@pytest.fixture
def metered(aws: boto3.Session) -> Iterator[tuple[Any, Meter]]:
    client = aws.client("dynamodb")
    client.create_table(
        TableName="state",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "due_shard", "next_contact_at")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "DueIndex",
                "KeySchema": [
                    {"AttributeName": "due_shard", "KeyType": "HASH"},
                    {"AttributeName": "next_contact_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )
    session = boto3.Session(region_name="us-east-1")
    meter = Meter(describe_tables(client, {"StateTable": "state"}), "123456789012", "us-east-1")
    meter.attach(session)
    meter.label = "test"
    yield session.client("dynamodb"), meter


def test_the_meter_prices_puts_moves_conditions_and_reads(metered: tuple[Any, Meter]) -> None:
    client, meter = metered
    client.put_item(TableName="state", Item=cadence("2026-03-02T14:00:00Z"))
    assert meter.total_write_units() == 2  # the item + its index entry
    client.update_item(
        TableName="state",
        Key={"pk": s("LOAN#L-1"), "sk": s("CADENCE")},
        UpdateExpression="SET next_contact_at = :n",
        ExpressionAttributeValues={":n": s("2026-03-04T14:00:00Z")},
    )
    assert meter.total_write_units() == 2 + 3  # the item + index delete + index put
    with pytest.raises(ClientError):
        client.put_item(TableName="state", Item=cadence(None), ConditionExpression="attribute_not_exists(pk)")
    assert meter.total_write_units() == 5 + 1  # the failed condition still costs the write
    keys = [{"pk": s(f"LOAN#{loan}"), "sk": s("CADENCE")} for loan in ("L-1", "L-2")]
    client.batch_get_item(RequestItems={"state": {"Keys": keys}})
    assert meter.total_read_units() == 1.0  # one found, one missing: half a unit each
    client.query(
        TableName="state",
        IndexName="DueIndex",
        KeyConditionExpression="due_shard = :s",
        ExpressionAttributeValues={":s": s("DUE#99")},
    )
    assert meter.total_read_units() == 1.5
    assert meter.empty_queries["test"] == 1
    assert meter.total_requests() == 5
    kinds = {kind for (_, _, kind, _, _) in meter.write_units}
    assert kinds == {"cadence"}
