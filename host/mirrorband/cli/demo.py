"""``mirrorband demo``: the whole product with no hardware.

One process, one asyncio loop, nothing left behind: the simulation's virtual radio
(:class:`mirrorband.sim.virtual.sim.SimRadio`, timed link model, host controller on
127.0.0.1) and the two real virtual bands of ``mirrorband sim`` on it
(:func:`mirrorband.sim.virtual.sim.run_sim`: the unchanged firmware, ``mbfw``, on emulated
ADS1292R and LSM6DSOX, in real time, idle until the host starts a task), then the
terminal UI with a :class:`mirrorband.control.blecontroller.BleController` on the radio's host
controller -- the same BLE code path as real bands.

The bands' sensors see a simulated patient with moderate mirror dystonia of the right
hand (``mirrorband simulate`` scenario ``moderate-R``) doing the task the host sets: a
TASK_SET re-simulates the patient (same scenario and seed) for exactly its steps, on both
bands, and the signals play from the task's start (prepared for the standard protocol:
REST 15 s, WRITE L 60 s, REST 10 s, WRITE R 60 s, REST 10 s); the firmware detects, logs
and streams live what it sees.

The bands are provisioned at start with fresh 256-bit keys kept in the demo's own
keystore (``<data dir>/demo/keystore.json``; flash under ``<data dir>/demo/flash``, empty
on each start), never in the user's keystore or store unless ``--data-dir`` says so.
Quitting the UI (q), Ctrl-C or a crash stops the bands, their consoles, the host adapter
and the radio (``finally``); no process is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from mirrorband.bands.keystore import Keystore

SCENARIO = "moderate-R"
PATIENT = "SIM01"


def demo_dir(data_dir: str | Path | None = None) -> Path:
    """Where the demo keeps its keys, band flash and store (``<user data>/demo`` by default)."""
    from mirrorband.bands.keystore import data_dir as user_data

    return Path(data_dir) if data_dir is not None else user_data() / "demo"


@contextlib.contextmanager
def _data_dir(root: Path) -> Iterator[None]:
    # run_sim provisions into the default keystore of MIRRORBAND_DATA_DIR: point it at the
    # demo directory while the bands are built (synchronously, in the task's first step)
    old = os.environ.get("MIRRORBAND_DATA_DIR")
    os.environ["MIRRORBAND_DATA_DIR"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MIRRORBAND_DATA_DIR", None)
        else:
            os.environ["MIRRORBAND_DATA_DIR"] = old


async def run_demo(data_dir: str | Path | None = None, *, seed: int = 7, scenario: str = SCENARIO,
                   body: Callable[[Any, Path], Awaitable[int]] | None = None,
                   progress: Callable[[str], object] | None = None) -> int:
    """Start radio and bands, run ``body(controller, store_dir)`` (default: the TUI), stop everything."""
    from mirrorband.control.blecontroller import BleController
    from mirrorband.sim.virtual.signals import from_scenario
    from mirrorband.sim.virtual.sim import SimRadio, run_sim
    from mirrorband.sim.vradio.bleak_backend import BumbleAdapter

    say = progress or (lambda _m: None)
    root = demo_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    store_dir = root / "store"
    say(f"simulating the patient ({scenario}) for the virtual bands (data in {root})")
    session = await asyncio.to_thread(from_scenario, scenario, seed)
    radio: SimRadio | None = None
    sim: asyncio.Task[Any] | None = None
    stop = asyncio.Event()
    ctl: BleController | None = None
    try:
        say("starting the virtual radio and two virtual bands")
        radio = await SimRadio(timed=True).start()
        with _data_dir(root):
            sim = asyncio.create_task(run_sim(session, root, fast=False, until_done=False, seed=seed,
                                              stop_event=stop, radio=radio, start_task=False, provision=True))
            while len(radio.addresses) < 2 and not sim.done():
                await asyncio.sleep(0)
        if sim.done():
            sim.result()  # raises what stopped the bands
        ks = Keystore(root / "keystore.json")
        adapter = BumbleAdapter(radio.host_hci)
        ctl = BleController(store_dir=store_dir, keystore=ks, scanner_backend=adapter.scanner_backend,
                            client_backend=adapter.client_backend, adapter=adapter,
                            description=f"demo: virtual bands, simulated patient {scenario}")
        return await (body or _tui)(ctl, store_dir)
    finally:
        if ctl is not None:
            await ctl.close()
        stop.set()
        if sim is not None:
            try:
                await asyncio.wait_for(sim, 10.0)
            except (TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                sim.cancel()
        if radio is not None:
            await radio.close()


async def _tui(ctl: Any, store_dir: Path) -> int:
    from mirrorband.tui import MirrorbandApp

    app = MirrorbandApp(ctl, store_dir)
    await app.run_async()
    return app.return_code or 0


def main(data_dir: str | Path | None = None, seed: int = 7) -> int:
    """Run the demo with the TUI (needs a terminal)."""
    def say(m: str) -> None:
        print(m, file=sys.stderr, flush=True)

    return asyncio.run(run_demo(data_dir, seed=seed, progress=say))


def demo_summary(seed: int = 7, progress: Callable[[str], None] = print) -> str:
    """Simulate a patient (moderate, right hand affected), replay it through the
    band firmware as the two bands would, and compare with the ground truth."""
    from mirrorband.analysis.evaluate import score_recording, summarize
    from mirrorband.detect.replay import replay
    from mirrorband.export import report
    from mirrorband.sessions.edf import read_edf, write_edf
    from mirrorband.sim.simulate import simulate

    scenario = "moderate-R"
    progress(f"simulating a patient session ({scenario}, seed {seed}) ...")
    rec = simulate(scenario, seed=seed)
    with tempfile.TemporaryDirectory(prefix="mirrorband-demo-") as tmp:
        path = Path(tmp) / "demo.edf"
        write_edf(rec, path)
        rec = read_edf(path)  # what a clinician's file would give
    progress("running the band firmware over it (two bands in lockstep) ...")
    out = replay(rec, "cpython", name="simulated session")
    events = out["events"]
    s = summarize([score_recording(rec, events)])
    truth_m = len(rec.truth("MIRROR", "R"))
    found_m = sum(e["kind"] == "mirror" and e["hand"] == "R" for e in events)
    lines = [
        "Mirrorband demo: a simulated patient with moderate mirror dystonia, right hand affected",
        "Protocol: " + " | ".join(f"{a.text} {a.duration:.0f} s" for a in rec.task_annotations()),
        "",
        "What the bands detected, per step (mirror = burst in the resting hand while the other writes):",
        report.step_summary(rec, events),
        "",
        report.events_table(out, limit=12),
        "",
        f"Ground truth of the simulator: {truth_m} mirror bursts in hand R; the bands reported {found_m}.",
        f"Scores: burst F1 {report.fmt(s.get('burst_f1'), '.2f')}, mirror F1 {report.fmt(s.get('mirror_f1'), '.2f')}, "
        f"median onset error {report.fmt(s.get('onset_median_abs_ms'), '.0f')} ms.",
        "",
        "Try: mirrorband simulate --scenario severe-L -o s.edf && mirrorband replay s.edf",
    ]
    return "\n".join(lines)
