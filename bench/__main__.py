"""``make bench``: every benchmark, written to out/bench/results.json and docs/benchmarks.md.

    python -m bench                   # the full run (a few minutes on 2 cores)
    python -m bench --quick           # smaller book, fewer samples; docs/benchmarks.md left alone
    python -m bench --only coldstart  # one part (see PARTS: requests, planner, coldstart, overlap, ...)
    python -m bench --report-only     # docs/benchmarks.md again from out/bench/results.json

results.json is the run's raw data (out/ is not versioned: it is this machine's run); the table in
docs/benchmarks.md is generated from it and versioned, so a change in the numbers shows in review.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import budget_tick, coldstart, cost, overlap, planner_path, report, requests, sizes, throughput

PARTS = ("requests", "throughput", "planner", "coldstart", "sizes", "budget", "overlap")
OUT = Path("out/bench")
DOCS = Path("docs/benchmarks.md")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run; docs are not rewritten")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {PARTS}")
    parser.add_argument("--loans", type=int, default=None, help="size of the generated book (2,700)")
    parser.add_argument("--samples", type=int, default=None, help="cold-import samples per module (7)")
    parser.add_argument("--no-pip", action="store_true", help="size the layer from this virtualenv")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite docs/benchmarks.md from the last results.json"
    )
    return parser.parse_args(argv)


def _step(name: str, started: float) -> None:
    print(f"[bench] {name} ({time.monotonic() - started:.0f}s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.report_only:
        saved: dict[str, Any] = json.loads((args.out / "results.json").read_text(encoding="utf-8"))
        DOCS.write_text(report.markdown(saved), encoding="utf-8")
        print(report.summary(saved))
        return 0
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        print(
            f"unknown part(s): {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}", file=sys.stderr
        )
        return 2
    loans = args.loans or (600 if args.quick else requests.RunOptions.loans)
    samples = args.samples or (3 if args.quick else 7)
    full = set(parts) == set(PARTS) and not args.quick and args.loans is None
    options = " ".join(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    results: dict[str, Any] = {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "make bench" + (f" BENCH_ARGS='{options}'" if options else ""),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(terse=True),
        },
    }
    if "requests" in parts:
        _step(f"requests and capacity units: {loans:,} loans through the handlers on moto", started)
        results["requests"] = requests.run(requests.RunOptions(loans=loans), progress=True)
        results["cost"] = cost.per_million(results["requests"])
        results["cost"]["fixed_monthly_usd"] = cost.fixed_monthly()
    if "throughput" in parts:
        _step("decisions and rendering per second", started)
        results["throughput"] = {
            "decisions": throughput.decision_rates((10_000,) if args.quick else (10_000, 100_000)),
            "rendering": throughput.rendering(),
        }
    if "planner" in parts:
        _step("the planner's whole CPU path on a realistic tick, in fresh processes", started)
        results["planner"] = planner_path.run(10_000 if args.quick else planner_path.LOANS)
    if "coldstart" in parts:
        _step(f"cold imports, {samples} samples each", started)
        results["coldstart"] = coldstart.run(samples)
    if "sizes" in parts:
        _step("layer and function sizes", started)
        results["sizes"] = sizes.run(use_pip=not args.no_pip)
    if "budget" in parts:
        _step("the scaled 10-million-loan tick, without and with the send budget", started)
        results["budget"] = budget_tick.run(sms_loans=200 if args.quick else 600)
    if "overlap" in parts:
        _step("a planner shard task, sequential and overlapped, with latency per request", started)
        results["overlap"] = overlap.run(loans=500 if args.quick else 1500)
    results["seconds"] = round(time.monotonic() - started)
    results["targets"] = report.targets(results)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "results.json" if full else "results-partial.json"
    (args.out / name).write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    if full:
        DOCS.write_text(report.markdown(results), encoding="utf-8")
    print(report.summary(results))
    written = f"{args.out / name}" + (f" and {DOCS}" if full else "")
    print(f"[bench] wrote {written} in {results['seconds']}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
