"""Leave-one-source-out evaluation (mirrorband.analysis.loso) and its bench text blocks.

Fake sources are short simulated sessions (numpy runtime). Detector results are
never hard-coded: the tests compare loso's choices with choices computed
independently from ``evaluate_config``, and assert the preconditions they rely on.
"""

from __future__ import annotations

import inspect
from dataclasses import replace

import pytest

from mbfw.config import _FIELDS, Config, ConfigError
from mirrorband.analysis.evaluate import score_recording, summarize
from mirrorband.analysis.loso import (
    DEFAULT_GRID,
    QUICK_GRID,
    Evaluator,
    build_grid,
    burst_f1,
    evaluate_config,
    loso,
    valid_overrides,
)
from mirrorband.detect.replay import replay
from mirrorband.recording import Recording
from mirrorband.sim.simulate import simulate

PROTOCOL = [("REST", 4.0), ("WRITE L", 16.0), ("REST", 2.0)]
T_ON_MAX = next(hi for name, _lo, hi in _FIELDS if name == "t_on")


def _sim(scenario: str, seed: int) -> Recording:
    # the v1 model (short protocol), also once simulate grows a choice of models
    kw = {"model": 1} if "model" in inspect.signature(simulate).parameters else {}
    return simulate(scenario, seed=seed, protocol=PROTOCOL, **kw)


def _without_burst_truth(rec: Recording, name: str) -> Recording:
    """The same signals with no MIRROR/BURST truth: every detection is a false positive."""
    keep = [a for a in rec.annotations if a.split()[0] not in ("MIRROR", "BURST")]
    return replace(rec, annotations=keep, name=name)


@pytest.fixture(scope="module")
def fake_sources() -> dict[str, list[Recording]]:
    busy_a = [_sim("moderate-R", 1), _sim("severe-R", 2)]
    busy_b = [_sim("moderate-R", 3), _sim("severe-R", 4)]
    quiet = [_without_burst_truth(_sim("severe-R", 5), "quiet5"), _without_burst_truth(_sim("moderate-R", 6), "quiet6")]
    return {"busy_a": busy_a, "busy_b": busy_b, "quiet": quiet}


# --------------------------------------------------------------------------- grid


def test_build_grid_skips_what_config_rejects_and_unknown_fields():
    grid = build_grid({"t_on": (20, 112), "t_off": (32,), "no_such_field": (1, 2)})
    assert grid == [{"t_on": 112, "t_off": 32}]  # t_off >= t_on is a ConfigError
    with pytest.raises(ConfigError):
        Config(t_on=20, t_off=32)


def test_default_grids_are_valid_and_distinct():
    for grid in (DEFAULT_GRID, QUICK_GRID):
        assert grid
        assert all(valid_overrides(p) is None for p in grid)
        assert len({tuple(sorted(p.items())) for p in grid}) == len(grid)
    assert len(QUICK_GRID) < len(DEFAULT_GRID)


def test_evaluate_config_is_the_pooled_replay_score(fake_sources):
    recs = fake_sources["busy_a"]
    ours = evaluate_config(recs, {})
    ref = summarize([score_recording(r, replay(r, "numpy")["events"]) for r in recs])
    assert ours == ref
    with pytest.raises(ValueError, match="t_on"):
        evaluate_config(recs, {"t_on": 1})


# --------------------------------------------------------------------------- selection with the firmware


def test_held_out_source_gets_the_others_choice(fake_sources):
    deaf = {"t_on": T_ON_MAX}  # onset at the largest ratio Config allows: detects (almost) nothing
    grid = [deaf, {}]
    ev = Evaluator()
    # the premise: the quiet source prefers the deaf point, the busy ones the defaults
    quiet_prefers = [burst_f1(ev.summary(fake_sources["quiet"], p)) for p in grid]
    assert quiet_prefers[0] > quiet_prefers[1]
    for name in ("busy_a", "busy_b"):
        f = [burst_f1(ev.summary(fake_sources[name], p)) for p in grid]
        assert f[1] > f[0], name
    res = loso(fake_sources, grid, peer=False, evaluator=ev)
    q = res["sources"]["quiet"]["held_out"]
    assert q["overrides"] == {} and q["tuned_on"] == ["busy_a", "busy_b"]
    assert q["f1"] == ev.summary(fake_sources["quiet"], {})["burst"]["f1"]
    # every choice is the best point on the other sources, computed independently
    for name, entry in res["sources"].items():
        others = [r for o, rs in fake_sources.items() if o != name for r in rs]
        scores = [burst_f1(evaluate_config(others, p)) for p in grid]
        assert entry["held_out"]["overrides"] == grid[scores.index(max(scores))]
        assert entry["frozen_defaults"]["f1"] == evaluate_config(fake_sources[name], {})["burst"]["f1"]
    # the tuning figure is the best point on everything
    every = [r for rs in fake_sources.values() for r in rs]
    scores = [burst_f1(ev.summary(every, p)) for p in grid]
    assert res["tuning"]["overrides"] == grid[scores.index(max(scores))]


def test_choice_does_not_depend_on_the_held_out_recordings(fake_sources):
    grid = [{"t_on": T_ON_MAX}, {}]
    a = loso(fake_sources, grid, peer=False)
    swapped = dict(fake_sources, quiet=[_sim("severe-R", 2)])  # held-out content changed entirely
    b = loso(swapped, grid, peer=False)
    assert a["sources"]["quiet"]["held_out"]["overrides"] == b["sources"]["quiet"]["held_out"]["overrides"]


def test_config_errors_in_the_grid_are_skipped(fake_sources):
    bad = {"t_on": 20, "t_off": 32}
    res = loso({"a": fake_sources["busy_a"], "b": fake_sources["busy_b"]}, [bad, {}], peer=False)
    assert res["grid"] == [{}]
    assert res["invalid_points"][0]["overrides"] == bad and "t_off" in res["invalid_points"][0]["error"]
    assert all(e["held_out"]["overrides"] == {} for e in res["sources"].values())
    with pytest.raises(ValueError, match="no grid point"):
        loso({"a": fake_sources["busy_a"]}, [bad], peer=False)


# --------------------------------------------------------------------------- selection logic with a fake detector


def _truth_events(rec: Recording) -> list[dict]:
    return [{"hand": a.split()[1], "kind": "burst", "onset_s": a.onset, "offset_s": a.end}
            for a in rec.annotations if a.split()[0] in ("MIRROR", "BURST")]


def _fake_detector(good: set[int]):
    """Reports the truth when merge_gap is in ``good``, else one false burst."""
    calls = []

    def detect(rec: Recording, overrides: dict[str, int]) -> list[dict]:
        calls.append((rec.name, tuple(sorted(overrides.items()))))
        if overrides.get("merge_gap") in good:
            return _truth_events(rec)
        return [{"hand": "R", "kind": "burst", "onset_s": 0.1, "offset_s": 0.2}]

    return detect, calls


def test_ties_go_to_the_earlier_grid_point(fake_sources):
    detect, _ = _fake_detector({5, 20})
    srcs = {"a": fake_sources["busy_a"], "b": fake_sources["busy_b"]}
    grid = [{"merge_gap": 10}, {"merge_gap": 20}, {"merge_gap": 5}]
    res = loso(srcs, grid, peer=False, evaluator=Evaluator(detect=detect))
    assert all(e["held_out"]["overrides"] == {"merge_gap": 20} for e in res["sources"].values())
    assert all(e["held_out"]["f1"] == 1.0 for e in res["sources"].values())
    res = loso(srcs, [grid[0], grid[2], grid[1]], peer=False, evaluator=Evaluator(detect=detect))
    assert all(e["held_out"]["overrides"] == {"merge_gap": 5} for e in res["sources"].values())


def test_replays_and_peer_runs_are_cached(fake_sources):
    detect, calls = _fake_detector({5})
    peer_calls = []

    def peer(rec):
        peer_calls.append(rec.name)
        return _truth_events(rec)[:1]

    ev = Evaluator(detect=detect, peer=peer)
    grid = [{"merge_gap": 5}, {"merge_gap": 10}]
    res = loso(fake_sources, grid, evaluator=ev)
    n = sum(len(v) for v in fake_sources.values())
    assert len(calls) == len(set(calls)) == n * (len(grid) + 1)  # each (recording, settings) once, {} included
    assert len(peer_calls) == n
    for name, recs in fake_sources.items():
        nk = res["sources"][name]["neurokit2"]
        assert nk["f1"] == summarize([score_recording(r, peer(r)) for r in recs])["burst"]["f1"]
        assert res["sources"][name]["target_met"] == (res["sources"][name]["held_out"]["f1"] >= 0.9
                                                      and res["sources"][name]["held_out"]["f1"] >= nk["f1"])


def test_one_source_cannot_be_held_out(fake_sources):
    detect, _ = _fake_detector({5})
    res = loso({"only": fake_sources["busy_a"]}, [{"merge_gap": 5}], peer=False, evaluator=Evaluator(detect=detect))
    assert "skipped" in res["sources"]["only"]["held_out"]
    assert res["tuning"]["overrides"] == {"merge_gap": 5}


def test_bad_sources_are_refused():
    with pytest.raises(ValueError, match="no source"):
        loso({}, [{}])
    with pytest.raises(ValueError, match="'x' has no recording"):
        loso({"x": []}, [{}])


def test_neurokit2_runs_on_the_same_recordings():
    pytest.importorskip("neurokit2")
    from mirrorband.analysis.nkpeer import nk_events

    short = simulate("severe-R", seed=7, protocol=[("REST", 3.0), ("WRITE L", 6.0)])
    res = loso({"s": [short]}, [{}])
    assert res["sources"]["s"]["neurokit2"]["f1"] == score_recording(short, nk_events(short))["burst"]["f1"]


# --------------------------------------------------------------------------- bench text


def _entry(f1_frozen, f1_held, f1_nk, held=None):
    def b(f1):
        return {"n_recordings": 2, "tp": 8, "fp": 1, "fn": 2, "precision": 0.889, "recall": 0.8, "f1": f1,
                "mirror_f1": 1.0, "onset_median_abs_ms": 12.0}

    h = held if held is not None else {"overrides": {"t_on": 80, "min_win": 8}, "grid_index": 1,
                                       "tuned_on": ["plux"], "tuning_f1_on_others": 0.931, **b(f1_held)}
    e = {"recordings": 2, "names": ["a", "b"], "minutes": 3.5, "frozen_defaults": b(f1_frozen), "held_out": h,
         "neurokit2": b(f1_nk)}
    if "f1" in h:
        e["target_met"] = f1_held >= 0.9 and f1_held >= f1_nk
    return e


def test_bench_text_names_every_split():
    from mirrorband.benchmarks.bench import format_real

    tun = {"overrides": {"t_on": 64}, "grid_index": 0,
           "pooled": {"n_recordings": 4, "tp": 9, "fp": 0, "fn": 1, "precision": 1.0, "recall": 0.9, "f1": 0.947,
                      "mirror_f1": 1.0, "onset_median_abs_ms": 3.0},
           "per_source": {"uci": {"n_recordings": 2, "tp": 4, "fp": 0, "fn": 1, "precision": 1.0, "recall": 0.8,
                                  "f1": 0.889}}}
    block = {"grid": [{"t_on": 64}, {"t_on": 80, "min_win": 8}], "invalid_points": [{"overrides": {}, "error": "x"}],
             "selection": "best pooled burst F1; ties: earlier grid point", "target_f1": 0.9,
             "sources": {"uci": _entry(0.811, 0.857, 0.866), "plux": _entry(0.95, 0.962, 0.91)},
             "tuning": tun, "snr_curve": {"skipped": "no semisynth"}}
    block["sources"]["plux"]["held_out"]["tuned_on"] = ["uci"]
    text = "\n".join(format_real(block))
    for split in ("frozen defaults", "held out (LOSO)", "tuning", "Tuning figure", "NeuroKit2",
                  "Leave-one-source-out (2-point grid, 1 invalid points skipped"):
        assert split in text, split
    first = next(ln for ln in text.splitlines() if ln.startswith("  uci "))
    assert "frozen defaults" in first and "0.811" in first and "0.866" in first  # beside NeuroKit2
    loso_rows = [ln for ln in text.splitlines() if "t_on=80 min_win=8" in ln]
    assert len(loso_rows) == 2
    uci_row = next(ln for ln in loso_rows if ln.split()[0] == "uci")
    assert "0.857" in uci_row and "NOT met" in uci_row
    assert next(ln for ln in loso_rows if ln.split()[0] == "plux").rstrip().endswith("met")
    assert "t_on=64" in text and "0.947" in text
    assert "SNR curve" in text and "no semisynth" in text


def test_bench_text_skips_cleanly():
    from mirrorband.benchmarks.bench import format_real

    text = "\n".join(format_real({"skipped": "shared data folder not found", "snr_curve": {"skipped": "absent"}}))
    assert "Real recordings: skipped (shared data folder not found)" in text
    one = {"grid": [{}], "invalid_points": [], "selection": "s", "target_f1": 0.9,
           "sources": {"uci": _entry(0.8, 0, 0.8, held={"skipped": "no other source to tune on"})},
           "tuning": {"overrides": {}, "grid_index": 0, "pooled": _entry(0.8, 0, 0.8)["frozen_defaults"],
                      "per_source": {"uci": _entry(0.8, 0, 0.8)["frozen_defaults"]}}}
    text = "\n".join(format_real(one))
    assert "no other source to tune on" in text and "(firmware defaults)" in text


def test_bench_text_snr_curve():
    from mirrorband.benchmarks.bench import format_snr

    def curve(ps):
        return [{"snr_db": snr, "n_recordings": 1, "n_true": 10, "n_detected_true": int(p * 10), "p_detect": p,
                 "n_false": 1, "minutes": 1.0, "fp_per_min": 1.0, "f1": 0.5} for snr, p in ps]

    block = {"curves": [{"bursts_from": "plux", "rest_from": "plux", "seeds": [0], "split": "frozen defaults",
                         "mirrorband": curve([(0.0, 0.1), (6.0, 0.7)]), "neurokit2": curve([(0.0, 0.3), (6.0, 0.4)])},
                        {"bursts_from": "uci", "rest_from": "uci", "skipped": "no UCI files"}]}
    lines = format_snr(block)
    assert "plux bursts in plux rest" in lines[0] and "frozen defaults" in lines[0]
    row6 = next(ln for ln in lines if ln.split()[:1] == ["6"])
    assert row6.split()[2:] == ["0.700", "1.00", "0.400", "1.00"]
    assert any("uci bursts in uci rest: skipped (no UCI files)" in ln for ln in lines)
    assert format_snr({"skipped": "absent"})[0].endswith("skipped (absent)")


def test_bench_formats_a_real_loso_result(fake_sources):
    from mirrorband.benchmarks.bench import format_real, real_figures

    grid = [{"t_on": T_ON_MAX}, {}]
    block = real_figures(fake_sources, grid, progress=lambda _m: None, peer=False)
    text = "\n".join(format_real(block))
    for name, e in block["sources"].items():
        row = next(ln for ln in text.splitlines() if ln.split()[:1] == [name])
        assert "frozen defaults" in row and f"{e['frozen_defaults']['f1']:.3f}" in row
        loso_row = [ln for ln in text.splitlines() if ln.split()[:1] == [name]][1]
        assert f"{e['held_out']['f1']:.3f}" in loso_row and ",".join(e["held_out"]["tuned_on"]) in loso_row
    assert "Tuning figure" in text


def test_bench_real_sources(tmp_path):
    from mirrorband.analysis.datasets import shared_data_dir
    from mirrorband.benchmarks.bench import QUICK_UCI_FILES, real_sources_for_bench

    with pytest.raises(FileNotFoundError):
        real_sources_for_bench(quick=True, root=tmp_path)  # no data: a clear error, bench reports it as skipped
    if not (shared_data_dir() / "uci_emg_gestures_myo").is_dir():
        pytest.skip("shared data folder absent")
    full = real_sources_for_bench(quick=False)
    quick = real_sources_for_bench(quick=True)
    assert len(quick["uci"]) == min(QUICK_UCI_FILES, len(full["uci"])) < len(full["uci"])
    assert [r.name for r in quick["uci"]] == [r.name for r in full["uci"][:QUICK_UCI_FILES]]
    assert set(quick) == set(full)
