"""Planner throughput in process, I/O excluded: decisions per second (:mod:`bench.decisions`, the engine
team's benchmark) and rendering per second (what the sender does per message besides I/O).

Rendering is timed over the SEND decisions of a generated book: the applicable policy, the message
(template, Babel money and dates, SMS segment count, required-content checks) and, for push, the SNS
JSON envelope, exactly as ``dunning.sender`` calls them.
"""

from __future__ import annotations

import gc
import os
import time
from collections import Counter
from typing import Any

from bench import decisions
from dunning.models import Channel, DecisionKind


def decision_rates(sizes: tuple[int, ...]) -> dict[str, Any]:
    """``bench.decisions.run(n)`` for each size, with the process's CPU count for context."""
    return {
        "cpus": os.cpu_count(),
        "runs": [decisions.run(n) for n in sizes],
    }


def rendering(cases: int = 10_000, seed: int = 20260301) -> dict[str, Any]:
    """Render every SEND decision of ``cases`` generated loans; renders per second by channel."""
    from dunning.engine import decide
    from dunning.jurisdictions import policy_for
    from dunning.render import RenderError, load_profile, render_under_policy, sns_push_message
    from dunning.rules import load_rulebooks
    from dunning.strategy import load_strategies

    rulebooks, strategies, profile = load_rulebooks(), load_strategies(), load_profile()
    sends = []
    for loan, borrower, state, now in decisions.generate(cases, seed=seed):
        decision = decide(loan, borrower, state, now, rulebooks, strategies)
        if decision.kind == DecisionKind.SEND:
            sends.append((decision, loan, borrower))
    gc.collect()
    errors: Counter[str] = Counter()
    segments: Counter[int] = Counter()
    by_channel: Counter[str] = Counter()
    started = time.perf_counter()
    for decision, loan, borrower in sends:
        try:
            policy = policy_for(loan, borrower, rulebooks)
            rendered = render_under_policy(decision, loan, borrower, policy, profile=profile)
            if decision.channel == Channel.PUSH:
                sns_push_message(rendered)
            else:
                segments[rendered.segments or 0] += 1
        except (RenderError, ValueError) as exc:
            errors[getattr(exc, "kind", type(exc).__name__)] += 1
            continue
        by_channel[str(decision.channel.value if decision.channel else "?")] += 1
    elapsed = time.perf_counter() - started
    rendered_total = sum(by_channel.values())
    return {
        "cases": cases,
        "sends": len(sends),
        "rendered": dict(by_channel),
        "errors": dict(errors),
        "seconds": round(elapsed, 3),
        "renders_per_s": round(len(sends) / elapsed) if elapsed else 0,
        "us_per_render": round(elapsed / max(len(sends), 1) * 1e6, 1),
        "sms_segments": {str(k): segments[k] for k in sorted(segments)},
        "rendered_ok_share": round(rendered_total / max(len(sends), 1), 3),
    }


def main() -> None:
    print(rendering())
    for run in decision_rates((10_000,))["runs"]:
        print({k: run[k] for k in ("n", "decisions_per_s", "us_per_decision")})


if __name__ == "__main__":
    main()
