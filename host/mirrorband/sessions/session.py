"""Sessions: task steps and both hands' events on one time base.

A session is what one task run gives: its steps (``REST``, ``WRITE L``,
``WRITE R`` with onset/offset in seconds from the task start) and the events
of both hands (the objects of docs/formats.md §2, same time base). It comes
from one of two sources:

* ``edf``: an EDF+ recording (FORMATS.md §1) imported with :func:`import_edf`,
  analysed with the host's exact numpy port of the band pipeline; the file is
  kept byte for byte under the data directory and the session can be
  re-derived from it (:func:`rederive`);
* ``bands``: the two bands' event logs, ingested with :func:`ingest_band_pages`
  (one call per band) and merged by :func:`merge_band_logs`: band clocks are
  mapped to the task's time base, events are merged in onset order, and events
  a band marked ``peer_unknown`` (it lost the other band's activity beacon) are
  re-classified from the other band's logged activity.

Keys the host adds to event objects: ``reclassified`` (true when the host
decided the kind from the other band's log, replacing ``peer_unknown``) and
``band_id`` (band sessions).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mbfw.config import Config
from mbfw.detector import FEAT_WIN, WIN_MS
from mbfw.events import EV_NF, EV_OFFSET, EV_ONSET, EventError, unpack
from mbfw.task import STEP_NONE, STEP_REST, STEP_WRITE_L, STEP_WRITE_R
from mirrorband.detect.bandio import Signals
from mirrorband.recording import Recording, RecordingError
from mirrorband.sessions.store import Store, StoreError, check_patient_id

STEP_NAMES = {STEP_REST: "REST", STEP_WRITE_L: "WRITE L", STEP_WRITE_R: "WRITE R"}
#: Mirror when the other hand was active for at least 1/MIRROR_FRAC of the burst (firmware default).
MIRROR_FRAC = 4
_ANON_START = datetime(1985, 1, 1)


@dataclass
class Session:
    """A session as the analysis sees it (plain data; events are docs/formats.md objects)."""

    id: int | None
    patient_id: str | None
    started: str
    source: str
    duration_s: float
    steps: list[dict[str, Any]]
    events: list[dict[str, Any]]
    name: str = ""
    runtime: str = ""
    firmware_version: str = ""
    mains_hz: int | None = None
    raw_path: str | None = None


def load(store: Store, sid: int | str) -> Session:
    """The stored session ``sid``; :class:`StoreError` when there is none."""
    row = store.session_row(sid)
    return Session(row.id, row.patient_id, row.started, row.source, row.duration_s, store.steps(row.id),
                   store.events(row.id), row.name, row.runtime, row.firmware_version, row.mains_hz, row.raw_path)


def steps_from_recording(rec: Recording | Signals) -> list[dict[str, Any]]:
    """The task protocol annotations as steps (onset order)."""
    return [{"kind": a.text, "onset_s": round(a.onset, 4), "offset_s": round(a.end, 4)}
            for a in rec.task_annotations() if a.duration > 0]


def step_at(steps: Sequence[dict[str, Any]], t: float) -> str | None:
    """The kind of the step in force at ``t`` (the later one on a boundary), or None."""
    found = None
    for s in steps:
        if s["onset_s"] <= t < s["offset_s"]:
            found = s["kind"]
    return found


# --- EDF+ import ----------------------------------------------------------------------------

def analyse_recording(rec: Recording | Signals) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(events, info) of a recording replayed through the numpy port as two bands would see it.

    The band settings, task points and streams are prepared once
    (:func:`mirrorband.detect.bandio.prepare`) and the recording is streamed
    chunk by chunk, so an open EDF file (:func:`~mirrorband.sessions.edf.open_edf`)
    is analysed in bounded memory.
    """
    from mirrorband.detect.bandio import prepare
    from mirrorband.detect.replay import replay

    inp = prepare(rec)
    out = replay(inp, "numpy")
    info = {"runtime": out["runtime"], "firmware_version": out["firmware_version"],
            "mains_hz": out["mains_hz"], "duration_s": out["duration_s"], "notes": inp.notes}
    return out["events"], info


def edf_start(path: str | os.PathLike) -> datetime | None:
    """The start date/time in an EDF header, or None when anonymised (1 Jan 1985) or unreadable."""
    try:
        with open(path, "rb") as f:
            head = f.read(184)
        d, t = head[168:176].decode("ascii"), head[176:184].decode("ascii")
        dd, mm, yy = (int(x) for x in d.split("."))
        hh, mi, ss = (int(x) for x in t.split("."))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    start = datetime(1900 + yy if yy >= 85 else 2000 + yy, mm, dd, hh, mi, ss)
    return None if start == _ANON_START else start


def import_edf(store: Store, path: str | os.PathLike, patient_id: str | None = None,
               started: str | None = None) -> int:
    """Import an EDF+/BDF+ recording as a session; returns the session id.

    The file is copied into the data directory first (content-addressed), then
    analysed; ``started`` defaults to the EDF header's start (or now when the
    header is anonymised).
    """
    from mirrorband.sessions.edf import open_edf

    if patient_id is not None:
        check_patient_id(patient_id)
    with open_edf(path) as rec:  # validates before anything is kept; read chunk by chunk
        try:
            with open(path, "rb") as f:
                magic = f.read(8)
        except OSError as e:
            raise StoreError(f"{path}: cannot read ({e.strerror or e})") from None
        suffix = ".bdf" if magic == b"\xffBIOSEMI" else ".edf"
        events, info = analyse_recording(rec)
        steps = steps_from_recording(rec)
    try:
        rel, sha = store.keep_raw_file(path, "imports", suffix)
    except OSError as e:
        raise StoreError(f"{path}: cannot read ({e.strerror or e})") from None
    if started is None:
        st = edf_start(path)
        started = (st or datetime.now()).isoformat(timespec="seconds")
    meta = {"patient_id": patient_id, "started": started, "source": "edf", "name": Path(path).name,
            "duration_s": info["duration_s"], "runtime": info["runtime"],
            "firmware_version": info["firmware_version"], "mains_hz": info["mains_hz"],
            "raw_path": rel, "raw_sha256": sha}
    return store.insert_session(meta, steps, events)


def recording_of(store: Store, session: Session) -> Recording:
    """The kept recording of an imported session."""
    from mirrorband.sessions.edf import read_edf

    if not session.raw_path:
        raise StoreError(f"session {session.id} has no recorded signals (band event logs only)")
    p = store.raw_abspath(session.raw_path)
    try:
        rec = read_edf(p)
    except RecordingError as e:
        raise StoreError(f"session {session.id}: kept recording unusable ({e})") from None
    rec.name = session.name
    return rec


# --- band logs ------------------------------------------------------------------------------

@dataclass
class BandMarkers:
    """What a band's log says about a task run, besides its events.

    Times are the band's clock in ms. ``start_ms``/``end_ms``: task start and
    end. ``steps``: the task protocol as configured on the band, firmware
    change points ``(band_ms, STEP_*)``. ``activity``: spans ``(band_ms,
    band_ms)`` in which this band's hand was active (its activity state, the
    one the beacon carries). ``drift_ppm``: the band clock's rate error against
    the host's, from time sync (``session_s = (band_ms - start_ms) / 1000 /
    (1 + drift_ppm * 1e-6)``). ``band_session`` is the session id both bands
    of a task share.
    """

    band_session: int
    hand: str
    started: str
    start_ms: int
    end_ms: int
    steps: list[tuple[int, int]] = field(default_factory=list)
    activity: list[tuple[int, int]] = field(default_factory=list)
    drift_ppm: float = 0.0
    patient_id: str | None = None
    firmware_version: str = ""

    def __post_init__(self) -> None:
        if self.hand not in ("L", "R"):
            raise StoreError(f"band hand must be L or R, not {self.hand!r}")
        if self.end_ms < self.start_ms:
            raise StoreError("band task ends before it starts")
        if abs(self.drift_ppm) > 1000:
            raise StoreError(f"clock drift {self.drift_ppm} ppm is implausible")
        self.steps = [(int(t), int(k)) for t, k in self.steps]
        self.activity = [(int(a), int(b)) for a, b in self.activity]
        for _, k in self.steps:
            if not STEP_NONE <= k <= STEP_WRITE_R:
                raise StoreError(f"unknown task step kind {k}")
        if self.patient_id is not None:
            check_patient_id(self.patient_id)

    def to_s(self, band_ms: float) -> float:
        return (band_ms - self.start_ms) / 1000.0 / (1.0 + self.drift_ppm * 1e-6)

    @property
    def key(self) -> str:
        return f"{self.patient_id or '-'}/{self.band_session}"


def _record_tuple(rec: bytes | Sequence[int]) -> tuple[int, ...]:
    if isinstance(rec, (bytes, bytearray, memoryview)):
        try:
            return tuple(unpack(bytes(rec)))
        except EventError as e:
            raise StoreError(f"bad event record: {e}") from None
    t = tuple(int(x) for x in rec)
    if len(t) != EV_NF:
        raise StoreError(f"an event record has {EV_NF} fields, not {len(t)}")
    return t


def ingest_band_pages(store: Store, band_id: str, raw_bytes_path: str | os.PathLike,
                      records: Iterable[bytes | Sequence[int]], markers: BandMarkers) -> int:
    """Store one band's log of a task run and (re)build the merged session; returns its id.

    ``raw_bytes_path`` is the file of log pages as received (already on disk,
    written before parsing); it is kept under the data directory and referenced.
    ``records`` are the decoded event records (24-byte ``mbfw.events`` records or
    their field tuples). Call once per band; the session is merged from whatever
    logs of ``markers.band_session`` have arrived, and re-merged when the
    other band's log arrives (same session id). Idempotent per (session, band).
    """
    from mbfw.events import pack

    tuples = [_record_tuple(r) for r in records]
    blob = b"".join(pack(t) for t in tuples)
    try:
        raw = Path(raw_bytes_path).read_bytes()
    except OSError as e:
        raise StoreError(f"{raw_bytes_path}: cannot read ({e.strerror or e})") from None
    rel, _ = store.keep_raw(raw, f"bands/{_safe(band_id)}", ".pages")
    with store.transaction() as db:
        if markers.patient_id:
            store.ensure_patient(markers.patient_id, db)
        store.ensure_band(band_id, markers.hand, markers.patient_id, db=db)
        store.put_band_log(db, markers.key, band_id, markers.hand, rel, asdict(markers), blob)
        return _build_band_session(store, markers.key, db)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "band"


def _build_band_session(store: Store, key: str, db) -> int:
    logs = []
    for lg in store.band_logs(key):
        m = BandMarkers(**{k: v for k, v in lg["markers"].items()})
        recs = lg["records"]
        tuples = [tuple(unpack(recs[i:i + 24])) for i in range(0, len(recs), 24)]
        logs.append((lg["band_id"], m, tuples))
    steps, events, meta = merge_band_logs(logs)
    return store.insert_session(meta | {"band_key": key}, steps, events, db, store.session_by_band_key(key))


def _steps_from_points(m: BandMarkers) -> list[dict[str, Any]]:
    out = []
    pts = sorted(m.steps)
    for i, (t, k) in enumerate(pts):
        end = pts[i + 1][0] if i + 1 < len(pts) else m.end_ms
        if k != STEP_NONE and end > t:
            out.append({"kind": STEP_NAMES[k], "onset_s": round(m.to_s(t), 3), "offset_s": round(m.to_s(end), 3)})
    return out


def _active_windows(spans: Sequence[tuple[float, float]], k0: int, k1: int) -> int:
    # how many 10 ms windows k0..k1 (session time k * 10 ms) have their midpoint in a span
    ranges = []
    for s, e in spans:
        a = max(k0, math.ceil((s * 1000 - WIN_MS / 2) / WIN_MS))
        b = min(k1, math.ceil((e * 1000 - WIN_MS / 2) / WIN_MS) - 1)
        if b >= a:
            ranges.append((a, b))
    n = 0
    last = k0 - 1
    for a, b in sorted(ranges):
        a = max(a, last + 1)
        if b >= a:
            n += b - a + 1
            last = b
    return n


def event_windows(e: dict[str, Any], onset_adj: int = Config.onset_adj,
                  offset_adj: int = Config.offset_adj) -> tuple[int, int]:
    """The first and last 10 ms window (session time) of an event, as its band counted them.

    A band reports ``onset = k0 * 10 + onset_adj`` and ``offset = (k1 + 1) * 10 +
    offset_adj`` ms; the classification looked at windows ``k0 .. k1``.
    """
    k0 = int(round((e["onset_s"] * 1000 - onset_adj) / WIN_MS))
    k1 = int(round((e["offset_s"] * 1000 - offset_adj) / WIN_MS)) - 1
    return k0, max(k0, k1)


def reclassify(events: list[dict[str, Any]], steps: Sequence[dict[str, Any]],
               activity: dict[str, tuple[float, float, list[tuple[float, float]]]],
               mirror_frac: int = MIRROR_FRAC, onset_adj: int = Config.onset_adj,
               offset_adj: int = Config.offset_adj) -> int:
    """Re-classify ``peer_unknown`` events in place; returns how many were decided.

    ``activity[hand]`` = (log start s, log end s, active spans in s) of each band
    whose log is present, all in session time; the spans are the band's own
    activity state (what its beacon carries: EMG or writing strokes above the
    activity threshold, held for ``act_hold`` windows), *not* its events (a
    writing hand reports no events during its own ``WRITE`` step).

    The band's own rule (``mbfw.detector.finalize``), on its 10 ms windows: the
    event covers windows ``k0 .. k1`` (its reported onset/offset minus the
    band's ``onset_adj``/``offset_adj``); the step is the one in force at window
    ``k0``. An artifact stays an artifact; in a ``REST`` step a burst is a
    ``burst``; otherwise (the other hand's ``WRITE`` step or no step) it is a
    ``mirror`` when the other hand was active in at least 1/``mirror_frac`` of
    the event's windows (the first ``FEAT_WIN``), else a ``burst``. Events whose
    windows the other log does not cover keep the band's decision and their
    ``peer_unknown`` mark.
    """
    n = 0
    for e in events:
        if not e.get("peer_unknown") or e["kind"] == "artifact":
            continue
        other = "R" if e["hand"] == "L" else "L"
        if other not in activity:
            continue
        lo, hi, spans = activity[other]
        k0, k1 = event_windows(e, onset_adj, offset_adj)
        if k0 * WIN_MS < lo * 1000 - 0.5 or (k1 + 1) * WIN_MS > hi * 1000 + 0.5:
            continue
        step = step_at(steps, k0 * WIN_MS / 1000.0)
        if step == "REST" or step == f"WRITE {e['hand']}":
            kind = "burst"
        else:
            k1 = min(k1, k0 + FEAT_WIN - 1)
            act = _active_windows(spans, k0, k1)
            kind = "mirror" if act * mirror_frac >= k1 - k0 + 1 else "burst"
        e["kind"] = kind
        del e["peer_unknown"]
        e["reclassified"] = True
        n += 1
    return n


def merge_band_logs(logs: Sequence[tuple[str, BandMarkers, Sequence[Sequence[int]]]]
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Merge band logs ``(band_id, markers, event tuples)`` of one task run: (steps, events, session meta)."""
    from mirrorband.detect.bandio import event_dict

    if not logs:
        raise StoreError("no band log to merge")
    hands = [m.hand for _, m, _ in logs]
    if len(set(hands)) != len(hands):
        raise StoreError(f"two logs of the same task run claim hand {hands[0]}")
    events: list[dict[str, Any]] = []
    activity = {}
    for band_id, m, tuples in logs:
        for t in tuples:
            ev = list(t)
            ev[EV_ONSET] = int(round(m.to_s(t[EV_ONSET]) * 1000))
            ev[EV_OFFSET] = int(round(m.to_s(t[EV_OFFSET]) * 1000))
            d = event_dict(ev)
            if d["hand"] != m.hand:
                raise StoreError(f"band {band_id} ({m.hand}) logged an event of hand {d['hand']}")
            d["band_id"] = band_id
            events.append(d)
        activity[m.hand] = (m.to_s(m.start_ms), m.to_s(m.end_ms), [(m.to_s(a), m.to_s(b)) for a, b in m.activity])
    events.sort(key=lambda e: (e["onset_s"], e["hand"], e["offset_s"]))
    with_steps = [m for _, m, _ in logs if m.steps]
    steps = _steps_from_points(with_steps[0]) if with_steps else []
    reclassify(events, steps, activity)
    first = min((m for _, m, _ in logs), key=lambda m: m.hand)
    duration = max(m.to_s(m.end_ms) for _, m, _ in logs)
    meta = {"patient_id": first.patient_id, "started": first.started, "source": "bands",
            "name": f"band session {first.band_session}", "duration_s": round(duration, 3),
            "runtime": "band", "firmware_version": first.firmware_version, "mains_hz": None}
    return steps, events, meta


def rederive(store: Store, sid: int | str) -> int:
    """Recompute a session's steps and events from what was kept (the EDF copy or the band logs)."""
    row = store.session_row(sid)
    if row.source == "edf":
        s = load(store, row.id)
        rec = recording_of(store, s)
        events, info = analyse_recording(rec)
        meta = row.as_dict() | {"runtime": info["runtime"], "firmware_version": info["firmware_version"],
                                "mains_hz": info["mains_hz"], "duration_s": info["duration_s"]}
        return store.insert_session(meta, steps_from_recording(rec), events, replace_id=row.id)
    with store.transaction() as db:
        assert row.band_key is not None
        return _build_band_session(store, row.band_key, db)
