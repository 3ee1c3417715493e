"""The IndexerFunction's settings: the lender's two tables it follows and the due-index's shards."""

from __future__ import annotations

from dunning.settings import FunctionSettings, ShardCount, TableName


class IndexerSettings(FunctionSettings):
    loans_table: TableName
    borrowers_table: TableName
    shard_count: ShardCount
