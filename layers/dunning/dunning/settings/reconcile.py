"""The ReconcileFunction's settings: the Loans table it sweeps, the shards, the confirmations it completes."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from dunning.settings import FunctionSettings, ShardCount, TableName


class ReconcileSettings(FunctionSettings):
    loans_table: TableName
    shard_count: ShardCount
    # The sweep sends the STOP/START confirmations still owed, from the same number as the replies.
    sms_origination_identity: Annotated[str, Field(max_length=64)] = ""
    # A confirmation in doubt with no delivery receipt after this long never reached SNS: sent again.
    # Above the 15-minute claim timeout; SNS delivery-status logs arrive within minutes.
    confirmation_receipt_horizon_minutes: Annotated[int, Field(ge=20, le=24 * 60)] = 60
