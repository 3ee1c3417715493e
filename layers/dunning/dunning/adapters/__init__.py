"""Adapters: one per AWS resource, each behind a small interface, boto3 clients created on first use.

:class:`Adapters` bundles the table adapters for code that reads across them (``explain``, the CLI).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

# Imported where the bundle is made: a function importing one adapter (``dunning.adapters.dynamo``) runs
# this package's __init__ first, and loads only the adapters it uses.
if TYPE_CHECKING:
    from dunning.adapters.dynamo import Dynamo
    from dunning.adapters.ledger import Ledger
    from dunning.adapters.lender import Lender
    from dunning.adapters.state import StateStore


@dataclass
class Adapters:
    lender: Lender
    state: StateStore
    ledger: Ledger

    @classmethod
    def for_tables(
        cls,
        *,
        loans_table: str,
        borrowers_table: str,
        state_table: str,
        ledger_table: str,
        shard_count: int | None = None,
        retention_days: int = 800,
        dynamo: Dynamo | None = None,
    ) -> Adapters:
        """Adapters over the four tables sharing one DynamoDB client (created on first use)."""
        from dunning.adapters.dynamo import Dynamo
        from dunning.adapters.ledger import Ledger
        from dunning.adapters.lender import Lender
        from dunning.adapters.state import StateStore

        shared = dynamo or Dynamo()
        return cls(
            lender=Lender(shared, loans_table, borrowers_table),
            state=StateStore(shared, state_table, shard_count),
            ledger=Ledger(shared, ledger_table, retention_days),
        )
