"""The end-of-run report: a terminal summary, one self-contained HTML page, and the JSON summary.

Input is the summary dictionary built from the run's own records (ledger, SNS, queues: ``audit`` and
``digest``); this module only presents it. The HTML page has no external resource (inline CSS, SVG and
a few lines of JavaScript for sorting), so it opens offline and can be attached to an e-mail. Sections
whose data a summary lacks are left out; keys added later (SMS parts, peak send rates, spend by country,
the jurisdictions behind a decision) are shown when present.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

_BAR = "█"
_SERIES = {"sms": "#2563eb", "push": "#0d9488"}
_FAMILY_COLOURS = ["#d97706", "#7c3aed", "#db2777", "#65a30d", "#0891b2", "#9ca3af", "#b45309", "#4f46e5"]
_LABELS = {
    "sms_usd": "SMS",
    "push_usd": "Push",
    "infra_usd": "Infrastructure (Lambda, SQS, SNS, DynamoDB)",
    "total_usd": "Total",
    "per_message_usd": "Per message",
    "sms_parts": "SMS parts billed",
    "DELIVERED": "Delivered",
    "FAILED": "Failed",
    "SENT": "Sent, no receipt yet",
    "sms": "SMS",
    "push": "Push",
}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def money(usd: float | int | None) -> str:
    """Readable money: ``$1,234.56``, ``$0.42``, and sub-cent amounts in cents (``0.003¢``)."""
    if usd is None:
        return "—"
    value = float(usd)
    if value == 0:
        return "$0.00"
    if abs(value) >= 0.01:
        return f"${value:,.2f}"
    return f"{value * 100:.3g}¢"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


# -- terminal ------------------------------------------------------------------------------------------


def _bars(counts: Mapping[str, int], width: int = 40) -> list[str]:
    top = max(counts.values(), default=0) or 1
    label_width = max((len(k) for k in counts), default=0)
    return [f"  {k.rjust(label_width)} │{_BAR * round(v / top * width)} {v}" for k, v in counts.items()]


def _hours(summary: Mapping[str, Any]) -> dict[str, int]:
    hist = summary.get("local_hour_histogram", {})
    return {f"{h:02d}h": int(hist.get(str(h), 0)) for h in range(24)}


def _top(counts: Mapping[str, int], n: int = 14) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n])


def terminal_counts(summary: Mapping[str, Any]) -> str:
    """Messages by channel, deferrals and stops by rule: the part of the report any run has."""
    return "\n".join(
        [
            "Messages sent by channel",
            *_bars(summary.get("sent", {})),
            "",
            "Held back (deferred) by rule",
            *_bars(_top(summary.get("deferred", {}))),
            "",
            "Stopped or suppressed by rule",
            *_bars(_top({**summary.get("stopped", {}), **summary.get("suppressed", {})})),
        ]
    )


def terminal(summary: Mapping[str, Any]) -> str:
    """The demo's report as text for the terminal."""
    run = summary["run"]
    out = [
        "",
        f"Dunning demo — {run['loans']:,} loans, {run['borrowers']:,} borrowers, {run['hours']} h of "
        f"{run['tick_minutes']}-minute ticks ({run['ticks']} ticks), seed {run['seed']}, "
        f"fault rate {run['fault_rate']:.0%}, {run['elapsed_seconds']:.0f} s",
        "",
        terminal_counts(summary),
        "",
        "Delivery",
        *_bars(summary["delivery"]),
        "",
        f"Opt-outs: {summary['opt_outs']}   cap hits: {summary['cap_hits']}   "
        f"inbound replies: {sum(summary['inbound'].values())} "
        + ", ".join(f"{k} {v}" for k, v in sorted(summary["inbound"].items(), key=lambda kv: -kv[1])),
        "",
        "Sends by borrower-local hour of day (quiet hours must stay empty)",
        *_bars(_hours(summary), width=50),
        "",
    ]
    faults = summary.get("faults") or {}
    if faults.get("injected"):
        out += [
            f"Injected AWS faults: {faults['injected']} ("
            + ", ".join(f"{k} {v}" for k, v in faults["by_kind"].items())
            + ")",
            "",
        ]
    out.append("Invariants (checked on the run's own records)")
    for inv in summary["invariants"]:
        out.append(f"  {'PASS' if inv['passed'] else 'FAIL'}  {inv['name']} — {inv['detail']}")
    cost = summary["cost"]
    out += [
        "",
        f"Estimated cost: {money(cost['total_usd'])} — SMS {money(cost['sms_usd'])} "
        f"({cost['sms_parts']:,} parts), push {money(cost['push_usd'])}, infrastructure "
        f"{money(cost['infra_usd'])} (formula: docs/cost.md)",
    ]
    return "\n".join(out)


# -- SVG charts ----------------------------------------------------------------------------------------


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _y_axis(top: float, x0: float, y0: float, height: float, width: float, ticks: int = 4) -> str:
    parts = []
    for k in range(ticks + 1):
        value = top * k / ticks
        y = y0 + height - height * k / ticks
        label = f"{value:,.0f}" if top >= ticks else f"{value:,.1f}"
        parts.append(
            f'<line x1="{x0}" x2="{x0 + width}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{x0 - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{label}</text>'
        )
    return "".join(parts)


def _svg_bars(counts: Mapping[str, int], *, highlight: set[str] | None = None) -> str:
    """A plain bar chart with axes (the standalone SVG the README shows)."""
    width, height, left, top_pad, bottom = 760, 220, 48, 12, 44
    n = max(len(counts), 1)
    top = _nice_max(max(counts.values(), default=0))
    plot_w = width - left - 12
    bar_w = plot_w / n
    parts = [
        f'<svg viewBox="0 0 {width} {height + top_pad + bottom}" width="100%" role="img" class="chart">',
        _y_axis(top, left, top_pad, height, plot_w),
    ]
    for i, (label, value) in enumerate(counts.items()):
        h = value / top * height
        x = left + i * bar_w + bar_w * 0.1
        quiet = bool(highlight and label in highlight)
        cls = "bar quiet" if quiet and value else "bar"
        parts.append(
            f'<rect x="{x:.1f}" y="{top_pad + height - h:.1f}" width="{bar_w * 0.8:.1f}" height="{h:.1f}" '
            f'class="{cls}" data-series="hour" data-label="{_e(label)}" data-value="{value}">'
            f"<title>{_e(label)}: {value:,}</title></rect>"
            f'<text x="{x + bar_w * 0.4:.1f}" y="{top_pad + height + 16}" class="tick" text-anchor="middle">'
            f"{_e(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def hours_svg(summary: Mapping[str, Any]) -> str:
    """The sends-by-borrower-local-hour chart as a standalone SVG (the README shows it)."""
    hours = _hours(summary)
    quiet = {label for label in hours if int(label[:2]) < 7 or int(label[:2]) >= 22}
    style = (
        "<style>.grid{stroke:#e5e7eb}.tick{font-size:10px;fill:#4b5563}.bar{fill:#2563eb}"
        ".quiet{fill:#dc2626}</style>"
    )
    svg = _svg_bars(hours, highlight=quiet)
    return svg.replace(
        "<svg ", '<svg xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" ', 1
    ).replace(">", ">" + style, 1)


def _hour_chart(summary: Mapping[str, Any]) -> str:
    """Sends by borrower-local hour, with each jurisdiction's contact window drawn in a lane below."""
    hours = [int(summary.get("local_hour_histogram", {}).get(str(h), 0)) for h in range(24)]
    windows: Mapping[str, Any] = summary.get("contact_windows") or {}
    width, left, right, top_pad, plot_h = 900, 96, 12, 14, 200
    lane_h, lane_gap = 16, 4
    plot_w = width - left - right
    hour_w = plot_w / 24
    lanes_top = top_pad + plot_h + 30
    total_h = lanes_top + len(windows) * (lane_h + lane_gap) + 26
    top = _nice_max(max(hours, default=0))
    allowed_any = [False] * 24
    for info in windows.values():
        span = info.get("allowed")
        if span:
            for h in range(24):
                allowed_any[h] |= span[0] < (h + 1) * 60 and span[1] > h * 60
    parts = [
        f'<svg viewBox="0 0 {width} {total_h}" width="100%" role="img" class="chart" id="hour-chart" '
        'aria-label="Sends by borrower-local hour, with each jurisdiction\'s contact window">'
    ]
    if windows:
        # Hours no jurisdiction allows: shaded behind the bars, so a bar there stands out at once.
        for h in range(24):
            if not allowed_any[h]:
                parts.append(
                    f'<rect x="{left + h * hour_w:.1f}" y="{top_pad}" width="{hour_w:.1f}" height="{plot_h}" '
                    'class="closed"/>'
                )
    parts.append(_y_axis(top, left, top_pad, plot_h, plot_w))
    for h, value in enumerate(hours):
        bar_h = value / top * plot_h
        x = left + h * hour_w + hour_w * 0.12
        cls = "bar quiet" if windows and value and not allowed_any[h] else "bar"
        parts.append(
            f'<rect x="{x:.1f}" y="{top_pad + plot_h - bar_h:.1f}" width="{hour_w * 0.76:.1f}" '
            f'height="{bar_h:.1f}" class="{cls}" data-series="hour" data-label="{h:02d}" '
            f'data-value="{value}">'
            f"<title>{h:02d}:00–{h:02d}:59 local: {value:,} message(s)</title></rect>"
        )
    for h in range(0, 25, 3):
        x = left + h * hour_w
        parts.append(
            f'<text x="{x:.1f}" y="{top_pad + plot_h + 16}" class="tick" '
            f'text-anchor="middle">{h:02d}:00</text>'
        )
    parts.append(
        f'<text x="14" y="{top_pad + plot_h / 2}" class="axis" transform="rotate(-90 14 '
        f'{top_pad + plot_h / 2})" '
        'text-anchor="middle">messages</text>'
    )
    for i, (code, info) in enumerate(windows.items()):
        y = lanes_top + i * (lane_h + lane_gap)
        books = ", ".join(
            f"{b['code']} {_span(b.get('start'), b.get('end'))}" for b in info.get("rulebooks", [])
        )
        parts.append(
            f'<text x="{left - 8}" y="{y + lane_h - 4}" class="lane-label" '
            f'text-anchor="end">{_e(code)}</text>'
            f'<rect x="{left}" y="{y}" width="{plot_w}" height="{lane_h}" class="lane"/>'
        )
        span = info.get("allowed")
        if span:
            x0 = left + span[0] / 60 * hour_w
            x1 = left + span[1] / 60 * hour_w
            parts.append(
                f'<rect x="{x0:.1f}" y="{y}" width="{x1 - x0:.1f}" height="{lane_h}" class="window" '
                f'data-jurisdiction="{_e(code)}"><title>{_e(code)}: contact allowed '
                f"{_span(span[0], span[1])} local ({_e(books)})</title></rect>"
                f'<text x="{(x0 + x1) / 2:.1f}" y="{y + lane_h - 4}" class="lane-text" text-anchor="middle">'
                f"{_span(span[0], span[1])}</text>"
            )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{total_h - 6}" class="axis" text-anchor="middle">'
        "hour of day in the borrower's own time zone; green lanes: hours each jurisdiction's rulebooks "
        "allow (first simulated day)</text></svg>"
    )
    return "".join(parts)


def _span(start: int | None, end: int | None) -> str:
    if start is None or end is None:
        return "no contact"
    return f"{start // 60:02d}:{start % 60:02d}–{end // 60:02d}:{end % 60:02d}"


def _timeline_chart(timeline: Sequence[Mapping[str, Any]]) -> str:
    """Per tick: sends stacked by channel above the axis, deferrals by rule family below, failures as dots."""
    if not timeline:
        return ""
    families = sorted({f for row in timeline for f in row.get("deferred", {})})
    colour = {f: _FAMILY_COLOURS[i % len(_FAMILY_COLOURS)] for i, f in enumerate(families)}
    width, left, right = 900, 56, 12
    up_h, down_h, top_pad = 150, 110, 12
    axis_y = top_pad + up_h
    plot_w = width - left - right
    n = len(timeline)
    step = plot_w / n
    sent_max = _nice_max(max((sum(r["sent"].values()) for r in timeline), default=0))
    deferred_max = _nice_max(max((sum(r["deferred"].values()) for r in timeline), default=0))
    total_h = axis_y + down_h + 40
    parts = [
        f'<svg viewBox="0 0 {width} {total_h}" width="100%" role="img" class="chart" id="timeline-chart" '
        'aria-label="Per tick: messages sent by channel, deferrals by rule family, failures">',
        _y_axis(sent_max, left, top_pad, up_h, plot_w, ticks=2),
    ]
    for k in (1, 2):
        y = axis_y + down_h * k / 2
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
            f"{deferred_max * k / 2:,.0f}</text>"
        )
    bar_w = max(step * 0.8, 0.6)
    for i, row in enumerate(timeline):
        x = left + i * step + (step - bar_w) / 2
        when = str(row["tick"])[5:16].replace("T", " ")
        y = axis_y
        for channel in ("sms", "push"):
            value = int(row["sent"].get(channel, 0))
            if not value:
                continue
            h = value / sent_max * up_h
            y -= h
            parts.append(
                f'<rect x="{x:.2f}" y="{y:.2f}" width="{bar_w:.2f}" height="{h:.2f}" '
                f'fill="{_SERIES[channel]}" '
                f'data-series="sent-{channel}" data-tick="{_e(row["tick"])}" data-value="{value}">'
                f"<title>{when}Z: {value:,} {channel.upper()} sent</title></rect>"
            )
        y = axis_y
        for family in families:
            value = int(row["deferred"].get(family, 0))
            if not value:
                continue
            h = value / deferred_max * down_h
            parts.append(
                f'<rect x="{x:.2f}" y="{y:.2f}" width="{bar_w:.2f}" height="{h:.2f}" fill="{colour[family]}" '
                f'data-series="deferred-{_e(family)}" data-tick="{_e(row["tick"])}" data-value="{value}">'
                f"<title>{when}Z: {value:,} deferred by {_e(family)}.* rules</title></rect>"
            )
            y += h
        if row.get("failed"):
            parts.append(
                f'<circle cx="{x + bar_w / 2:.2f}" cy="{top_pad + 4}" r="3.5" class="failed" '
                'data-series="failed" '
                f'data-tick="{_e(row["tick"])}" data-value="{row["failed"]}">'
                f"<title>{when}Z: {row['failed']} failed</title></circle>"
            )
    parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{axis_y}" y2="{axis_y}" class="axis-line"/>')
    every = max(1, n // 12)
    for i in range(0, n, every):
        tick = str(timeline[i]["tick"])
        # The weekday on the first label and whenever the day changes, the time in between.
        new_day = i == 0 or tick[:10] != str(timeline[i - every]["tick"])[:10]
        label = _short_day(tick) if new_day or every < 4 else tick[11:16]
        x = left + i * step
        parts.append(
            f'<text x="{x:.1f}" y="{axis_y + down_h + 16}" class="tick" '
            f'text-anchor="start">{_e(label)}</text>'
        )
    parts.append(
        f'<text x="12" y="{top_pad + up_h / 2}" class="axis" transform="rotate(-90 12 {top_pad + up_h / 2})" '
        'text-anchor="middle">sent</text>'
        f'<text x="12" y="{axis_y + down_h / 2}" class="axis" transform="rotate(-90 12 '
        f'{axis_y + down_h / 2})" '
        'text-anchor="middle">deferred</text></svg>'
    )
    legend = [
        f'<span class="key"><i style="background:{_SERIES[c]}"></i>{_LABELS[c]} sent</span>' for c in _SERIES
    ]
    legend += [
        f'<span class="key"><i style="background:{colour[f]}"></i>deferred: {_e(f)}.*</span>'
        for f in families
    ]
    legend.append('<span class="key"><i class="dot"></i>tick with failures</span>')
    return f'<div class="legend">{"".join(legend)}</div>' + "".join(parts)


def _short_day(tick: str) -> str:
    try:
        return datetime.fromisoformat(tick.replace("Z", "+00:00")).strftime("%a %H:%M")
    except ValueError:
        return tick


# -- tables --------------------------------------------------------------------------------------------


def _table(
    headers: Sequence[str],
    rows: Iterable[Sequence[tuple[str, Any]]],
    *,
    numeric: Iterable[int] = (),
    table_id: str = "",
    caption: str = "",
) -> str:
    """A sortable table: each cell is (text, sort value); numeric columns are right-aligned."""
    numeric = set(numeric)
    head = "".join(
        f'<th{" class=num" if i in numeric else ""} data-col="{i}" tabindex="0">{_e(h)}</th>'
        for i, h in enumerate(headers)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td{" class=num" if i in numeric else ""} data-value="{_e(value)}">{text}</td>'
            for i, (text, value) in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    cap = f"<caption>{_e(caption)}</caption>" if caption else ""
    head_html = f"{cap}<thead><tr>{head}</tr></thead>"
    return f'<table class="sortable"{ident}>{head_html}<tbody>{"".join(body)}</tbody></table>'


def _count_table(counts: Mapping[str, int], first: str, *, table_id: str = "") -> str:
    total = sum(counts.values()) or 1
    rows = [
        [(_e(_LABELS.get(k, k)), k), (f"{v:,}", v), (f"{v / total:.1%}", v / total)]
        for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return _table([first, "count", "share"], rows, numeric=(1, 2), table_id=table_id)


def _jurisdiction_table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    ordered = sorted(rows.items(), key=lambda kv: (-int(kv[1].get("sent", 0)), kv[0]))
    return _table(
        [
            "jurisdiction",
            "planned",
            "sent",
            "deferred",
            "stopped",
            "suppressed",
            "delivered",
            "SMS parts",
            "cost",
        ],
        [
            [
                (f"<b>{_e(code)}</b>", code),
                (f"{r.get('planned', 0):,}", r.get("planned", 0)),
                (f"{r.get('sent', 0):,}", r.get("sent", 0)),
                (f"{r.get('deferred', 0):,}", r.get("deferred", 0)),
                (f"{r.get('stopped', 0):,}", r.get("stopped", 0)),
                (f"{r.get('suppressed', 0):,}", r.get("suppressed", 0)),
                (_pct(r.get("delivered_rate")), r.get("delivered_rate") or 0),
                (f"{r.get('parts', 0):,}", r.get("parts", 0)),
                (money(r.get("usd")), r.get("usd") or 0),
            ]
            for code, r in ordered
        ],
        numeric=range(1, 9),
        table_id="jurisdictions",
    )


def _rule_table(counts: Mapping[str, int], citations: Mapping[str, str], *, table_id: str) -> str:
    total = sum(counts.values()) or 1
    return _table(
        ["rule", "count", "share"],
        [
            [(f"<code>{_e(rule)}</code>", rule), (f"{n:,}", n), (f"{n / total:.1%}", n / total)]
            for rule, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        numeric=(1, 2),
        table_id=table_id,
    )


def _cost_section(summary: Mapping[str, Any]) -> str:
    cost = summary.get("cost") or {}
    parts = []
    if cost:
        tiles = "".join(
            f'<div class="tile"><div class="v">{money(cost.get(k))}</div><div '
            f'class="k">{_e(_LABELS[k])}</div></div>'
            for k in ("total_usd", "sms_usd", "push_usd", "infra_usd", "per_message_usd")
            if k in cost
        )
        parts.append(f'<div class="tiles">{tiles}</div>')
        if "sms_parts" in cost:
            parts.append(f"<p>{cost['sms_parts']:,} SMS parts billed. Prices and formula: docs/cost.md.</p>")
    spend: Mapping[str, Mapping[str, Any]] = summary.get("spend_by_country") or {}
    if spend:
        rows = [
            [
                (_e(country), country),
                (f"{int(v.get('sms', 0)):,}", v.get("sms", 0)),
                (f"{int(v.get('parts', 0)):,}", v.get("parts", 0)),
                (f"{int(v.get('push', 0)):,}" if "push" in v else "—", v.get("push", 0)),
                (money(v.get("usd")), v.get("usd") or 0),
            ]
            for country, v in sorted(spend.items(), key=lambda kv: -float(kv[1].get("usd") or 0))
        ]
        parts.append("<h3>By country</h3>")
        parts.append(
            _table(
                ["country", "SMS", "SMS parts", "push", "spend"], rows, numeric=(1, 2, 3, 4), table_id="spend"
            )
        )
    sms_parts = summary.get("sms_parts")
    if isinstance(sms_parts, Mapping) and sms_parts.get("histogram"):
        hist = {
            f"{k} part{'s' if str(k) != '1' else ''}": int(v)
            for k, v in sorted(sms_parts["histogram"].items(), key=lambda kv: int(kv[0]))
        }
        parts.append(
            f"<h3>Parts per SMS</h3><p>Mean {float(sms_parts.get('mean', 0)):.2f} parts per SMS.</p>"
        )
        parts.append(_count_table(hist, "parts", table_id="sms-parts"))
    peaks = summary.get("peak_sends_per_minute")
    if isinstance(peaks, Mapping) and peaks:
        rows = []
        for identity, v in sorted(peaks.items()):
            peak, limit = int(v.get("peak", 0)), v.get("limit")
            share = peak / limit if limit else None
            flag = ' class="over"' if share is not None and share > 1 else ""
            rows.append(
                [
                    (f"<code>{_e(identity)}</code>", identity),
                    (f"<span{flag}>{peak:,}</span>", peak),
                    (f"{int(limit):,}" if limit else "—", limit or 0),
                    (_pct(share), share or 0),
                ]
            )
        parts.append("<h3>Peak sends per minute by origination identity</h3>")
        parts.append(
            _table(
                ["identity", "peak / min", "limit / min", "of limit"],
                rows,
                numeric=(1, 2, 3),
                table_id="peaks",
            )
        )
    return "".join(parts)


def _samples_section(samples: Sequence[Mapping[str, Any]]) -> str:
    if not samples:
        return "<p>No message was sent in this run.</p>"
    cards = []
    for s in samples:
        head = (
            f'<div class="card-head"><b>{_e(s.get("template"))}</b> · {_e(s.get("locale"))} · '
            f"{_e(str(s.get('channel', '')).upper())}</div>"
        )
        if s.get("channel") == "sms":
            segs = s.get("segments")
            foot = (
                f'<div class="meta">{segs} part{"s" if segs != 1 else ""} · loan {_e(s.get("loan_id"))}</div>'
            )
            cards.append(
                f'<figure class="sample sms" data-channel="sms" data-locale="{_e(s.get("locale"))}">{head}'
                f'<div class="phone"><div class="bubble">{_e(s.get("text", ""))}</div></div>{foot}</figure>'
            )
        else:
            cards.append(
                f'<figure class="sample push" data-channel="push" data-locale="{_e(s.get("locale"))}">{head}'
                '<div class="views"><div><div class="view-label">Lock screen</div><div class="lock">'
                "<div "
                f'class="notif"><b>{_e(s.get("title", ""))}</b><br>{_e(s.get("body", ""))}</div></div></div>'
                '<div><div class="view-label">In the app</div><div class="detail">'
                f"<b>{_e(s.get('title', ''))}</b><p>{_e(s.get('detail', ''))}</p></div></div></div>"
                f'<div class="meta">loan {_e(s.get("loan_id"))} · the lock screen shows no amount or '
                "lender detail; the app shows it after unlock</div></figure>"
            )
    return f'<div class="samples">{"".join(cards)}</div>'


def _jurisdictions_text(value: Any) -> str:
    if not isinstance(value, list):
        return ""
    parts = []
    for j in value:
        if not isinstance(j, Mapping):
            continue
        book = j.get("rulebook")
        parts.append(
            f"<span class=pill>{_e(j.get('code', '?'))} <small>from {_e(j.get('source', '?'))}"
            f"{', rulebook ' + _e(book) if book else ', no rulebook'}</small></span>"
        )
    return " ".join(parts)


_TRAIL_DETAIL = (
    "not_before",
    "message_id",
    "template",
    "locale",
    "segments",
    "encoding",
    "contact_point",
    "provider_response",
    "receipt_at",
    "carrier",
    "dwell_ms",
    "price_usd",
    "phone",
    "paused_until",
)


def _trail_section(explained: Mapping[str, Any] | None) -> str:
    if not explained:
        return "<p>No loan with both a decision and a message in this run.</p>"
    rows = []
    for e in explained.get("trail", []):
        details = []
        for key in _TRAIL_DETAIL:
            if e.get(key) not in (None, ""):
                value = money(e[key]) if key == "price_usd" else e[key]
                label = "price" if key == "price_usd" else key.replace("_", " ")
                details.append(f"<span class=kv>{_e(label)}: <b>{_e(value)}</b></span>")
        juris = _jurisdictions_text(e.get("jurisdictions"))
        rows.append(
            f'<tr class="k-{_e(str(e.get("kind", "")).lower())}"><td '
            f"class=nowrap>{_e(str(e.get('at', ''))[:16].replace('T', ' '))}</td>"
            f"<td>{_e(e.get('kind', ''))}</td><td><b>{_e(e.get('status', ''))}</b></td>"
            f"<td>{_e(e.get('step', ''))} {_e(e.get('channel', ''))}</td>"
            + (f"<td><code>{_e(e['rule_id'])}</code></td>" if e.get("rule_id") else "<td></td>")
            + f"<td>{_e(e.get('reason', ''))}"
            + (f'<div class="cite">{_e(e["citation"])}</div>' if e.get("citation") else "")
            + (f'<div class="juris">{juris}</div>' if juris else "")
            + (f'<div class="details">{"".join(details)}</div>' if details else "")
            + "</td></tr>"
        )
    return (
        f"<p>Loan <b>{_e(explained.get('loan_id'))}</b> — {_e(explained.get('why', ''))}. Every record the "
        "ledger holds for it, oldest first (the same as <code>dunning explain "
        f"{_e(explained.get('loan_id'))} "
        "--json</code>); contact points are masked.</p>"
        '<table class="trail" id="trail"><thead><tr><th>when (UTC)</th><th>record</th><th>status</th>'
        "<th>step</th><th>rule</th><th>reason, citation and details</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _replies_section(summary: Mapping[str, Any]) -> str:
    replies = summary.get("replies") or {}
    by_intent = replies.get("by_intent") or summary.get("inbound") or {}
    parts = [
        f'<div class="tiles"><div class="tile"><div class="v">{int(summary.get("opt_outs", 0)):,}</div>'
        '<div class="k">numbers opted out at the end</div></div>'
        f'<div class="tile"><div class="v">{sum(by_intent.values()):,}</div><div '
        'class="k">replies</div></div></div>'
    ]
    if by_intent:
        parts.append(_count_table(by_intent, "intent", table_id="intents"))
        parts.append(
            "<p class=note>STOP: opted out (every borrower on that number), START: opted back in, HELP: "
            "answered with the lender's contact details, OTHER: a person reads it, and contact pauses.</p>"
        )
    hours = replies.get("opt_out_local_hours") or {}
    if hours:
        text = ", ".join(
            f"{int(h):02d}:00 × {n}" for h, n in sorted(hours.items(), key=lambda kv: int(kv[0]))
        )
        parts.append(f"<p>Opt-outs by the borrower's local hour: {text}.</p>")
    return "".join(parts)


def _faults_section(faults: Mapping[str, Any]) -> str:
    if not faults or not faults.get("injected"):
        return "<p>No AWS fault was injected in this run (<code>--fault-rate 0</code>).</p>"
    return (
        f"<p>{int(faults['injected']):,} AWS calls were made to fail (throttles, timeouts, server errors); "
        "the invariants above held through them.</p>"
        + _count_table(faults.get("by_kind", {}), "fault", table_id="faults")
    )


_CSS = """
:root{--ink:#111827;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc;--ok:#15803d;--bad:#b91c1c;--accent:#2563eb}
*{box-sizing:border-box}
body{
  font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans CJK SC",sans-serif;
  color:var(--ink);background:var(--bg);margin:0}
header{background:#0f172a;color:#e2e8f0;padding:22px 32px 18px}
header h1{margin:0 0 4px;font-size:22px;color:#fff}
header p{margin:0;color:#cbd5e1}
nav{display:flex;flex-wrap:wrap;gap:6px 14px;margin-top:12px}
nav a{color:#93c5fd;text-decoration:none;font-size:13px}
nav a:hover{text-decoration:underline}
main{max-width:1100px;margin:0 auto;padding:12px 32px 48px}
section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:18px 22px;margin:18px 0}
h2{font-size:17px;margin:0 0 4px}
h3{font-size:14px;margin:18px 0 6px}
.lead{color:var(--muted);margin:0 0 12px}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}
.tile{border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:120px;
  background:#fff;color:var(--ink)}
.tile .v{font-size:20px;font-weight:650}
.tile .k{color:var(--muted);font-size:12px}
.tile.ok .v{color:var(--ok)}
.tile.bad .v{color:var(--bad)}
table{border-collapse:collapse;width:100%;margin:6px 0 4px;font-size:13px}
th,td{padding:5px 9px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#f1f5f9;font-weight:600;cursor:pointer;user-select:none;white-space:nowrap}
th.sorted-asc::after{content:" ▲"}
th.sorted-desc::after{content:" ▼"}
.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:hover{background:#f8fafc}
caption{text-align:left;color:var(--muted)}
.inv{list-style:none;padding:0;margin:0}
.inv li{padding:6px 0;border-bottom:1px solid var(--line)}
.badge{display:inline-block;min-width:44px;text-align:center;border-radius:4px;color:#fff;
  font-weight:700;font-size:12px;margin-right:8px}
.badge.pass{background:var(--ok)}
.badge.fail{background:var(--bad)}
.chart{display:block;margin:8px 0}
.chart .grid{stroke:#eef2f7}
.chart .tick{font-size:10px;fill:#4b5563}
.chart .axis{font-size:11px;fill:#374151}
.chart .axis-line{stroke:#374151}
.chart .bar{fill:var(--accent)}
.chart .bar.quiet{fill:var(--bad)}
.chart .closed{fill:#fee2e2;opacity:.55}
.chart .lane{fill:#f3f4f6}
.chart .window{fill:#bbf7d0;stroke:#16a34a;stroke-width:.6}
.chart .lane-label{font-size:11px;fill:#111827;font-weight:600}
.chart .lane-text{font-size:10px;fill:#14532d}
.chart .failed{fill:var(--bad)}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;font-size:12px;color:#374151}
.key i{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.key i.dot{background:var(--bad);border-radius:50%}
.samples{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:14px}
.sample{margin:0;border:1px solid var(--line);border-radius:10px;padding:10px;background:#fafafa}
.card-head{font-size:12px;color:#374151;margin-bottom:8px}
.phone{background:#fff;border-radius:14px;padding:12px;border:1px solid #e5e7eb}
.bubble{background:#e5e7eb;border-radius:16px 16px 16px 4px;padding:9px 12px;white-space:pre-wrap;
  word-break:break-word;font-size:13px}
.views{display:grid;grid-template-columns:2fr 3fr;gap:8px}.views>div{min-width:0}
.view-label{font-size:11px;color:var(--muted);margin-bottom:3px}
.lock{background:linear-gradient(160deg,#1e293b,#334155);border-radius:12px;padding:22px 8px 28px}
.notif{background:rgba(255,255,255,.88);border-radius:10px;padding:7px 9px;font-size:12px;
  overflow-wrap:anywhere}
.detail{background:#fff;border:1px solid #e5e7eb;border-radius:12px;padding:8px 10px;font-size:12px;
  overflow-wrap:anywhere}
.detail p{margin:4px 0 0;white-space:pre-wrap}
.meta{font-size:11px;color:var(--muted);margin-top:6px}
.trail td{font-size:12.5px}
.trail .cite{color:#4b5563;font-style:italic;margin-top:3px}
.trail .details{margin-top:3px}
.kv{display:inline-block;margin-right:12px;color:#4b5563}
.trail tr.k-message td:first-child{border-left:3px solid var(--accent)}
.trail tr.k-decision td:first-child{border-left:3px solid #d97706}
.trail tr.k-inbound td:first-child{border-left:3px solid #7c3aed}
.trail tr.k-outcome td:first-child{border-left:3px solid #9ca3af}
.pill{display:inline-block;background:#eef2ff;border-radius:10px;padding:0 8px;margin:2px 4px 0 0;
  font-size:12px}
.nowrap{white-space:nowrap}
.note{color:var(--muted);font-size:12px}
.over{color:var(--bad);font-weight:700}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:18px}
code{font-size:12px;background:#f1f5f9;border-radius:3px;padding:0 3px}
@media (max-width:800px){.cols,.views{grid-template-columns:1fr}main{padding:8px}}
@media print{header{background:#fff;color:#000}nav{display:none}section{break-inside:avoid}}
"""

# Sort any table by a click on its header (numbers by their data-value); report JavaScript errors in the
# page itself so that a browser test (and a reader) can see them.
_JS = """
window.addEventListener('error', function (e) {
  var b = document.body; b.dataset.jsErrors = (b.dataset.jsErrors || '') + e.message + ';';
});
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th) {
    function sort() {
      var col = +th.dataset.col, asc = !th.classList.contains('sorted-asc');
      table.querySelectorAll('th').forEach(function (h) { h.classList.remove('sorted-asc', 'sorted-desc'); });
      th.classList.add(asc ? 'sorted-asc' : 'sorted-desc');
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.value, y = b.cells[col].dataset.value;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    }
    th.addEventListener('click', sort);
    th.addEventListener('keydown', function (e) { if (e.key === 'Enter') sort(); });
  });
});
document.body.dataset.ready = '1';
"""


def _kpis(summary: Mapping[str, Any]) -> str:
    sent = summary.get("sent", {})
    delivery = summary.get("delivery", {})
    total_sent = sum(sent.values())
    delivered = int(delivery.get("DELIVERED", 0))
    invariants = summary.get("invariants", [])
    failed = [i for i in invariants if not i["passed"]]
    tiles = [
        (
            "ok" if not failed else "bad",
            f"{len(invariants) - len(failed)}/{len(invariants)}",
            "invariants hold",
        ),
        ("", f"{total_sent:,}", "messages sent"),
        ("", _pct(delivered / total_sent if total_sent else None), "delivered"),
        ("", f"{sum(summary.get('deferred', {}).values()):,}", "held back (deferrals)"),
        (
            "",
            f"{sum(summary.get('stopped', {}).values()) + sum(summary.get('suppressed', {}).values()):,}",
            "stopped or suppressed",
        ),
        ("", f"{int(summary.get('cap_hits', 0)):,}", "cap hits"),
        ("", f"{int(summary.get('opt_outs', 0)):,}", "opt-outs"),
        ("", money((summary.get("cost") or {}).get("total_usd")), "estimated cost"),
    ]
    return (
        '<div class="tiles">'
        + "".join(
            f'<div class="tile {cls}"><div class="v">{value}</div><div class="k">{_e(label)}</div></div>'
            for cls, value, label in tiles
        )
        + "</div>"
    )


def render_html(summary: Mapping[str, Any]) -> str:
    """The report page as one self-contained HTML document."""
    run = summary["run"]
    invariants = "".join(
        '<li><span class="badge '
        f'{"pass" if i["passed"] else "fail"}">{"PASS" if i["passed"] else "FAIL"}</span>'
        f"<b>{_e(i['name'])}</b><br><span class=note>{_e(i['detail'])}</span></li>"
        for i in summary.get("invariants", [])
    )
    sections: list[tuple[str, str, str, str]] = [
        (
            "invariants",
            "Compliance invariants",
            "Checked on what the system recorded and what AWS saw, not on what the planner meant to do.",
            f'<ul class="inv">{invariants}</ul>',
        ),
    ]
    if summary.get("timeline"):
        sections.append(
            (
                "timeline",
                "Timeline per tick",
                "Every Scheduler tick: messages sent by channel (up), loans held back by rule family "
                "(down), ticks with failed sends or deliveries (red dots). Hover for numbers.",
                _timeline_chart(summary["timeline"]),
            )
        )
    sections.append(
        (
            "hours",
            "Sends by the borrower's local hour",
            "Each message placed at the hour it was where the borrower lives. Below, the hours each "
            "jurisdiction's rulebooks allow (the strictest of them); hours no rulebook allows are shaded "
            "red, and a bar there would be red.",
            _hour_chart(summary),
        )
    )
    if summary.get("jurisdictions"):
        sections.append(
            (
                "jurisdictions",
                "By jurisdiction",
                "Per loan jurisdiction: jobs planned, messages sent, loans deferred and stopped by the "
                "planner, jobs suppressed by the sender at send time, the delivered share of sends, SMS "
                "parts and cost. Click a header to sort.",
                _jurisdiction_table(summary["jurisdictions"]),
            )
        )
    if "samples" in summary:
        sections.append(
            (
                "messages",
                "What borrowers see",
                "One message per locale and template, exactly as sent (synthetic borrowers). Push: what "
                "the lock screen shows against what the app shows after unlock.",
                _samples_section(summary["samples"]),
            )
        )
    sections.append(
        (
            "replies",
            "Opt-outs and replies",
            "Replies from borrowers, by how they were read.",
            _replies_section(summary),
        )
    )
    rules = (
        '<div class="cols"><div><h3>Held back (deferred)</h3>'
        + _rule_table(summary.get("deferred", {}), {}, table_id="deferred")
        + "</div><div><h3>Stopped and suppressed</h3>"
        + _rule_table({**summary.get("stopped", {}), **summary.get("suppressed", {})}, {}, table_id="stopped")
        + "</div></div>"
        + f"<h3>Delivery</h3>{_count_table(summary.get('delivery', {}), 'status', table_id='delivery')}"
    )
    sections.append(
        (
            "rules",
            "Why loans were not contacted",
            "Every deferral and stop carries the rule that decided it (docs/rules.md lists them with "
            "their citations).",
            rules,
        )
    )
    if "explained_loan" in summary:
        sections.append(("trail", "One loan, explained", "", _trail_section(summary.get("explained_loan"))))
    sections.append(
        ("cost", "Cost", "Estimated from the messages sent and illustrative prices.", _cost_section(summary))
    )
    sections.append(("faults", "Injected faults", "", _faults_section(summary.get("faults") or {})))
    invocations = summary["run"].get("invocations", {})
    sections.append(
        (
            "run",
            "Run",
            "",
            _count_table(invocations, "function invocations", table_id="invocations") if invocations else "",
        )
    )
    nav = "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title, _, _ in sections)
    body = "".join(
        f'<section id="{sid}"><h2>{_e(title)}</h2>'
        + (f'<p class="lead">{_e(lead)}</p>' if lead else "")
        + f"{content}</section>"
        for sid, title, lead, content in sections
    )
    facts = (
        f"{run['loans']:,} loans, {run['borrowers']:,} borrowers · {run['hours']} h of "
        f"{run['tick_minutes']}-minute "
        f"ticks from {_e(run['start'])} · seed {run['seed']} · fault rate {run['fault_rate']:.0%} · "
        f"{run['elapsed_seconds']:.0f} s to run"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>Dunning run report — {run['loans']:,} loans, {run['hours']} "
        f"h</title><style>{_CSS}</style></head>"
        f"<body><header><h1>Dunning run report</h1><p>{facts}</p>{_kpis(summary)}<nav>{nav}</nav></header>"
        f"<main>{body}</main><script>{_JS}</script></body></html>"
    )


def write_html(summary: Mapping[str, Any], path: Path) -> Path:
    """Write the HTML report (self-contained: inline CSS, SVG and script) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(summary), encoding="utf-8")
    return path


def write_json(summary: Mapping[str, Any], path: Path) -> Path:
    """Write the summary as JSON (sorted keys) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return path
