"""The ``dunning`` command as a user runs it: decide from JSON, lint, plan/explain on moto_server, demo."""

from __future__ import annotations

import json
import os
import re
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
    # An example that names its jurisdictions (loan, address, phone) is held to them too.
    for field in ("kind", "rule_id", "channel", "not_before", "jurisdictions"):
        if field in expected:
            got = decision.get(field)
            if field == "not_before":
                got = datetime.fromisoformat(got).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            assert got == expected[field], f"{case.name}: {field}"
    assert decision["reason"]
    assert decision["citation"]


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
        (["invoke", "sender", "--event", "nope.json"], "event file nope.json not found"),
        (["invoke", "nope", "--event", "events/sender/sms_jobs_sqs.json"], "no function 'nope'"),
        (
            ["invoke", "sender", "--event", "events/sender/sms_jobs_sqs.json", "--now", "2026-03-02 14:05"],
            "--now '2026-03-02 14:05' has no time zone",
        ),
        (["explain", "L-1", "--from", "nowhere"], "dunning demo --keep"),
    ],
)
def test_errors_are_one_clear_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ENDPOINT_URL", "LOANS_TABLE"):
        monkeypatch.delenv(name, raising=False)

    assert main(argv) == 2

    err = capsys.readouterr().err.strip()
    assert message in err
    assert "\n" not in err
    assert "Traceback" not in err


def test_decide_with_a_json_array_says_it_wants_one_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loan = json.loads((EXAMPLES[0] / "loan.json").read_text(encoding="utf-8"))
    (tmp_path / "loans.json").write_text(json.dumps([loan, loan]), encoding="utf-8")
    argv = [
        "decide",
        "--loan",
        str(tmp_path / "loans.json"),
        "--borrower",
        str(EXAMPLES[0] / "borrower.json"),
    ]

    code = main([*argv, "--at", "2026-03-09T16:00:00Z"])

    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "holds an array; expected one JSON object" in err
    assert "\n" not in err
    assert "AttributeError" not in err


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
    out = capsys.readouterr().out
    assert "OK" in out
    assert "checked 12 rulebooks" in out, "says what it checked"
    assert "templates × 3 locales" in out
    assert "× 2 channels" in out


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
    # The commands point AWS_ENDPOINT_URL at the server; monkeypatch would restore that value on undo.
    os.environ.pop("AWS_ENDPOINT_URL", None)
    server.stop()


@pytest.mark.parametrize("command", ["plan", "simulate", "explain"])
def test_an_unseeded_server_says_seed_first_and_creates_nothing(
    moto_server: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import boto3

    argv = {
        "plan": ["plan", "--dry-run", "--at", "2026-03-02T15:00:00Z"],
        "simulate": ["simulate", "--hours", "1", "--quiet"],
        "explain": ["explain", "L-000001"],
    }[command]

    code = main([*argv, "--endpoint", moto_server])

    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "seed first" in err
    assert "\n" not in err
    tables = boto3.client("dynamodb", endpoint_url=moto_server).list_tables()["TableNames"]
    assert tables == [], "nothing was created"


def test_invoke_with_now_runs_the_readme_event_at_its_own_time(capsys: pytest.CaptureFixture[str]) -> None:
    event = "events/sender/sms_jobs_sqs.json"  # jobs planned 2026-03-02T14:00Z, expiring at 15:00Z

    assert main(["invoke", "sender", "--event", event]) == 0
    late = capsys.readouterr().out
    assert main(["invoke", "sender", "--event", event, "--now", "2026-03-02T14:05:00Z"]) == 0
    on_time = capsys.readouterr().out

    assert '"Expired"' in late
    assert '"Expired"' not in on_time, "at the jobs' own time they are not past their TTL"


def test_seed_plan_simulate_explain_on_moto_server(
    moto_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--endpoint", moto_server, "--loans", "40", "--out", str(tmp_path), "--quiet"]
    assert main(["seed", *common]) == 0

    assert main(["plan", "--dry-run", "--at", "2026-03-02T15:00:00Z", "--endpoint", moto_server]) == 0
    plan = capsys.readouterr().out
    assert "nothing is written and nothing is sent" in plan
    assert "Would send" in plan
    assert "Held back" in plan

    assert main(["simulate", *common, "--hours", "12", "--start", "2026-03-02T05:00:00Z"]) == 0
    simulated = capsys.readouterr().out
    assert "Messages sent by channel" in simulated
    assert "{" not in simulated.splitlines()[0]
    assert json.loads((tmp_path / "summary.json").read_text())["sent"], "its own summary file"
    assert main(["explain", "L-000001", "--endpoint", moto_server]) == 0
    trail = capsys.readouterr().out
    assert "Loan L-000001" in trail
    assert "DECISION" in trail or "MESSAGE" in trail


def _comparable(summary: dict) -> dict:
    run = {k: v for k, v in summary["run"].items() if k != "elapsed_seconds"}
    # SNS message ids and push endpoint ARNs are random UUIDs, in every run.
    random_ids = ("message_id", "contact_point")
    explained = summary["explained_loan"]
    trail = [{k: v for k, v in e.items() if k not in random_ids} for e in explained["trail"]]
    return {**summary, "run": run, "explained_loan": {**explained, "trail": trail}}


def test_a_small_demo_passes_every_invariant_and_the_same_seed_gives_the_same_run(tmp_path: Path) -> None:
    options = DemoOptions(loans=150, hours=6, seed=11, quiet=True, out=tmp_path / "a")

    first = run_demo(options)
    second = run_demo(DemoOptions(loans=150, hours=6, seed=11, quiet=True, out=tmp_path / "b"))

    assert first.passed, [i for i in first.summary["invariants"] if not i["passed"]]
    assert sum(first.summary["sent"].values()) > 0
    assert first.html_path.exists()
    assert json.loads(first.json_path.read_text())["invariants"]
    assert _comparable(first.summary) == _comparable(second.summary)


@pytest.fixture(scope="module")
def kept_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("kept")
    result = run_demo(DemoOptions(loans=150, hours=12, seed=7, quiet=True, out=out, keep=True))
    return out, result.summary


def test_demo_keep_prints_loans_to_explain_and_each_shows_what_it_was_printed_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_demo(DemoOptions(loans=150, hours=12, seed=7, quiet=True, out=tmp_path, keep=True))
    printed = re.findall(
        rf"dunning explain (L-\d+) --from {re.escape(str(tmp_path))} +# (.+)", capsys.readouterr().out
    )
    cap_loans = [loan for loan, why in printed if "cap" in why]

    assert cap_loans, printed
    assert main(["explain", cap_loans[0], "--json", "--from", str(tmp_path)]) == 0
    trail = json.loads(capsys.readouterr().out)["trail"]
    assert any(e.get("rule_id", "").startswith("cap.") for e in trail), trail


def test_explain_from_a_kept_demo_shows_rule_reason_citation_and_message_details(
    kept_demo: tuple[Path, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    out, summary = kept_demo
    loan_id = summary["explained_loan"]["loan_id"]

    assert main(["explain", loan_id, "--from", str(out)]) == 0

    text = capsys.readouterr().out
    assert "citation: " in text
    assert "message id: " in text
    assert "template: " in text
    assert "provider said: " in text
    assert not re.search(r"\+\d{8,}", text), "phone numbers are masked"


def test_explain_json_is_the_whole_trail(
    kept_demo: tuple[Path, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    out, summary = kept_demo
    loan_id = summary["explained_loan"]["loan_id"]

    assert main(["explain", loan_id, "--json", "--from", str(out)]) == 0

    document = json.loads(capsys.readouterr().out)
    assert document["loan_id"] == loan_id
    assert [e["kind"] for e in document["trail"]] == [e["kind"] for e in summary["explained_loan"]["trail"]]
    message = next(e for e in document["trail"] if e["kind"] == "MESSAGE")
    assert {"message_id", "template", "locale", "status", "rule_id", "reason"} <= message.keys()
    assert message["channel"] == "push" or "segments" in message
    decision = next(e for e in document["trail"] if e["kind"] == "DECISION")
    assert decision["citation"]
    assert decision["reason"]
    assert decision["rule_id"]


def test_plan_from_a_kept_demo_lists_loans_held_back_within_the_tick(
    kept_demo: tuple[Path, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = kept_demo

    assert main(["plan", "--dry-run", "--at", "2026-03-02T17:00:00Z", "--from", str(out)]) == 0

    assert "nothing is written and nothing is sent" in capsys.readouterr().out
