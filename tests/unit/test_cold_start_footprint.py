"""What a function's cold start leaves out (issue 12 §5): the other functions' settings models, the domain
models' validators its records never need, the modules it never uses. Each case is a fresh interpreter:
what one test imports must not hide what another would load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SETTINGS_MODULES = {"indexer", "planner", "sender", "receipts", "inbound", "reconcile"}

_PROBE = """
import json, sys
{imports}
from dunning import models
print(json.dumps({{
    "modules": sorted(m for m in sys.modules if m.startswith("dunning")),
    "built": sorted(
        name for name in ("Loan", "Borrower", "ContactState", "SendRecord", "Decision", "AppliedJurisdiction")
        if getattr(models, name).__pydantic_complete__
    ),
}}))
"""


def _footprint(imports: str) -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(imports=imports)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.parametrize("function", sorted(SETTINGS_MODULES))
def test_a_functions_settings_model_loads_its_own_module_alone(function: str) -> None:
    name = f"{function.capitalize()}Settings"
    loaded = _footprint(f"from dunning.settings import {name}")["modules"]

    others = {f"dunning.settings.{m}" for m in SETTINGS_MODULES - {function}}
    assert f"dunning.settings.{function}" in loaded
    assert others.isdisjoint(loaded)


def test_an_unknown_settings_name_is_an_attribute_error() -> None:
    from dunning import settings

    with pytest.raises(AttributeError, match="NoSuchSettings"):
        getattr(settings, "NoSuchSettings")  # noqa: B009


@pytest.mark.parametrize("service", ["dunning.receipts", "dunning.inbound"])
def test_receipts_and_inbound_build_no_domain_model_validator(service: str) -> None:
    assert _footprint(f"import {service}")["built"] == []


def test_the_indexer_builds_loan_and_borrower_with_itself_and_nothing_else() -> None:
    settings = (
        "IndexerSettings(state_table='dunning-State', ledger_table='dunning-Ledger', "
        "ledger_retention_days=800, loans_table='dunning-Loans', borrowers_table='dunning-Borrowers', "
        "shard_count=16, planner_schedule='rate(15 minutes)')"
    )
    imports = (
        "from dunning.indexer import build_indexer\nfrom dunning.settings import IndexerSettings\n"
        f"build_indexer({settings})"
    )

    assert _footprint(imports)["built"] == ["Borrower", "Loan"]


def test_the_reads_behind_every_decision_build_loan_and_borrower() -> None:
    assert {"Loan", "Borrower"} <= set(_footprint("import dunning.adapters.reads")["built"])


def test_recording_consent_does_not_load_the_receipt_matching() -> None:
    loaded = _footprint("import dunning.adapters.consent")["modules"]

    assert "dunning.receipt_matching" not in loaded


def test_importing_one_adapter_does_not_load_the_others() -> None:
    loaded = _footprint("import dunning.adapters.dynamo")["modules"]

    assert {"dunning.adapters.ledger", "dunning.adapters.lender", "dunning.adapters.state"}.isdisjoint(loaded)
