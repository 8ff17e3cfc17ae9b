"""Two virtual bands (left, right) playing a scenario or a recording: the simulation behind
``mirrorband sim`` (its command line is :mod:`mirrorband.cli.sim`).

The bands boot the unchanged firmware on emulated hardware, get their clocks set and the
task protocol of the recording, start it together and play the signals (real time, or as
fast as the CPU). One simulation at a time: its state file (pid, ports) lives in
``<data dir>/sim/``; the bands' flash directories beside it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from mirrorband.errors import CliError

STATE_NAME = "sim.json"
STOP_TIMEOUT_S = 15.0


def sim_dir() -> Path:
    from mirrorband.bands.keystore import data_dir

    return data_dir() / "sim"


def state_path() -> Path:
    return sim_dir() / STATE_NAME


def proc_start(pid: int) -> str:
    """Start time of a process (clock ticks since boot), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def alive(state: dict[str, Any]) -> bool:
    pid = int(state.get("pid", 0))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if _proc_state(pid) == "Z":
        return False  # exited, not yet reaped by its parent
    start = state.get("start", "")
    return not start or proc_start(pid) == start


def read_state() -> dict[str, Any] | None:
    """The running simulation's state, or None (a stale file is removed)."""
    p = state_path()
    try:
        state = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not alive(state):
        p.unlink(missing_ok=True)
        return None
    return state


def claim_state(state: dict[str, Any]) -> Path:
    """Create the state file, failing if a live simulation holds it."""
    p = state_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            other = read_state()
            if other is not None:
                raise CliError(f"a simulation is already running (pid {other['pid']}); "
                               "stop it with: mirrorband sim stop") from None
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(state, f)
        return p
    raise CliError(f"cannot claim {p}")


def update_state(p: Path, state: dict[str, Any]) -> None:
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, p)


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class SimRadio:
    """The simulation's virtual radio: a hub in this process (``mirrorband.sim.vradio.hub.Radio``).

    The bands reach their controllers in-process; the host controller is served over TCP
    on 127.0.0.1 (:attr:`host_hci`, a Bumble transport spec for ``BumbleAdapter`` or
    ``MIRRORBAND_HOST_HCI``). :attr:`addresses`: each band's random static address.
    """

    def __init__(self, timed: bool = True) -> None:
        from mirrorband.sim.vradio.hub import LinkTiming, Radio

        self.radio = Radio(LinkTiming() if timed else None)
        self.host_hci = ""
        self.addresses: dict[str, str] = {}

    @staticmethod
    def controller(hand: str) -> str:
        return f"band-{hand}"

    async def start(self, host_port: int = 0) -> SimRadio:
        self.host_hci = await self.radio.serve("host", port=host_port)
        return self

    def bluetooth(self, hand: str):
        """The band's radio factory (``VirtualBand(bluetooth=...)``): -> (bluetooth module, BLE)."""
        from mirrorband.sim.vradio import mpble

        name = self.controller(hand)
        self.addresses[hand] = str(mpble._static_address(name)).split("/")[0]  # noqa: SLF001

        def factory() -> tuple[Any, Any]:
            return mpble, mpble.BLE(self.radio.endpoint(name), name=name)

        return factory

    async def close(self) -> None:
        await self.radio.close()


def provision_bands(bands: dict[str, Any], patient: str = "SIM01", keystore: Any = None) -> list[Any]:
    """Provision the virtual bands with fresh keys kept in the keystore (as ``mirrorband provision``)."""
    from mirrorband.bands.keystore import BandKey, Keystore

    ks = keystore if keystore is not None else Keystore()
    out = []
    for hand, b in bands.items():
        key = os.urandom(32)
        b.console.handler.identity.provision(key, 0 if hand == "L" else 1, patient)
        rec = BandKey(band_id=b.board.uid.hex(), key=key, hand=hand, patient=patient, counter=0, active=True)
        ks.put(rec)
        out.append(rec)
    return out


async def run_sim(session, root: Path, fast: bool, until_done: bool, seed: int,
                  on_ready=None, stop_event: asyncio.Event | None = None, *, radio: SimRadio | None = None,
                  start_task: bool = True, provision: bool = False) -> dict[str, Any]:
    """Run two bands over ``session``; returns a summary (events, samples, timings).

    With ``radio`` the bands get a BLE radio on it. Peer activity goes over the BLE
    beacon in real time with a radio; in fast mode (or without radio) the bands are wired
    directly in lockstep. ``start_task=False`` leaves the bands idle for a host (``mirrorband
    task run``); ``provision`` gives them fresh keys in the keystore.
    """
    import random

    from mirrorband.sim.virtual.band import VirtualBand, World, connect_peers
    from mirrorband.sim.virtual.console import PtyConsole

    rng = random.Random(seed)
    world = World(fast=fast)
    bands = {}
    for hand in ("L", "R"):
        flash = root / "flash" / hand
        b = VirtualBand(hand, session.bands[hand], world.true, flash,
                        offset_us=rng.randrange(1_000_000, 60_000_000), drift_ppm=rng.uniform(-20, 20),
                        settings=session.settings,
                        bluetooth=radio.bluetooth(hand) if radio is not None else None,
                        session=session)
        b.flash.erase()
        bands[hand] = world.add(b)
    consoles = []
    try:
        for b in bands.values():
            b.boot()
        if radio is None or fast:
            connect_peers(bands["L"], bands["R"])
        if provision:
            provision_bands(bands)
        for b in bands.values():
            c = PtyConsole(b)
            c.start()
            b.pty = c
            consoles.append(c)
        now_us = int(time.time() * 1e6)
        if start_task:
            sid = int(time.time()) & 0x7FFFFFFF
            for b in bands.values():
                b.app.set_time(now_us)
                b.start_session(session.points, session.duration_ms, session_id=sid)
        if on_ready is not None:
            on_ready({h: b.pty.port for h, b in bands.items()})
        seen = [False]

        def over() -> bool:
            # a task started (by the sim or a host; starts align to 1 s) and is over
            if world.busy():
                seen[0] = True
                return False
            return seen[0]

        driver = asyncio.ensure_future(world.run(until=over if until_done else None))
        waits: list[asyncio.Future[Any]] = [driver]
        if stop_event is not None:
            waits.append(asyncio.ensure_future(stop_event.wait()))
        t0 = time.monotonic()
        reported = False
        while not driver.done():
            done, _ = await asyncio.wait(waits, timeout=0.5)
            for b in bands.values():
                while b.notes:
                    progress(b.notes.pop(0))
            if stop_event is not None and stop_event.is_set():
                world.stop()
                await driver
                break
            if not reported and seen[0] and not world.busy():
                reported = True
                progress(f"session over after {time.monotonic() - t0:.1f} s "
                          f"({session.duration_s:.0f} s of signals); bands idle")
        for w in waits:
            if not w.done():
                w.cancel()
        return summary(session, bands, world)
    finally:
        for c in consoles:
            c.close()
        for b in bands.values():
            await b.shutdown()


def summary(session, bands: dict, world) -> dict[str, Any]:
    from mbfw.events import EV_OFFSET, EV_ONSET
    from mirrorband.detect.bandio import event_dict, sort_events
    from mirrorband.sim.virtual.band import session_events

    events = []
    per = {}
    for hand, b in bands.items():
        evs = session_events(b.log_records())
        per[hand] = {"events": len(evs), "samples": b.app.sampler.samples if b.app else None,
                     "overruns": b.app.sampler.overruns if b.app else None,
                     "drift_ppm": round(b.clock.drift_ppm, 3)}
        for ev, t0 in evs:
            e = list(ev)
            e[EV_ONSET] -= t0
            e[EV_OFFSET] -= t0
            events.append(tuple(e))
    return {"recording": session.name, "duration_s": round(session.duration_s, 3),
            "runtime": "virtual", "mains_hz": session.settings.get("mains_hz"),
            "events": [event_dict(e) for e in sort_events(events)],
            "bands": per, "wall_s": round(world.wall_s, 3), "samples": world.samples}
