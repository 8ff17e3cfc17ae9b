"""``mirrorband task list`` and ``mirrorband task run NAME`` over Bluetooth LE.

``task run`` connects both bands (one after the other; both stay connected), sets
their clocks (:func:`mirrorband.bands.ble.sync_clock`), sends the protocol's steps
(TASK_SET) and starts the task on both within the same second of their synced
clocks (a band starts a task at the next whole second, so both start together),
streams the live events they report, and waits until both are done (Ctrl-C stops
the task on both bands). ``--sim`` selects the virtual radio as for ``scan``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from mirrorband.control.task import TaskResult, protocol_points, run_task
from mirrorband.errors import CliError


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def protocols() -> dict[str, Any]:
    """The task protocols offered (name -> steps), as in the TUI."""
    from mirrorband.control.controller import PROTOCOLS

    return dict(PROTOCOLS)


def find_protocol(name: str) -> tuple[str, Any]:
    """A protocol by name or unique case-insensitive prefix (CliError otherwise)."""
    table = protocols()
    if name in table:
        return name, table[name]
    hits = [k for k in table if k.lower().startswith(name.lower())]
    if len(hits) == 1:
        return hits[0], table[hits[0]]
    if not hits:
        raise CliError(f"unknown task {name!r}; see: mirrorband task list")
    raise CliError(f"task {name!r} is ambiguous: {', '.join(hits)}")


def cmd_list(args: argparse.Namespace) -> int:
    table = protocols()
    if args.json:
        print(json.dumps({k: [{"kind": s.kind, "seconds": s.seconds} for s in v] for k, v in table.items()}))
        return 0
    for name, steps in table.items():
        total = sum(s.seconds for s in steps)
        print(f"{name}  ({total:g} s)  " + ", ".join(f"{s.kind} {s.seconds:g} s" for s in steps))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from mirrorband.bands.keystore import Keystore
    from mirrorband.cli.ble import _find, _open, _run

    name, steps = find_protocol(args.name)
    points = protocol_points(steps)

    async def body(scanner: Any, client_backend: Any) -> int:
        ks = Keystore()
        bands = await _find(args, scanner)
        hands = {b.hand for b in bands}
        if not args.one and not {"L", "R"} <= hands:
            missing = ", ".join(sorted({"L", "R"} - hands))
            raise CliError(f"band {missing} not found (a task needs both bands; --one for a single band)")
        links: dict[str, Any] = {}
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal

        loop.add_signal_handler(signal.SIGINT, stop.set)
        try:
            for ad in sorted(bands, key=lambda b: b.hand)[: (1 if args.one else 2)]:
                _err(f"connecting to {ad.name or ad.address} ...")
                link, rec = await _open(ad, client_backend, ks)
                links[rec.hand] = link
            _err(f"task {name!r}: {points[-1][0] / 1000:g} s on band(s) {', '.join(sorted(links))}")

            def on_event(hand: str, d: dict[str, Any]) -> None:
                print(json.dumps(d) if args.json else
                      f"{d['onset_s']:8.2f} s  {hand}  {d['kind']:<10} "
                      f"{'peer unknown' if d.get('peer_unknown') else ''}", flush=True)

            def on_progress(elapsed: float, res: TaskResult) -> None:
                if not args.quiet:
                    _err(f"{elapsed:6.1f} / {res.duration_s:g} s  states "
                         + " ".join(f"{h}={s}" for h, s in sorted(res.states.items())))

            res = await run_task(links, points, on_event=on_event, on_progress=on_progress, stop=stop)
            # the band's log has no task steps: keep them for the download
            from mirrorband.sessions.download import remember_task
            from mirrorband.sessions.store import data_dir

            remember_task(data_dir(args.data_dir), res.session, points)
            _err(f"session {res.session}: {len(res.events)} live events; clock round trips "
                 + ", ".join(f"{h} {v / 1000:.1f} ms" for h, v in sorted(res.round_trips_us.items())))
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            for link in links.values():
                await link.close()
        return 0 if not stop.is_set() else 1

    return _run(args, body)


def register(sub: Any) -> None:
    sp = sub.add_parser("task", help="task protocols: list them, run one on both bands over BLE",
                        description="List the task protocols, or run one on both bands over Bluetooth LE "
                                    "(clock sync, start together, live events, wait for the end).")
    tsub = sp.add_subparsers(dest="task_action", metavar="{list,run}", required=True)
    lp = tsub.add_parser("list", help="the task protocols", description="List the task protocols.")
    lp.add_argument("--json", action="store_true", help="a JSON object on stdout")
    lp.set_defaults(func=cmd_list)
    rp = tsub.add_parser("run", help="run a task protocol on both bands",
                         description="Run a task protocol (name or unique prefix, see 'task list') on both "
                                     "bands and stream their events; Ctrl-C stops the task on the bands.")
    rp.add_argument("name", help="protocol name or unique prefix")
    rp.add_argument("--sim", action="store_true", help="use the virtual radio (mirrorband sim)")
    rp.add_argument("--timeout", type=float, default=3.0, help="scan time in seconds (default 3)")
    rp.add_argument("--one", action="store_true", help="run on the first band found only")
    rp.add_argument("--json", action="store_true", help="events as JSON lines on stdout")
    rp.add_argument("--quiet", action="store_true", help="no progress on stderr")
    rp.add_argument("--data-dir", metavar="DIR",
                    help="the session store the download goes to (default: $MIRRORBAND_DATA_DIR, "
                         "else the user data directory)")
    rp.set_defaults(func=cmd_run, band=None)
