"""The IndexerFunction's settings: the lender's two tables it follows, the due-index's shards, the ticks."""

from __future__ import annotations

from dunning.settings import ShardCount, TableName
from dunning.settings.ticked import TickedSettings


class IndexerSettings(TickedSettings):
    loans_table: TableName
    borrowers_table: TableName
    shard_count: ShardCount
