"""The bands over Bluetooth LE, as the TUI sees them: :class:`BleController`.

It implements :class:`mirrorband.control.controller.BandsController` on the host BLE layer
(:mod:`mirrorband.bands.ble`): a scan filtered by the Mirrorband service UUID; pairing =
connect, bond where the band asks for it, find which provisioned key (keystore) the band
answers to, and set its clock; status from the protocol's STATUS request; task set,
start (after a clock sync of every band) and stop over the protocol; live frames from the
bands' authenticated live-event stream plus a status poll; resumable log download whose
raw pages are written to disk before parsing and whose task runs (events, the task steps
remembered at the start, the band's activity spans) are stored with
:func:`mirrorband.sessions.download.ingest_runs`, as ``mirrorband download`` does: the merged
session re-classifies ``peer_unknown`` events from the other band's activity.

``scanner_backend`` / ``client_backend`` are handed unchanged to bleak: ``None`` for the
platform's adapters, or the Bumble classes of
:class:`mirrorband.sim.vradio.bleak_backend.BumbleAdapter` for the virtual radio
(:func:`mirrorband.sim.vradio.bleak_backend.virtual_controller`, injected from above: this
module never imports the simulator). Core module: it never imports ``textual``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mirrorband.control.controller import (
    HANDS,
    PROTOCOLS,
    BandInfo,
    BandLost,
    BandsController,
    BandStatus,
    ChannelQuality,
    ControllerError,
    DownloadInterrupted,
    DownloadProgress,
    DownloadResult,
    LiveFrame,
    ProtocolStep,
    StorageFull,
    check_protocol,
)

_STEP_CODE = {"REST": 1, "WRITE L": 2, "WRITE R": 3}
_STATE_NAMES = {0: "idle", 1: "task", 2: "task", 3: "idle"}
_RUNNING = (1, 2)


def _hand_word(hand: str | None) -> str:
    return {"L": "left", "R": "right"}.get(hand or "", "unknown")


def electrode_quality(loff: int, q_flex: int, q_ext: int) -> tuple[ChannelQuality, ...]:
    """Channel qualities from the band's status electrodes (docs/protocol.md, STATUS).

    ``loff``: ADS1292R LOFF_STAT bits (IN1P, IN1N = FLEX; IN2P, IN2N = EXT; RLD = both),
    0x80 when the band has not sampled since boot; ``q_*``: resting level, 0.1 uV (0 unknown).
    """
    if loff & 0x80:
        return (ChannelQuality("FLEX", False, None), ChannelQuality("EXT", False, None))
    rld = bool(loff & 0x10)
    return (ChannelQuality("FLEX", rld or bool(loff & 0x03), q_flex / 10.0 if q_flex else None),
            ChannelQuality("EXT", rld or bool(loff & 0x0C), q_ext / 10.0 if q_ext else None))


def _radio_error(e: BaseException) -> ControllerError:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return ControllerError(f"Bluetooth is not usable ({text}). Switch Bluetooth on or plug in the "
                           "adapter, then scan again.")


@dataclass
class _Peer:
    ad: Any  # mirrorband.bands.ble.BandAd
    link: Any = None  # mirrorband.bands.ble.BandLink once paired
    key: Any = None  # mirrorband.bands.keystore.BandKey
    fw: str = ""
    rtt_us: int | None = None
    last_status: Any = None
    lost: bool = False
    live: list[tuple[float, bytes]] = field(default_factory=list)  # (arrival, event)
    env: list[bytes] = field(default_factory=list)  # live envelope frames since the last UI frame
    t0_ms: float | None = None  # band ms of the task start, estimated from live events
    env_next: int = 0  # first window of the next live envelope block expected
    env_last: float = 0.0  # last envelope value (fills blocks the band dropped)
    last_seq: int = 0
    records: list[tuple[int, int, bytes]] = field(default_factory=list)
    pages: int = 0
    raw_path: Path | None = None

    @property
    def hand(self) -> str:
        return self.key.hand if self.key is not None else self.ad.hand

    @property
    def id(self) -> str:
        return self.ad.address


class BleController(BandsController):
    """Real or virtual bands over BLE (see the module docstring)."""

    def __init__(self, *, store_dir: str | Path | None = None, keystore: Any = None,
                 scanner_backend: Any = None, client_backend: Any = None, adapter: Any = None,
                 description: str = "Bluetooth bands", frame_s: float = 1 / 12,
                 retry_for: float = 10.0, now: Callable[[], datetime] = datetime.now) -> None:
        from mirrorband.bands.keystore import Keystore

        self.store_dir = store_dir
        self.keystore = keystore if keystore is not None else Keystore()
        self.scanner_backend = scanner_backend
        self.client_backend = client_backend
        self.adapter = adapter
        self.description = description
        self.frame_s = frame_s
        self.retry_for = retry_for
        self.now = now
        self._peers: dict[str, _Peer] = {}
        self._steps: tuple[ProtocolStep, ...] = PROTOCOLS["Standard, right hand affected"]
        self._session = 0
        self._t_start: float | None = None
        self._stop = False
        self._running = False

    # --- bands --------------------------------------------------------------------------------
    def _peer(self, band_id: str) -> _Peer:
        p = self._peers.get(band_id)
        if p is None:
            raise ControllerError(f"no band {band_id} was found: scan again")
        return p

    async def scan(self, timeout_s: float = 5.0) -> list[BandInfo]:
        from bleak.exc import BleakError

        from mirrorband.bands.ble.scan import scan

        try:
            ads = await scan(min(timeout_s, 3.0), backend=self.scanner_backend)
        except (BleakError, OSError, EOFError, ConnectionError) as e:
            raise _radio_error(e) from None
        known = {r.hand: r for r in self.keystore.bands() if r.active}
        out = []
        for ad in ads:
            p = self._peers.get(ad.address)
            if p is None or p.link is None:
                self._peers[ad.address] = p = _Peer(ad)
            rec = known.get(ad.hand)
            out.append(BandInfo(ad.address, ad.name or f"Mirrorband {ad.hand}", ad.hand,
                                rec.patient if rec else None, ad.rssi, p.link is not None))
        for p in self._peers.values():  # paired bands stop advertising while connected
            if p.link is not None and p.id not in {b.id for b in out}:
                out.append(BandInfo(p.id, p.ad.name, p.hand, p.key.patient, None, True))
        return out

    async def pair(self, band_id: str) -> BandStatus:
        from bleak.exc import BleakError

        from mbfw import protocol as P
        from mirrorband.bands.ble.link import BandLink, BandUnreachable
        from mirrorband.bands.ble.sync import sync_clock
        from mirrorband.bands.client import BandClient, BandError

        p = self._peer(band_id)
        recs = [r for r in self.keystore.bands() if r.active]
        if not recs:
            raise ControllerError("no band is provisioned on this computer: connect a band with its USB "
                                  "cable and press p (provision) first")
        if p.link is None:
            link = BandLink(p.ad.device, BandClient(None), backend=self.client_backend, name=p.ad.name,
                            retry_for=self.retry_for,
                            on_live=lambda ev, _c, q=p: q.live.append((time.monotonic(), ev)),
                            on_envelope=lambda body, _c, q=p: q.env.append(body))
            try:
                await link.ensure()
                for rec in sorted(recs, key=lambda r: r.hand != p.ad.hand):
                    link.client = BandClient.from_keystore(self.keystore, rec.band_id, require_encryption=False)
                    try:
                        info = P.Info.from_bytes(await link.call(P.OP_INFO))
                    except BandError as e:
                        if e.code in (P.ERR_BAD_TAG, P.ERR_NOT_PROVISIONED):
                            continue
                        raise
                    if info.band_id.hex() == rec.band_id:
                        p.key, p.fw = rec, info.fw
                        break
                if p.key is None:
                    await link.close()
                    raise ControllerError(f"band {p.ad.name or band_id} was not provisioned on this computer: "
                                          "provision it over USB (p), then pair again")
                p.rtt_us = (await sync_clock(link))[1]
            except BandUnreachable:
                await link.close()
                raise BandLost(f"band {p.ad.name or band_id} did not answer: bring it closer, check it is "
                               "switched on, and pair again") from None
            except (BleakError, OSError, EOFError) as e:
                await link.close()
                raise _radio_error(e) from None
            except BandError as e:
                await link.close()
                raise ControllerError(f"band {p.ad.name or band_id} refused: {e}") from None
            p.link = link
        return await self.band_status(band_id)

    def paired(self) -> list[str]:
        ps = [p for p in self._peers.values() if p.link is not None]
        return [p.id for p in sorted(ps, key=lambda q: q.hand != "L")]

    async def _call(self, p: _Peer, op: int, payload: bytes = b"") -> bytes:
        from mirrorband.bands.ble.link import BandUnreachable, LinkLost
        from mirrorband.bands.client import BandError

        for _ in range(3):
            try:
                await p.link.ensure()
                out = await p.link.call(op, payload)
                p.lost = False
                return out
            except LinkLost:
                continue
            except BandUnreachable:
                break
            except BandError as e:
                if e.code == 12:  # ERR_LOG_FULL
                    raise StorageFull(f"the {_hand_word(p.hand)} band's storage is full: download its data "
                                      "first (Download), then start again") from None
                if e.code == 11:  # ERR_BUSY
                    raise ControllerError(f"the {_hand_word(p.hand)} band is busy with a task: stop it "
                                          "first or wait until it ends") from None
                raise ControllerError(f"the {_hand_word(p.hand)} band refused: {e}") from None
        p.lost = True
        raise BandLost(f"the {_hand_word(p.hand)} band stopped answering: bring it closer and check it "
                       "is switched on; it keeps what it recorded")

    async def band_status(self, band_id: str) -> BandStatus:
        from mbfw import protocol as P

        p = self._peer(band_id)
        if p.link is None:
            raise ControllerError(f"band {band_id} is not paired: pair it first")
        st = P.Status.from_bytes(await self._call(p, P.OP_STATUS))
        p.last_status = st
        total = st.used + st.free
        used = round(100.0 * st.used / total, 2) if total else 0.0
        state = "full" if st.free < 4096 else _STATE_NAMES.get(st.state, "idle")
        chans = await self._electrodes(p)
        clock = None if p.rtt_us is None else round(p.rtt_us / 2000.0, 2)
        return BandStatus(band_id, p.hand, p.key.patient or None, True, st.battery, used, st.pending,
                          clock, p.fw, chans, state)

    async def _electrodes(self, p: _Peer) -> tuple[ChannelQuality, ...]:
        """Lead-off and resting level per channel from the band's STATUS characteristic."""
        from mbfw import bleservice as S
        from mbfw import protocol as P

        unknown = (ChannelQuality("FLEX", False, None), ChannelQuality("EXT", False, None))
        try:
            raw = bytes(await p.link.ble.read_gatt_char(S.STATUS_UUID))
            x = P.StatusX.from_bytes(raw)
        except Exception:  # noqa: BLE001 - older firmware (23-byte status) or a dropped link
            return unknown
        return electrode_quality(x.loff, x.q_flex, x.q_ext)

    # --- task ---------------------------------------------------------------------------------
    def _paired_peers(self) -> list[_Peer]:
        ps = [self._peers[i] for i in self.paired()]
        if not ps:
            raise ControllerError("no band is paired: open Bands, scan and pair both bands")
        return ps

    async def set_task(self, steps: Sequence[ProtocolStep]) -> None:
        if self._running:
            raise ControllerError("a task is running: stop it first")
        self._steps = check_protocol(steps)

    def _points(self) -> list[tuple[int, int]]:
        pts, t = [], 0
        for s in self._steps:
            pts.append((t, _STEP_CODE[s.kind]))
            t += round(s.seconds * 1000)
        pts.append((t, 0))
        return pts

    async def start_task(self) -> None:
        from mbfw import protocol as P
        from mirrorband.bands.ble.sync import sync_clock

        if self._running:
            raise ControllerError("a task is already running")
        peers = self._paired_peers()
        points = self._points()
        for p in peers:
            await self._call(p, P.OP_TASK_SET, bytes(P.TaskSet(points)))
            await p.link.ensure()
            p.rtt_us = (await sync_clock(p.link))[1]
        self._session = max(self._session + 1, int(self.now().timestamp()) & 0x3FFFFFFF)
        self._remember_task(self._session, points)
        for p in peers:
            p.live.clear()
            p.env.clear()
            p.t0_ms = None
            p.env_next, p.env_last = 0, 0.0
            await self._call(p, P.OP_TASK_START, bytes(P.TaskStart(self._session)))
        self._t_start = time.monotonic()
        self._stop = False
        self._running = True

    async def stop_task(self) -> None:
        from mbfw import protocol as P

        self._stop = True
        for p in self._paired_peers():
            try:
                await self._call(p, P.OP_TASK_STOP)
            except BandLost:
                pass

    def _step_at(self, t: float) -> tuple[int, ProtocolStep | None, float]:
        acc = 0.0
        for i, s in enumerate(self._steps):
            if t < acc + s.seconds:
                return i, s, acc + s.seconds - t
            acc += s.seconds
        return -1, None, 0.0

    async def live(self) -> AsyncIterator[LiveFrame]:
        from mbfw import protocol as P
        from mbfw.events import EV_OFFSET, EV_ONSET, unpack
        from mirrorband.detect.bandio import event_dict

        if self._t_start is None:
            raise ControllerError("no task has been started")
        peers = self._paired_peers()
        duration = sum(s.seconds for s in self._steps)
        t_wall, k, next_poll = self._t_start, 0, 0.0
        idle_seen: set[str] = set()
        while True:
            k += 1
            await asyncio.sleep(max(0.0, t_wall + k * self.frame_s - time.monotonic()))
            t = time.monotonic() - t_wall
            i, step, rem = self._step_at(t)
            frame = LiveFrame(min(t, duration), duration, i, step, rem)
            frame.envelopes = {p.hand: [] for p in peers}
            for p in peers:
                envs, p.env = p.env, []
                for body in envs:
                    self._envelope(p, body, frame.envelopes[p.hand])
                got, p.live = p.live, []
                for arrived, ev in got:
                    try:
                        f = list(unpack(ev))
                    except ValueError:
                        continue
                    # band ms of the task start: lower envelope of (event end - arrival time)
                    est = f[EV_OFFSET] - (arrived - t_wall) * 1000.0
                    p.t0_ms = est if p.t0_ms is None else min(p.t0_ms, est)
                    f[EV_ONSET] = max(0, round(f[EV_ONSET] - p.t0_ms))
                    f[EV_OFFSET] = max(0, round(f[EV_OFFSET] - p.t0_ms))
                    frame.events.append(event_dict(f))
            if t >= next_poll:  # status about every second: lost bands, task end
                next_poll = t + 1.0
                for p in peers:
                    was = p.lost
                    try:
                        st = P.Status.from_bytes(await self._call(p, P.OP_STATUS))
                        if st.state not in _RUNNING and t > 1.0:
                            idle_seen.add(p.id)
                        if was:
                            frame.notices.append(f"The {_hand_word(p.hand)} band is back in range.")
                    except BandLost:
                        if not was:
                            frame.notices.append(f"The {_hand_word(p.hand)} band lost contact; it keeps "
                                                 "recording. Bring it closer.")
                    except ControllerError as e:
                        frame.notices.append(str(e))
            frame.lost = frozenset(p.hand for p in peers if p.lost)
            done = len(idle_seen) == len(peers) or t > duration + 5.0 or self._stop
            if done:
                frame.finished = True
                frame.stopped = self._stop and t < duration
                self._running = False
                self._t_start = None
                yield frame
                return
            yield frame

    @staticmethod
    def _envelope(p: _Peer, body: bytes, out: list[float]) -> None:
        """One live envelope block -> FLEX ratio to the resting baseline, one value per 0.1 s."""
        from mbfw import bleservice as S

        try:
            _hand, _step, nw, k0, _a, qf, _qe, _act, _loff = S.unpack_env(body)
        except Exception:  # noqa: BLE001 - ValueError, struct.error on a damaged body
            return
        if k0 < p.env_next:
            return  # repeated or out of order
        missing = min((k0 - p.env_next) // 10, 50)  # blocks the band dropped under load
        out.extend([p.env_last] * missing)
        p.env_last = qf / 16.0
        out.append(p.env_last)
        p.env_next = k0 + nw

    # --- download -----------------------------------------------------------------------------
    def _dir(self) -> Path:
        from mirrorband.sessions.store import Store

        with Store(self.store_dir) as st:
            d = st.dir / "incoming"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _remember_task(self, session: int, points: list[tuple[int, int]]) -> None:
        # the band's log does not carry the task steps: keep them for the download
        from mirrorband.sessions.download import remember_task

        remember_task(self._dir().parent, session, points)

    async def download(self, progress: Callable[[DownloadProgress], object] | None = None) -> list[DownloadResult]:
        from mirrorband.bands.ble.link import BandUnreachable, LinkLost
        from mirrorband.sessions.download import download

        if self._running:
            raise ControllerError("a task is running: wait for it to finish or stop it")
        results = []
        for p in self._paired_peers():
            if p.raw_path is None:
                p.raw_path = self._dir() / f"{p.key.band_id}-{int(time.time())}.pages"
            resumed = p.pages

            def on_page(raw: bytes, q: _Peer = p) -> None:
                with open(q.raw_path, "ab") as f:  # type: ignore[arg-type]  # as received, before parsing
                    f.write(len(raw).to_bytes(2, "little") + raw)
                q.pages += 1

            def on_record(r: tuple[int, int, bytes], q: _Peer = p) -> None:
                q.records.append(r)
                q.last_seq = r[0]

            def prog(done: int, total: int, q: _Peer = p, r0: int = resumed) -> None:
                if progress is not None:
                    progress(DownloadProgress(q.id, q.hand, done, max(total, 1), len(q.records), r0))

            try:
                await p.link.ensure()
                await download(p.link, on_record, start_after=p.last_seq, on_page=on_page, progress=prog,
                               max_reconnects=20)
            except (LinkLost, BandUnreachable):
                p.lost = True
                raise DownloadInterrupted(f"the link to the {_hand_word(p.hand)} band dropped; bring it closer "
                                          "and download again to resume (nothing is lost)") from None
            results.append(await asyncio.to_thread(self._ingest, p))
        return results

    def _ingest(self, p: _Peer) -> DownloadResult:
        """Store what was downloaded from ``p``: each task run with its events, the task steps
        remembered at its start and the band's activity spans, merged with the other band's log
        (``peer_unknown`` events are re-classified there), as ``mirrorband download`` does."""
        from mbfw.events import EV_KIND, unpack
        from mirrorband.detect.bandio import KIND_NAMES
        from mirrorband.sessions.download import band_runs, ingest_runs
        from mirrorband.sessions.store import Store, StoreError

        runs, _outside = band_runs(p.records)
        counts: dict[str, int] = {}
        sids: list[int] = []
        try:
            with Store(self.store_dir) as st:
                if runs:
                    assert p.raw_path is not None
                    sids = ingest_runs(st, p.key.band_id, p.raw_path, runs, patient_id=p.key.patient or None,
                                       firmware_version=p.fw)
        except StoreError as e:
            raise ControllerError(f"cannot store the download: {e}") from None
        for run in runs:
            for ev in run.events:
                name = KIND_NAMES[unpack(ev)[EV_KIND]]
                counts[name] = counts.get(name, 0) + 1
        n = sum(len(r.events) for r in runs)
        res = DownloadResult(p.id, p.hand, p.pages, n, counts, sids[-1] if sids else None)
        p.records, p.pages, p.raw_path = [], 0, None
        return res

    # --- provisioning -------------------------------------------------------------------------
    async def ports(self) -> list[str]:
        from serial.tools import list_ports

        return [d.device for d in await asyncio.to_thread(list_ports.comports)]

    async def provision(self, port: str, hand: str, patient_id: str) -> BandInfo:
        import argparse

        from mirrorband.bands.provision import provision
        from mirrorband.errors import CliError

        if hand not in HANDS:
            raise ControllerError("hand must be L or R")
        ns = argparse.Namespace(port=port, hand=hand, patient=patient_id, timeout=5.0, yes=True)
        try:
            rec = await asyncio.to_thread(provision, ns, self.keystore)
        except CliError as e:
            raise ControllerError(str(e)) from None
        return BandInfo(rec.band_id, f"Mirrorband {rec.hand}", rec.hand, rec.patient, None, False)

    async def close(self) -> None:
        for p in self._peers.values():
            if p.link is not None:
                try:
                    await p.link.close()
                except Exception:  # noqa: BLE001 - the radio went away
                    pass
                p.link = None
        if self.adapter is not None:
            try:
                await self.adapter.close()
            except Exception:  # noqa: BLE001 - the radio went away
                pass
