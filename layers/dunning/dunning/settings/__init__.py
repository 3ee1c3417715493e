"""One settings model per function, read from the environment the template gives it.

Every variable is required: a missing or misspelt one fails the first invocation with a message naming
it, instead of a default quietly sending from the wrong number or keeping the ledger for the wrong time.
Where "nothing" is a legitimate value (no origination identity, no price cap) the template says so with
an empty string, explicitly. docs/contract-resources.md lists the variables.

Each function's model is in a module of its own (``dunning.settings.indexer``, ...), loaded when its name
is first imported from here (``from dunning.settings import IndexerSettings``): a function's cold start
defines its own model, never the other five (a pydantic model class costs about a quarter of a
millisecond to define, even unbuilt).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ShardCount = Annotated[int, Field(ge=1, le=100)]
# The template's bounds (its default, 800 days, keeps the ledger beyond two years of disputes).
RetentionDays = Annotated[int, Field(ge=30, le=3650)]
TableName = Annotated[str, Field(min_length=3, max_length=255)]
TopicArn = Annotated[str, Field(pattern=r"^arn:aws[a-z\-]*:sns:[a-z0-9\-]+:\d{12}:[A-Za-z0-9_\-.]+$")]


class SettingsError(RuntimeError):
    """The function's environment does not satisfy its settings model."""


class FunctionSettings(BaseModel):
    """What every function's settings have: the State and Ledger tables, the ledger's retention."""

    # defer_build: a function validates its own model, built then (its first invocation).
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    state_table: TableName
    ledger_table: TableName
    ledger_retention_days: RetentionDays

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Validate the environment; raise :class:`SettingsError` naming every bad or missing variable."""
        env = os.environ if environ is None else environ
        wanted = {name: env[name.upper()] for name in cls.model_fields if name.upper() in env}
        try:
            return cls.model_validate(wanted)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
            )
            raise SettingsError(f"{cls.__name__} is invalid: {problems}") from None


# Each function's model, and the module of this package that defines it.
_MODULES = {
    "IndexerSettings": "indexer",
    "PlannerSettings": "planner",
    "SenderSettings": "sender",
    "ReceiptsSettings": "receipts",
    "InboundSettings": "inbound",
    "ReconcileSettings": "reconcile",
}

if TYPE_CHECKING:
    from dunning.settings.inbound import InboundSettings
    from dunning.settings.indexer import IndexerSettings
    from dunning.settings.planner import PlannerSettings
    from dunning.settings.receipts import ReceiptsSettings
    from dunning.settings.reconcile import ReconcileSettings
    from dunning.settings.sender import SenderSettings

__all__ = [
    "FunctionSettings",
    "InboundSettings",
    "IndexerSettings",
    "PlannerSettings",
    "ReceiptsSettings",
    "ReconcileSettings",
    "RetentionDays",
    "SenderSettings",
    "SettingsError",
    "ShardCount",
    "TableName",
    "TopicArn",
]


def __getattr__(name: str) -> Any:
    """A function's settings model, its module imported on first use."""
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
