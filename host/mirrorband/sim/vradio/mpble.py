"""MicroPython's ``bluetooth`` module for CPython, on a Bumble virtual controller.

This implements the subset of https://docs.micropython.org/en/latest/library/bluetooth.html
that a peripheral firmware uses, with the same event codes, argument tuples, flags and
error behaviour (``OSError`` with an errno), so the unchanged firmware runs in a
virtual band.

Threading model: everything runs on ONE asyncio loop, the loop of the virtual band.
Create :class:`BLE` and call its methods from that loop's thread (from coroutines or
callbacks running on it). The IRQ handler is called synchronously on that loop, never
from another thread, like MicroPython's scheduled IRQs on a real band. Methods that
MicroPython runs synchronously but need radio work here (advertise, scan, disconnect,
pairing) are queued in call order and executed by a worker task; local operations
(``gatts_read``/``gatts_write``/``gatts_register_services``/``config``) and sending
notifications are immediate. :meth:`BLE.settle` (CPython only) waits until the queue
has run; errors of queued operations are logged and kept in :attr:`BLE.errors`.

Differences from a real band (documented in docs/radio.md): ``BLE`` is not a
singleton (several virtual bands may share a process); ``BLE(hci)`` takes the HCI
transport (a Bumble transport spec such as ``tcp-client:127.0.0.1:PORT`` or an
in-process ``(source, sink)`` pair from :meth:`mirrorband.sim.vradio.hub.Radio.endpoint`);
the central role (``gap_connect``/``gattc_*``) is not implemented.

Security: characteristics with ``_FLAG_*_ENCRYPTED`` need a link encrypted with a key
that both sides really hold (the virtual controller compares the LTKs), and
``_FLAG_*_AUTHENTICATED`` additionally need keys from MITM-protected pairing (passkey
or numeric comparison). Bumble itself marks Just Works links as authenticated; this
module keeps its own record and refuses with the ATT errors NimBLE uses.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from bumble import att, core, hci
from bumble.device import AdvertisingType, Connection, Device
from bumble.gatt import Characteristic, Descriptor, Service
from bumble.host import Host
from bumble.keys import KeyStore, PairingKeys
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport import open_transport

logger = logging.getLogger(__name__)

# Flags, as MicroPython's bluetooth module and its documentation define them.
FLAG_BROADCAST = 0x0001
FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010
FLAG_INDICATE = 0x0020
FLAG_AUTHENTICATED_SIGNED_WRITE = 0x0040
FLAG_AUX_WRITE = 0x0100
FLAG_READ_ENCRYPTED = 0x0200
FLAG_READ_AUTHENTICATED = 0x0400
FLAG_READ_AUTHORIZED = 0x0800
FLAG_WRITE_ENCRYPTED = 0x1000
FLAG_WRITE_AUTHENTICATED = 0x2000
FLAG_WRITE_AUTHORIZED = 0x4000

# IRQ event codes.
_IRQ_CENTRAL_CONNECT = 1
_IRQ_CENTRAL_DISCONNECT = 2
_IRQ_GATTS_WRITE = 3
_IRQ_SCAN_RESULT = 5
_IRQ_SCAN_DONE = 6
_IRQ_GATTS_INDICATE_DONE = 20
_IRQ_MTU_EXCHANGED = 21
_IRQ_CONNECTION_UPDATE = 27
_IRQ_ENCRYPTION_UPDATE = 28
_IRQ_GET_SECRET = 29
_IRQ_SET_SECRET = 30
_IRQ_PASSKEY_ACTION = 31

# Passkey actions and IO capabilities (MicroPython values).
_PASSKEY_ACTION_NONE = 0
_PASSKEY_ACTION_INPUT = 2
_PASSKEY_ACTION_DISPLAY = 3
_PASSKEY_ACTION_NUMERIC_COMPARISON = 4
_IO_CAPABILITY_DISPLAY_ONLY = 0
_IO_CAPABILITY_DISPLAY_YESNO = 1
_IO_CAPABILITY_KEYBOARD_ONLY = 2
_IO_CAPABILITY_NO_INPUT_OUTPUT = 3
_IO_CAPABILITY_KEYBOARD_DISPLAY = 4

_IO_TO_BUMBLE = {
    _IO_CAPABILITY_DISPLAY_ONLY: PairingDelegate.DISPLAY_OUTPUT_ONLY,
    _IO_CAPABILITY_DISPLAY_YESNO: PairingDelegate.DISPLAY_OUTPUT_AND_YES_NO_INPUT,
    _IO_CAPABILITY_KEYBOARD_ONLY: PairingDelegate.KEYBOARD_INPUT_ONLY,
    _IO_CAPABILITY_NO_INPUT_OUTPUT: PairingDelegate.NO_OUTPUT_NO_INPUT,
    _IO_CAPABILITY_KEYBOARD_DISPLAY: PairingDelegate.DISPLAY_OUTPUT_AND_KEYBOARD_INPUT,
}

_DEFAULT_ATTR_LEN = 20  # MP_BLUETOOTH_DEFAULT_ATTR_LEN
_SEC_TYPE_KEYS = 1  # our single secret type for _IRQ_GET/SET_SECRET (bond records)

#: Environment variable with the default HCI transport spec of ``BLE()``.
ENV_HCI = "MIRRORBAND_BAND_HCI"
_default_hci: Any = None


def configure(hci_transport: Any) -> None:
    """Set the HCI transport ``BLE()`` uses when none is given."""
    global _default_hci
    _default_hci = hci_transport


def _addr_bytes(address: hci.Address) -> bytes:
    # MicroPython reports addresses in display order (most significant byte first).
    return bytes(reversed(bytes(address.address_bytes)))


def _static_address(name: str) -> hci.Address:
    raw = bytearray(hashlib.sha256(name.encode()).digest()[:6])
    raw[0] |= 0xC0  # random static
    return hci.Address(":".join(f"{b:02X}" for b in raw), hci.Address.RANDOM_DEVICE_ADDRESS)


class UUID:
    """A 16-bit or 128-bit UUID, as MicroPython's ``bluetooth.UUID``."""

    def __init__(self, value: int | str | bytes | bytearray | memoryview | UUID) -> None:
        if isinstance(value, UUID):
            self._bytes: bytes = value._bytes
        elif isinstance(value, int):
            if not 0 <= value <= 0xFFFF:
                raise ValueError("invalid UUID")
            self._bytes = value.to_bytes(2, "little")
        elif isinstance(value, str):
            text = value.replace("-", "")
            if len(text) not in (4, 32):
                raise ValueError("invalid UUID")
            self._bytes = bytes(reversed(bytes.fromhex(text)))
        else:
            raw = bytes(value)
            if len(raw) not in (2, 4, 16):
                raise ValueError("invalid UUID")
            self._bytes = raw
        self._bumble = core.UUID.from_bytes(self._bytes)

    def __bytes__(self) -> bytes:
        # Little-endian, as MicroPython's buffer protocol on UUID.
        return self._bytes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UUID) and other._bytes == self._bytes

    def __hash__(self) -> int:
        return hash(self._bytes)

    def __repr__(self) -> str:
        if len(self._bytes) == 2:
            return f"UUID(0x{int.from_bytes(self._bytes, 'little'):04x})"
        return f"UUID('{self._bumble.to_hex_str('-').lower()}')"


class _Value:
    # Local value buffer of one attribute handle (gatts_set_buffer semantics).
    def __init__(self, flags: int, is_descriptor: bool) -> None:
        self.flags = flags
        self.is_descriptor = is_descriptor
        self.data = bytearray()
        self.alloc = _DEFAULT_ATTR_LEN
        self.append = False
        self.handle = 0


class _Security:
    def __init__(self) -> None:
        self.encrypted = False
        self.authenticated = False
        self.bonded = False
        self.key_size = 0
        self.pairing = False


class _IrqKeyStore(KeyStore):
    # Bond storage through _IRQ_SET_SECRET/_IRQ_GET_SECRET, with an in-memory copy.
    def __init__(self, ble: BLE) -> None:
        self.ble = ble
        self.mem: dict[str, PairingKeys] = {}

    async def delete(self, name: str) -> None:
        self.mem.pop(name, None)
        self.ble._irq_call(_IRQ_SET_SECRET, (_SEC_TYPE_KEYS, memoryview(name.encode()), None))

    async def update(self, name: str, keys: PairingKeys) -> None:
        self.mem[name] = keys
        value = json.dumps(keys.to_dict()).encode()
        self.ble._irq_call(_IRQ_SET_SECRET, (_SEC_TYPE_KEYS, memoryview(name.encode()), memoryview(value)))

    async def get(self, name: str) -> PairingKeys | None:
        stored = self.ble._irq_call(_IRQ_GET_SECRET, (_SEC_TYPE_KEYS, 0, memoryview(name.encode())))
        if stored is not None:
            try:
                return PairingKeys.from_dict(json.loads(bytes(stored).decode()))
            except (ValueError, KeyError, TypeError):
                logger.warning("unreadable bond record for %s", name)
        return self.mem.get(name)

    async def get_all(self) -> list[tuple[str, PairingKeys]]:
        return list(self.mem.items())


class _Delegate(PairingDelegate):
    # Passkey / numeric comparison through _IRQ_PASSKEY_ACTION and BLE.gap_passkey.
    def __init__(self, ble: BLE, connection: Connection, io: int) -> None:
        super().__init__(io_capability=_IO_TO_BUMBLE[io])
        self.ble = ble
        self.connection = connection

    async def _action(self, action: int, passkey: int) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.ble._passkey_waits[self.connection.handle] = (action, future)
        self.ble._irq_call(_IRQ_PASSKEY_ACTION, (self.connection.handle, action, passkey))
        try:
            return await asyncio.wait_for(future, 30.0)
        except TimeoutError:
            return None
        finally:
            self.ble._passkey_waits.pop(self.connection.handle, None)

    async def accept(self) -> bool:
        return True

    async def confirm(self, auto: bool = False) -> bool:
        return True

    async def compare_numbers(self, number: int, digits: int) -> bool:
        return bool(await self._action(_PASSKEY_ACTION_NUMERIC_COMPARISON, number))

    async def get_number(self) -> int | None:
        value = await self._action(_PASSKEY_ACTION_INPUT, 0)
        return None if value is None else int(value)

    async def display_number(self, number: int, digits: int) -> None:
        self.ble._irq_call(_IRQ_PASSKEY_ACTION, (self.connection.handle, _PASSKEY_ACTION_DISPLAY, number))


class _Device(Device):
    # Raw advertising reports (MicroPython reports each PDU, Bumble merges them).
    mp_ble: BLE | None = None

    def on_advertising_report(self, report: Any) -> None:
        if self.mp_ble is not None:
            self.mp_ble._on_report(report)


class BLE:
    """MicroPython's ``bluetooth.BLE`` on a virtual controller (see module docs)."""

    def __init__(self, hci_transport: Any = None, *, name: str = "mpy-ble", tx_buffer: int = 3072) -> None:
        self._hci = hci_transport if hci_transport is not None else (_default_hci or os.environ.get(ENV_HCI))
        self._name = name
        self._address = _static_address(name)
        self._gap_name = b"MPY BTSTACK"
        self._handler: Callable[[int, tuple[Any, ...]], Any] | None = None
        self._device: _Device | None = None
        self._transport: Any = None
        self._ops: asyncio.Queue[Callable[[], Awaitable[None]] | None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._values: dict[int, _Value] = {}
        self._registered = False
        self._conns: dict[int, Connection] = {}
        self._security: dict[int, _Security] = {}
        self._mitm_peers: dict[str, bool] = {}
        self._passkey_waits: dict[int, tuple[int, asyncio.Future[Any]]] = {}
        self._adv: tuple[bytes, bytes] = (b"", b"")
        self._scan_timer: asyncio.TimerHandle | None = None
        self._scanning = False
        self._mtu = 23
        self._rxbuf = 64
        self._io = _IO_CAPABILITY_NO_INPUT_OUTPUT
        self._bond = False
        self._mitm = False
        self._le_secure = False
        self._tx_buffer = tx_buffer
        self._scan_buf = bytearray(6 + 31)
        self.errors: list[BaseException] = []

    # -- life cycle --------------------------------------------------------------------
    def active(self, active: bool | None = None) -> bool:
        """Bring the radio up or down; without argument, return whether it is up."""
        if active is None:
            return self._device is not None
        if active and self._device is None:
            if self._hci is None:
                raise OSError(errno.ENODEV, "no HCI transport configured for the virtual radio")
            asyncio.get_running_loop()  # must run on the band's loop
            host = Host()
            device = _Device(name=self._gap_name.decode(), address=self._address, host=host)
            device.mp_ble = self
            device.keystore = _IrqKeyStore(self)
            device.gatt_server.max_mtu = self._mtu
            device.pairing_config_factory = self._pairing_config
            device.on(Device.EVENT_CONNECTION, self._on_connection)
            self._device = device
            self._ops = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run_ops())
            self._queue(self._power_on)
        elif not active and self._device is not None:
            self._queue(self._power_off)
            self._queue(None)
            self._device = None
            self._conns.clear()
            self._values.clear()
            self._registered = False
        return self._device is not None

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until every queued radio operation has run (CPython only)."""
        if self._ops is not None and self._worker is not None and not self._worker.done():
            done = asyncio.get_running_loop().create_future()
            self._ops.put_nowait(self._marker(done))
            await asyncio.wait_for(done, timeout)

    @staticmethod
    def _marker(done: asyncio.Future[None]) -> Callable[[], Awaitable[None]]:
        async def mark() -> None:
            if not done.done():
                done.set_result(None)

        return mark

    def _queue(self, op: Callable[[], Awaitable[None]] | None) -> None:
        if self._ops is None:
            raise OSError(errno.EPERM, "BLE not active")
        self._ops.put_nowait(op)

    async def _run_ops(self) -> None:
        assert self._ops is not None
        ops = self._ops
        while True:
            op = await ops.get()
            if op is None:
                return
            try:
                await op()
            except Exception as exc:  # noqa: BLE001 - reported like an async radio error
                logger.warning("%s: radio operation failed: %r", self._name, exc)
                self.errors.append(exc)

    async def _power_on(self) -> None:
        device = self._require()
        if isinstance(self._hci, str):
            self._transport = await open_transport(self._hci)
            source, sink = self._transport.source, self._transport.sink
        else:
            assert self._hci is not None
            source, sink = self._hci
        device.host.set_packet_sink(sink)
        device.host.set_packet_source(source)
        await device.power_on()

    async def _power_off(self) -> None:
        device = self._device
        if device is not None:
            await device.power_off()
        if self._transport is not None:
            await self._transport.close()
            self._transport = None

    async def close(self) -> None:
        """Deactivate and wait for the radio to be released (CPython only)."""
        device = self._device
        if device is None:
            return
        for connection in list(self._conns.values()):
            try:
                await connection.disconnect()
            except Exception:  # noqa: BLE001 - best effort on shutdown
                pass
        worker = self._worker
        self.active(False)
        if worker is not None:
            await asyncio.wait_for(worker, 10.0)
        if self._transport is not None:
            await self._transport.close()
            self._transport = None

    def _require(self) -> _Device:
        if self._device is None:
            raise OSError(errno.EPERM, "BLE not active")
        return self._device

    # -- configuration -------------------------------------------------------------------
    def config(self, *names: str, **values: Any) -> Any:
        """Get one value (``config('mac')``) or set values (``config(gap_name=...)``)."""
        if names and values:
            raise TypeError("get or set, not both")
        if names:
            if len(names) != 1:
                raise TypeError("one parameter at a time")
            return self._config_get(names[0])
        for key, value in values.items():
            self._config_set(key, value)
        return None

    def _config_get(self, name: str) -> Any:
        self._require()
        if name == "mac":
            return (1, _addr_bytes(self._address))
        if name == "addr_mode":
            return 1
        if name == "gap_name":
            return bytes(self._gap_name)
        if name == "mtu":
            return self._mtu
        if name == "rxbuf":
            return self._rxbuf
        if name == "io":
            return self._io
        if name == "bond":
            return self._bond
        if name == "mitm":
            return self._mitm
        if name == "le_secure":
            return self._le_secure
        raise ValueError("unknown config param")

    def _config_set(self, name: str, value: Any) -> None:
        device = self._require()
        if name == "gap_name":
            raw = value.encode() if isinstance(value, str) else bytes(value)
            self._gap_name = raw
            device.name = raw.decode(errors="replace")
            for attribute in device.gatt_server.attributes:
                if isinstance(attribute, Characteristic) and attribute.uuid == core.UUID.from_16_bits(0x2A00):
                    attribute.value = raw
        elif name == "mtu":
            mtu = int(value)
            if not 23 <= mtu <= 517:
                raise ValueError("mtu out of range")
            self._mtu = mtu
            device.gatt_server.max_mtu = mtu
        elif name == "rxbuf":
            self._rxbuf = int(value)
        elif name == "addr_mode":
            if int(value) not in (0, 1, 2, 3):
                raise ValueError("invalid addr_mode")
        elif name == "io":
            if int(value) not in _IO_TO_BUMBLE:
                raise ValueError("invalid io")
            self._io = int(value)
        elif name == "bond":
            self._bond = bool(value)
        elif name == "mitm":
            self._mitm = bool(value)
        elif name == "le_secure":
            self._le_secure = bool(value)
        else:
            raise ValueError("unknown config param")

    def _pairing_config(self, connection: Connection) -> PairingConfig:
        return PairingConfig(
            sc=self._le_secure,
            mitm=self._mitm,
            bonding=self._bond,
            delegate=_Delegate(self, connection, self._io),
        )

    # -- IRQ -------------------------------------------------------------------------------
    def irq(self, handler: Callable[[int, tuple[Any, ...]], Any] | None) -> None:
        """Register the event handler ``handler(event, data)`` (None to remove)."""
        self._handler = handler

    def _irq_call(self, event: int, data: tuple[Any, ...]) -> Any:
        handler = self._handler
        if handler is None:
            return None
        try:
            return handler(event, data)
        except Exception as exc:  # noqa: BLE001 - an IRQ error must not break the stack
            logger.exception("%s: exception in BLE IRQ handler (event %d)", self._name, event)
            self.errors.append(exc)
            return None

    # -- GAP ---------------------------------------------------------------------------------
    def gap_advertise(
        self,
        interval_us: int | None,
        adv_data: Any = None,
        resp_data: Any = None,
        connectable: bool = True,
    ) -> None:
        """Start advertising every ``interval_us`` (None: stop). One advertising set."""
        self._require()
        if interval_us is None:
            self._queue(self._stop_adv)
            return
        adv = self._adv[0] if adv_data is None else bytes(adv_data)
        resp = self._adv[1] if resp_data is None else bytes(resp_data)
        if len(adv) > 31 or len(resp) > 31:
            raise OSError(errno.EINVAL, "advertising payload over 31 bytes")
        self._adv = (adv, resp)
        interval_ms = max(20.0, (int(interval_us) // 625) * 0.625)  # 0.625 ms units, >= 20 ms
        if connectable:
            kind = AdvertisingType.UNDIRECTED_CONNECTABLE_SCANNABLE
        elif resp:
            kind = AdvertisingType.UNDIRECTED_SCANNABLE
        else:
            kind = AdvertisingType.UNDIRECTED

        async def start() -> None:
            device = self._require()
            await self._stop_adv()
            await device.start_advertising(
                advertising_type=kind,
                advertising_data=adv,
                scan_response_data=resp,
                advertising_interval_min=interval_ms,
                advertising_interval_max=interval_ms,
            )

        self._queue(start)

    async def _stop_adv(self) -> None:
        device = self._require()
        if device.is_advertising:
            await device.stop_advertising()

    def gap_scan(
        self,
        duration_ms: int | None,
        interval_us: int = 1280000,
        window_us: int = 11250,
        active: bool = False,
    ) -> None:
        """Scan for ``duration_ms`` (0: forever, None: stop); results via _IRQ_SCAN_RESULT."""
        self._require()
        if duration_ms is None:
            self._queue(self._stop_scan)
            return
        if window_us > interval_us:
            raise OSError(errno.EINVAL, "window longer than interval")

        async def start() -> None:
            device = self._require()
            if self._scanning:
                await self._stop_scan(report=False)
            await device.start_scanning(
                legacy=True,
                active=active,
                scan_interval=interval_us / 1000.0,
                scan_window=window_us / 1000.0,
                filter_duplicates=False,
            )
            self._scanning = True
            if duration_ms:
                loop = asyncio.get_running_loop()
                self._scan_timer = loop.call_later(duration_ms / 1000.0, lambda: self._queue(self._stop_scan))

        self._queue(start)

    async def _stop_scan(self, report: bool = True) -> None:
        if self._scan_timer is not None:
            self._scan_timer.cancel()
            self._scan_timer = None
        device = self._device
        was = self._scanning
        self._scanning = False
        if device is not None and was:
            await device.stop_scanning()
        if report and was:
            self._irq_call(_IRQ_SCAN_DONE, ())

    def _on_report(self, report: Any) -> None:
        if not self._scanning or not isinstance(report, hci.HCI_LE_Advertising_Report_Event.Report):
            return
        # Like MicroPython: addr and adv_data are memoryviews into a reused buffer,
        # valid only during the IRQ (copy them to keep them).
        addr = _addr_bytes(report.address)
        data = bytes(report.data)
        buf = self._scan_buf
        buf[0:6] = addr
        buf[6 : 6 + len(data)] = data
        view = memoryview(buf)
        self._irq_call(
            _IRQ_SCAN_RESULT,
            (
                1 if report.address.is_random else 0,
                view[0:6],
                int(report.event_type),
                int(report.rssi),
                view[6 : 6 + len(data)],
            ),
        )

    def gap_disconnect(self, conn_handle: int) -> bool:
        """Disconnect ``conn_handle``; False if there is no such connection."""
        self._require()
        connection = self._conns.get(conn_handle)
        if connection is None:
            return False

        async def disconnect() -> None:
            if conn_handle in self._conns:
                await connection.disconnect()

        self._queue(disconnect)
        return True

    def gap_pair(self, conn_handle: int) -> None:
        """Initiate pairing on ``conn_handle`` (security request as peripheral)."""
        self._require()
        connection = self._conns.get(conn_handle)
        if connection is None:
            raise OSError(errno.ENOTCONN, "not connected")
        self._queue(connection.pair)

    def gap_passkey(self, conn_handle: int, action: int, passkey: int) -> None:
        """Answer an _IRQ_PASSKEY_ACTION (passkey to input, or accept a comparison)."""
        waiting = self._passkey_waits.get(conn_handle)
        if waiting is None or waiting[0] != action:
            raise OSError(errno.EINVAL, "no such passkey action pending")
        if not waiting[1].done():
            waiting[1].set_result(passkey)

    # -- connections -------------------------------------------------------------------------
    def _on_connection(self, connection: Connection) -> None:
        if connection.role != hci.Role.PERIPHERAL:
            return
        handle = connection.handle
        self._conns[handle] = connection
        self._security[handle] = _Security()
        addr_type = 1 if connection.peer_address.is_random else 0
        connection.on(
            Connection.EVENT_DISCONNECTION,
            lambda _reason, c=connection: self._on_disconnection(c, addr_type),
        )
        connection.on(
            Connection.EVENT_CONNECTION_ATT_MTU_UPDATE,
            lambda c=connection: self._irq_call(_IRQ_MTU_EXCHANGED, (c.handle, c.att_mtu)),
        )
        connection.on(Connection.EVENT_CONNECTION_PARAMETERS_UPDATE, lambda c=connection: self._on_params(c))
        connection.on(
            Connection.EVENT_CONNECTION_ENCRYPTION_CHANGE, lambda c=connection: self._on_encryption(c)
        )
        connection.on(Connection.EVENT_PAIRING_START, lambda c=connection: self._on_pairing_start(c))
        connection.on(Connection.EVENT_PAIRING, lambda keys, c=connection: self._on_pairing(c, keys))
        connection.on(Connection.EVENT_PAIRING_FAILURE, lambda _r, c=connection: self._on_pairing_failure(c))
        self._irq_call(
            _IRQ_CENTRAL_CONNECT, (handle, addr_type, memoryview(_addr_bytes(connection.peer_address)))
        )

    def _on_disconnection(self, connection: Connection, addr_type: int) -> None:
        handle = connection.handle
        if self._conns.get(handle) is not connection:
            return
        del self._conns[handle]
        self._security.pop(handle, None)
        self._irq_call(
            _IRQ_CENTRAL_DISCONNECT, (handle, addr_type, memoryview(_addr_bytes(connection.peer_address)))
        )

    def _on_params(self, connection: Connection) -> None:
        p = connection.parameters
        interval = round(p.connection_interval / 1.25)
        timeout = round(p.supervision_timeout / 10)
        self._irq_call(
            _IRQ_CONNECTION_UPDATE, (connection.handle, interval, p.peripheral_latency, timeout, 0)
        )

    def _on_pairing_start(self, connection: Connection) -> None:
        sec = self._security.get(connection.handle)
        if sec is not None:
            sec.pairing = True

    def _on_pairing(self, connection: Connection, keys: PairingKeys) -> None:
        ltk = keys.ltk or keys.ltk_peripheral
        mitm = bool(ltk and ltk.authenticated)
        self._mitm_peers[str(connection.peer_address)] = mitm
        sec = self._security.get(connection.handle)
        if sec is None:
            return
        sec.pairing = False
        sec.authenticated = sec.encrypted and mitm
        sec.bonded = self._bond
        self._irq_encryption(connection, sec)

    def _on_pairing_failure(self, connection: Connection) -> None:
        sec = self._security.get(connection.handle)
        if sec is not None:
            sec.pairing = False
            self._irq_encryption(connection, sec)

    def _on_encryption(self, connection: Connection) -> None:
        sec = self._security.get(connection.handle)
        if sec is None:
            return
        sec.encrypted = bool(connection.encryption)
        sec.key_size = connection.encryption_key_size if sec.encrypted else 0
        known = self._mitm_peers.get(str(connection.peer_address))
        if known is None and sec.encrypted and not sec.pairing and self._device is not None:
            keystore = self._device.keystore
            if isinstance(keystore, _IrqKeyStore):
                keys = keystore.mem.get(str(connection.peer_address))
                ltk = keys and (keys.ltk or keys.ltk_peripheral)
                known = bool(ltk and ltk.authenticated)
        sec.authenticated = sec.encrypted and bool(known)
        sec.bonded = sec.encrypted and self._bond
        if not sec.pairing:
            self._irq_encryption(connection, sec)

    def _irq_encryption(self, connection: Connection, sec: _Security) -> None:
        self._irq_call(
            _IRQ_ENCRYPTION_UPDATE,
            (connection.handle, sec.encrypted, sec.authenticated, sec.bonded, sec.key_size),
        )

    # -- GATT server --------------------------------------------------------------------------
    def gatts_register_services(self, services_definition: Any) -> tuple[tuple[int, ...], ...]:
        """Register services; returns the value handles per service (MicroPython layout)."""
        device = self._require()
        if self._registered:
            raise OSError(errno.EALREADY, "services already registered (virtual radio: once per activation)")
        built: list[tuple[Service, list[tuple[Characteristic | Descriptor, _Value]]]] = []
        for service_def in services_definition:
            service_uuid, chars_def = service_def[0], service_def[1]
            characteristics: list[Characteristic] = []
            entries: list[tuple[Characteristic | Descriptor, _Value]] = []
            for char_def in chars_def:
                uuid, flags = char_def[0], int(char_def[1])
                descs_def = char_def[2] if len(char_def) > 2 else ()
                value = _Value(flags, False)
                char = Characteristic(
                    UUID(uuid)._bumble,
                    Characteristic.Properties(flags & 0x7F),
                    Characteristic.READABLE | Characteristic.WRITEABLE,
                    att.AttributeValue(read=self._reader(value), write=self._writer(value)),
                )
                descriptors: list[Descriptor] = []
                if flags & (FLAG_NOTIFY | FLAG_INDICATE):
                    descriptors.append(self._cccd(char, flags))
                desc_entries: list[tuple[Characteristic | Descriptor, _Value]] = []
                for desc_def in descs_def:
                    dvalue = _Value(int(desc_def[1]), True)
                    desc = Descriptor(
                        UUID(desc_def[0])._bumble,
                        Descriptor.READABLE | Descriptor.WRITEABLE,
                        att.AttributeValue(read=self._reader(dvalue), write=self._writer(dvalue)),
                    )
                    descriptors.append(desc)
                    desc_entries.append((desc, dvalue))
                char.descriptors = descriptors
                characteristics.append(char)
                entries.append((char, value))
                entries.extend(desc_entries)
            built.append((Service(UUID(service_uuid)._bumble, characteristics), entries))
        result: list[tuple[int, ...]] = []
        for service, entries in built:
            device.add_service(service)
            handles: list[int] = []
            for attribute, value in entries:
                value.handle = attribute.handle
                self._values[attribute.handle] = value
                handles.append(attribute.handle)
            result.append(tuple(handles))
        self._registered = True
        return tuple(result)

    def _cccd(self, char: Characteristic, flags: int) -> Descriptor:
        protect_flags = flags & (
            FLAG_READ_ENCRYPTED | FLAG_READ_AUTHENTICATED | FLAG_WRITE_ENCRYPTED | FLAG_WRITE_AUTHENTICATED
        )
        device = self._require()

        def read(bearer: Any) -> bytes:
            return device.gatt_server.read_cccd(bearer, char)

        def write(bearer: Any, value: bytes) -> None:
            # Subscribing to a protected characteristic needs the same security.
            connection = bearer.connection if att.is_enhanced_bearer(bearer) else bearer
            self._check(connection, protect_flags, read=True)
            device.gatt_server.write_cccd(bearer, char, value)

        return Descriptor(
            core.UUID.from_16_bits(0x2902),
            Descriptor.READABLE | Descriptor.WRITEABLE,
            att.AttributeValueV2(read=read, write=write),
        )

    def _check(self, connection: Connection, flags: int, read: bool) -> None:
        enc = FLAG_READ_ENCRYPTED if read else FLAG_WRITE_ENCRYPTED
        auth = FLAG_READ_AUTHENTICATED if read else FLAG_WRITE_AUTHENTICATED
        authz = FLAG_READ_AUTHORIZED if read else FLAG_WRITE_AUTHORIZED
        if not flags & (enc | auth | authz):
            return
        sec = self._security.get(connection.handle) or _Security()
        if flags & (enc | auth) and not sec.encrypted:
            raise att.ATT_Error(att.ATT_INSUFFICIENT_ENCRYPTION_ERROR)
        if flags & auth and not sec.authenticated:
            raise att.ATT_Error(att.ATT_INSUFFICIENT_AUTHENTICATION_ERROR)
        if flags & authz:
            raise att.ATT_Error(att.ATT_INSUFFICIENT_AUTHORIZATION_ERROR)

    def _reader(self, value: _Value) -> Callable[[Connection], bytes]:
        def read(connection: Connection) -> bytes:
            if not value.is_descriptor and not value.flags & FLAG_READ:
                raise att.ATT_Error(att.ATT_READ_NOT_PERMITTED_ERROR)
            self._check(connection, value.flags, read=True)
            return bytes(value.data)

        return read

    def _writer(self, value: _Value) -> Callable[[Connection, bytes], None]:
        def write(connection: Connection, data: bytes) -> None:
            if not value.is_descriptor and not value.flags & (FLAG_WRITE | FLAG_WRITE_NO_RESPONSE):
                raise att.ATT_Error(att.ATT_WRITE_NOT_PERMITTED_ERROR)
            self._check(connection, value.flags, read=False)
            if value.append:
                room = value.alloc - len(value.data)
                value.data += data[: max(0, room)]
            else:
                value.data = bytearray(data[: value.alloc])
            self._irq_call(_IRQ_GATTS_WRITE, (connection.handle, value.handle))

        return write

    def _value(self, value_handle: int) -> _Value:
        value = self._values.get(value_handle)
        if value is None:
            raise OSError(errno.EINVAL, "invalid handle")
        return value

    def gatts_read(self, value_handle: int) -> bytes:
        """The local value of ``value_handle``."""
        self._require()
        return bytes(self._value(value_handle).data)

    def gatts_write(self, value_handle: int, data: Any, send_update: bool = False) -> None:
        """Set the local value; with ``send_update``, notify/indicate subscribed centrals."""
        self._require()
        value = self._value(value_handle)
        raw = bytes(data)
        value.data = bytearray(raw)
        value.alloc = max(value.alloc, len(raw))
        if send_update:
            device = self._require()
            for handle, connection in list(self._conns.items()):
                cccd = device.gatt_server.subscribers.get(connection, {}).get(value_handle, b"\x00\x00")
                if cccd[0] & 0x01:
                    self.gatts_notify(handle, value_handle, raw)
                elif cccd[0] & 0x02:
                    self.gatts_indicate(handle, value_handle, raw)

    def gatts_set_buffer(self, value_handle: int, buf_len: int, append: bool = False) -> None:
        """Size of the buffer receiving central writes (default 20; writes are truncated)."""
        self._require()
        value = self._value(value_handle)
        value.alloc = int(buf_len)
        value.append = bool(append)
        del value.data[value.alloc :]

    def gatts_notify(self, conn_handle: int, value_handle: int, data: Any = None) -> None:
        """Send a notification (regardless of the CCCD, like NimBLE); OSError(ENOMEM) when
        the controller's buffers are full: retry later."""
        device = self._require()
        connection = self._conns.get(conn_handle)
        if connection is None:
            raise OSError(errno.ENOTCONN, "not connected")
        value = self._value(value_handle)
        payload = bytes(value.data) if data is None else bytes(data)
        payload = payload[: connection.att_mtu - 3]
        queue = device.host.le_acl_packet_queue
        if queue is not None:
            pending_bytes = queue.pending * queue.max_packet_size
            if pending_bytes + len(payload) + 7 > self._tx_buffer:
                raise OSError(errno.ENOMEM, "no buffer")
        pdu = att.ATT_Handle_Value_Notification(attribute_handle=value_handle, attribute_value=payload)
        device.send_l2cap_pdu(conn_handle, att.ATT_CID, bytes(pdu))

    def gatts_indicate(self, conn_handle: int, value_handle: int, data: Any = None) -> None:
        """Send an indication; _IRQ_GATTS_INDICATE_DONE reports the confirmation."""
        device = self._require()
        connection = self._conns.get(conn_handle)
        if connection is None:
            raise OSError(errno.ENOTCONN, "not connected")
        value = self._value(value_handle)
        payload = bytes(value.data) if data is None else bytes(data)
        attribute = device.gatt_server.get_attribute(value_handle)
        assert attribute is not None

        async def indicate() -> None:
            status = 0
            try:
                await device.gatt_server.indicate_subscriber(connection, attribute, payload, force=True)
            except Exception:  # noqa: BLE001 - reported through the IRQ status
                status = errno.ETIMEDOUT
            self._irq_call(_IRQ_GATTS_INDICATE_DONE, (conn_handle, value_handle, status))

        asyncio.get_running_loop().create_task(indicate())
