"""``mirrorband flash`` and ``mirrorband doctor``: parse, call :mod:`mirrorband.bands.flash`, print."""

from __future__ import annotations

import argparse
import json

from mirrorband.bands.flash import board_names, doctor, flash


def cmd_flash(args: argparse.Namespace) -> int:
    s = flash(args.port, args.board, dry_run=args.dry_run, timeout=args.timeout)
    if args.json:
        print(json.dumps(s))
    elif s.get("dry_run"):
        print(f"dry run: {s['files']} files, {s['bytes']} bytes for {s['board']} ({s['arch']}); "
              f"nothing written to {s['port']}")
    else:
        print(f"flashed firmware {s['fw']} for {s['board']} on {s['port']}: {s['written']} files written, "
              f"{s['unchanged']} unchanged, all {s['files']} verified; "
              f"{'firmware started' if s['banner'] else 'no banner seen after the soft reboot'} "
              f"({s['seconds']} s)")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = doctor(args.port, args.timeout)
    if args.json:
        print(json.dumps([{"check": n, "ok": ok, "detail": d} for n, ok, d in checks]))
    else:
        for name, ok, detail in checks:
            print(f"{'ok  ' if ok else 'FAIL'} {name:<20} {detail}")
    return 0 if all(ok for _, ok, _ in checks) else 1


def register(sub: argparse._SubParsersAction) -> None:
    desc = ("Compile the band firmware with mpy-cross for the board's architecture, copy it to the band "
            "over USB (mpremote's raw REPL), write the board selection, verify every file's SHA-256 on "
            f"the band and soft-reboot it. Boards: {', '.join(board_names())}. A band whose hardware is "
            "not the board named is refused; a failed copy leaves the previous firmware in place.")
    sp = sub.add_parser("flash", help="put the band firmware on a band over USB", description=desc)
    sp.add_argument("--port", required=True, help="serial port of the band (e.g. /dev/ttyACM0)")
    sp.add_argument("--board", required=True, help=f"board of the band: {', '.join(board_names())}")
    sp.add_argument("--dry-run", action="store_true", help="compile and list the files; do not open the port")
    sp.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the band (default 10)")
    sp.add_argument("--json", action="store_true", help="print a JSON summary")
    sp.set_defaults(func=cmd_flash)

    desc = ("Check a band running the Mirrorband firmware over its USB console: firmware version, board, "
            "identity, sensor self-test (ADS1292R ID and registers, LSM6DSOX WHO_AM_I), lead-off per "
            "electrode, battery, storage, clock. Exit status 0 when all pass, 1 when a check fails.")
    sp = sub.add_parser("doctor", help="check a connected band (sensors, electrodes, battery, storage, clock)",
                        description=desc)
    sp.add_argument("--port", required=True, help="serial port of the band (e.g. /dev/ttyACM0)")
    sp.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for each answer (default 3)")
    sp.add_argument("--json", action="store_true", help="print the checks as JSON")
    sp.set_defaults(func=cmd_doctor)
