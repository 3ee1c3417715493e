"""What each candidate of issue 12 section 1 would write, re-costed from the same run's writes.

``bench.requests`` counts every write unit the pipeline spent, by function, item kind and table or index
(``capacity.write_units``). Each candidate layout changes a known set of those writes; applying its
change to the run's own counts measures it on exactly the traffic the product produced, instead of
weighing it. The rules (docs/scaling.md, "Write units per delivered message"):

- **slots**: time-keyed ``DUE#<shard>`` / ``<at>#<loan>`` items with a TTL appended instead of moving a
  DueIndex entry: a move (an index delete and put, 2 units) becomes one put; taking a loan out of the
  index costs nothing (its last slot expires); an entry put stays one put. Slots are never deleted, so
  a shard task needs a cursor of how far it has read: one more write per page it read (the planner's
  Queries that found something);
- **message partition**: MESSAGE and OUTCOME items in the loan's partition, no ByLoan entries; receipts
  become ``MSG#<id>`` / ``RECEIPT`` items of their own, one unit each as the merge was (so receipts do
  not change);
- **defer on change**: a DEFER recorded only when its rule or ``not_before`` differs from the loan's
  previous decision: the repeated DECISION items (counted in the run's ledger) are not written;
- **receipt as an update**: an UpdateItem is charged on the larger of the item before and after, like
  the put it replaces: the run's receipt writes cost the same.

``together`` applies all four; ``floor`` lists what is left per delivered message.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

CANDIDATES = ("slots", "message partition", "defer on change", "receipt as an update")


def _parsed(write_units: dict[str, int]) -> list[tuple[str, str, str, int]]:
    """``"planner | StateTable cadence | index DueIndex move"`` -> (label, item, where, units)."""
    rows = []
    for key, units in write_units.items():
        label, item, where = (part.strip() for part in key.split(" | "))
        rows.append((label, item, where, int(units)))
    return rows


_NAMES = {
    "StateTable cadence": "cadence item",
    "StateTable contact": "claim (contact item)",
    "LedgerTable message": "MESSAGE item",
    "LedgerTable decision": "DECISION item",
    "LedgerTable outcome": "OUTCOME item",
}


def _after_all(label: str, item: str, where: str, units: int) -> tuple[str, int]:
    """The name of a write and its units with every candidate applied."""
    if item == "StateTable cadence" and where.startswith("index DueIndex"):
        if where.endswith("move"):
            return "slot item", units // 2
        return "slot item", 0 if where.endswith("delete") else units
    if item in ("LedgerTable message", "LedgerTable outcome") and where == "index ByLoan put":
        return "ByLoan entry", 0
    if label == "receipts" and item == "LedgerTable message":
        return "receipt", units
    name = _NAMES.get(item, item.split(" ", 1)[1])
    return (name if where.startswith("table") else f"{name} ({where})"), units


def _pages_read(run: dict[str, Any]) -> int:
    planner = run["by_function"].get("planner", {})
    return max(0, int(planner.get("dynamodb.Query", 0)) - int(run["empty_polls"]))


def savings(run: dict[str, Any]) -> dict[str, int]:
    """Write units each candidate takes off this run (a slot cursor's writes counted against slots)."""
    saved: Counter[str] = Counter()
    for label, item, where, units in _parsed(run["capacity"]["write_units"]):
        name, after = _after_all(label, item, where, units)
        if name == "slot item":
            saved["slots"] += units - after
        elif name == "ByLoan entry":
            saved["message partition"] += units - after
    saved["slots"] -= _pages_read(run)
    saved["defer on change"] = int(run["ledger"].get("repeated_decisions", 0))
    saved["receipt as an update"] = 0
    return {name: saved[name] for name in CANDIDATES}


def measure(run: dict[str, Any]) -> dict[str, Any]:
    """Per delivered message: the run, each candidate alone, all of them together, and what is left."""
    delivered = max(int(run["delivered"]), 1)
    total = int(run["write_units"])
    saved = savings(run)
    left: Counter[str] = Counter()
    for label, item, where, units in _parsed(run["capacity"]["write_units"]):
        name, after = _after_all(label, item, where, units)
        left[name] += after
    left["slot cursor"] += _pages_read(run)
    left["DECISION item"] -= saved["defer on change"]
    together = total - sum(saved.values())
    assert sum(left.values()) == together, "every write is counted once, with or without the candidates"
    return {
        "delivered": delivered,
        "measured": round(total / delivered, 3),
        "alone": {name: round((total - units) / delivered, 3) for name, units in saved.items()},
        "saved": {name: round(units / delivered, 3) for name, units in saved.items()},
        "together": round(together / delivered, 3),
        "left": {name: round(units / delivered, 3) for name, units in left.most_common() if units > 0},
    }


def section(run: dict[str, Any], target: float) -> list[str]:
    """The generated docs/benchmarks.md section."""
    m = measure(run)
    lines = [
        "## Write units: the candidates, re-costed on this run",
        "",
        "bench/write_candidates.py applies each candidate layout of docs/scaling.md to the write units this "
        "run spent (the table above), by the rules in its docstring: what the same traffic would have "
        "cost. Per delivered message:",
        "",
        "| layout | saves | write units per delivered message |",
        "|---|---:|---:|",
        f"| as built | | **{m['measured']:.2f}** |",
    ]
    for name in CANDIDATES:
        lines.append(f"| {name} | {m['saved'][name]:.2f} | {m['alone'][name]:.2f} |")
    met = "meets" if m["together"] <= target else "does not meet"
    lines += [
        f"| **all four together** | {m['measured'] - m['together']:.2f} | **{m['together']:.2f}** |",
        "",
        f"All four together {met} the {target:.0f} asked. What is left with all four, per delivered message: "
        + ", ".join(f"{name} {units:.2f}" for name, units in m["left"].items())
        + ".",
        "",
    ]
    return lines
