"""Where the operator commands find the product's tables: a finished demo's kept tables, moto_server, or
a deployed stack named in the environment. Also writes a demo's tables for later (``demo --keep``).
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dunning.adapters import Adapters
from dunning_local.usage import UsageError

_TABLE_VARIABLES = ("LOANS_TABLE", "BORROWERS_TABLE", "STATE_TABLE", "LEDGER_TABLE")
KEPT_TABLES = ("LoansTable", "BorrowersTable", "StateTable", "LedgerTable")
KEPT_FILE = "kept-tables.json.gz"


@dataclass(frozen=True)
class Target:
    """The tables a command reads, and where they are (for messages)."""

    adapters: Adapters
    shard_count: int
    where: str


def _local_credentials(endpoint: str | None = None) -> None:
    """Fake credentials for moto, unless real ones are set: local commands need no AWS account."""
    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(name, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def require_seeded(dynamodb: Any, endpoint: str) -> None:
    """Refuse to run on a moto_server that holds no seeded Dunning stack, before creating anything."""
    from botocore.exceptions import EndpointConnectionError

    from dunning_local.stack import DEFAULT_PREFIX

    try:
        names = [n for page in dynamodb.get_paginator("list_tables").paginate() for n in page["TableNames"]]
    except EndpointConnectionError as exc:
        raise UsageError(
            f"cannot reach {endpoint}: start it with `.venv/bin/moto_server -p 5000`, then "
            f"`dunning seed --endpoint {endpoint}`"
        ) from exc
    loans = f"{DEFAULT_PREFIX}-LoansTable"
    empty = loans not in names or not dynamodb.scan(TableName=loans, Limit=1, Select="COUNT")["Count"]
    if empty:
        raise UsageError(
            f"no seeded Dunning stack on {endpoint}: seed first with `dunning seed --endpoint {endpoint}`"
        )


def _adapters(tables: dict[str, str]) -> Adapters:
    return Adapters.for_tables(
        loans_table=tables["LoansTable"],
        borrowers_table=tables["BorrowersTable"],
        state_table=tables["StateTable"],
        ledger_table=tables["LedgerTable"],
    )


@contextmanager
def connect(endpoint: str | None, kept: str | Path | None = None) -> Iterator[Target]:
    """Adapters over the demo tables kept in ``kept``, the stack at ``endpoint`` (local), or the tables
    named in the environment (a deployed stack), in that order of preference."""
    if kept:
        with _kept_tables(Path(kept)) as target:
            yield target
        return
    if endpoint:
        _local_credentials(endpoint)
        from dunning_local.stack import build_local_stack, local_clients

        clients = local_clients(endpoint)
        require_seeded(clients["dynamodb"], endpoint)
        stack = build_local_stack(clients)
        yield Target(_adapters(stack.tables), int(stack.parameters.get("ShardCount", 16)), endpoint)
        return
    missing = [v for v in _TABLE_VARIABLES if not os.environ.get(v)]
    if missing:
        raise UsageError(
            "no stack to read: pass --from out/demo (after `dunning demo --keep`), --endpoint "
            f"http://127.0.0.1:5000 (moto_server) or set {', '.join(missing)} to the deployed stack's "
            "table names"
        )
    tables = {
        "LoansTable": os.environ["LOANS_TABLE"],
        "BorrowersTable": os.environ["BORROWERS_TABLE"],
        "StateTable": os.environ["STATE_TABLE"],
        "LedgerTable": os.environ["LEDGER_TABLE"],
    }
    yield Target(_adapters(tables), int(os.environ.get("SHARD_COUNT", "16")), "AWS")


# -- a finished demo's tables, kept for exploring ------------------------------------------------------


def keep_tables(session: Any, tables: dict[str, str], shard_count: int, out: Path) -> Path:
    """Write the four tables of a finished run to ``out`` (``dunning demo --keep``)."""
    client = session.client("dynamodb")
    document: dict[str, Any] = {"shard_count": shard_count, "tables": {}}
    for logical in KEPT_TABLES:
        items = [
            i
            for page in client.get_paginator("scan").paginate(TableName=tables[logical])
            for i in page["Items"]
        ]
        document["tables"][logical] = items
    path = out / KEPT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(document, fh, separators=(",", ":"))
    return path


@contextmanager
def _kept_tables(folder: Path) -> Iterator[Target]:
    path = folder / KEPT_FILE if folder.is_dir() else folder
    if not path.is_file():
        raise UsageError(f"no kept demo tables at {path}: run `dunning demo --keep --out {folder}` first")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            document = json.load(fh)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a kept demo ({exc})") from exc
    from dunning_local.embedded import embedded_aws
    from dunning_local.stack import build_local_stack

    with embedded_aws() as session:
        stack = build_local_stack(session, parameters={"ShardCount": int(document["shard_count"])})
        client = session.client("dynamodb")
        for logical, items in document["tables"].items():
            name = stack.tables[logical]
            for i in range(0, len(items), 25):
                client.batch_write_item(
                    RequestItems={name: [{"PutRequest": {"Item": it}} for it in items[i : i + 25]]}
                )
        yield Target(_adapters(stack.tables), int(document["shard_count"]), str(path))
