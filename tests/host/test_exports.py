"""Exports: EDF+ round trip (same events and measures), detector annotation texts, CSV, JSON."""

from __future__ import annotations

import csv
import json

import pytest

from mirrorband.analysis.metrics import for_session
from mirrorband.export.exports import EVENT_COLUMNS, detector_text, export, metrics_csv_path
from mirrorband.sessions.edf import read_edf, write_edf
from mirrorband.sessions.session import import_edf, load
from mirrorband.sessions.store import Store, StoreError
from mirrorband.sim.simulate import simulate


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    d = tmp_path_factory.mktemp("exports")
    rec = simulate("severe-L", seed=4)
    write_edf(rec, d / "in.edf")
    st = Store(d / "data")
    sid = import_edf(st, d / "in.edf", "P7")
    s = load(st, sid)
    m, _ = for_session(st, s)
    yield d, st, s, m
    st.close()


def test_edf_round_trip_gives_same_events_and_metrics(imported):
    d, st, s, m = imported
    assert sum(e["kind"] == "mirror" for e in s.events) >= 10
    assert export(st, s, m, "edf", d / "out.edf") == [str(d / "out.edf")]
    sid2 = import_edf(st, d / "out.edf", "P7")
    s2 = load(st, sid2)
    m2, _ = for_session(st, s2)
    assert s2.events == s.events
    assert s2.steps == s.steps
    assert m2 == m
    # and once more: exporting the re-import replaces the detector annotations, never duplicates them
    export(st, s2, m2, "edf", d / "out2.edf")
    texts = [a.text for a in read_edf(d / "out2.edf").annotations]
    assert sum(t.startswith("det ") for t in texts) == len(s.events)


def test_edf_export_annotations(imported):
    d, st, s, m = imported
    export(st, s, m, "edf", d / "ann.edf")
    rec = read_edf(d / "ann.edf")  # our reader (FORMATS.md §1)
    orig = read_edf(d / "in.edf")
    texts = [a.text for a in rec.annotations]
    det = [a for a in rec.annotations if a.text.startswith("det ")]
    assert len(det) == len(s.events)
    assert {a.text for a in det} <= {"det mirror L", "det mirror R", "det burst L", "det burst R",
                                      "det artifact L knock", "det artifact R knock", "det artifact L motion",
                                      "det artifact R motion", "det artifact L pop", "det artifact R pop"}
    for a, e in zip(sorted(det, key=lambda a: a.onset), s.events, strict=True):
        assert a.onset == pytest.approx(e["onset_s"], abs=1e-4)
        assert a.end == pytest.approx(e["offset_s"], abs=1e-4)
    # ground truth and protocol kept verbatim; detections never use the ground-truth names
    assert sorted(a.text for a in orig.annotations) == sorted(t for t in texts if not t.startswith("det "))
    assert not any(t.startswith(("MIRROR", "BURST")) for t in texts if t.startswith("det "))
    # signals unchanged
    for hand in ("L", "R"):
        assert (rec.hands[hand].emg["FLEX"] == orig.hands[hand].emg["FLEX"]).all()


def test_edf_export_readable_by_pyedflib(imported):
    import pyedflib

    d, st, s, m = imported
    export(st, s, m, "edf", d / "py.edf")
    with pyedflib.EdfReader(str(d / "py.edf")) as r:
        assert "EMG L FLEX" in r.getSignalLabels()
        _, _, texts = r.readAnnotations()
        assert "det mirror L" in list(texts)


def test_detector_text():
    assert detector_text({"hand": "R", "kind": "mirror"}) == "det mirror R"
    assert detector_text({"hand": "L", "kind": "artifact", "artifact": "pop"}) == "det artifact L pop"
    assert detector_text({"hand": "L", "kind": "burst", "peer_unknown": True}) == "det burst L ?"


def test_csv_export(imported):
    d, st, s, m = imported
    files = export(st, s, m, "csv", d / "ev.csv")
    assert files == [str(d / "ev.csv"), str(d / "ev-metrics.csv")]
    assert metrics_csv_path(d / "ev.csv") == d / "ev-metrics.csv"
    rows = list(csv.DictReader(open(d / "ev.csv", newline="")))
    assert len(rows) == len(s.events)
    assert tuple(rows[0]) == EVENT_COLUMNS
    for r, e in zip(rows, s.events, strict=True):
        assert (r["hand"], r["kind"], float(r["onset_s"])) == (e["hand"], e["kind"], e["onset_s"])
    mirror_rows = [r for r in rows if r["kind"] == "mirror"]
    assert all(r["step"] == "WRITE R" for r in mirror_rows if r["hand"] == "L")
    mrows = list(csv.DictReader(open(d / "ev-metrics.csv", newline="")))
    got = {(r["scope"], r["hand"], r["metric"]): r["value"] for r in mrows}
    assert got[("session", "L", "grade")] == str(m["grade"])
    assert float(got[("hand", "L", "mirror_per_min")]) == m["by_hand"]["L"]["mirror_per_min"]


def test_json_export(imported):
    d, st, s, m = imported
    st.add_treatment("P7", "2025-05-01", "botox")
    export(st, s, m, "json", d / "s.json")
    doc = json.loads((d / "s.json").read_text())
    assert doc["format"] == "mirrorband-session"
    assert doc["session"]["id"] == s.id and doc["session"]["patient_id"] == "P7"
    assert doc["events"] == s.events and doc["steps"] == s.steps
    assert doc["metrics"] == json.loads(json.dumps(m))
    assert [t["kind"] for t in doc["treatments"]] == ["botox"]


def test_bad_targets(imported, tmp_path):
    d, st, s, m = imported
    with pytest.raises(StoreError, match="does not exist"):
        export(st, s, m, "json", tmp_path / "no" / "x.json")
    with pytest.raises(StoreError, match="is a directory"):
        export(st, s, m, "csv", tmp_path)
    # a directory nobody can create files in, not even root (Linux procfs)
    with pytest.raises(StoreError, match="cannot write"):
        export(st, s, m, "edf", "/proc/mirrorband-export.edf")
    assert not list(tmp_path.rglob("*.tmp"))


def test_band_session_has_no_edf(tmp_path):
    with Store(tmp_path) as st:
        sid = st.insert_session({"started": "2025-01-01T00:00:00", "source": "bands", "duration_s": 60.0},
                                [{"kind": "WRITE L", "onset_s": 0.0, "offset_s": 60.0}], [])
        s = load(st, sid)
        m, env = for_session(st, s, envelopes=True)
        assert env is None and m["emg_ratio_method"] == "events"
        with pytest.raises(StoreError, match="no recorded signals"):
            export(st, s, m, "edf", tmp_path / "x.edf")
        assert export(st, s, m, "json", tmp_path / "x.json")


def test_band_session_html_report_uses_event_bars(tmp_path):
    from mirrorband.export.htmlreport import render_html, summary_text

    steps = [{"kind": "REST", "onset_s": 0.0, "offset_s": 10.0}, {"kind": "WRITE L", "onset_s": 10.0, "offset_s": 70.0}]
    events = [{"hand": "R", "kind": "mirror", "onset_s": 12.0, "offset_s": 13.5, "peak_ratio": 9.0, "area": 4.0},
              {"hand": "R", "kind": "mirror", "onset_s": 30.0, "offset_s": 31.0, "peak_ratio": 5.0, "area": 2.0,
               "peer_unknown": True}]
    with Store(tmp_path) as st:
        sid = st.insert_session({"started": "2025-01-01T00:00:00", "source": "bands", "duration_s": 70.0}, steps, events)
        s = load(st, sid)
        m, env = for_session(st, s, envelopes=True)
    text = render_html(s, m, env)
    assert text.count("<svg") == 2 and "peak ratio" in text and "mirror ?" in text
    assert "1 event(s) classified without" in summary_text(s, m)
