"""The lender's Loans and Borrowers tables: keys, the two GSIs, the reconcile scan. Read-only for us.

Items are returned raw (plain Python values); :mod:`dunning.items` turns them into domain models, so a
bad item is a recorded, skipped item and not an exception here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from dunning.adapters.dynamo import Dynamo, Item, Key


@dataclass
class Lender:
    dynamo: Dynamo
    loans_table: str
    borrowers_table: str

    @staticmethod
    def loan_key(loan_id: str) -> Key:
        return {"loan_id": loan_id}

    @staticmethod
    def borrower_key(borrower_id: str) -> Key:
        return {"borrower_id": borrower_id}

    def get_loan(self, loan_id: str) -> Item | None:
        return self.dynamo.get(self.loans_table, self.loan_key(loan_id), consistent=False)

    def loan_ids_of_borrower(self, borrower_id: str) -> list[str]:
        """Every loan of a borrower (GSI ``ByBorrower``, keys only), whatever its status."""
        ids: list[str] = []
        for items, _ in self.dynamo.query_pages(
            TableName=self.loans_table,
            IndexName="ByBorrower",
            KeyConditionExpression="borrower_id = :b",
            ExpressionAttributeValues={":b": borrower_id},
        ):
            ids.extend(str(item["loan_id"]) for item in items)
        return ids

    def borrower_ids_with_phone(self, phone: str) -> list[str]:
        """Borrowers whose ``phone`` is this E.164 number (GSI ``ByPhone``, keys only)."""
        ids: list[str] = []
        for items, _ in self.dynamo.query_pages(
            TableName=self.borrowers_table,
            IndexName="ByPhone",
            KeyConditionExpression="phone = :p",
            ExpressionAttributeValues={":p": phone},
        ):
            ids.extend(str(item["borrower_id"]) for item in items)
        return ids

    def get_many(
        self, loan_ids: Iterable[str] = (), borrower_ids: Iterable[str] = ()
    ) -> tuple[dict[str, Item], dict[str, Item]]:
        """Loans and borrowers by id in one batched read: ({loan_id: item}, {borrower_id: item})."""
        found = self.dynamo.batch_get(
            {
                self.loans_table: [self.loan_key(i) for i in loan_ids],
                self.borrowers_table: [self.borrower_key(i) for i in borrower_ids],
            }
        )
        return (
            {str(i["loan_id"]): i for i in found.get(self.loans_table, [])},
            {str(i["borrower_id"]): i for i in found.get(self.borrowers_table, [])},
        )

    def scan_loans(self, segment: int, total_segments: int, page_size: int = 100) -> Iterator[list[Item]]:
        """One segment of a parallel Scan of Loans, page by page (the daily reconcile sweep)."""
        yield from self.dynamo.scan_pages(
            TableName=self.loans_table, Segment=segment, TotalSegments=total_segments, Limit=page_size
        )
