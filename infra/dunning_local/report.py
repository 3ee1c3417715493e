"""The end-of-run report: a terminal summary, an HTML page with the charts, and the JSON summary.

Input is the summary dictionary built by the simulation from the run's own records (ledger, SNS,
queues); this module only presents it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_BAR = "█"


def _bars(counts: dict[str, int], width: int = 40) -> list[str]:
    top = max(counts.values(), default=0) or 1
    label_width = max((len(k) for k in counts), default=0)
    return [f"  {k.rjust(label_width)} │{_BAR * round(v / top * width)} {v}" for k, v in counts.items()]


def _hours(summary: dict[str, Any]) -> dict[str, int]:
    hist = summary["local_hour_histogram"]
    return {f"{h:02d}h": int(hist.get(str(h), 0)) for h in range(24)}


def terminal(summary: dict[str, Any]) -> str:
    """The report as text for the terminal."""
    run = summary["run"]
    out = [
        "",
        f"Dunning demo — {run['loans']:,} loans, {run['borrowers']:,} borrowers, {run['hours']} h of "
        f"{run['tick_minutes']}-minute ticks ({run['ticks']} ticks), seed {run['seed']}, "
        f"fault rate {run['fault_rate']:.0%}, {run['elapsed_seconds']:.0f} s",
        "",
        "Messages sent by channel",
        *_bars(summary["sent"]),
        "",
        "Delivery",
        *_bars(summary["delivery"]),
        "",
        "Held back (deferred) by rule",
        *_bars(dict(sorted(summary["deferred"].items(), key=lambda kv: -kv[1])[:14])),
        "",
        "Stopped or suppressed by rule",
        *_bars(
            dict(sorted({**summary["stopped"], **summary["suppressed"]}.items(), key=lambda kv: -kv[1])[:14])
        ),
        "",
        f"Opt-outs: {summary['opt_outs']}   cap hits: {summary['cap_hits']}   "
        f"inbound replies: {sum(summary['inbound'].values())} {summary['inbound']}",
        "",
        "Sends by borrower-local hour of day (quiet hours must stay empty)",
        *_bars(_hours(summary), width=50),
        "",
        "Invariants (checked on the run's own records)",
    ]
    faults = summary.get("faults") or {}
    if faults.get("injected"):
        out.insert(-1, f"Injected AWS faults: {faults['injected']} {faults['by_kind']}\n")
    for inv in summary["invariants"]:
        out.append(f"  {'PASS' if inv['passed'] else 'FAIL'}  {inv['name']} — {inv['detail']}")
    cost = summary["cost"]
    out += [
        "",
        f"Estimated cost: ${cost['total_usd']:.2f} — SMS ${cost['sms_usd']:.2f} "
        f"({cost['sms_parts']} parts), push ${cost['push_usd']:.4f}, infrastructure ${cost['infra_usd']:.4f} "
        f"(formula: docs/cost.md)",
    ]
    return "\n".join(out)


def _svg_bars(counts: dict[str, int], *, highlight: set[str] | None = None) -> str:
    width, height, pad = 720, 220, 28
    n = max(len(counts), 1)
    top = max(counts.values(), default=0) or 1
    bar_w = (width - 2 * pad) / n
    parts = [f'<svg viewBox="0 0 {width} {height + 40}" width="{width}" role="img">']
    for i, (label, value) in enumerate(counts.items()):
        h = value / top * height
        x = pad + i * bar_w
        color = "#c0392b" if highlight and label in highlight and value else "#2e86c1"
        parts.append(
            f'<rect x="{x:.1f}" y="{height - h + 10:.1f}" width="{bar_w * 0.8:.1f}" height="{h:.1f}" '
            f'fill="{color}"><title>{html.escape(label)}: {value}</title></rect>'
            f'<text x="{x + bar_w * 0.4:.1f}" y="{height + 28}" font-size="10" text-anchor="middle">'
            f"{html.escape(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(counts: Mapping[str, float]) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:,}</td></tr>" for k, v in counts.items())
    return f"<table>{rows}</table>"


def hours_svg(summary: dict[str, Any]) -> str:
    """The sends-by-borrower-local-hour chart as a standalone SVG (the README shows it)."""
    hours = _hours(summary)
    quiet = {label for label in hours if int(label[:2]) < 7 or int(label[:2]) >= 22}
    svg = _svg_bars(hours, highlight=quiet)
    return svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" ', 1)


def write_html(summary: dict[str, Any], path: Path) -> Path:
    """Write the HTML report (self-contained, inline SVG charts) and return its path."""
    hours = _hours(summary)
    quiet = {label for label, v in hours.items() if int(label[:2]) < 7 or int(label[:2]) >= 22}
    invariants = "".join(
        f"<li class={'pass' if i['passed'] else 'fail'}><b>{'PASS' if i['passed'] else 'FAIL'}</b> "
        f"{html.escape(i['name'])} — {html.escape(i['detail'])}</li>"
        for i in summary["invariants"]
    )
    run = summary["run"]
    page = f"""<!doctype html><html lang="en"><meta charset="utf-8"><title>Dunning demo report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;color:#222}}
td{{padding:2px 12px}} .pass{{color:#1e8449}} .fail{{color:#c0392b}} h2{{margin-top:1.6em}}</style>
<h1>Dunning demo report</h1>
<p>{run["loans"]:,} loans, {run["borrowers"]:,} borrowers,
{run["hours"]} hours of {run["tick_minutes"]}-minute ticks, seed {run["seed"]},
fault rate {run["fault_rate"]:.0%}, from {html.escape(run["start"])}.</p>
<h2>Invariants</h2><ul>{invariants}</ul>
<h2>Sends by borrower-local hour of day</h2>
<p>Every send, placed at the hour it was in the borrower's own time zone. Red would mean a send in
the hours no rulebook allows (before 07:00 or from 22:00).</p>{_svg_bars(hours, highlight=quiet)}
<h2>Sent by channel</h2>{_table(summary["sent"])}
<h2>Delivery</h2>{_table(summary["delivery"])}
<h2>Deferred by rule</h2>{_table(summary["deferred"])}
<h2>Stopped and suppressed by rule</h2>{_table({**summary["stopped"], **summary["suppressed"]})}
<h2>Cost estimate</h2>{_table({k: v for k, v in summary["cost"].items() if isinstance(v, int | float)})}
</html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def write_json(summary: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return path
