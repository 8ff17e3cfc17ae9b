"""``mirrorband scan``, ``pair`` and ``download`` over Bluetooth LE (docs/ble.md).

Real adapters use bleak's platform backend. ``--sim`` (or ``MIRRORBAND_SIM=1``) uses the
virtual radio: the host controller given by ``MIRRORBAND_HOST_HCI`` (a Bumble transport
such as ``tcp-client:127.0.0.1:PORT``, printed by ``python -m mirrorband.sim.vradio.hub``) or
the one a running ``mirrorband sim`` recorded in its state file (key ``radio.host``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from mirrorband.bands.keystore import Keystore
from mirrorband.errors import CliError

ENV_SIM = "MIRRORBAND_SIM"
ENV_HOST_HCI = "MIRRORBAND_HOST_HCI"


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _sim_hci() -> str:
    spec = os.environ.get(ENV_HOST_HCI)
    if spec:
        return spec
    try:
        from mirrorband.sim.virtual.sim import read_state

        state = read_state() or {}
    except Exception:  # noqa: BLE001 - no simulation state
        state = {}
    radio = state.get("radio")
    if isinstance(radio, dict) and isinstance(radio.get("host"), str):
        return radio["host"]
    raise CliError(f"no virtual radio: start 'mirrorband sim' or set {ENV_HOST_HCI}")


async def _with_backend(args: argparse.Namespace, body: Callable[[Any, Any], Awaitable[int]]) -> int:
    use_sim = bool(getattr(args, "sim", False) or os.environ.get(ENV_SIM, "") not in ("", "0"))
    if not use_sim:
        return await body(None, None)
    from mirrorband.sim.vradio.bleak_backend import BumbleAdapter

    adapter = BumbleAdapter(_sim_hci())
    try:
        return await body(adapter.scanner_backend, adapter.client_backend)
    finally:
        try:
            await adapter.close()
        except Exception:  # noqa: BLE001 - the radio went away
            pass


def _run(args: argparse.Namespace, body: Callable[[Any, Any], Awaitable[int]]) -> int:
    from bleak.exc import BleakError

    try:
        return asyncio.run(_with_backend(args, body))
    except CliError:
        raise
    except BleakError as e:
        raise CliError(f"bluetooth: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    except (OSError, EOFError, ConnectionError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
        raise CliError(f"no usable Bluetooth adapter (switch Bluetooth on or plug the adapter in; "
                       f"--sim for the virtual bands): {why}") from None


async def _find(args: argparse.Namespace, scanner: Any) -> list[Any]:
    from mirrorband.bands.ble.scan import scan

    bands = await scan(args.timeout, backend=scanner)
    want = getattr(args, "band", None)
    if want:
        w = want.upper()
        bands = [b for b in bands if w in (b.address.upper(), b.name.upper(), b.hand)]
        if not bands:
            raise CliError(f"band {want} not found (out of range, switched off or connected elsewhere)")
    if not bands:
        raise CliError("no band found (out of range, switched off or connected elsewhere)")
    return bands


def cmd_scan(args: argparse.Namespace) -> int:
    async def body(scanner: Any, _client: Any) -> int:
        from mirrorband.bands.ble.scan import scan

        _err(f"scanning for {args.timeout:g} s ...")
        bands = await scan(args.timeout, backend=scanner)
        if args.json:
            print(json.dumps([{"address": b.address, "name": b.name, "hand": b.hand, "rssi": b.rssi}
                              for b in bands]))
        else:
            for b in bands:
                print(f"{b.address}  {b.hand}  {b.rssi:4d} dBm  {b.name}")
            if not bands:
                _err("no band found")
        return 0

    return _run(args, body)


async def _open(ad: Any, client_backend: Any, ks: Keystore) -> tuple[Any, Any]:
    """Connect and find which provisioned key this band answers to: (link, key record)."""
    from mbfw import protocol as P
    from mirrorband.bands.ble.link import BandLink
    from mirrorband.bands.client import BandClient, BandError

    recs = [r for r in ks.bands() if r.active]
    if not recs:
        raise CliError("no band is provisioned on this computer (mirrorband provision --port P)")
    link = BandLink(ad.device, BandClient(None), backend=client_backend, name=ad.name, retry_for=10.0)
    await link.ensure()
    for rec in sorted(recs, key=lambda r: r.hand != ad.hand):
        link.client = BandClient.from_keystore(ks, rec.band_id, require_encryption=False)
        try:
            info = P.Info.from_bytes(await link.call(P.OP_INFO))
        except BandError as e:
            if e.code in (P.ERR_BAD_TAG, P.ERR_NOT_PROVISIONED):
                continue
            raise
        if info.band_id.hex() != rec.band_id:
            continue
        return link, rec
    await link.close()
    raise CliError(f"band {ad.name or ad.address} was not provisioned on this computer (wrong band?)")


def cmd_pair(args: argparse.Namespace) -> int:
    async def body(scanner: Any, client_backend: Any) -> int:
        from mirrorband.bands.ble.sync import sync_clock

        ks = Keystore()
        bands = await _find(args, scanner)
        for ad in bands[: (1 if args.band else 2)]:  # one after the other, never concurrently
            _err(f"connecting to {ad.name or ad.address} ...")
            link, rec = await _open(ad, client_backend, ks)
            try:
                _off, rtt = await sync_clock(link)
                print(f"{rec.band_id}  hand {rec.hand}  patient {rec.patient or '-'}  {ad.address}  "
                      f"MTU {link.mtu}  clock set (round trip {rtt / 1000:.1f} ms)")
            finally:
                await link.close()
        return 0

    return _run(args, body)


def cmd_download(args: argparse.Namespace) -> int:
    async def body(scanner: Any, client_backend: Any) -> int:
        from mirrorband.sessions.download import download_to_store
        from mirrorband.sessions.store import Store, StoreError

        ks = Keystore()
        bands = await _find(args, scanner)
        try:
            store = Store(args.data_dir)
        except StoreError as e:
            raise CliError(str(e)) from None
        with store:
            for ad in bands[: (1 if args.band else 2)]:
                link, rec = await _open(ad, client_backend, ks)

                def progress(done: int, total: int, hand: str = rec.hand) -> None:
                    _err(f"band {hand}: record {done}/{total}")

                try:
                    got = await download_to_store(store, link, rec.band_id, rec.patient or None,
                                                  progress=None if args.quiet else progress)
                except StoreError as e:
                    raise CliError(f"cannot store the download: {e}") from None
                finally:
                    await link.close()
                res, sids = got.result, got.sessions
                print(f"{rec.band_id}  hand {rec.hand}  {res.records} new records (up to #{res.last_seq}) "
                      f"in {res.seconds:.1f} s; "
                      + (f"session(s) {', '.join(map(str, sids))}" if sids else "no task run")
                      + (f"; {got.open_runs} task run still open (download again after it ends)"
                         if got.open_runs else "")
                      + (f"; {got.outside} records outside a task run" if got.outside else ""))
        return 0

    return _run(args, body)


def _common(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--sim", action="store_true",
                    help=f"use the virtual radio (also: {ENV_SIM}=1; host controller from {ENV_HOST_HCI} "
                         "or a running 'mirrorband sim')")
    sp.add_argument("--timeout", type=float, default=3.0, help="scan time in seconds (default 3)")


def register(sub: Any) -> None:
    sp = sub.add_parser("scan", help="list Mirrorband bands in range",
                        description="Scan for bands advertising the Mirrorband service.")
    _common(sp)
    sp.add_argument("--json", action="store_true", help="a JSON list on stdout")
    sp.set_defaults(func=cmd_scan)

    sp = sub.add_parser("pair", help="connect to the provisioned bands, bond, set their clocks",
                        description="Connect to each band in range (one after the other), bond where the "
                                    "band can, check it answers to the key provisioned on this computer, and "
                                    "set its clock.")
    _common(sp)
    sp.add_argument("band", nargs="?", help="address, name, or hand (L/R) of one band")
    sp.set_defaults(func=cmd_pair)

    sp = sub.add_parser("download", help="download the bands' event logs (resumable)",
                        description="Download every new record from each band in range, one after the "
                                    "other, into the session store: raw pages are written to disk before "
                                    "parsing and kept in the store; each task run becomes a session, "
                                    "merged with the other band's log of the same run (see 'mirrorband "
                                    "sessions'). An interrupted download resumes where it stopped. The "
                                    "band frees space only after acknowledgement.")
    _common(sp)
    sp.add_argument("band", nargs="?", help="address, name, or hand (L/R) of one band")
    sp.add_argument("--data-dir", metavar="DIR",
                    help="the session store (default: $MIRRORBAND_DATA_DIR, else the user data directory)")
    sp.add_argument("--quiet", action="store_true", help="no progress on stderr")
    sp.set_defaults(func=cmd_download)
