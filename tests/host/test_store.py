"""Session store: data directory, migrations, newer-version refusal, crash safety, band log ingestion."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mbfw.events import EV_NF, FLAG_PEER_UNKNOWN, KIND_ARTIFACT, KIND_BURST, KIND_MIRROR, pack
from mbfw.task import STEP_REST, STEP_WRITE_L, STEP_WRITE_R
from mirrorband.sessions import store as store_mod
from mirrorband.sessions.session import (
    BandMarkers,
    ingest_band_pages,
    load,
    merge_band_logs,
    reclassify,
    rederive,
)
from mirrorband.sessions.store import ENV_DATA_DIR, MIGRATIONS, SCHEMA_VERSION, Store, StoreError, data_dir

REPO = Path(__file__).resolve().parents[2]


def _tables(db_path: Path) -> set[str]:
    with sqlite3.connect(db_path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# --- data directory --------------------------------------------------------------------------

def test_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "env"))
    assert data_dir() == tmp_path / "env"
    assert data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv(ENV_DATA_DIR)
    import platformdirs

    assert data_dir() == Path(platformdirs.user_data_dir("mirrorband", appauthor=False))


def test_unwritable_data_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create data directory"):
        Store(blocker / "sub")


# --- schema and migrations -------------------------------------------------------------------

def test_fresh_store_is_at_current_version(tmp_path):
    with Store(tmp_path) as st:
        assert st.schema_version() == SCHEMA_VERSION
        assert st.check() == []
    assert {"patients", "bands", "sessions", "steps", "events", "treatments", "band_logs"} <= _tables(
        tmp_path / "mirrorband.sqlite")


def test_old_store_is_migrated_in_order_keeping_data(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "MIGRATIONS", MIGRATIONS[:1])
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", 1)
    with Store(tmp_path) as st:
        assert st.schema_version() == 1
        sid = st.insert_session({"started": "2025-01-01T10:00:00", "source": "edf", "duration_s": 10.0,
                                 "patient_id": "P1"},
                                [{"kind": "REST", "onset_s": 0.0, "offset_s": 10.0}],
                                [{"hand": "L", "kind": "burst", "onset_s": 1.0, "offset_s": 2.0}])
    assert "treatments" not in _tables(tmp_path / "mirrorband.sqlite")
    monkeypatch.undo()
    with Store(tmp_path) as st:
        assert st.schema_version() == SCHEMA_VERSION
        assert st.events(sid) == [{"hand": "L", "kind": "burst", "onset_s": 1.0, "offset_s": 2.0}]
        st.add_treatment("P1", "2025-01-05", "botox")
        assert st.check() == []


def test_failing_migration_leaves_previous_version_intact(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "MIGRATIONS", MIGRATIONS[:1])
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", 1)
    Store(tmp_path).close()
    bad = MIGRATIONS[:1] + (("CREATE TABLE half (x INTEGER)", "THIS IS NOT SQL"),)
    monkeypatch.setattr(store_mod, "MIGRATIONS", bad)
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", 2)
    with pytest.raises(StoreError, match="cannot open store"):
        Store(tmp_path)
    monkeypatch.undo()
    assert "half" not in _tables(tmp_path / "mirrorband.sqlite")
    with sqlite3.connect(tmp_path / "mirrorband.sqlite") as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(1,)]


def test_newer_store_is_refused_untouched(tmp_path):
    Store(tmp_path).close()
    db_path = tmp_path / "mirrorband.sqlite"
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    before = _sha(db_path)
    with pytest.raises(StoreError, match="newer Mirrorband") as exc:
        Store(tmp_path)
    assert "\n" not in str(exc.value)
    assert _sha(db_path) == before


def test_not_a_database(tmp_path):
    (tmp_path / "mirrorband.sqlite").write_bytes(b"garbage" * 200)
    with pytest.raises(StoreError, match="cannot open store"):
        Store(tmp_path)


def test_bad_ids_and_dates(tmp_path):
    with Store(tmp_path) as st:
        with pytest.raises(StoreError, match="no session 5"):
            st.session_row(5)
        with pytest.raises(StoreError, match="bad session id"):
            st.session_row("abc")
        with pytest.raises(StoreError, match="bad patient id"):
            st.add_treatment("Jane Doe", "2025-01-01", "botox")
        with pytest.raises(StoreError, match="bad date"):
            st.add_treatment("P1", "01/02/2025", "botox")
        with pytest.raises(StoreError, match="kind"):
            st.add_treatment("P1", "2025-01-02", " ")
        assert st.treatments() == []


def test_raw_files_are_content_addressed_and_temporaries_swept(tmp_path):
    with Store(tmp_path) as st:
        rel, sha = st.keep_raw(b"abc", "imports", ".edf")
        assert (tmp_path / rel).read_bytes() == b"abc"
        assert st.keep_raw(b"abc", "imports", ".edf") == (rel, sha)
        stale = tmp_path / "raw" / "imports" / "deadbeef.edf.part"
        stale.write_bytes(b"half")
    Store(tmp_path).close()
    assert not stale.exists()
    assert (tmp_path / rel).exists()


# --- crash safety ------------------------------------------------------------------------------

_WRITER = textwrap.dedent("""
    import sys
    from mirrorband.sessions.store import Store
    st = Store(sys.argv[1])
    i = 0
    while True:
        i += 1
        rel, sha = st.keep_raw(bytes([i % 256]) * 50000 + str(i).encode(), "imports", ".edf")
        steps = [{"kind": "REST", "onset_s": 0.0, "offset_s": 5.0}, {"kind": "WRITE L", "onset_s": 5.0, "offset_s": 65.0}]
        events = [{"hand": "R", "kind": "mirror", "onset_s": 5.0 + k * 0.1, "offset_s": 5.05 + k * 0.1, "n": k}
                  for k in range(300)]
        sid = st.insert_session({"started": "2025-01-01T00:00:00", "source": "edf", "duration_s": 65.0,
                                 "raw_path": rel, "raw_sha256": sha, "patient_id": "P%d" % (i % 3)},
                                steps, events)
        print(sid, flush=True)
""")


@pytest.mark.parametrize("after", [1, 7, 20])
def test_killed_writer_loses_nothing_committed(tmp_path, after):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "host"), str(REPO / "firmware")]))
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, env=env,
                            text=True)
    committed = []
    try:
        assert proc.stdout is not None
        while len(committed) < after:
            line = proc.stdout.readline()
            assert line, "writer died"
            committed.append(int(line))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with Store(tmp_path) as st:
        assert st.check() == []
        rows = {r.id: r for r in st.sessions()}
        for sid in committed:
            assert sid in rows
            assert len(st.events(sid)) == 300
            assert len(st.steps(sid)) == 2
        # anything beyond what was reported committed is complete too (committed before the kill)
        assert all(len(st.events(sid)) == 300 for sid in rows)
    assert not list((tmp_path / "raw").rglob("*.part"))


# --- band logs ---------------------------------------------------------------------------------

def _ev(hand, kind, onset, offset, flags=0, art=0):
    ev = [0] * EV_NF
    ev[0], ev[1], ev[2], ev[3], ev[4], ev[5] = hand, kind, flags, art, onset, offset
    ev[6], ev[7], ev[8], ev[9], ev[10] = 160, 80, 50, 30, 3
    return ev


def _markers(hand, start, end, **kw):
    # band clocks: L starts its task at 100000 ms, R at 5000 ms; R runs 100 ppm fast
    steps = [(start, STEP_REST), (start + 10000, STEP_WRITE_L), (start + 70000, STEP_REST),
             (start + 80000, STEP_WRITE_R), (start + 140000, STEP_REST)]
    return BandMarkers(band_session=7, hand=hand, started="2025-03-01T09:30:00", start_ms=start, end_ms=end,
                       steps=steps, patient_id="P9", **kw)


def test_merge_maps_clocks_and_reclassifies_peer_unknown(tmp_path):
    ml = _markers("L", 100000, 250000, activity=[(112000, 120000), (125000, 160000)])
    mr = _markers("R", 5000, 155015, drift_ppm=100.0)
    r = 1.0001  # R's ms per session ms
    def rt(s):  # session seconds -> R band clock ms
        return int(round(5000 + s * 1000 * r))
    right = [
        _ev(1, KIND_MIRROR, rt(13.0), rt(14.0), FLAG_PEER_UNKNOWN),   # L active 12-20 s: stays mirror
        _ev(1, KIND_MIRROR, rt(21.0), rt(24.0), FLAG_PEER_UNKNOWN),   # L idle 20-25 s: becomes burst
        _ev(1, KIND_MIRROR, rt(24.5), rt(25.5), FLAG_PEER_UNKNOWN),   # half covered (>= 1/4): mirror
        _ev(1, KIND_BURST, rt(3.0), rt(4.0)),                         # REST burst, untouched
        _ev(1, KIND_ARTIFACT, rt(30.0), rt(30.2), FLAG_PEER_UNKNOWN, 1),  # artifacts stay artifacts
    ]
    left = [_ev(0, KIND_BURST, 100000 + 5000, 100000 + 6000)]
    steps, events, meta = merge_band_logs([("band-L", ml, left), ("band-R", mr, right)])
    assert [s["kind"] for s in steps] == ["REST", "WRITE L", "REST", "WRITE R", "REST"]
    assert steps[1]["onset_s"] == 10.0 and steps[-1]["offset_s"] == 150.0
    got = [(e["hand"], e["kind"], e["onset_s"], bool(e.get("reclassified")), bool(e.get("peer_unknown")))
           for e in events]
    assert got == [("R", "burst", 3.0, False, False), ("L", "burst", 5.0, False, False),
                   ("R", "mirror", 13.0, True, False), ("R", "burst", 21.0, True, False),
                   ("R", "mirror", 24.5, True, False), ("R", "artifact", 30.0, False, True)]
    assert meta["duration_s"] == 150.0 and meta["patient_id"] == "P9"


def test_reclassify_needs_the_other_log():
    ev = [{"hand": "R", "kind": "mirror", "onset_s": 1.0, "offset_s": 2.0, "peer_unknown": True}]
    steps = [{"kind": "WRITE L", "onset_s": 0.0, "offset_s": 10.0}]
    assert reclassify(ev, steps, {}) == 0 and ev[0]["peer_unknown"]
    assert reclassify(ev, steps, {"L": (5.0, 10.0, [(0.0, 10.0)])}) == 0  # not covered by the L log
    assert reclassify(ev, steps, {"L": (0.0, 10.0, [])}) == 1
    assert ev[0]["kind"] == "burst" and "peer_unknown" not in ev[0]


def test_ingest_band_pages_merges_both_bands_and_rederives(tmp_path):
    raw_l, raw_r = tmp_path / "l.pages", tmp_path / "r.pages"
    raw_l.write_bytes(b"pages of L")
    raw_r.write_bytes(b"pages of R")
    ml = _markers("L", 0, 150000, activity=[(10000, 70000)])
    mr = _markers("R", 0, 150000)
    right = [pack(_ev(1, KIND_MIRROR, 20000, 21000, FLAG_PEER_UNKNOWN))]
    left = [_ev(0, KIND_BURST, 3000, 4000)]
    with Store(tmp_path / "data") as st:
        sid = ingest_band_pages(st, "band-R", raw_r, right, mr)
        s = load(st, sid)
        assert s.source == "bands" and [e["hand"] for e in s.events] == ["R"]
        assert s.events[0].get("peer_unknown")  # L's log not there yet
        assert ingest_band_pages(st, "band-L", raw_l, left, ml) == sid
        assert ingest_band_pages(st, "band-L", raw_l, left, ml) == sid  # idempotent
        s = load(st, sid)
        assert [(e["hand"], e["kind"], e.get("reclassified")) for e in s.events] == [
            ("L", "burst", None), ("R", "mirror", True)]
        assert [r.id for r in st.sessions("P9")] == [sid]
        logs = st.band_logs(ml.key)
        assert sorted(lg["band_id"] for lg in logs) == ["band-L", "band-R"]
        for lg in logs:
            assert (st.dir / lg["raw_path"]).read_bytes() in (b"pages of L", b"pages of R")
        st.db.execute("DELETE FROM events WHERE session_id = ?", (sid,))  # damage, then re-derive
        assert st.check() != []
        assert rederive(st, sid) == sid
        assert load(st, sid).events == s.events
        assert st.check() == []


def test_ingest_rejects_bad_records(tmp_path):
    raw = tmp_path / "p"
    raw.write_bytes(b"x")
    with Store(tmp_path / "d") as st:
        with pytest.raises(StoreError, match="bad event record"):
            ingest_band_pages(st, "b", raw, [b"\x05" * 24], _markers("L", 0, 1000))
        with pytest.raises(StoreError, match="cannot read"):
            ingest_band_pages(st, "b", tmp_path / "missing", [], _markers("L", 0, 1000))
        with pytest.raises(StoreError, match="hand"):
            _markers("X", 0, 1000)
        assert st.sessions() == []
