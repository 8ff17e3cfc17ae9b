"""One band over BLE with bleak's public API: connect, pair when the band asks for
encryption, subscribe, exchange protocol frames with the band's transport framing
(firmware/mbfw/bleservice.py), reconnect with rediscovery and back-off.

``backend`` is passed unchanged to :class:`bleak.BleakScanner` / :class:`bleak.BleakClient`:
``None`` is bleak's platform backend (real adapters); the virtual radio passes the
Bumble-backed classes of :class:`mirrorband.sim.vradio.bleak_backend.BumbleAdapter`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.exc import BleakError, BleakGATTProtocolError

from mbfw import bleservice as S
from mbfw import protocol as P
from mirrorband.bands.client import BandClient, BandError
from mirrorband.errors import CliError

logger = logging.getLogger(__name__)

_ATT_INSUFFICIENT_AUTHENTICATION = 0x05
_ATT_INSUFFICIENT_ENCRYPTION = 0x0F
_FRAME_OVERHEAD = P.HEADER + P.TAG  # around a response payload
_PAGE_OVERHEAD = P.PAGE_HEADER + P.TAG


class LinkLost(Exception):
    """The connection went away during an operation (retry after :meth:`BandLink.ensure`)."""


class BandUnreachable(CliError):
    """The band could not be found or connected within the retry budget."""


class State(enum.Enum):
    """Reconnect state machine (see docs/ble.md)."""

    IDLE = "idle"
    SCANNING = "scanning"
    CONNECTING = "connecting"
    SUBSCRIBING = "subscribing"
    READY = "ready"
    BACKOFF = "back-off"
    CLOSED = "closed"


def page_len_for(mtu: int) -> int:
    """Largest LOG_READ ``max_len`` whose response frame fills whole notifications."""
    per = mtu - 4  # ATT payload minus the fragment header
    total = P.PAGE_MAX + _PAGE_OVERHEAD + _FRAME_OVERHEAD
    k = max(1, total // per)
    body = k * per - _PAGE_OVERHEAD - _FRAME_OVERHEAD
    return max(P.PAGE_MIN, min(P.PAGE_MAX, body))


@dataclass
class LinkStats:
    """What went over the air on this link (for the efficiency figures)."""

    notifications: int = 0
    data_notifications: int = 0
    data_frame_bytes: int = 0  # bytes of response frames carried on the data characteristic
    frame_bytes: int = 0
    writes: int = 0
    connects: int = 0
    disconnects: int = 0
    dropped_fragments: int = 0
    mtus: list[int] = field(default_factory=list)


class _Reassembly:
    # fragments -> frames; one fragment counter per connection across characteristics
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.buf = bytearray()
        self.ctr = -1
        self.bad = False
        self.live = False

    def feed(self, data: bytes) -> tuple[bytes, bool] | None:
        if not data:
            return None
        h = data[0]
        c = h & S.FRAG_CTR
        expected = (self.ctr + 1) & S.FRAG_CTR if self.ctr >= 0 else c
        self.ctr = c
        if h & S.FRAG_FIRST:
            self.buf = bytearray(data[1:])
            self.bad = False
            self.live = bool(h & S.FRAG_LIVE)
        elif self.bad or c != expected or not self.buf:
            self.bad = True
            return None
        else:
            self.buf += data[1:]
        if self.live:
            if len(self.buf) >= 24 + 4 + S.LIVE_TAG:
                out = bytes(self.buf)
                self.buf = bytearray()
                return out, True
            return None
        want = S.frame_len(self.buf, len(self.buf))
        if want and len(self.buf) >= want:
            out = bytes(self.buf[:want])
            self.buf = bytearray()
            return out, False
        return None


class BandLink:
    """A connection to one band, with reconnects.

    ``target`` is a :class:`BLEDevice` from a scan or an address. ``client`` builds and
    checks the protocol frames (keys, counters). ``on_live`` receives live events
    (24-byte event, live counter) that passed their tag, ``on_envelope`` the live
    envelope frames (24-byte body, see ``mbfw.bleservice.unpack_env``, live counter).
    """

    def __init__(self, target: BLEDevice | str, client: BandClient, *, backend: Any = None,
                 name: str | None = None, connect_timeout: float = 5.0, response_timeout: float = 5.0,
                 retry_for: float = 20.0, backoff: tuple[float, float] = (0.05, 2.0),
                 on_live: Callable[[bytes, int], object] | None = None,
                 on_envelope: Callable[[bytes, int], object] | None = None,
                 on_state: Callable[[State], object] | None = None) -> None:
        self.target = target
        self.address = target if isinstance(target, str) else target.address
        self.name = name or (None if isinstance(target, str) else target.name)
        self.client = client
        self.backend = backend
        self.connect_timeout = connect_timeout
        self.response_timeout = response_timeout
        self.retry_for = retry_for
        self.backoff = backoff
        self.on_live = on_live
        self.on_envelope = on_envelope
        self.on_state = on_state
        self.state = State.IDLE
        self.stats = LinkStats()
        self.ble: BleakClient | None = None
        self._rx = _Reassembly()
        self._waiting: tuple[int, asyncio.Future[bytes]] | None = None
        self._lost = asyncio.Event()
        self._lock = asyncio.Lock()
        self._live_ctr = 0
        self.mtu = 23

    # --- state ------------------------------------------------------------------------------
    def _set(self, state: State) -> None:
        if state != self.state:
            logger.debug("%s: %s -> %s", self.name or self.address, self.state.value, state.value)
            self.state = state
            if self.on_state is not None:
                self.on_state(state)

    @property
    def connected(self) -> bool:
        return self.state == State.READY and self.ble is not None and self.ble.is_connected

    def _on_disconnect(self, _client: BleakClient) -> None:
        self.stats.disconnects += 1
        self._lost.set()
        if self._waiting is not None and not self._waiting[1].done():
            self._waiting[1].set_exception(LinkLost("disconnected"))
        if self.state != State.CLOSED:
            self._set(State.IDLE)

    # --- connection -------------------------------------------------------------------------
    async def _rediscover(self) -> BLEDevice | None:
        self._set(State.SCANNING)
        addr = self.address.upper()
        return await BleakScanner.find_device_by_filter(
            lambda d, _adv: d.address.upper() == addr, timeout=min(self.connect_timeout, 3.0),
            service_uuids=[S.SERVICE_UUID], backend=self.backend)

    async def _connect_once(self, target: BLEDevice | str) -> None:
        self._set(State.CONNECTING)
        ble = BleakClient(target, disconnected_callback=self._on_disconnect, timeout=self.connect_timeout,
                          backend=self.backend)
        await ble.connect()
        self.ble = ble
        self._rx.reset()
        self._lost.clear()
        self._set(State.SUBSCRIBING)
        try:
            await self._subscribe(ble)
        except BleakGATTProtocolError as e:
            if e.code not in (_ATT_INSUFFICIENT_ENCRYPTION, _ATT_INSUFFICIENT_AUTHENTICATION):
                raise
            await ble.pair()  # Just Works on a band without IO; app-layer HMAC does the rest
            await self._subscribe(ble)
        self.mtu = ble.mtu_size
        self.stats.mtus.append(self.mtu)
        self.stats.connects += 1
        self._set(State.READY)

    async def _subscribe(self, ble: BleakClient) -> None:
        await ble.start_notify(S.CONTROL_UUID, lambda _c, d: self._on_notify(bytes(d), False))
        await ble.start_notify(S.DATA_UUID, lambda _c, d: self._on_notify(bytes(d), True))

    async def ensure(self) -> None:
        """Connect (or reconnect) with back-off until ``retry_for`` seconds have passed."""
        if self.connected:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_for
        delay = self.backoff[0]
        target: BLEDevice | str = self.target
        last: Exception | None = None
        attempt = 0
        while True:
            try:
                # first try the device we know; later attempts rediscover it (after a
                # drop BlueZ may have forgotten it, the band may have rebooted)
                if attempt > 0:
                    found = await self._rediscover()
                    if found is not None:
                        target = self.target = found
                attempt += 1
                await self._drop_client()
                await self._connect_once(target)
                return
            except (TimeoutError, BleakError, OSError, EOFError) as e:
                last = e
                logger.info("%s: connect failed: %s", self.name or self.address, e)
            if loop.time() + delay > deadline:
                self._set(State.IDLE)
                raise BandUnreachable(f"band {self.name or self.address} is out of range or not "
                                      f"advertising ({type(last).__name__}: {last})")
            self._set(State.BACKOFF)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff[1])

    async def _drop_client(self) -> None:
        ble, self.ble = self.ble, None
        if ble is not None:
            try:
                await ble.disconnect()
            except Exception:  # noqa: BLE001 - already gone
                pass

    async def close(self) -> None:
        self._set(State.CLOSED)
        await self._drop_client()

    async def __aenter__(self) -> BandLink:
        await self.ensure()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- frames -----------------------------------------------------------------------------
    def _on_notify(self, data: bytes, on_data: bool) -> None:
        self.stats.notifications += 1
        if on_data:
            self.stats.data_notifications += 1
        got = self._rx.feed(data)
        if got is None:
            if self._rx.bad:
                self.stats.dropped_fragments += 1
            return
        frame, live = got
        if live:
            self._live(frame)
            return
        self.stats.frame_bytes += len(frame)
        if on_data:
            self.stats.data_frame_bytes += len(frame)
        w = self._waiting
        if w is not None and not w[1].done() and len(frame) >= P.HEADER \
                and struct.unpack_from("<H", frame, 5)[0] == w[0]:
            w[1].set_result(frame)
        elif w is not None and not w[1].done() and len(frame) >= P.HEADER and frame[3] == 0:
            w[1].set_result(frame)  # the band could not parse the request

    def _live(self, body: bytes) -> None:
        keys = self.client.keys
        ev, tag = body[:28], body[28:28 + S.LIVE_TAG]
        if keys is None or keys.cmd.digest(b"live", ev)[:S.LIVE_TAG] != tag:
            return
        ctr = struct.unpack_from("<I", ev, 24)[0]
        if ctr <= self._live_ctr and ctr > 1:
            return  # replayed
        self._live_ctr = ctr
        handler = self.on_envelope if ev[0] == S.LIVE_ENV else self.on_live
        if handler is not None:
            handler(ev[:24], ctr)

    async def exchange(self, frame: bytes, req_id: int) -> bytes:
        """Send one request frame, return the response frame (raises :class:`LinkLost`)."""
        ble = self.ble
        if ble is None or not self.connected:
            raise LinkLost("not connected")
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting = (req_id, fut)
        try:
            per = self.mtu - 4
            ctr = 0
            for off in range(0, len(frame), per):
                ctr = (ctr + 1) & S.FRAG_CTR
                hdr = ctr | (S.FRAG_FIRST if off == 0 else 0)
                await ble.write_gatt_char(S.CONTROL_UUID, bytes((hdr,)) + frame[off:off + per], response=True)
                self.stats.writes += 1
            return await asyncio.wait_for(fut, self.response_timeout)
        except TimeoutError as e:
            if not ble.is_connected:
                raise LinkLost("disconnected") from e
            raise LinkLost("no answer from the band") from e
        except (BleakError, EOFError, OSError) as e:
            raise LinkLost(str(e)) from e
        finally:
            self._waiting = None

    async def call(self, op: int, payload: bytes = b"", authenticated: bool = True) -> bytes:
        """One protocol request; :class:`BandError` for refusals, :class:`LinkLost` for the link."""
        async with self._lock:
            pending = self.client.request(op, payload, authenticated)
            try:
                return self.client.response(pending, await self.exchange(pending.frame, pending.req_id))
            except BandError as e:
                detail = getattr(e, "detail", b"")
                if e.code != P.ERR_REPLAY or len(detail) != 4:
                    raise
                self.client._next_counter(struct.unpack("<I", detail)[0] - 1)  # noqa: SLF001
                pending = self.client.request(op, payload, authenticated)
                return self.client.response(pending, await self.exchange(pending.frame, pending.req_id))

    async def read_status(self) -> P.Status | P.StatusX:
        """The status characteristic (needs an encrypted link on bonding bands).

        :class:`~mbfw.protocol.StatusX` (with electrodes) from bands that send it,
        :class:`~mbfw.protocol.Status` from older firmware.
        """
        if self.ble is None:
            raise LinkLost("not connected")
        raw = bytes(await self.ble.read_gatt_char(S.STATUS_UUID))
        extended = len(raw) == struct.calcsize(P.StatusX._F)  # pyright: ignore[reportPrivateUsage]
        return (P.StatusX if extended else P.Status).from_bytes(raw)
