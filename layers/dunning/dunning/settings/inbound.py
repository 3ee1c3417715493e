"""The InboundFunction's settings: the tables replies change, the reply number, the pause and the topics."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from dunning.settings import FunctionSettings, TableName, TopicArn


class InboundSettings(FunctionSettings):
    # Loans: a START re-plans the borrower's loans (an opt-out had taken them out of the due-index).
    loans_table: TableName
    borrowers_table: TableName
    sms_origination_identity: Annotated[str, Field(max_length=64)]
    inbound_pause_days: Annotated[int, Field(ge=0, le=90)]  # 0 = no pause
    attention_topic_arn: TopicArn
    inbound_topic_arn: TopicArn
