"""Trends: a patient's measures across sessions, with treatment dates.

A trend follows one resting hand (by default the patient's *affected* hand:
the one with the most mirror bursts over all their sessions) through the
patient's sessions in date order, and reports each measure's change against a
chosen baseline session (default: the first). The measures are those of
:mod:`mirrorband.analysis.metrics` (per hand, pooled over the session's writing steps).
"""

from __future__ import annotations

from typing import Any

from mirrorband.analysis.metrics import for_session
from mirrorband.sessions.session import load
from mirrorband.sessions.store import Store, StoreError, check_patient_id

#: Measures a trend follows (keys of a hand's measures in :func:`mirrorband.analysis.metrics.session_metrics`).
TREND_METRICS = ("grade", "mirror_per_min", "latency_s", "mirror_fraction", "emg_ratio", "mean_duration_s",
                 "max_duration_s", "cci", "imu_deg")


def _change(value: Any, base: Any) -> tuple[float | None, float | None]:
    if value is None or base is None:
        return None, None
    delta = round(float(value) - float(base), 4)
    rel = round(delta / float(base), 4) if float(base) != 0 else None
    return delta, rel


def patient_trend(store: Store, patient_id: str, hand: str | None = None,
                  baseline: int | None = None) -> dict[str, Any]:
    """Series of :data:`TREND_METRICS` over ``patient_id``'s sessions, treatments, change vs baseline.

    Returns ``{"patient", "hand", "baseline", "sessions": [{"id", "started", "metrics": {m: v},
    "change": {m: {"delta", "relative"}}}], "treatments": [...]}``.
    """
    check_patient_id(patient_id)
    rows = store.sessions(patient_id)
    if not rows:
        raise StoreError(f"no sessions for patient {patient_id}")
    if hand is not None and hand not in ("L", "R"):
        raise StoreError(f"hand must be L or R, not {hand!r}")
    per = []
    for row in rows:
        s = load(store, row.id)
        m, _ = for_session(store, s)
        per.append((row, m))
    if hand is None:
        count = {h: sum(m["by_hand"].get(h, {}).get("mirror_count", 0) for _, m in per) for h in ("L", "R")}
        hand = max(("R", "L"), key=lambda h: count[h])
    ids = [row.id for row, _ in per]
    if baseline is None:
        baseline = ids[0]
    elif baseline not in ids:
        raise StoreError(f"baseline session {baseline} is not one of patient {patient_id}'s sessions")
    base = next(m for row, m in per if row.id == baseline)["by_hand"].get(hand, {})
    out = []
    for row, m in per:
        hm = m["by_hand"].get(hand, {})
        values = {k: hm.get(k) for k in TREND_METRICS}
        change = {}
        for k in TREND_METRICS:
            d, r = _change(values[k], base.get(k))
            change[k] = {"delta": d, "relative": r}
        out.append({"id": row.id, "started": row.started, "source": row.source, "metrics": values,
                    "change": change})
    return {"patient": patient_id, "hand": hand, "baseline": baseline, "sessions": out,
            "treatments": store.treatments(patient_id)}


def format_trend(t: dict[str, Any]) -> str:
    """The trend as a terminal table, treatments interleaved by date."""
    lines = [f"patient {t['patient']}, resting hand {t['hand']} (while the other hand writes); "
             f"baseline session {t['baseline']}",
             "  session  date        grade  mirror/min  latency s  fraction  EMG ratio  change mirror/min"]
    treats = list(t["treatments"])
    for s in t["sessions"]:
        day = s["started"][:10]
        while treats and treats[0]["date"] <= day:
            tr = treats.pop(0)
            lines.append(f"  -- {tr['date']}  treatment: {tr['kind']}" + (f" ({tr['note']})" if tr["note"] else ""))
        m, c = s["metrics"], s["change"]["mirror_per_min"]

        def f(v: Any, spec: str) -> str:
            return format(v, spec) if isinstance(v, (int, float)) else "-"
        rel = f"{c['relative'] * 100:+.0f} %" if c["relative"] is not None else "-"
        lines.append(f"  {s['id']:>7}  {day}  {f(m['grade'], '5d')}  {f(m['mirror_per_min'], '10.1f')}  "
                     f"{f(m['latency_s'], '9.1f')}  {f(m['mirror_fraction'], '8.3f')}  {f(m['emg_ratio'], '9.2f')}  "
                     f"{f(c['delta'], '+.1f')} ({rel})")
    for tr in treats:
        lines.append(f"  -- {tr['date']}  treatment: {tr['kind']}" + (f" ({tr['note']})" if tr["note"] else ""))
    return "\n".join(lines)
