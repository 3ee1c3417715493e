"""The SenderFunction's settings: its tables, the jobs' lifetime, the SMS origination and price cap."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field, field_validator

from dunning.settings import FunctionSettings, TableName


class SenderSettings(FunctionSettings):
    loans_table: TableName
    borrowers_table: TableName
    job_ttl_minutes: Annotated[int, Field(ge=5, le=24 * 60)]
    # "" = the account's default origination identity.
    sms_origination_identity: Annotated[str, Field(max_length=64)]
    # "" = no per-message price cap.
    sms_max_price_usd: Annotated[str, Field(max_length=16)]

    @field_validator("sms_max_price_usd")
    @classmethod
    def _price(cls, value: str) -> str:
        if value and not (Decimal(value) > 0 if value.replace(".", "", 1).isdigit() else False):
            raise ValueError("must be empty or a positive decimal number of US dollars")
        return value
