"""A Bumble-backed bleak backend: host code keeps bleak's public API on the virtual radio.

Usage::

    adapter = BumbleAdapter("tcp-client:127.0.0.1:9001")      # or Radio.endpoint("host")
    await adapter.open()
    async with BleakScanner(service_uuids=[SVC], backend=adapter.scanner_backend) as s: ...
    async with BleakClient(device, backend=adapter.client_backend) as client: ...

``adapter.scanner_backend``/``adapter.client_backend`` are backend classes bound to
that adapter. The plain classes :class:`BumbleBleakScanner`/:class:`BumbleBleakClient`
use ``adapter=`` from the keyword arguments, else the process default adapter
(:func:`set_default_adapter`, or opened lazily from the ``MIRRORBAND_HOST_HCI``
environment variable).

Behaviour follows the BlueZ backend where the virtual radio allows it: scans merge
scan responses into the advertisement data and filter by service UUID; ``connect``
exchanges the MTU (247 by default, ``mtu=23`` to skip) and discovers services;
a bonded peer is re-encrypted on reconnection; ATT errors raise
:class:`bleak.exc.BleakGATTProtocolError`; the disconnected callback runs only on
unsolicited disconnections. Pairing uses the adapter's pairing delegate (Just Works
unless another is given).

Threading: one asyncio loop; the adapter must be used from the loop that opened it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any, Literal

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CHARACTERISTIC_PROPERTIES, CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bumble import core, hci
from bumble.core import AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy, ServiceProxy
from bumble.host import Host
from bumble.keys import MemoryKeyStore
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport import open_transport

logger = logging.getLogger(__name__)

#: Environment variable with the HCI transport spec of the default adapter.
ENV_HCI = "MIRRORBAND_HOST_HCI"

_default_adapter: BumbleAdapter | None = None


def _uuid_str(uuid: core.UUID) -> str:
    raw = bytes(reversed(uuid.to_bytes(force_128=True))).hex()
    return f"{raw[0:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:32]}"


def _address_str(address: hci.Address) -> str:
    return address.to_string(with_type_qualifier=False)


def advertisement_data(adv: Advertisement) -> AdvertisementData:
    """Convert a Bumble advertisement to bleak's :class:`AdvertisementData`."""
    data = adv.data
    name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(AdvertisingData.SHORTENED_LOCAL_NAME)
    manufacturer: dict[int, bytes] = {}
    for item in data.get_all(AdvertisingData.MANUFACTURER_SPECIFIC_DATA, raw=True):
        raw = bytes(item)  # type: ignore[arg-type]
        if len(raw) >= 2:
            manufacturer[int.from_bytes(raw[:2], "little")] = raw[2:]
    service_data: dict[str, bytes] = {}
    for kind, size in (
        (AdvertisingData.SERVICE_DATA_16_BIT_UUID, 2),
        (AdvertisingData.SERVICE_DATA_32_BIT_UUID, 4),
        (AdvertisingData.SERVICE_DATA_128_BIT_UUID, 16),
    ):
        for item in data.get_all(kind, raw=True):
            raw = bytes(item)  # type: ignore[arg-type]
            if len(raw) >= size:
                service_data[_uuid_str(core.UUID.from_bytes(raw[:size]))] = raw[size:]
    uuids: list[str] = []
    for kind in (
        AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    ):
        for group in data.get_all(kind):
            for uuid in group if isinstance(group, list) else [group]:
                text = _uuid_str(uuid)  # type: ignore[arg-type]
                if text not in uuids:
                    uuids.append(text)
    tx_power = data.get(AdvertisingData.TX_POWER_LEVEL)
    return AdvertisementData(
        local_name=str(name) if name is not None else None,
        manufacturer_data=manufacturer,
        service_data=service_data,
        service_uuids=uuids,
        tx_power=int(tx_power) if isinstance(tx_power, int) else None,  # type: ignore[arg-type]
        rssi=adv.rssi,
        platform_data=(adv,),
    )


class BumbleAdapter:
    """A host-side Bluetooth adapter: a Bumble host stack on one virtual controller.

    Args:
        hci_transport: Bumble transport spec (``tcp-client:127.0.0.1:PORT``) or an
            in-process ``(source, sink)`` pair (:meth:`mirrorband.sim.vradio.hub.Radio.endpoint`).
        name: GAP name of the adapter.
        address: random static address (derived from ``name`` when omitted).
        pairing_delegate: Bumble pairing delegate (IO capabilities, passkeys);
            Just Works when omitted.
        mitm: request MITM protection when pairing.
    """

    def __init__(
        self,
        hci_transport: Any,
        *,
        name: str = "mirrorband-host",
        address: str | None = None,
        pairing_delegate: PairingDelegate | None = None,
        mitm: bool = True,
    ) -> None:
        from mirrorband.sim.vradio.mpble import _static_address  # same address scheme

        self._hci = hci_transport
        self.address = (
            hci.Address(address, hci.Address.RANDOM_DEVICE_ADDRESS) if address else _static_address(name)
        )
        self.name = name
        self.pairing_delegate = pairing_delegate or PairingDelegate()
        self.mitm = mitm
        self.device: Device | None = None
        self._transport: Any = None
        self._open_lock: asyncio.Lock | None = None
        self._scanners = 0
        self._scan_active = False

    @property
    def is_open(self) -> bool:
        """Whether the adapter is powered on."""
        return self.device is not None

    async def open(self) -> Device:
        """Power the adapter on (idempotent); returns the Bumble device."""
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self.device is not None:
                return self.device
            try:
                if isinstance(self._hci, str):
                    self._transport = await open_transport(self._hci)
                    source, sink = self._transport.source, self._transport.sink
                else:
                    source, sink = self._hci
            except Exception as exc:
                raise BleakError(f"virtual radio not reachable at {self._hci!r}: {exc}") from exc
            host = Host(source, sink)
            device = Device(name=self.name, address=self.address, host=host)
            device.keystore = MemoryKeyStore()
            device.pairing_config_factory = lambda _c: PairingConfig(
                sc=True, mitm=self.mitm, bonding=True, delegate=self.pairing_delegate
            )
            await device.power_on()
            self.device = device
            return device

    async def close(self) -> None:
        """Disconnect everything and release the transport."""
        device = self.device
        self.device = None
        if device is not None:
            for connection in list(device.connections.values()):
                with contextlib.suppress(Exception):
                    await connection.disconnect()
            with contextlib.suppress(Exception):
                await device.power_off()
        if self._transport is not None:
            with contextlib.suppress(Exception):
                await self._transport.close()
            self._transport = None

    async def _scan(self, active: bool) -> None:
        device = await self.open()
        if self._scanners and self._scan_active == active:
            self._scanners += 1
            return
        if self._scanners:
            await device.stop_scanning()
        self._scan_active = active
        self._scanners += 1
        await device.start_scanning(legacy=True, active=active, filter_duplicates=False)

    async def _unscan(self) -> None:
        if self._scanners == 0:
            return
        self._scanners -= 1
        if self._scanners == 0 and self.device is not None:
            await self.device.stop_scanning()

    @property
    def scanner_backend(self) -> type[BumbleBleakScanner]:
        """A :class:`BumbleBleakScanner` subclass bound to this adapter (for ``backend=``)."""
        adapter = self

        class BoundScanner(BumbleBleakScanner):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs.setdefault("adapter", adapter)
                super().__init__(*args, **kwargs)

        BoundScanner.__name__ = "BumbleBleakScanner"
        return BoundScanner

    @property
    def client_backend(self) -> type[BumbleBleakClient]:
        """A :class:`BumbleBleakClient` subclass bound to this adapter (for ``backend=``)."""
        adapter = self

        class BoundClient(BumbleBleakClient):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs.setdefault("adapter", adapter)
                super().__init__(*args, **kwargs)

        BoundClient.__name__ = "BumbleBleakClient"
        return BoundClient


def set_default_adapter(adapter: BumbleAdapter | None) -> None:
    """Set the adapter used by backends created without ``adapter=``."""
    global _default_adapter
    _default_adapter = adapter


def get_default_adapter() -> BumbleAdapter:
    """The default adapter (from ``MIRRORBAND_HOST_HCI`` when none was set)."""
    global _default_adapter
    if _default_adapter is None:
        spec = os.environ.get(ENV_HCI)
        if not spec:
            raise BleakError(f"no virtual radio adapter: set {ENV_HCI} or call set_default_adapter()")
        _default_adapter = BumbleAdapter(spec)
    return _default_adapter


class BumbleBleakScanner(BaseBleakScanner):
    """bleak scanner backend on a :class:`BumbleAdapter`."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"],
        *,
        adapter: BumbleAdapter | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._adapter = adapter or get_default_adapter()
        self._active = scanning_mode != "passive"
        self._listening = False

    async def start(self) -> None:
        """Start scanning (clears the seen devices)."""
        self.seen_devices = {}
        device = await self._adapter.open()
        device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        self._listening = True
        try:
            await self._adapter._scan(self._active)
        except Exception:
            device.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
            self._listening = False
            raise

    async def stop(self) -> None:
        """Stop scanning."""
        device = self._adapter.device
        if self._listening and device is not None:
            device.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
            self._listening = False
            await self._adapter._unscan()

    def _on_advertisement(self, adv: Advertisement) -> None:
        data = advertisement_data(adv)
        if not self.is_allowed_uuid(data.service_uuids):
            return
        address = _address_str(adv.address)
        device = self.create_or_update_device(address, address, data.local_name, adv.address, data)
        self.call_detection_callbacks(device, data)


class BumbleBleakClient(BaseBleakClient):
    """bleak client backend on a :class:`BumbleAdapter`.

    Extra keyword arguments: ``adapter`` (else the default adapter) and ``mtu``
    (ATT MTU requested after connecting, default 247; 23 skips the exchange).
    """

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        services: set[str] | None = None,
        timeout: float = 10.0,
        adapter: BumbleAdapter | None = None,
        mtu: int = 247,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self._adapter = adapter or get_default_adapter()
        self._target: hci.Address | None = None
        if isinstance(address_or_ble_device, BLEDevice) and isinstance(
            address_or_ble_device.details, hci.Address
        ):
            self._target = address_or_ble_device.details
        self._name = address_or_ble_device.name if isinstance(address_or_ble_device, BLEDevice) else None
        self._requested_services = services
        self._mtu = mtu
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._closing = False
        self._subscriptions: dict[int, Callable[[bytes], None]] = {}

    # -- connection ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The peer's name (from the advertisement), else its address."""
        return self._name or self.address

    @property
    def mtu_size(self) -> int:
        """The negotiated ATT MTU."""
        return self._connection.att_mtu if self._connection is not None else 23

    @property
    def is_connected(self) -> bool:
        """Whether the link is up."""
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        """Connect, exchange the MTU, re-encrypt a bonded peer, discover services."""
        device = await self._adapter.open()
        target = self._target or hci.Address(self.address, hci.Address.RANDOM_DEVICE_ADDRESS)
        timeout = kwargs.get("timeout", self._timeout)
        try:
            connection = await device.connect(target, timeout=timeout)
        except core.TimeoutError as exc:
            raise BleakDeviceNotFoundError(
                self.address, f"device {self.address} not found (out of range?)"
            ) from exc
        except core.ConnectionError as exc:
            raise BleakError(f"connection to {self.address} failed: {exc}") from exc
        self._connection = connection
        self._closing = False
        connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)
        self._peer = Peer(connection)
        try:
            if self._mtu > 23:
                await self._peer.request_mtu(self._mtu)
            keystore = device.keystore
            if keystore is not None and await keystore.get(str(connection.peer_address)) is not None:
                await self._encrypt(connection)
            if pair:
                await self.pair()
            await self._discover()
        except Exception:
            with contextlib.suppress(Exception):
                await self.disconnect()
            raise

    async def _encrypt(self, connection: Connection) -> None:
        # Re-encrypt with the bond's key; a wrong key ends the link (MIC failure).
        try:
            await connection.encrypt()
        except asyncio.CancelledError:
            if self._connection is connection:
                raise  # a real cancellation
            raise BleakError(f"{self.address} dropped the link while encrypting (stale bond?)") from None
        except (core.BaseBumbleError, hci.HCI_Error) as exc:
            raise BleakError(f"encryption with {self.address} failed: {exc}") from exc

    def _on_disconnection(self, _reason: int) -> None:
        unsolicited = not self._closing
        self._connection = None
        self._peer = None
        self._subscriptions.clear()
        if unsolicited and self._disconnected_callback is not None:
            asyncio.get_running_loop().call_soon(self._disconnected_callback)

    async def disconnect(self) -> None:
        """Disconnect (no-op when not connected)."""
        connection = self._connection
        if connection is None:
            return
        self._closing = True
        with contextlib.suppress(core.BaseBumbleError, hci.HCI_Error):
            await connection.disconnect()
        self._connection = None
        self._peer = None

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Pair (and bond) with the peer using the adapter's pairing delegate."""
        connection = self._require()
        try:
            await connection.pair()
        except core.BaseBumbleError as exc:
            raise BleakError(f"pairing with {self.address} failed: {exc}") from exc

    async def unpair(self) -> None:
        """Forget the bond and disconnect."""
        device = await self._adapter.open()
        if self._connection is not None:
            name = str(self._connection.peer_address)
        else:
            name = str(self._target or hci.Address(self.address, hci.Address.RANDOM_DEVICE_ADDRESS))
        if device.keystore is not None:
            await device.keystore.delete(name)
        await self.disconnect()

    def _require(self) -> Connection:
        if self._connection is None:
            raise BleakError("not connected")
        return self._connection

    def _require_peer(self) -> Peer:
        self._require()
        assert self._peer is not None
        return self._peer

    # -- services -----------------------------------------------------------------------------
    async def _discover(self) -> None:
        peer = self._require_peer()
        collection = BleakGATTServiceCollection()
        await self._call(peer.discover_services())
        for service in peer.services:
            uuid = _uuid_str(service.uuid)
            if self._requested_services and uuid not in self._requested_services:
                continue
            await self._call(service.discover_characteristics())
            bservice = BleakGATTService(service, service.handle, uuid)
            collection.add_service(bservice)
            for char in service.characteristics:
                await self._call(char.discover_descriptors())
                props: list[CharacteristicPropertyName] = [
                    name for bit, name in CHARACTERISTIC_PROPERTIES.items() if int(char.properties) & bit
                ]
                bchar = BleakGATTCharacteristic(
                    char, char.handle, _uuid_str(char.uuid), props, lambda: self.mtu_size - 3, bservice
                )
                collection.add_characteristic(bchar)
                for desc in char.descriptors:
                    collection.add_descriptor(
                        BleakGATTDescriptor(desc, desc.handle, _uuid_str(desc.type), bchar)
                    )
        self.services = collection

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except core.ProtocolError as exc:
            if exc.error_namespace == "att" and isinstance(exc.error_code, int):
                raise BleakGATTProtocolError(exc.error_code) from exc
            raise BleakError(str(exc)) from exc
        except core.TimeoutError as exc:
            raise TimeoutError(f"GATT operation timed out on {self.address}") from exc
        except (core.BaseBumbleError, hci.HCI_Error) as exc:
            raise BleakError(str(exc)) from exc

    # -- I/O ---------------------------------------------------------------------------------------
    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        """Read a characteristic value (long reads included)."""
        peer = self._require_peer()
        return bytearray(await self._call(peer.read_value(characteristic.handle)))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        """Read a descriptor."""
        peer = self._require_peer()
        return bytearray(await self._call(peer.read_value(descriptor.handle)))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        """Write a characteristic value, with or without response."""
        peer = self._require_peer()
        await self._call(peer.write_value(characteristic.handle, bytes(data), with_response=response))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        """Write a descriptor (with response)."""
        peer = self._require_peer()
        await self._call(peer.write_value(descriptor.handle, bytes(data), with_response=True))

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        """Subscribe (notifications preferred over indications)."""
        peer = self._require_peer()
        proxy = characteristic.obj
        assert isinstance(proxy, CharacteristicProxy)

        def on_value(value: bytes) -> None:
            callback(bytearray(value))

        old = self._subscriptions.pop(characteristic.handle, None)
        if old is not None:
            self._forget(peer, characteristic.handle, old)
        self._subscriptions[characteristic.handle] = on_value
        try:
            await self._call(peer.subscribe(proxy, on_value, prefer_notify=True))
        except Exception:
            self._subscriptions.pop(characteristic.handle, None)
            self._forget(peer, characteristic.handle, on_value)
            raise

    @staticmethod
    def _forget(peer: Peer, handle: int, subscriber: Callable[[bytes], None]) -> None:
        client = peer.gatt_client
        for table in (client.notification_subscribers, client.indication_subscribers):
            table.get(handle, set()).discard(subscriber)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        """Unsubscribe."""
        peer = self._require_peer()
        proxy = characteristic.obj
        assert isinstance(proxy, CharacteristicProxy)
        subscriber = self._subscriptions.pop(characteristic.handle, None)
        if subscriber is not None:
            self._forget(peer, characteristic.handle, subscriber)
        await self._call(peer.gatt_client.unsubscribe(proxy, None, force=True))


__all__ = [
    "BumbleAdapter",
    "BumbleBleakClient",
    "BumbleBleakScanner",
    "ServiceProxy",
    "advertisement_data",
    "get_default_adapter",
    "set_default_adapter",
]


def virtual_controller(hci: str, **kw: Any) -> Any:
    """A :class:`~mirrorband.control.blecontroller.BleController` on the virtual radio's host
    controller ``hci`` (a Bumble transport spec): bleak's backends are injected here, so the
    controller itself never imports the simulator."""
    from mirrorband.control.blecontroller import BleController

    adapter = BumbleAdapter(hci)
    kw.setdefault("description", "virtual bands on the virtual radio")
    return BleController(scanner_backend=adapter.scanner_backend, client_backend=adapter.client_backend,
                         adapter=adapter, **kw)
