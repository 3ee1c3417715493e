"""Prices have one home, data/prices.yaml: no module of the product, the local tool or the bench holds a
copy of one of its numbers (a copy drifts the day the list is updated)."""

from __future__ import annotations

import ast
from pathlib import Path

from dunning.budget import load_prices
from dunning_local import prices as demo_prices

ROOT = Path(__file__).parents[2]
CODE = [
    ROOT / "layers" / "dunning" / "dunning",
    ROOT / "infra" / "dunning_local",
    ROOT / "bench",
    ROOT / "functions",
]


def _listed_prices() -> set[float]:
    listed = load_prices()
    found = {listed.sms_per_part_unlisted, listed.infra_per_message, *listed.infrastructure.values()}
    for price in listed.sms_per_part.values():
        found |= {price.base, price.carrier_fee, price.total}
    # Round numbers (0.5 USD per GB of logs, 0.25 per GB-month) are too common to tell apart from other
    # constants; a price with three or more decimals is not.
    return {round(p, 9) for p in found if len(f"{p:.9f}".rstrip("0").split(".")[1]) >= 3}


def _float_literals(path: Path) -> list[tuple[int, float]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and type(node.value) is float
    ]


def test_no_module_holds_a_copy_of_a_listed_price() -> None:
    listed = _listed_prices()

    copies = [
        f"{path.relative_to(ROOT)}:{line} {value}"
        for folder in CODE
        for path in sorted(folder.rglob("*.py"))
        for line, value in _float_literals(path)
        if round(value, 9) in listed
    ]

    assert copies == [], "read data/prices.yaml (dunning.budget.load_prices) instead of copying a price"


def test_the_demo_prices_an_unlisted_destination_as_the_spend_guard_does() -> None:
    listed = load_prices()

    assert demo_prices.sms_part_price("ZZ") == listed.sms_part("ZZ")


def test_the_demo_prices_a_listed_destination_from_the_list() -> None:
    listed = load_prices()

    assert demo_prices.sms_part_price("GB") == listed.sms_per_part["GB"].total
