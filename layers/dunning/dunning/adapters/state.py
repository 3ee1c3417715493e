"""The project's State table, one store per item kind (docs/decisions.md D2):

- :class:`~dunning.adapters.cadence.CadenceStore`: ``LOAN#<loan_id>`` / ``CADENCE``, each loan's next
  contact behind the sparse due-index;
- :class:`~dunning.adapters.contact.ContactStore`: ``BORROWER#<borrower_id>`` / ``CONTACT``, each
  borrower's caps, claims, pause, unusable points and open disputes;
- :class:`~dunning.adapters.consent.ConsentStore`: ``PHONE#<e164>`` / ``CONSENT``, the consent registry
  of phone numbers, and the ``CONFIRMATION_OWED`` pointers to confirmations still owed.

Their keys are in :mod:`dunning.adapters.state_keys`; each item's shape is in its store's module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dunning.adapters.cadence import CadenceStore
from dunning.adapters.consent import ConsentStore
from dunning.adapters.contact import ContactStore
from dunning.adapters.dynamo import Dynamo


@dataclass
class StateStore:
    """The State table's three stores over one client: ``cadence``, ``contact`` and ``consent``."""

    dynamo: Dynamo
    table: str
    # Only the functions that put loans into the index by hash need it (not the sender: see
    # ``CadenceStore.replan_earlier``).
    shard_count: int | None = None
    cadence: CadenceStore = field(init=False, repr=False)
    contact: ContactStore = field(init=False, repr=False)
    consent: ConsentStore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.cadence = CadenceStore(self.dynamo, self.table, self.shard_count)
        self.contact = ContactStore(self.dynamo, self.table)
        self.consent = ConsentStore(self.dynamo, self.table)
