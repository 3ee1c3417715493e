"""The ``dunning`` command as a user runs it: decide from JSON, lint, plan/explain on moto_server, demo."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dunning_local.cli import main
from dunning_local.simulate import DemoOptions, run_demo

EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "decide").iterdir())


@pytest.mark.parametrize("case", EXAMPLES, ids=[c.name for c in EXAMPLES])
def test_decide_reproduces_the_rule_examples_from_json_files(
    case: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    argv = ["decide", "--loan", str(case / "loan.json"), "--borrower", str(case / "borrower.json")]
    if (case / "history.json").exists():
        argv += ["--history", str(case / "history.json")]

    assert main([*argv, "--at", expected["at"]]) == 0

    decision = json.loads(capsys.readouterr().out)
    for field in ("kind", "rule_id", "channel", "not_before"):
        if field in expected:
            got = decision.get(field)
            if field == "not_before":
                got = datetime.fromisoformat(got).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            assert got == expected[field], f"{case.name}: {field}"
    assert decision["reason"] and decision["citation"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["decide", "--loan", "nope.json", "--borrower", "nope.json", "--at", "2026-03-02T14:00:00Z"],
            "not found",
        ),
        (
            [
                "decide",
                "--loan",
                str(EXAMPLES[0] / "loan.json"),
                "--borrower",
                str(EXAMPLES[0] / "borrower.json"),
                "--at",
                "2026-03-02 14:00",
            ],
            "has no time zone",
        ),
        (["explain", "L-1"], "no stack to read"),
        (["seed", "--loans", "10"], "need a running endpoint"),
    ],
)
def test_errors_are_one_clear_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ENDPOINT_URL", "LOANS_TABLE"):
        monkeypatch.delenv(name, raising=False)

    assert main(argv) == 2

    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_decide_names_the_bad_field_of_an_item(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = json.loads((EXAMPLES[0] / "loan.json").read_text(encoding="utf-8")) | {"amount_due": "-5"}
    (tmp_path / "loan.json").write_text(json.dumps(bad), encoding="utf-8")

    code = main(
        [
            "decide",
            "--loan",
            str(tmp_path / "loan.json"),
            "--borrower",
            str(EXAMPLES[0] / "borrower.json"),
            "--at",
            "2026-03-09T16:00:00Z",
        ]
    )

    assert code == 2
    assert "amount_due" in capsys.readouterr().err


def test_lint_passes_on_the_shipped_rulebooks_strategies_and_templates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["lint"]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    yield f"http://{host}:{port}"
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    server.stop()


def test_seed_plan_simulate_explain_on_moto_server(
    moto_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--endpoint", moto_server, "--loans", "40", "--out", str(tmp_path), "--quiet"]
    assert main(["seed", *common]) == 0

    assert main(["plan", "--dry-run", "--at", "2026-03-02T15:00:00Z", "--endpoint", moto_server]) == 0
    plan = capsys.readouterr().out
    assert "nothing is written and nothing is sent" in plan
    assert "Would send" in plan and "Held back" in plan

    assert main(["simulate", *common, "--hours", "12", "--start", "2026-03-02T05:00:00Z"]) == 0
    capsys.readouterr()
    assert main(["explain", "L-000001", "--endpoint", moto_server]) == 0
    trail = capsys.readouterr().out
    assert "Loan L-000001" in trail
    assert "DECISION" in trail or "MESSAGE" in trail


def _comparable(summary: dict) -> dict:
    run = {k: v for k, v in summary["run"].items() if k != "elapsed_seconds"}
    return {**summary, "run": run}


def test_a_small_demo_passes_every_invariant_and_the_same_seed_gives_the_same_run(tmp_path: Path) -> None:
    options = DemoOptions(loans=150, hours=6, seed=11, quiet=True, out=tmp_path / "a")

    first = run_demo(options)
    second = run_demo(DemoOptions(loans=150, hours=6, seed=11, quiet=True, out=tmp_path / "b"))

    assert first.passed, [i for i in first.summary["invariants"] if not i["passed"]]
    assert sum(first.summary["sent"].values()) > 0
    assert first.html_path.exists() and json.loads(first.json_path.read_text())["invariants"]
    assert _comparable(first.summary) == _comparable(second.summary)
