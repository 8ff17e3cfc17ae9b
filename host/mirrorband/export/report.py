"""Readable terminal text: the replay event table and the demo summary."""

from __future__ import annotations

from mirrorband.recording import Recording


def fmt(v: object, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def events_table(out: dict, limit: int | None = None) -> str:
    """The replay JSON object as a table for people."""
    ev = out["events"]
    lines = [f"{out['recording']}: {out['duration_s']:.1f} s, firmware {out['firmware_version']} "
             f"({out['runtime']}), {len(ev)} events"]
    if not ev:
        lines.append("no bursts detected")
        return "\n".join(lines)
    lines.append("   #  hand  kind       onset s  offset s  dur s  peak x  channels   CCI   IMU deg")
    shown = ev if limit is None else ev[:limit]
    for i, e in enumerate(shown, 1):
        kind = e["kind"] + ("?" if e.get("peer_unknown") else "")
        if e.get("artifact"):
            kind = f"art:{e['artifact']}"
        lines.append(
            f"{i:4d}  {e['hand']:<4}  {kind:<9} {e['onset_s']:9.3f} {e['offset_s']:9.3f} "
            f"{e['offset_s'] - e['onset_s']:6.2f} {fmt(e.get('peak_ratio'), '7.1f')}  "
            f"{'+'.join(e.get('channels', [])) or '-':<9} {fmt(e.get('cci'), '5.2f')} "
            f"{fmt(e.get('imu_deg'), '9.1f')}")
    if limit is not None and len(ev) > limit:
        lines.append(f"   ... {len(ev) - limit} more")
    counts = {}
    for e in ev:
        counts.setdefault(e["hand"], {}).setdefault(e["kind"], 0)
        counts[e["hand"]][e["kind"]] += 1
    for hand in sorted(counts):
        parts = ", ".join(f"{n} {k}" for k, n in sorted(counts[hand].items()))
        lines.append(f"hand {hand}: {parts}")
    if any(e.get("peer_unknown") for e in ev):
        lines.append("? = the other band's activity was unknown; classified from the task step")
    return "\n".join(lines)


def step_summary(rec: Recording, events: list[dict]) -> str:
    """Mirror and other bursts per task step and hand."""
    steps = rec.task_annotations()
    lines = ["  step                 time s      hand L                 hand R"]
    for a in steps:
        cells = []
        for hand in ("L", "R"):
            inside = [e for e in events if e["hand"] == hand and a.onset <= e["onset_s"] < a.end]
            if a.text == f"WRITE {hand}":
                cells.append("writing")
                continue
            mir = sum(e["kind"] == "mirror" for e in inside)
            oth = sum(e["kind"] == "burst" for e in inside)
            text = f"{mir} mirror, {oth} other"
            if a.text.startswith("WRITE") and a.duration > 0:
                text += f" ({mir / (a.duration / 60):.1f}/min)"
            cells.append(text)
        lines.append(f"  {a.text:<18} {a.onset:6.1f}-{a.end:<6.1f} {cells[0]:<22} {cells[1]}")
    return "\n".join(lines)
