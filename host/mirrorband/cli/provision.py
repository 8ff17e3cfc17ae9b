"""``mirrorband provision``: parse, call :func:`mirrorband.bands.provision.provision`, print."""

from __future__ import annotations

import argparse

from mirrorband.bands.keystore import Keystore
from mirrorband.bands.provision import provision


def cmd_provision(args: argparse.Namespace) -> int:
    ks = Keystore()
    rec = provision(args, ks)
    print(f"provisioned band {rec.band_id}: hand {rec.hand}, patient {rec.patient}; "
          f"key kept in {ks.path}")
    return 0


def _hand(text: str) -> str:
    t = text.upper()
    if t not in ("L", "R"):
        raise argparse.ArgumentTypeError("hand must be L or R")
    return t


def _patient(text: str) -> str:
    from mbfw.protocol import ProtocolError, check_name

    try:
        return check_name(text, "patient id")
    except ProtocolError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def register(sub: argparse._SubParsersAction) -> None:
    desc = ("Give a band a new 256-bit key and its identity (hand, patient pseudonym) over its USB "
            "serial console. The key is kept in your keystore (readable only by you). A band that "
            "already has a key is re-provisioned only after confirmation, which erases its log.")
    sp = sub.add_parser("provision", help="give a band its key and identity over USB serial", description=desc)
    sp.add_argument("--port", required=True, help="serial port of the band (e.g. /dev/ttyACM0)")
    sp.add_argument("--hand", type=_hand, help="hand the band is worn on, L or R (default: the band's)")
    sp.add_argument("--patient", type=_patient, help="patient pseudonym, 1-16 of A-Z a-z 0-9 . _ - "
                    "(default: the band's)")
    sp.add_argument("--yes", action="store_true", help="confirm re-provisioning (erases the band's log)")
    sp.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for each answer (default 3)")
    sp.set_defaults(func=cmd_provision)
