"""Session reports: a terminal summary and a standalone HTML file.

The HTML report is one file with everything inline (CSS, and the plots as SVG
drawn by matplotlib): no scripts, no fonts or images fetched, so it opens
offline and can be attached to a record. It holds the session's metadata, a
timeline of both hands (EMG envelope when the session has signals, otherwise
each event's peak ratio; writing periods shaded; mirror bursts, other bursts
and artifacts marked), the measures per hand and per writing step, and the
event list.
"""

from __future__ import annotations

import html
import io
from typing import Any

import numpy as np

from mirrorband.sessions.session import Session

_COLORS = {"mirror": "#d62728", "burst": "#7f7f7f", "artifact": "#ff9f1c"}
_WRITE_OWN = "#c6dbef"
_WRITE_OTHER = "#fde0c5"
_ENV_RATE = 20.0

_MEASURES = (
    ("writing_s", "other hand writing, s", ".0f"),
    ("mirror_count", "mirror bursts", "d"),
    ("mirror_per_min", "mirror bursts per minute of writing", ".1f"),
    ("latency_s", "latency to first mirror burst, s", ".2f"),
    ("mirror_fraction", "fraction of writing time with mirror activity", ".1%"),
    ("emg_ratio", "mirror EMG ratio (writing / quiet rest)", ".2f"),
    ("mean_duration_s", "mean mirror-burst duration, s", ".2f"),
    ("max_duration_s", "max mirror-burst duration, s", ".2f"),
    ("cci", "FLEX/EXT co-contraction index", ".2f"),
    ("imu_deg", "wrist rotation during mirror bursts, deg", ".1f"),
    ("median_peak_ratio", "median peak ratio (x resting baseline)", ".1f"),
    ("grade", "grade 0-4", "d"),
)


def _fmt(v: Any, spec: str) -> str:
    if v is None:
        return "-"
    try:
        return format(v, spec)
    except (TypeError, ValueError):
        return str(v)


# --- terminal -------------------------------------------------------------------------------

def timeline_text(s: Session, width: int = 72) -> str:
    """One line per hand: ``=`` own writing, ``-`` other hand writing, ``.`` rest, ``M`` mirror, ``b`` burst."""
    dur = max(s.duration_s, 1e-3)
    lines = []
    for hand in ("L", "R"):
        row = [" "] * width
        for st in s.steps:
            c = "=" if st["kind"] == f"WRITE {hand}" else ("-" if st["kind"].startswith("WRITE") else ".")
            for i in range(int(st["onset_s"] / dur * width), min(width, int(np.ceil(st["offset_s"] / dur * width)))):
                row[i] = c
        for kind, ch in (("burst", "b"), ("mirror", "M")):
            for e in s.events:
                if e["hand"] == hand and e["kind"] == kind:
                    row[min(width - 1, int(e["onset_s"] / dur * width))] = ch
        lines.append(f"  {hand} |{''.join(row)}|")
    lines.append(f"    0 s{'':{width - 10}}{dur:.0f} s")
    lines.append("    = writing  - other hand writing  . rest  M mirror burst  b other burst")
    return "\n".join(lines)


def summary_text(s: Session, metrics: dict[str, Any]) -> str:
    """The terminal report of a session."""
    head = (f"session {s.id}  patient {s.patient_id or '-'}  {s.started}  {s.duration_s:.0f} s  "
            f"source {s.source}" + (f" ({s.name})" if s.name else ""))
    counts = ", ".join(f"{n} {k}" for k, n in sorted(metrics["event_counts"].items())) or "no events"
    lines = [head, f"events: {counts}", "", timeline_text(s), ""]
    hands = list(metrics["by_hand"])
    if hands:
        lines.append(f"  {'resting hand (other hand writes)':<48}" + "".join(f"{h:>10}" for h in hands))
        for key, label, spec in _MEASURES:
            lines.append(f"  {label:<48}" + "".join(f"{_fmt(metrics['by_hand'][h].get(key), spec):>10}" for h in hands))
        lines.append(f"  mirror EMG ratio from: {metrics['emg_ratio_method']}")
    else:
        lines.append("  no writing steps: no mirror measures")
    if metrics["grade"] is not None:
        lines.append(f"grade {metrics['grade']} (hand {metrics['grade_hand']}; rule: docs/metrics.md)")
    if metrics["peer_unknown"]:
        lines.append(f"{metrics['peer_unknown']} event(s) classified without the other band's activity")
    return "\n".join(lines)


# --- HTML -----------------------------------------------------------------------------------

def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def timeline_svg(s: Session, envelopes: dict[str, np.ndarray] | None) -> str:
    """The two-hand timeline as inline SVG."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    fig = Figure(figsize=(11, 4.6))
    axes = fig.subplots(2, 1, sharex=True)
    for ax, hand in zip(axes, ("L", "R"), strict=True):
        for st in s.steps:
            if st["kind"].startswith("WRITE"):
                own = st["kind"] == f"WRITE {hand}"
                ax.axvspan(st["onset_s"], st["offset_s"], color=_WRITE_OWN if own else _WRITE_OTHER, lw=0)
        if envelopes and hand in envelopes:
            env = envelopes[hand]
            # at most ~3000 points per hand: the maximum per bin keeps every burst visible
            k = max(1, len(env) // 3000)
            n = len(env) // k
            env = env[: n * k].reshape(n, k).max(axis=1)
            t = (np.arange(n) + 0.5) * k / _ENV_RATE
            ax.plot(t, env, color="#1f3b57", lw=0.6)
            ax.set_ylabel(f"{hand} FLEX uV")
            top = float(np.percentile(env, 99.5)) * 1.15 if len(env) else 1.0
            ax.set_ylim(0, max(top, 1e-3))
            for e in s.events:
                if e["hand"] == hand:
                    ax.axvspan(e["onset_s"], e["offset_s"], ymin=0.93, ymax=1.0, color=_COLORS.get(e["kind"], "k"),
                               lw=0)
        else:
            for e in s.events:
                if e["hand"] == hand:
                    c = _COLORS.get(e["kind"], "k")
                    ax.add_patch(Rectangle((e["onset_s"], 0), e["offset_s"] - e["onset_s"],
                                                              e.get("peak_ratio") or 1.0, color=c, lw=0))
            peaks = [e.get("peak_ratio") or 1.0 for e in s.events if e["hand"] == hand]
            ax.set_ylim(0, max(peaks, default=5.0) * 1.1)
            ax.set_ylabel(f"{hand} peak x baseline")
        ax.set_xlim(0, s.duration_s)
        ax.margins(x=0)
    axes[-1].set_xlabel("time from task start, s")
    handles = [Patch(color=_WRITE_OWN, label="this hand writes"), Patch(color=_WRITE_OTHER, label="other hand writes")]
    handles += [Patch(color=c, label=k) for k, c in _COLORS.items()]
    axes[0].legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1.32), ncol=5, frameon=False,
                   fontsize=8)
    return _svg(fig)


def steps_svg(metrics: dict[str, Any]) -> str | None:
    """Mirror bursts per minute for each writing step, as inline SVG (None without writing steps)."""
    if not metrics["steps"]:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 2.4))
    ax = fig.subplots()
    labels = [f"{m['kind']}\n{m['onset_s']:.0f} s" for m in metrics["steps"]]
    ax.bar(range(len(labels)), [m["mirror_per_min"] for m in metrics["steps"]], color=_COLORS["mirror"])
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylabel("mirror bursts / min\n(resting hand)")
    return _svg(fig)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.plot svg{max-width:100%;height:auto}
.grade{font-size:1.4em;font-weight:bold}small{color:#666}"""


def _table(header: list[str], rows: list[list[str]]) -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def render_html(s: Session, metrics: dict[str, Any], envelopes: dict[str, np.ndarray] | None,
                treatments: list[dict[str, Any]] | None = None) -> str:
    """The standalone HTML report of a session."""
    hands = list(metrics["by_hand"])
    measures = _table(["resting hand (other hand writes)", *hands],
                      [[label, *(_fmt(metrics["by_hand"][h].get(k), spec) for h in hands)] for k, label, spec in _MEASURES])
    steps = _table(["step", "time s", "resting hand", "mirror bursts", "per min", "latency s", "fraction"],
                   [[m["kind"], f"{m['onset_s']:.0f}-{m['offset_s']:.0f}", m["hand"], str(m["mirror_count"]),
                     _fmt(m["mirror_per_min"], ".1f"), _fmt(m["latency_s"], ".2f"), _fmt(m["mirror_fraction"], ".1%")]
                    for m in metrics["steps"]])
    events = _table(["#", "hand", "kind", "onset s", "offset s", "peak x", "CCI", "IMU deg"],
                    [[str(i), e["hand"], e["kind"] + (" ?" if e.get("peer_unknown") else ""),
                      f"{e['onset_s']:.2f}", f"{e['offset_s']:.2f}", _fmt(e.get("peak_ratio"), ".1f"),
                      _fmt(e.get("cci"), ".2f"), _fmt(e.get("imu_deg"), ".1f")] for i, e in enumerate(s.events, 1)])
    bars = steps_svg(metrics)
    grade = (f"<p class='grade'>Grade {metrics['grade']} <small>(hand {metrics['grade_hand']}; "
             f"0 none - 4 marked, rule in docs/metrics.md)</small></p>") if metrics["grade"] is not None else ""
    treat = ""
    if treatments:
        treat = "<h2>Treatments</h2>" + _table(["date", "kind", "note"],
                                                [[t["date"], t["kind"], t["note"]] for t in treatments])
    env_note = ("Envelope: FLEX EMG, 20-450 Hz, mains removed, RMS per 50 ms." if envelopes
                else "No recorded signals (band event logs): bars show each event's peak ratio.")
    title = f"Mirrorband session {s.id}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Patient {html.escape(s.patient_id or '-')} &middot; {html.escape(s.started)} &middot; {s.duration_s:.0f} s &middot;
source {html.escape(s.source)} {html.escape(s.name)} &middot; analysis {html.escape(s.runtime)}
{html.escape(s.firmware_version)}</p>
{grade}
<h2>Timeline</h2><div class="plot" id="timeline">{timeline_svg(s, envelopes)}</div>
<p><small>{env_note} Mirror EMG ratio from {html.escape(metrics['emg_ratio_method'])}.</small></p>
<h2>Measures</h2>{measures}
<h2>Writing steps</h2>{steps}{f'<div class="plot" id="steps">{bars}</div>' if bars else ''}
{treat}
<h2>Events</h2>{events}
<p><small>Mirror: burst in the resting hand while the other hand writes. ? = classified without the other
band's activity. Generated by Mirrorband.</small></p>
</body></html>
"""
