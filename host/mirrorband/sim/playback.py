"""A simulated patient played to the UI without radio: :class:`PlaybackController`.

It implements :class:`mirrorband.control.controller.BandsController` over the firmware
replay of a simulated recording, with :class:`Faults` to play out trouble (a band lost,
storage full, an electrode off, a download cut). It lives with the simulator, above the
controller layer; the real path to bands is :class:`mirrorband.control.blecontroller.BleController`,
which the demo and ``tui --sim`` drive over the virtual radio.
"""

from __future__ import annotations

import asyncio
import secrets
import struct
import time
import zlib
from array import array
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from mirrorband.control.controller import (
    HANDS,
    PROTOCOLS,
    BandInfo,
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


@dataclass
class Faults:
    """Trouble a :class:`PlaybackController` plays out (for tests and demonstrations).

    ``lose_band``: (hand, task second) when that band's live link drops (it keeps
    recording and is back for the download); ``storage_full``: hands whose band
    has no room; ``no_bands``: scans find nothing; ``lead_off``: (hand, channel)
    pairs with an electrode off; ``drop_download``: hand -> page after which the
    first transfer of that band's log is cut.
    """

    lose_band: tuple[str, float] | None = None
    storage_full: frozenset[str] = frozenset()
    no_bands: bool = False
    lead_off: frozenset[tuple[str, str]] = frozenset()
    drop_download: dict[str, int] = field(default_factory=dict)


_PAGE_HEAD = struct.Struct("<IHH")  # sequence, record count, reserved
_RECORDS_PER_PAGE = 8
_CAPACITY_EVENTS = 40000  # band flash for events (1 MiB of 24-byte records, rounded)


@dataclass
class _Band:
    id: str
    hand: str
    patient_id: str | None
    battery: float
    drift_ppm: float
    firmware_version: str
    paired: bool = False
    lost: bool = False
    clock_error_ms: float | None = None
    key: bytes = b""
    noise: dict[str, float] = field(default_factory=dict)
    log: list[tuple[int, ...]] = field(default_factory=list)  # undownloaded event tuples
    activity: list[tuple[int, int]] = field(default_factory=list)
    markers: dict[str, Any] | None = None
    acked: int = 0  # pages acknowledged of the pending log
    raw_path: Path | None = None


class PlaybackController(BandsController):
    """Two simulated bands playing a scenario through the firmware pipeline (no radio).

    ``speed`` > 1 plays faster than real time; ``frame_s`` is the wall-clock time
    between live frames. ``now`` gives the session's start time (tests pin it).
    """

    ENV_DT = 0.1  # s per envelope value (one firmware block)

    def __init__(self, scenario: str = "moderate-R", *, seed: int = 7, speed: float = 1.0,
                 store_dir: str | Path | None = None, patient_id: str = "demo-001",
                 frame_s: float = 1 / 12, faults: Faults | None = None,
                 now: Callable[[], datetime] = datetime.now) -> None:
        from mbfw import VERSION
        from mirrorband.sim.simulate import parse_scenario

        try:
            parse_scenario(scenario)
        except ValueError as e:
            raise ControllerError(str(e)) from None
        if not 0.1 <= speed <= 1000:
            raise ControllerError("playback speed must be between 0.1 and 1000")
        self.scenario = scenario
        self.seed = seed
        self.speed = float(speed)
        self.store_dir = store_dir
        self.frame_s = frame_s
        self.faults = faults or Faults()
        self.now = now
        self.description = f"playback: simulated patient {scenario} (no radio)" + \
            (f", {speed:g}x speed" if speed != 1 else "")
        rng = np.random.default_rng(seed)
        self._bands = {h: _Band(f"MB-{h}-{1000 + int(rng.integers(9000))}", h, patient_id,
                                float(rng.uniform(55, 95)), float(rng.uniform(-30, 30)), VERSION)
                       for h in HANDS}
        self._rng = rng
        self._steps: tuple[ProtocolStep, ...] = PROTOCOLS["Standard, right hand affected"]
        self._run: _Run | None = None
        self._done: dict[str, DownloadResult] = {}
        self._session_no = 0

    # --- bands ------------------------------------------------------------------------------
    def _band(self, band_id: str) -> _Band:
        for b in self._bands.values():
            if b.id == band_id:
                return b
        raise ControllerError(f"no band {band_id}: scan again")

    async def scan(self, timeout_s: float = 5.0) -> list[BandInfo]:
        await asyncio.sleep(min(timeout_s, 0.5) / self.speed)
        if self.faults.no_bands:
            return []
        return [BandInfo(b.id, f"Mirrorband {b.hand}", b.hand, b.patient_id, -50 - 8 * i, b.paired)
                for i, b in enumerate(self._bands.values())]

    async def pair(self, band_id: str) -> BandStatus:
        b = self._band(band_id)
        await asyncio.sleep(0.2 / self.speed)
        if not b.noise:
            b.noise = await asyncio.to_thread(self._measure_noise, b.hand)
        b.paired = True
        return await self.band_status(band_id)

    def _measure_noise(self, hand: str) -> dict[str, float]:
        # two seconds of the patient at rest, high-passed: the band's contact check
        from mirrorband.sim.simulate import simulate

        rec = simulate(self.scenario, seed=self.seed + 1000, protocol=[("REST", 2.0)])
        out = {}
        for ch, x in rec.hands[hand].emg.items():
            y = np.diff(np.asarray(x, dtype=np.float64)) / np.sqrt(2.0)
            out[ch] = float(np.sqrt(np.mean((y - y.mean()) ** 2)))
        return out

    def paired(self) -> list[str]:
        return [b.id for b in self._bands.values() if b.paired]

    async def band_status(self, band_id: str) -> BandStatus:
        b = self._band(band_id)
        if not b.paired:
            raise ControllerError(f"band {band_id} is not paired: pair it first")
        full = b.hand in self.faults.storage_full
        used = 100.0 if full else round(100.0 * (len(b.log) + 300) / _CAPACITY_EVENTS, 2)
        chans = tuple(ChannelQuality(ch, (b.hand, ch) in self.faults.lead_off,
                                     None if (b.hand, ch) in self.faults.lead_off else round(v, 1))
                      for ch, v in sorted(b.noise.items(), key=lambda kv: kv[0] != "FLEX"))
        run = self._run
        state = "lost" if b.lost else "full" if full else "task" if run and not run.done else "idle"
        return BandStatus(b.id, b.hand, b.patient_id, not b.lost, int(b.battery), used, len(b.log),
                          b.clock_error_ms, b.firmware_version, chans, state)

    # --- task -------------------------------------------------------------------------------
    async def set_task(self, steps: Sequence[ProtocolStep]) -> None:
        if self._run and not self._run.done:
            raise ControllerError("a task is running: stop it first")
        self._steps = check_protocol(steps)

    async def start_task(self) -> None:
        bands = [b for b in self._bands.values() if b.paired]
        if not bands:
            raise ControllerError("no band is paired: open Bands, scan and pair both bands")
        if self._run and not self._run.done:
            raise ControllerError("a task is already running")
        for b in bands:
            if b.hand in self.faults.storage_full:
                raise StorageFull(f"the {_hand_word(b.hand)} band's storage is full: download its data "
                                  "first (Download), then start again")
            if b.log:
                raise StorageFull(f"the {_hand_word(b.hand)} band still holds the last session: "
                                  "download it first (Download)")
        for b in bands:  # time sync: keep the exchange with the smallest round trip
            rtts = self._rng.uniform(2.0, 12.0, size=8)
            b.clock_error_ms = round(float(rtts.min()) / 2 * 0.1 + abs(b.drift_ppm) * 1e-3, 2)
            b.lost = False
        # a session id both bands share: the start time in seconds (unique per host, monotonic)
        self._session_no = max(self._session_no + 1, int(self.now().timestamp()) & 0x3FFFFFFF)
        self._run = await asyncio.to_thread(_Run, self, bands, self._steps, self._session_no)

    async def stop_task(self) -> None:
        if self._run and not self._run.done:
            self._run.stop_requested = True

    async def live(self) -> AsyncIterator[LiveFrame]:
        run = self._run
        if run is None:
            raise ControllerError("no task has been started")
        t_wall = time.monotonic()
        k = 0
        while not run.done:
            k += 1  # fixed cadence: frame k is due at k * frame_s, however long the work took
            await asyncio.sleep(max(0.0, t_wall + k * self.frame_s - time.monotonic()))
            target = (time.monotonic() - t_wall) * self.speed
            frame = await asyncio.to_thread(run.advance, target)
            yield frame

    # --- download ---------------------------------------------------------------------------
    async def download(self, progress: Callable[[DownloadProgress], object] | None = None) -> list[DownloadResult]:
        from mbfw.events import EV_KIND
        from mirrorband.detect.bandio import KIND_NAMES
        from mirrorband.sessions.session import BandMarkers, ingest_band_pages
        from mirrorband.sessions.store import Store, StoreError

        if self._run and not self._run.done:
            raise ControllerError("a task is running: wait for it to finish or stop it")
        bands = [b for b in self._bands.values() if b.paired]
        if not bands:
            raise ControllerError("no band is paired: open Bands, scan and pair both bands")
        results = []
        for b in bands:
            b.lost = False  # back in range for the download
            if b.id in self._done:  # finished by an earlier, interrupted call
                results.append(self._done.pop(b.id))
                continue
            if b.markers is None:
                results.append(DownloadResult(b.id, b.hand, 0, 0, {}, None))
                continue
            pages = [b.log[i:i + _RECORDS_PER_PAGE] for i in range(0, len(b.log), _RECORDS_PER_PAGE)] or [[]]
            total = len(pages)
            resumed = b.acked
            try:
                with Store(self.store_dir) as st:
                    if b.raw_path is None:
                        inc = st.dir / "incoming"
                        inc.mkdir(exist_ok=True)
                        b.raw_path = inc / f"{b.id}-{b.markers['band_session']}.pages"
                        b.raw_path.write_bytes(b"")
                    cut = self.faults.drop_download.pop(b.hand, None)
                    for seq in range(b.acked, total):
                        await asyncio.sleep(0.05 / self.speed)
                        if cut is not None and seq >= cut:
                            raise DownloadInterrupted(
                                f"the link to the {_hand_word(b.hand)} band dropped at page {seq} of {total}; "
                                "download again to resume (nothing is lost)")
                        page = _encode_page(seq, pages[seq])
                        _check_page(page, seq)
                        with open(b.raw_path, "ab") as f:  # as received, before parsing
                            f.write(page)
                            f.flush()
                        b.acked = seq + 1
                        if progress:
                            progress(DownloadProgress(b.id, b.hand, b.acked, total,
                                                      sum(len(p) for p in pages[:b.acked]), resumed))
                    records = _decode_pages(b.raw_path.read_bytes())
                    markers = BandMarkers(**b.markers)
                    sid = await asyncio.to_thread(_ingest, st.dir, b.id, b.raw_path, records, markers,
                                                  ingest_band_pages)
            except StoreError as e:
                raise ControllerError(f"cannot store the download: {e}") from None
            counts: dict[str, int] = {}
            for r in records:
                counts[KIND_NAMES[r[EV_KIND]]] = counts.get(KIND_NAMES[r[EV_KIND]], 0) + 1
            done = DownloadResult(b.id, b.hand, total, len(records), counts, sid)
            self._done[b.id] = done
            b.log, b.markers, b.acked, b.raw_path, b.activity = [], None, 0, None, []  # band frees space on ack
        for r in results:
            self._done.pop(r.band_id, None)
        return results + [self._done.pop(k) for k in list(self._done)]

    # --- provisioning -----------------------------------------------------------------------
    async def ports(self) -> list[str]:
        return [f"virtual:{h}" for h in HANDS]

    async def provision(self, port: str, hand: str, patient_id: str) -> BandInfo:
        from mirrorband.sessions.store import StoreError, check_patient_id

        if hand not in HANDS:
            raise ControllerError("hand must be L or R")
        try:
            check_patient_id(patient_id)
        except StoreError as e:
            raise ControllerError(str(e)) from None
        if port not in await self.ports():
            raise ControllerError(f"no band answers on {port}: plug the band in with its USB cable "
                                  "(playback bands are on virtual:L and virtual:R)")
        b = self._bands[port.split(":", 1)[1]]
        await asyncio.sleep(0.2 / self.speed)
        if b.hand != hand:  # the band on this forearm changes identity
            other = self._bands[hand]
            self._bands[hand], self._bands[b.hand] = b, other
            other.hand, b.hand = b.hand, hand
        b.patient_id = patient_id
        b.key = secrets.token_bytes(32)
        b.paired = False
        return BandInfo(b.id, f"Mirrorband {b.hand}", b.hand, b.patient_id, None, False)

    async def close(self) -> None:
        if self._run:
            self._run.stop_requested = True


def _ingest(store_dir: Path, band_id: str, raw: Path, records: list[tuple[int, ...]], markers: Any,
            ingest: Callable[..., int]) -> int:
    from mirrorband.sessions.store import Store

    with Store(store_dir) as st:  # own connection: sqlite objects stay in their thread
        return ingest(st, band_id, raw, records, markers)


def _hand_word(hand: str | None) -> str:
    return {"L": "left", "R": "right"}.get(hand or "", "unknown")


def _encode_page(seq: int, records: Sequence[tuple[int, ...]]) -> bytes:
    from mbfw.events import pack

    body = _PAGE_HEAD.pack(seq, len(records), 0) + b"".join(pack(r) for r in records)
    return body + struct.pack("<I", zlib.crc32(body))


def _check_page(page: bytes, seq: int) -> None:
    if struct.unpack("<I", page[-4:])[0] != zlib.crc32(page[:-4]) or _PAGE_HEAD.unpack_from(page)[0] != seq:
        raise DownloadInterrupted(f"page {seq} arrived damaged; download again to resume")


def _decode_pages(data: bytes) -> list[tuple[int, ...]]:
    from mbfw.events import SIZE, unpack

    out: list[tuple[int, ...]] = []
    i = 0
    while i < len(data):
        _, n, _ = _PAGE_HEAD.unpack_from(data, i)
        end = i + _PAGE_HEAD.size + n * SIZE
        body = data[i:end]
        if struct.unpack_from("<I", data, end)[0] != zlib.crc32(body):
            raise ControllerError("a stored log page is damaged: download again")
        out += [tuple(unpack(body[_PAGE_HEAD.size + k * SIZE:_PAGE_HEAD.size + (k + 1) * SIZE])) for k in range(n)]
        i = end + 4
    return out


class _Run:
    """One task run: the simulated signals and both bands' firmware pipelines, advanced on demand."""

    BLOCK = 100  # EMG samples per firmware block (100 ms)

    def __init__(self, ctl: PlaybackController, bands: list[_Band], steps: tuple[ProtocolStep, ...],
                 session_no: int) -> None:
        from mbfw.pipeline import Hand
        from mirrorband.detect.bandio import hand_config, imu_blocks, streams, task_points
        from mirrorband.sim.simulate import simulate

        self.ctl = ctl
        self.steps = steps
        self.bands = {b.hand: b for b in bands}
        self.session_no = session_no
        self.started = ctl.now().isoformat(timespec="seconds")
        self.rec = simulate(ctl.scenario, seed=ctl.seed, protocol=[(s.kind, float(s.seconds)) for s in steps])
        self.points = task_points(self.rec)
        self.streams = {s.hand: s for s in streams(self.rec) if s.hand in self.bands}
        self.n_blocks = self.streams[bands[0].hand].emg.shape[1] // self.BLOCK
        self.imu_starts = {h: imu_blocks(s, self.n_blocks + 1) for h, s in self.streams.items()}
        self.hands = {}
        for h in self.streams:
            fw = Hand(hand_config(h, mains_hz=50), nch=self.streams[h].nch, has_imu=self.streams[h].has_imu)
            fw.task.set(self.points)
            fw.start(0)
            self.hands[h] = fw
        self.bufs = {h: array("i", bytes(4 * s.nch * self.BLOCK)) for h, s in self.streams.items()}
        self.ev = array("i", bytes(4 * 11))
        self.block = 0
        self.done = False
        self.stop_requested = False
        self.act_start: dict[str, int | None] = {h: None for h in self.hands}
        for b in bands:
            b.activity = []
        self.duration = sum(s.seconds for s in steps)
        self.lost_noted = False

    def _step_at(self, t: float) -> tuple[int, ProtocolStep | None, float]:
        acc = 0.0
        for i, s in enumerate(self.steps):
            if t < acc + s.seconds:
                return i, s, acc + s.seconds - t
            acc += s.seconds
        return -1, None, 0.0

    def advance(self, target_s: float) -> LiveFrame:
        from mbfw.events import EV_NF
        from mirrorband.detect.bandio import event_dict, imu_block_buffer

        frame = LiveFrame(0.0, self.duration, -1, None, 0.0)
        frame.envelopes = {h: [] for h in self.hands}
        want = min(self.n_blocks, int(target_s / 0.1))
        if self.stop_requested:
            want = self.block
        lose = self.ctl.faults.lose_band
        while self.block < want:
            b = self.block
            for h, fw in self.hands.items():
                s = self.streams[h]
                buf = self.bufs[h]
                buf[: s.nch * self.BLOCK] = array("i", s.emg[:, b * self.BLOCK:(b + 1) * self.BLOCK].reshape(-1).tobytes())
                if s.has_imu:
                    lo, hi = int(self.imu_starts[h][b]), int(self.imu_starts[h][b + 1])
                    rows = imu_block_buffer(s, lo, hi, b * (self.BLOCK // 10))
                    fw.analyse(buf, self.BLOCK, array("i", rows.reshape(-1).tobytes()), hi - lo)
                else:
                    fw.analyse(buf, self.BLOCK, array("i"), 0)
            hs = list(self.hands)
            for h in hs:
                fw = self.hands[h]
                nw = fw.nw
                peak = max(fw.qf_w[w] for w in range(nw))
                self._activity(h, fw, b)
                if lose and lose[0] == h and b * 0.1 >= lose[1]:
                    band = self.bands[h]
                    if not band.lost:
                        band.lost = True
                        frame.notices.append(
                            f"The {_hand_word(h)} band stopped answering at {b * 0.1:.0f} s. It keeps recording; "
                            "bring it close to this computer. Its data is downloaded at the end.")
                    continue
                frame.envelopes[h].append(peak / 16.0)
            peers = {h: (self.hands[o].act_w if o in self.hands else None)
                     for h, o in (("L", "R"), ("R", "L")) if h in self.hands}
            for h in hs:
                self.hands[h].detect(peers[h])
            self.block += 1
            self._pop(frame, event_dict, EV_NF)
        end = self.block >= self.n_blocks or self.stop_requested
        if end:
            for fw in self.hands.values():
                fw.finish()
            self._pop(frame, event_dict, EV_NF)
            self._close()
            frame.finished = True
            frame.stopped = self.stop_requested and self.block < self.n_blocks
        t = self.block * 0.1
        frame.t_s = t
        frame.step_index, frame.step, frame.remaining_s = self._step_at(t) if not end else (-1, None, 0.0)
        frame.lost = frozenset(h for h, b in self.bands.items() if b.lost)
        return frame

    def _activity(self, h: str, fw: Any, b: int) -> None:
        for w in range(fw.nw):
            k = b * 10 + w
            on = fw.act_w[w]
            start = self.act_start[h]
            if on and start is None:
                self.act_start[h] = k
            elif not on and start is not None:
                self.bands[h].activity.append((start * 10, k * 10))
                self.act_start[h] = None

    def _pop(self, frame: LiveFrame, event_dict: Callable[..., dict], nf: int) -> None:
        for h, fw in self.hands.items():
            while fw.pop(self.ev):
                t = tuple(self.ev[i] for i in range(nf))
                self.bands[h].log.append(t)
                if not self.bands[h].lost:
                    frame.events.append(event_dict(t))

    def _close(self) -> None:
        from mbfw.task import STEP_NONE

        end_ms = self.block * 100
        for h, b in self.bands.items():
            start = self.act_start[h]
            if start is not None:
                b.activity.append((start * 10, end_ms))
                self.act_start[h] = None
            steps = [(t, k) for t, k in self.points if t < end_ms]
            if steps and steps[-1][1] != STEP_NONE:
                steps.append((end_ms, STEP_NONE))
            b.markers = {"band_session": self.session_no, "hand": h, "started": self.started, "start_ms": 0,
                         "end_ms": end_ms, "steps": steps, "activity": list(b.activity),
                         "drift_ppm": 0.0, "patient_id": b.patient_id, "firmware_version": b.firmware_version}
            b.battery = max(5.0, b.battery - end_ms / 1000 / 3600 * 8)
        self.done = True
