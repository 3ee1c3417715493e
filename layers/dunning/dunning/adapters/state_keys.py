"""Keys and attribute names of the State table's items, shared by its item stores.

Each store (:mod:`~dunning.adapters.cadence`, :mod:`~dunning.adapters.contact`,
:mod:`~dunning.adapters.consent`) owns its item; the keys live here because a store sometimes reads or
writes another's item in the same request (the sender's read of contact and consent, the consent
transaction that blocks the number on contact items).
"""

from __future__ import annotations

from dunning.adapters.dynamo import Key

KEY_NAMES = ("pk", "sk")
CADENCE = "CADENCE"
CONTACT = "CONTACT"
CONSENT = "CONSENT"
CONFIRMATION_OWED_PK = "CONFIRMATION_OWED"
# Attribute-name prefixes on the contact item (one attribute per number or loan: a nested map entry
# cannot be set while the map itself may not exist, and these writes must not read first).
SMS_BLOCK_PREFIX = "sms_block#"
DISPUTE_PREFIX = "dispute#"


def loan_pk(loan_id: str) -> str:
    return f"LOAN#{loan_id}"


def cadence_key(loan_id: str) -> Key:
    return {"pk": loan_pk(loan_id), "sk": CADENCE}


def contact_key(borrower_id: str) -> Key:
    return {"pk": f"BORROWER#{borrower_id}", "sk": CONTACT}


def consent_key(phone: str) -> Key:
    return {"pk": f"PHONE#{phone}", "sk": CONSENT}


def confirmation_pointer_key(phone: str, inbound_id: str) -> Key:
    return {"pk": CONFIRMATION_OWED_PK, "sk": f"{phone}#{inbound_id}"}


def sms_block_attribute(phone: str) -> str:
    return f"{SMS_BLOCK_PREFIX}{phone}"


def dispute_attribute(loan_id: str) -> str:
    return f"{DISPUTE_PREFIX}{loan_id}"
