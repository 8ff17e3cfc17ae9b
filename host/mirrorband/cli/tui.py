"""``mirrorband tui``: open the terminal UI.

Without options it talks to real bands through the computer's Bluetooth adapter
(:class:`mirrorband.control.blecontroller.BleController`, bleak's platform backend); ``--sim`` to
the virtual bands of a running ``mirrorband sim`` on the virtual radio; ``--playback
SCENARIO`` starts, in this process, the virtual radio and two virtual bands whose sensors see
that simulated patient (:func:`mirrorband.cli.demo.virtual_bands`, as ``mirrorband demo``;
``--fast``: band time runs as fast as the CPU while they record) and reaches them through the
same :class:`~mirrorband.control.blecontroller.BleController`. Their keys and flash live in a
temporary directory removed on quit; the sessions go to the store (``--data-dir``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from mirrorband.errors import CliError


def _scenario(name: str) -> str:
    from mirrorband.sim.simulate import SCENARIOS

    if name not in SCENARIOS:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}")
    return name


def _ble_controller(args: argparse.Namespace) -> Any:
    from mirrorband.control.blecontroller import BleController

    if getattr(args, "sim", False):
        from mirrorband.cli.ble import _sim_hci
        from mirrorband.sim.vradio.bleak_backend import virtual_controller

        return virtual_controller(_sim_hci(), store_dir=args.data_dir)
    return BleController(store_dir=args.data_dir, description="Bluetooth bands")


def cmd_tui(args: argparse.Namespace) -> int:
    from mirrorband.control.controller import ControllerError
    from mirrorband.sessions.store import Store, StoreError

    if not sys.stdout.isatty():
        raise CliError("the terminal UI needs a terminal (stdout is not a tty)")
    try:
        with Store(args.data_dir) as st:  # fail here, in one line, rather than inside the UI
            store_dir = st.dir
        if args.playback is not None:
            return asyncio.run(_playback(args, store_dir))
        ctl = _ble_controller(args)
    except (StoreError, ControllerError) as e:
        raise CliError(str(e)) from None
    from mirrorband.tui import MirrorbandApp

    app = MirrorbandApp(ctl, args.data_dir, mode=args.screen)
    app.run()
    return app.return_code or 0


async def _playback(args: argparse.Namespace, store_dir: Path) -> int:
    from mirrorband.cli.demo import virtual_bands
    from mirrorband.tui import MirrorbandApp

    with tempfile.TemporaryDirectory(prefix="mirrorband-playback-") as tmp:
        async with virtual_bands(Path(tmp), scenario=args.playback, seed=args.seed, fast=args.fast,
                                 store_dir=store_dir) as vb:
            app = MirrorbandApp(vb.controller, store_dir, mode=args.screen)
            await app.run_async()
            return app.return_code or 0


def register(sub: Any) -> None:
    """Add ``tui`` to the ``mirrorband`` subparsers ``sub``."""
    from mirrorband.sessions.store import ENV_DATA_DIR

    desc = ("open the terminal UI (bands, guided session, download, review, trends); "
            "--playback plays a simulated patient on two virtual bands over the virtual radio")
    sp = sub.add_parser("tui", help="open the terminal UI", description=desc)
    sp.set_defaults(func=cmd_tui)
    sp.add_argument("--sim", action="store_true",
                    help="bands of a running 'mirrorband sim' on the virtual radio (or MIRRORBAND_HOST_HCI)")
    sp.add_argument("--playback", metavar="SCENARIO", type=_scenario,
                    help="virtual bands on the virtual radio playing a simulated patient, e.g. moderate-R "
                         "(see 'mirrorband simulate --help')")
    sp.add_argument("--seed", type=int, default=7, help="random seed of the simulated patient (default 7)")
    sp.add_argument("--fast", action="store_true",
                    help="with --playback: the bands record as fast as the computer can (default real time)")
    sp.add_argument("--screen", choices=("bands", "session", "download", "review", "trends"), default="bands",
                    help="screen to open first (default bands)")
    sp.add_argument("--data-dir", metavar="DIR",
                    help=f"the store's directory (default: ${ENV_DATA_DIR}, else the user data directory)")
