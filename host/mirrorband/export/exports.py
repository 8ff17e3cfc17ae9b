"""Exports of a stored session: EDF+, CSV and JSON.

* **EDF+** (FORMATS.md §1): the session's recorded signals exactly as kept
  (digital samples and headers copied, so the file re-imports to identical
  events), the original annotations (task protocol, ground truth, anything
  else), and the detected events as annotations with texts of their own
  (:data:`DETECTOR_TEXTS`; the ground-truth names ``MIRROR H``/``BURST H`` are
  never used for detections). A BDF+ source is written as BDF+ (24-bit).
  Sessions without signals (band event logs only) cannot be exported as EDF+.
* **CSV**: two files, the events (``F``) and the measures (``F`` with
  ``-metrics`` before the suffix), one row per measure and scope.
* **JSON**: the whole session: metadata, steps, events, measures and the
  patient's treatment entries.

Every file is written to a temporary name beside the target and renamed when
complete; failures raise :class:`~mirrorband.sessions.store.StoreError` (one line).
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mirrorband.sessions.session import Session
from mirrorband.sessions.store import Store, StoreError

FORMATS = ("edf", "csv", "json")
#: Annotation texts of detected events: ``det <kind> <hand>``, e.g. ``det mirror R``;
#: artifacts carry their reason (``det artifact L knock``) and events the band
#: classified without the other band's activity end in ``?`` (``det mirror R ?``).
DETECTOR_PREFIX = "det"
DETECTOR_TEXTS = ("det mirror H", "det burst H", "det artifact H REASON", "(any of these) ?")
EVENT_COLUMNS = ("session", "hand", "kind", "onset_s", "offset_s", "duration_s", "step", "peak_ratio", "area",
                 "channels", "cci", "imu_deg", "peer_unknown", "reclassified", "artifact")


def _atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    p = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(p))
    if os.path.isdir(p):
        raise StoreError(f"{p}: is a directory")
    if not os.path.isdir(directory):
        raise StoreError(f"{p}: directory {directory} does not exist")
    tmp = os.path.join(directory, f".{os.path.basename(p)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as e:
        raise StoreError(f"{p}: cannot write ({e.strerror or e})") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_text(path: str | os.PathLike, text: str) -> None:
    def w(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    _atomic_write(path, w)


def detector_text(e: dict[str, Any]) -> str:
    """The EDF+ annotation text of a detected event."""
    parts = [DETECTOR_PREFIX, e["kind"], e["hand"]]
    if e["kind"] == "artifact" and e.get("artifact"):
        parts.append(e["artifact"])
    if e.get("peer_unknown"):
        parts.append("?")
    return " ".join(parts)


def is_detector_text(text: str) -> bool:
    return text.startswith(DETECTOR_PREFIX + " ")


# --- JSON -------------------------------------------------------------------------------------

def session_json(store: Store, s: Session, metrics: dict[str, Any]) -> dict[str, Any]:
    """The whole session as one JSON-ready object."""
    row = store.session_row(s.id if s.id is not None else -1)
    return {
        "format": "mirrorband-session",
        "version": 1,
        "session": {k: v for k, v in row.as_dict().items() if k not in ("band_key",)},
        "steps": s.steps,
        "events": s.events,
        "metrics": metrics,
        "treatments": store.treatments(s.patient_id) if s.patient_id else [],
    }


def export_json(store: Store, s: Session, metrics: dict[str, Any], path: str | os.PathLike) -> list[str]:
    _write_text(path, json.dumps(session_json(store, s, metrics), indent=1) + "\n")
    return [os.fspath(path)]


# --- CSV --------------------------------------------------------------------------------------

def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, list):
        return "+".join(str(x) for x in v)
    return v


def events_csv(s: Session) -> str:
    from mirrorband.sessions.session import step_at

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(EVENT_COLUMNS)
    for e in s.events:
        row = dict(e, session=s.id, duration_s=round(e["offset_s"] - e["onset_s"], 3),
                   step=step_at(s.steps, e["onset_s"]) or "",
                   peer_unknown=bool(e.get("peer_unknown")), reclassified=bool(e.get("reclassified")))
        w.writerow([_cell(row.get(c)) for c in EVENT_COLUMNS])
    return buf.getvalue()


def metrics_csv(s: Session, metrics: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("session", "scope", "hand", "step_kind", "onset_s", "offset_s", "metric", "value"))
    w.writerow((s.id, "session", metrics.get("grade_hand") or "", "", "", "", "grade", _cell(metrics["grade"])))
    for hand, m in metrics["by_hand"].items():
        for k, v in m.items():
            if k != "hand":
                w.writerow((s.id, "hand", hand, "", "", "", k, _cell(v)))
    for m in metrics["steps"]:
        for k, v in m.items():
            if k not in ("hand", "step", "kind", "onset_s", "offset_s"):
                w.writerow((s.id, f"step {m['step']}", m["hand"], m["kind"], m["onset_s"], m["offset_s"], k, _cell(v)))
    return buf.getvalue()


def metrics_csv_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    return p.with_name(f"{p.stem}-metrics{p.suffix or '.csv'}")


def export_csv(s: Session, metrics: dict[str, Any], path: str | os.PathLike) -> list[str]:
    mpath = metrics_csv_path(path)
    _write_text(path, events_csv(s))
    _write_text(mpath, metrics_csv(s, metrics))
    return [os.fspath(path), os.fspath(mpath)]


# --- EDF+ -------------------------------------------------------------------------------------

def export_edf(store: Store, s: Session, path: str | os.PathLike) -> list[str]:
    """The kept recording with the detected events as annotations (module docstring)."""
    import pyedflib

    if not s.raw_path:
        raise StoreError(f"session {s.id} has no recorded signals (band event logs only): "
                         "export it as csv or json")
    src = os.fspath(store.raw_abspath(s.raw_path))
    try:
        reader = pyedflib.EdfReader(src)
    except OSError as e:
        raise StoreError(f"session {s.id}: kept recording unreadable ({e})") from None
    try:
        n = reader.signals_in_file
        headers: list[Any] = [reader.getSignalHeader(i) for i in range(n)]
        data = [reader.readSignal(i, digital=True) for i in range(n)]
        onsets, durations, texts = reader.readAnnotations()
        duration = reader.datarecord_duration
        n_records = reader.datarecords_in_file
        start = reader.getStartdatetime()
        bdf = reader.filetype in (pyedflib.FILETYPE_BDF, pyedflib.FILETYPE_BDFPLUS)
    finally:
        reader.close()
    notes = [(float(o), float(d), str(t)) for o, d, t in zip(onsets, durations, texts, strict=True)
             if not is_detector_text(str(t))]
    notes += [(e["onset_s"], e["offset_s"] - e["onset_s"], detector_text(e)) for e in s.events]
    notes.sort(key=lambda a: a[0])
    spr = [len(x) // n_records for x in data]
    if any(k * n_records != len(x) for k, x in zip(spr, data, strict=True)):
        raise StoreError(f"session {s.id}: kept recording has incomplete data records")
    import numpy as np

    records = np.concatenate([np.asarray(x, dtype=np.int32).reshape(n_records, k) for k, x in zip(spr, data, strict=True)],
                             axis=1)
    n_annot = max(1, -(-len(notes) // n_records))

    def w(tmp: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            writer = pyedflib.EdfWriter(tmp, n, file_type=pyedflib.FILETYPE_BDFPLUS if bdf else pyedflib.FILETYPE_EDFPLUS)
            try:
                writer.setSignalHeaders(headers)
                writer.setDatarecordDuration(duration)
                writer.set_number_of_annotation_signals(min(64, n_annot))
                writer.setStartdatetime(start)
                writer.setEquipment("Mirrorband")
                for onset, dur, text in notes:
                    if writer.writeAnnotation(onset, dur if dur > 0 else -1, text) != 0:
                        raise OSError(f"cannot write annotation {text!r}")
                for r in range(n_records):
                    if writer.blockWriteDigitalSamples(np.ascontiguousarray(records[r])) < 0:
                        raise OSError("write error (disk full?)")
            finally:
                writer.close()
    _atomic_write(path, w)
    return [os.fspath(path)]


def export(store: Store, s: Session, metrics: dict[str, Any], fmt: str, path: str | os.PathLike) -> list[str]:
    """Write session ``s`` as ``fmt`` (edf, csv, json) to ``path``; returns the files written."""
    if fmt == "json":
        return export_json(store, s, metrics, path)
    if fmt == "csv":
        return export_csv(s, metrics, path)
    if fmt == "edf":
        return export_edf(store, s, path)
    raise StoreError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
