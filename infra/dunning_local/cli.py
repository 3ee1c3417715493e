"""The ``dunning`` command: demo, seed, simulate, plan, explain, decide, lint, invoke.

Every failure a user can cause (a missing file, a bad item, no local endpoint) ends in one line saying
what went wrong and what to do, with exit status 2; a failed invariant in the demo exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class UsageError(Exception):
    """A problem the user can fix; printed as one line."""


def _parse_at(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"--at {text!r} is not an ISO-8601 instant; use e.g. 2026-03-02T14:00:00Z") from exc
    if value.tzinfo is None:
        raise UsageError(f"--at {text!r} has no time zone; add Z or an offset, e.g. 2026-03-02T14:00:00Z")
    return value.astimezone(UTC)


def _read_json(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"{what} file {path} not found") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} file {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc


def cmd_decide(args: argparse.Namespace) -> int:
    """JSON in (the documented item contract), decision JSON out; no AWS."""
    from pydantic import ValidationError

    from dunning import items
    from dunning.engine import decide
    from dunning.models import ContactState
    from dunning.rules import load_rulebooks
    from dunning.strategy import load_strategies

    try:
        loan = items.loan_from_item(_read_json(args.loan, "loan"))
        borrower = items.borrower_from_item(_read_json(args.borrower, "borrower"))
        history = (
            _read_json(args.history, "history") if args.history else {"borrower_id": borrower.borrower_id}
        )
        state = ContactState.model_validate(history)
    except items.ItemError as exc:
        raise UsageError(str(exc)) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"history: {where}: {first['msg']}") from exc
    decision = decide(loan, borrower, state, _parse_at(args.at), load_rulebooks(), load_strategies())
    print(decision.model_dump_json(indent=2, exclude_none=True))
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    """Rulebooks, strategies and templates: non-zero exit on any problem."""
    from dunning.lint import lint_templates
    from dunning.rules import load_rulebooks
    from dunning.strategy import load_strategies

    load_rulebooks()
    load_strategies()
    problems = lint_templates()
    for p in problems:
        print(f"{p.locale} {p.template} {p.channel}: {p.rule}: {p.message}")
    print(f"{len(problems)} problem(s)" if problems else "rulebooks, strategies and templates: OK")
    return 1 if problems else 0


def cmd_invoke(args: argparse.Namespace) -> int:
    from dunning_local.invoke import invoke_main

    return invoke_main(
        [args.function, "--event", args.event, *(["--endpoint", args.endpoint] if args.endpoint else [])]
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from dunning_local.simulate import DemoOptions, run_demo

    result = run_demo(DemoOptions.from_args(args))
    return 0 if result.passed else 1


def cmd_seed(args: argparse.Namespace) -> int:
    from dunning_local.simulate import DemoOptions, seed_command

    return seed_command(DemoOptions.from_args(args), endpoint=_endpoint(args))


def cmd_simulate(args: argparse.Namespace) -> int:
    from dunning_local.simulate import DemoOptions, simulate_command

    return simulate_command(DemoOptions.from_args(args), endpoint=_endpoint(args))


def cmd_plan(args: argparse.Namespace) -> int:
    from dunning_local.operate import plan_dry_run

    if not args.dry_run:
        raise UsageError("plan only runs with --dry-run here; a real tick is the planner function's job")
    return plan_dry_run(endpoint=_endpoint(args), at=_parse_at(args.at), limit=args.limit)


def cmd_explain(args: argparse.Namespace) -> int:
    from dunning_local.operate import explain_loan

    return explain_loan(endpoint=_endpoint(args), loan_id=args.loan_id)


def _endpoint(args: argparse.Namespace) -> str | None:
    endpoint = getattr(args, "endpoint", None) or os.environ.get("AWS_ENDPOINT_URL")
    return str(endpoint) if endpoint else None


def _demo_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--loans", type=int, default=5000, help="number of loans (default 5000)")
    p.add_argument("--hours", type=int, default=72, help="simulated hours (default 72)")
    p.add_argument("--seed", type=int, default=7, help="random seed; the same seed gives the same run")
    p.add_argument("--fault-rate", type=float, default=0.0, help="share of AWS calls that fail (0..0.5)")
    p.add_argument("--tick-minutes", type=int, default=15)
    p.add_argument("--shards", type=int, default=2, help="due-index shards (default 2)")
    p.add_argument("--start", default="2026-03-02T05:00:00Z", help="simulated start instant (UTC)")
    p.add_argument("--out", default="out/demo", help="where the HTML and JSON reports go")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dunning", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
        "demo": (cmd_demo, "seed a synthetic book and run a simulated period on embedded AWS, then report"),
        "seed": (
            cmd_seed,
            "create the stack from template.yaml and seed a synthetic book (needs --endpoint)",
        ),
        "simulate": (cmd_simulate, "run simulated ticks against an existing seeded stack (needs --endpoint)"),
        "plan": (cmd_plan, "what a tick would do, and why, without doing it"),
        "explain": (cmd_explain, "the full trail of decisions, messages and receipts for a loan"),
        "decide": (cmd_decide, "decide one loan from JSON files (no AWS)"),
        "lint": (cmd_lint, "check rulebooks, strategies and templates"),
        "invoke": (cmd_invoke, "invoke a function from template.yaml in-process on an event file"),
    }
    subs = {}
    for name, (func, help_text) in commands.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        subs[name] = p
    for name in ("demo", "seed", "simulate"):
        _demo_options(subs[name])
    for name in ("seed", "simulate", "plan", "explain", "invoke"):
        subs[name].add_argument("--endpoint", help="AWS endpoint, e.g. http://127.0.0.1:5000 (moto_server)")
    subs["plan"].add_argument("--dry-run", action="store_true", required=True)
    subs["plan"].add_argument("--at", required=True, help="the tick instant, e.g. 2026-03-02T14:00:00Z")
    subs["plan"].add_argument("--limit", type=int, default=50, help="rows to print per section")
    subs["explain"].add_argument("loan_id")
    subs["decide"].add_argument("--loan", required=True, help="loan item JSON (README item contract)")
    subs["decide"].add_argument("--borrower", required=True, help="borrower item JSON")
    subs["decide"].add_argument("--history", help="contact state JSON (sends, claims, opt-outs)")
    subs["decide"].add_argument("--at", required=True, help="the instant, e.g. 2026-03-02T14:00:00Z")
    subs["invoke"].add_argument("function", help="logical id (PlannerFunction) or folder (planner)")
    subs["invoke"].add_argument(
        "--event", required=True, help="event JSON file, e.g. events/planner/scheduled_tick.json"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"dunning {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dunning {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the one-line promise holds for the unexpected too
        print(
            f"dunning {args.command}: {type(exc).__name__}: {exc} (run with DUNNING_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        if os.environ.get("DUNNING_DEBUG"):
            raise
        return 2


if __name__ == "__main__":
    sys.exit(main())
