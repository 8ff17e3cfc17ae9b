"""``mirrorband sim``: two virtual bands (left, right) playing a scenario or a recording.

::

    mirrorband sim [--scenario NAME | --recording F.edf] [--fast] [--seed N] [--minutes M]
                   [--until-done [--json]]
    mirrorband sim stop

The bands and their state file are :mod:`mirrorband.sim.virtual.sim`; this module parses,
calls and prints.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from mirrorband.errors import CliError
from mirrorband.sim.virtual.sim import (
    STOP_TIMEOUT_S,
    SimRadio,
    alive,
    claim_state,
    proc_start,
    progress,
    read_state,
    run_sim,
    sim_dir,
    update_state,
)


def _load_session(args: argparse.Namespace):
    from mirrorband.sim.virtual.signals import from_edf, from_scenario

    if args.recording:
        if not Path(args.recording).is_file():
            raise CliError(f"no such recording: {args.recording}")
        if args.minutes is not None:
            raise CliError("--minutes applies to --scenario only")
        return from_edf(args.recording)
    return from_scenario(args.scenario or "moderate", seed=args.seed, minutes=args.minutes)


def cmd_sim(args: argparse.Namespace) -> int:
    if args.action == "stop":
        return cmd_stop(args)
    if args.scenario and args.recording:
        raise CliError("give --scenario or --recording, not both")
    if args.json and not args.until_done:
        raise CliError("--json needs --until-done")
    if read_state() is not None:
        raise CliError(f"a simulation is already running (pid {read_state()['pid']}); "  # type: ignore[index]
                       "stop it with: mirrorband sim stop")
    session = _load_session(args)
    for note in session.notes:
        progress(f"{session.name}: {note}")
    root = sim_dir()
    state: dict[str, Any] = {"pid": os.getpid(), "start": proc_start(os.getpid()), "fast": args.fast,
                             "recording": session.name, "ports": {}}
    p = claim_state(state)
    try:
        result = asyncio.run(_main(args, session, root, p, state))
    finally:
        p.unlink(missing_ok=True)
    if args.until_done:
        if args.json:
            print(json.dumps(result))
        else:
            from mirrorband.export.report import events_table

            print(events_table(result))
    return 0


async def _main(args, session, root: Path, p: Path, state: dict[str, Any]) -> dict[str, Any]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    radio = await SimRadio(timed=not args.untimed).start(args.radio_port)

    def ready(ports: dict[str, str]) -> None:
        state["ports"] = ports
        state["radio"] = {"host": radio.host_hci, "bands": dict(radio.addresses)}
        update_state(p, state)
        out = sys.stderr if args.json else sys.stdout
        for hand, port in ports.items():
            print(f"band {hand}: console {port}", file=out, flush=True)
        for hand, addr in radio.addresses.items():
            print(f"band {hand}: radio {addr} (Mirrorband-{hand})", file=out, flush=True)
        print(f"radio: host {radio.host_hci}", file=out, flush=True)
        if args.idle:
            progress("bands idle, waiting for a host (mirrorband task run NAME --sim); "
                      "stop with Ctrl-C or: mirrorband sim stop")
            if session.scenario is None:
                progress(f"{session.name}: a recording plays from its start whatever task the host "
                          "sets (its own steps: " + _steps_text(session.points) + ")")
        else:
            progress(f"playing {session.name}: {session.duration_s:.0f} s, "
                      f"{'fast' if args.fast else 'real time'}; stop with Ctrl-C or: mirrorband sim stop")

    try:
        return await run_sim(session, root, args.fast, args.until_done, args.seed, ready, stop, radio=radio,
                             start_task=not args.idle, provision=args.provision)
    finally:
        await radio.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _steps_text(points: list[tuple[int, int]]) -> str:
    from mirrorband.sim.virtual.signals import points_protocol

    try:
        return ", ".join(f"{t} {s:g} s" for t, s in points_protocol(points))
    except Exception:  # noqa: BLE001 - a recording without usable task annotations
        return "none"


def cmd_stop(args: argparse.Namespace) -> int:
    state = read_state()
    if state is None:
        raise CliError("no simulation is running")
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if not alive(state):
            print(f"stopped the simulation (pid {pid})")
            return 0
        time.sleep(0.05)
    raise CliError(f"the simulation (pid {pid}) did not stop within {STOP_TIMEOUT_S:g} s")


def _scenario(name: str) -> str:
    from mirrorband.sim.simulate import SCENARIOS

    if name not in SCENARIOS:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {name!r}; choose one of: {', '.join(sorted(SCENARIOS))}")
    return name


def register(sub: Any) -> None:
    sp = sub.add_parser(
        "sim", help="run two virtual bands (left, right) on a scenario or a recording",
        description="Run two virtual bands (the band firmware on emulated hardware) playing a simulated "
                    "patient or an EDF+ recording. Prints the bands' console ports; runs until Ctrl-C or "
                    "'mirrorband sim stop'.")
    sp.add_argument("action", nargs="?", choices=("stop",), help="stop the running simulation")
    sp.add_argument("--scenario", type=_scenario, help="simulated patient (default moderate), see simulate")
    sp.add_argument("--recording", metavar="F.edf", help="play an EDF+ recording with both hands instead")
    sp.add_argument("--fast", action="store_true", help="as fast as the CPU (default: real time)")
    sp.add_argument("--seed", type=int, default=0, help="random seed (scenario, clock offsets/drift)")
    sp.add_argument("--minutes", type=float, help="length of the simulated session (scenario only)")
    sp.add_argument("--until-done", action="store_true",
                    help="exit when the task is over and print the events the bands logged")
    sp.add_argument("--json", action="store_true", help="with --until-done: the replay JSON object")
    sp.add_argument("--idle", action="store_true",
                    help="do not start the task: the bands wait for a host (mirrorband task run --sim)")
    sp.add_argument("--provision", action="store_true",
                    help="provision both bands with new keys kept on this computer (as 'mirrorband provision')")
    sp.add_argument("--untimed", action="store_true", help="radio without the link timing model")
    sp.add_argument("--radio-port", type=int, default=0, metavar="P",
                    help="TCP port of the host controller (default: any free port)")
    sp.set_defaults(func=cmd_sim)
