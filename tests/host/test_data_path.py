"""One recording through ``import``: every stage is entered from above, settings computed once.

The host's data path for an imported EDF goes down, never back up:
sessions.session -> sessions.edf (open, validate) -> detect.replay (dispatch) ->
detect.fastpath (the numpy runtime) -> detect.bandio (the one stream builder) ->
recording. The trace below (``sys.setprofile``) records which host module calls
which while one recording is imported, and how often the per-recording work
(band settings, mains detection, task points, the replay itself) runs.
"""

from __future__ import annotations

import sys
from collections import Counter

import pytest

from mirrorband.sessions.edf import write_edf
from mirrorband.sessions.session import import_edf, load
from mirrorband.sessions.store import Store
from mirrorband.sim.simulate import simulate

#: The path of one import, top first; a call may only go to the same module or further down.
ORDER = (
    "mirrorband.sessions.session",
    "mirrorband.sessions.edf",
    "mirrorband.sessions.store",
    "mirrorband.detect.replay",
    "mirrorband.detect.fastpath",
    "mirrorband.detect.bandio",
    "mirrorband.recording",
    "mirrorband.errors",
)
#: Work done once per recording: (module, function) -> calls expected.
ONCE = {
    ("mirrorband.sessions.edf", "open_edf"): 1,
    ("mirrorband.sessions.edf", "read_edf"): 0,  # never read whole: chunk by chunk
    ("mirrorband.detect.bandio", "prepare"): 1,
    ("mirrorband.detect.bandio", "band_settings"): 1,
    ("mirrorband.detect.bandio", "detect_mains"): 1,
    ("mirrorband.detect.bandio", "effective_emg_rate"): 1,
    ("mirrorband.detect.bandio", "task_points"): 1,
    ("mirrorband.detect.replay", "replay"): 1,
    ("mirrorband.detect.replay", "run"): 1,
    ("mirrorband.detect.fastpath", "run_numpy"): 1,
}


def _host_module(frame) -> str | None:
    name = frame.f_globals.get("__name__", "")
    return name if name.startswith("mirrorband.") else None


def trace(fn, *args):
    """Run ``fn(*args)``; return (result, Counter of (caller module, callee module) calls, Counter of functions)."""
    edges: Counter = Counter()
    funcs: Counter = Counter()

    def prof(frame, event, arg):
        if event != "call":
            return
        callee = _host_module(frame)
        if callee is None or frame.f_code.co_name == "<module>":  # a first import, not a call
            return
        funcs[(callee, frame.f_code.co_name)] += 1
        f = frame.f_back
        while f is not None and _host_module(f) is None:
            f = f.f_back  # through library code (pyedflib, numpy) to the host caller
        caller = _host_module(f) if f is not None else None
        if caller is not None and caller != callee:
            edges[(caller, callee)] += 1

    sys.setprofile(prof)
    try:
        out = fn(*args)
    finally:
        sys.setprofile(None)
    return out, edges, funcs


def rank(module: str) -> int:
    assert module in ORDER, f"{module} is on the import path but not in ORDER"
    return ORDER.index(module)


def upward(edges: Counter) -> list[str]:
    """The calls that climb back up the path."""
    return sorted(f"{a} -> {b} ({n}x)" for (a, b), n in edges.items()
                  if a in ORDER and rank(b) < rank(a))


def not_once(funcs: Counter) -> dict:
    return {k: funcs.get(k, 0) for k, n in ONCE.items() if funcs.get(k, 0) != n}


@pytest.fixture(scope="module")
def edf(tmp_path_factory):
    p = tmp_path_factory.mktemp("dp") / "r.edf"
    write_edf(simulate("moderate-R", seed=3), p)
    return p


def test_one_import_goes_down_the_path_once(edf, tmp_path):
    store = Store(tmp_path / "store")
    sid, edges, funcs = trace(import_edf, store, edf)
    assert load(store, sid).events
    assert upward(edges) == []
    assert not_once(funcs) == {}
    # the layers come in order: the file is opened (sessions) before the bands' settings (detect)
    first = {}
    for i, (mod, _) in enumerate(funcs):
        first.setdefault(mod, i)
    assert first["mirrorband.sessions.edf"] < first["mirrorband.detect.bandio"] \
        < first["mirrorband.detect.fastpath"]
    # the entry to the detector is the dispatcher, entered once, from the session
    into_replay = {a: n for (a, b), n in edges.items() if b == "mirrorband.detect.replay"}
    assert into_replay == {"mirrorband.sessions.session": 1}  # replay(); prepare() is bandio's


def test_the_trace_sees_what_it_forbids(edf):
    # a runtime calling back up into the dispatcher, and settings computed twice, are caught
    from mirrorband.detect import bandio, replay
    from mirrorband.sessions.edf import read_edf

    def twice_and_up(path):
        rec = read_edf(path)
        bandio.band_settings(rec)
        return replay.replay(rec, "numpy", overrides=bandio.band_settings(rec)[0])

    _, edges, funcs = trace(twice_and_up, edf)
    bad = not_once(funcs)
    assert bad[("mirrorband.detect.bandio", "band_settings")] == 3  # twice here, once in prepare()
    assert bad[("mirrorband.sessions.edf", "read_edf")] == 1
    fake = Counter({("mirrorband.detect.fastpath", "mirrorband.detect.replay"): 3})
    assert upward(fake) == ["mirrorband.detect.fastpath -> mirrorband.detect.replay (3x)"]
