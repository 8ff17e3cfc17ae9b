"""``mirrorband tui``: open the terminal UI.

Without options it talks to real bands through the computer's Bluetooth adapter
(:class:`mirrorband.control.blecontroller.BleController`, bleak's platform backend); ``--sim`` to
the virtual bands of a running ``mirrorband sim`` on the virtual radio; ``--playback
SCENARIO`` plays a simulated patient through the band firmware with no radio at all
(:class:`mirrorband.sim.playback.PlaybackController`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mirrorband.errors import CliError


def _speed(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.1 <= v <= 1000:
        raise argparse.ArgumentTypeError("speed must be between 0.1 and 1000")
    return v


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
    from mirrorband.sim.playback import PlaybackController

    if not sys.stdout.isatty():
        raise CliError("the terminal UI needs a terminal (stdout is not a tty)")
    try:
        Store(args.data_dir).close()  # fail here, in one line, rather than inside the UI
        if args.playback is not None:
            ctl = PlaybackController(args.playback, seed=args.seed, speed=args.speed, store_dir=args.data_dir)
        else:
            ctl = _ble_controller(args)
    except (StoreError, ControllerError) as e:
        raise CliError(str(e)) from None
    from mirrorband.tui import MirrorbandApp

    app = MirrorbandApp(ctl, args.data_dir, mode=args.screen)
    app.run()
    return app.return_code or 0


def register(sub: Any) -> None:
    """Add ``tui`` to the ``mirrorband`` subparsers ``sub``."""
    from mirrorband.sessions.store import ENV_DATA_DIR

    desc = ("open the terminal UI (bands, guided session, download, review, trends); "
            "--playback plays a simulated patient without any radio")
    sp = sub.add_parser("tui", help="open the terminal UI", description=desc)
    sp.set_defaults(func=cmd_tui)
    sp.add_argument("--sim", action="store_true",
                    help="bands of a running 'mirrorband sim' on the virtual radio (or MIRRORBAND_HOST_HCI)")
    sp.add_argument("--playback", metavar="SCENARIO", type=_scenario,
                    help="no bands: play a simulated patient, e.g. moderate-R (see 'mirrorband simulate --help')")
    sp.add_argument("--seed", type=int, default=7, help="random seed of the simulated patient (default 7)")
    sp.add_argument("--speed", type=_speed, default=1.0, help="playback speed, 1 = real time (default 1)")
    sp.add_argument("--screen", choices=("bands", "session", "download", "review", "trends"), default="bands",
                    help="screen to open first (default bands)")
    sp.add_argument("--data-dir", metavar="DIR",
                    help=f"the store's directory (default: ${ENV_DATA_DIR}, else the user data directory)")
