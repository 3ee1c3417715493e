"""The ``dunning`` command: demo, seed, simulate, plan, explain, decide, lint, invoke.

Every failure a user can cause (a missing file, a bad item, no local endpoint) ends in one line saying
what went wrong and what to do, with exit status 2; a failed invariant in the demo exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from dunning_local.usage import UsageError, parse_at, read_json, read_json_object


def cmd_decide(args: argparse.Namespace) -> int:
    """JSON in (the documented item contract), decision JSON out; no AWS."""
    from pydantic import ValidationError

    from dunning import items
    from dunning.engine import decide
    from dunning.models import ContactState
    from dunning.rules import load_rulebooks
    from dunning.strategy import load_strategies

    try:
        loan = items.loan_from_item(read_json_object(args.loan, "loan"))
        borrower = items.borrower_from_item(read_json_object(args.borrower, "borrower"))
        history = (
            read_json_object(args.history, "history")
            if args.history
            else {"borrower_id": borrower.borrower_id}
        )
        state = ContactState.model_validate(history)
    except items.ItemError as exc:
        raise UsageError(str(exc)) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"history: {where}: {first['msg']}") from exc
    decision = decide(loan, borrower, state, parse_at(args.at), load_rulebooks(), load_strategies())
    print(decision.model_dump_json(indent=2, exclude_none=True))
    return 0


def cmd_lint(args: argparse.Namespace) -> int:
    """Rulebooks, strategies and templates: non-zero exit on any problem."""
    from dunning.lint import lint_templates
    from dunning.render import load_templates
    from dunning.rules import load_rulebooks
    from dunning.strategy import load_strategies

    rulebooks = load_rulebooks()
    strategies = load_strategies()
    catalog = load_templates()
    problems = lint_templates(catalog)
    for p in problems:
        line = _template_line(p.locale, p.template, p.channel)
        where = f"data/templates/locales/{p.locale}.yaml:{line}" if line else f"{p.locale}"
        print(f"{where}: {p.template} {p.channel}: {p.rule}: {p.message}")
    print(
        f"checked {len(rulebooks.codes)} rulebooks ({', '.join(rulebooks.codes)}), "
        f"{len(strategies.names)} strategies ({', '.join(strategies.names)}), "
        f"{len(catalog.template_ids)} templates × {len(catalog.locales)} locales "
        f"({', '.join(catalog.locales)}) "
        "× 2 channels (sms, push)"
    )
    print(f"{len(problems)} problem(s)" if problems else "OK: no problem found")
    return 1 if problems else 0


def _template_line(locale: str, template: str, channel: str) -> int | None:
    """The line of ``template``'s ``channel`` entry (or of the template) in the locale's YAML file."""
    from dunning.render import DEFAULT_TEMPLATES_DIR

    path = DEFAULT_TEMPLATES_DIR / f"{locale}.yaml"
    if template in ("", "*") or not path.is_file():
        return None
    found = None
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = text.strip()
        if found is None and stripped == f"{template}:":
            found = number
        elif found is not None and stripped.startswith(f"{channel}:"):
            return number
        elif (
            found is not None
            and text.startswith("  ")
            and not text.startswith("   ")
            and stripped.endswith(":")
        ):
            break
    return found


def cmd_invoke(args: argparse.Namespace) -> int:
    """Run a function's handler on an event file (``--now`` fixes the clock the handler sees)."""
    from dunning_local.invoke import invoke_main

    read_json(args.event, "event")
    try:
        return _invoke(args, invoke_main)
    except KeyError as exc:
        # An unknown function name, or an event without a field its handler needs.
        raise UsageError(str(exc.args[0]) if exc.args else "KeyError") from exc


def _invoke(args: argparse.Namespace, invoke_main: Callable[[list[str]], int]) -> int:
    return invoke_main(
        [
            args.function,
            "--event",
            args.event,
            *(["--endpoint", args.endpoint] if args.endpoint else []),
            *(["--now", parse_at(args.now, "--now").isoformat()] if args.now else []),
        ]
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
    return plan_dry_run(endpoint=_endpoint(args), at=parse_at(args.at), limit=args.limit, kept=args.kept)


def cmd_explain(args: argparse.Namespace) -> int:
    from dunning_local.operate import explain_loan

    return explain_loan(endpoint=_endpoint(args), loan_id=args.loan_id, as_json=args.json, kept=args.kept)


def _endpoint(args: argparse.Namespace) -> str | None:
    endpoint = getattr(args, "endpoint", None) or os.environ.get("AWS_ENDPOINT_URL")
    return str(endpoint) if endpoint else None


def _demo_options(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument("--loans", type=int, default=5000, help="number of loans (default 5000)")
    p.add_argument("--hours", type=int, default=72, help="simulated hours (default 72)")
    p.add_argument("--seed", type=int, default=7, help="random seed; the same seed gives the same run")
    p.add_argument("--fault-rate", type=float, default=0.0, help="share of AWS calls that fail (0..0.5)")
    p.add_argument("--tick-minutes", type=int, default=15)
    p.add_argument("--shards", type=int, default=2, help="due-index shards (default 2)")
    p.add_argument("--start", default="2026-03-02T05:00:00Z", help="simulated start instant (UTC)")
    p.add_argument("--out", default=out, help=f"where the reports and logs go (default {out})")
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
        _demo_options(subs[name], f"out/{name}")
    subs["demo"].add_argument(
        "--keep",
        action="store_true",
        help="keep the run's tables in --out, to explore with `dunning explain LOAN_ID --from OUT`",
    )
    for name in ("plan", "explain"):
        subs[name].add_argument(
            "--from",
            dest="kept",
            metavar="DIR",
            help="read the tables a `dunning demo --keep` run left in DIR (e.g. out/demo)",
        )
    for name in ("seed", "simulate", "plan", "explain", "invoke"):
        subs[name].add_argument("--endpoint", help="AWS endpoint, e.g. http://127.0.0.1:5000 (moto_server)")
    subs["plan"].add_argument("--dry-run", action="store_true", required=True)
    subs["plan"].add_argument("--at", required=True, help="the tick instant, e.g. 2026-03-02T14:00:00Z")
    subs["plan"].add_argument("--limit", type=int, default=50, help="rows to print per section")
    subs["explain"].add_argument("loan_id")
    subs["explain"].add_argument("--json", action="store_true", help="the trail as JSON")
    subs["decide"].add_argument("--loan", required=True, help="loan item JSON (README item contract)")
    subs["decide"].add_argument("--borrower", required=True, help="borrower item JSON")
    subs["decide"].add_argument("--history", help="contact state JSON (sends, claims, opt-outs)")
    subs["decide"].add_argument("--at", required=True, help="the instant, e.g. 2026-03-02T14:00:00Z")
    subs["invoke"].add_argument("function", help="logical id (PlannerFunction) or folder (planner)")
    subs["invoke"].add_argument(
        "--event", required=True, help="event JSON file, e.g. events/planner/scheduled_tick.json"
    )
    subs["invoke"].add_argument(
        "--now",
        help="the instant the handler sees, e.g. 2026-03-02T14:05:00Z (the event files are dated "
        "2026-03-02: without it, their jobs are past their TTL and end Expired)",
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
