"""Radio hub: Bumble virtual controllers on one link, with a timing model and faults.

The hub owns a :class:`bumble.link.LocalLink` and one :class:`VirtualController` per
radio (band or host adapter). A Bumble host stack reaches its controller either

- in-process: :meth:`Radio.endpoint` returns an HCI ``(source, sink)`` pair for
  ``bumble.host.Host`` (what tests use), or
- over TCP: :meth:`Radio.serve` listens on ``127.0.0.1:PORT`` and speaks H4 HCI, the
  framing of Bumble's ``tcp-client:127.0.0.1:PORT`` transport
  (``python -m mirrorband.sim.vradio.hub`` runs that as a process).

Everything runs on one asyncio loop. Bumble's stock controller is fixed here where
it would mislead the firmware or the host: legacy advertising types
(``ADV_IND``/``ADV_SCAN_IND``/``ADV_NONCONN_IND``) are carried and reported as such,
non-connectable advertisers refuse connections, scan responses carry the scan
response data and only reach active scanners, duplicate filtering works, the
advertising interval uses 0.625 ms units, a cancelled connection attempt completes,
``HCI_Reset`` really resets, and when the host of a controller goes away (its TCP
client dies) its links are dropped so the peers see a supervision timeout and the
controller accepts a new host.

Timing (:class:`LinkTiming`): Bumble's link delivers as fast as the CPU. With a
timing model, every connection transmits in connection events every
``interval_ms``, at most ``packets_per_event`` link-layer packets per event and
direction, ``ll_payload`` bytes per packet (251 with data length extension);
``loss`` is the probability that a packet must be retransmitted in a later slot.
The controller reports completed HCI packets only when they left over the air, so
host-side flow control (and MicroPython's ``ENOMEM`` on notify) behaves like on a
real controller. A timed scanner hears advertisements only inside its scan window
(``window/interval`` duty cycle), so MicroPython's default passive scan (11.25 ms
every 1.28 s) misses most beacons, as it would on a band.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import logging
import math
import random
import signal
import sys
from collections.abc import Callable
from typing import Any

from bumble import hci, ll
from bumble.controller import Connection, Controller, LegacyAdvertiser
from bumble.core import PhysicalTransport
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink, PacketParser

logger = logging.getLogger(__name__)

#: Reason reported to both ends when the hub drops a link (supervision timeout).
CONNECTION_TIMEOUT = hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR

# Advertising types of LE Set Advertising Parameters (Core Vol 4 Part E 7.8.5).
_ADV_IND = 0x00
_ADV_SCAN_IND = 0x02
_ADV_NONCONN_IND = 0x03
_REPORT_TYPE = hci.HCI_LE_Advertising_Report_Event.EventType
# Advertising type -> legacy report event type.
_REPORT_OF_ADV = {
    _ADV_IND: int(_REPORT_TYPE.ADV_IND),
    _ADV_SCAN_IND: int(_REPORT_TYPE.ADV_SCAN_IND),
    _ADV_NONCONN_IND: int(_REPORT_TYPE.ADV_NONCONN_IND),
}
_CONNECTABLE = (_ADV_IND,)
_SCANNABLE = (_ADV_IND, _ADV_SCAN_IND)


@dataclasses.dataclass(frozen=True)
class LinkTiming:
    """Air-time model of a connection (per direction).

    Attributes:
        interval_ms: connection interval in milliseconds (default 15 ms).
        packets_per_event: link-layer packets per connection event and direction.
        ll_payload: link-layer payload bytes per packet (251 with DLE, 27 without).
        loss: probability that a packet is lost and retransmitted in a later slot.
        adv_jitter_ms: extra random delay added to each advertising interval
            (0..10 ms in the Core spec; 0 keeps tests deterministic).
        seed: seed of the loss/jitter random generator.
    """

    interval_ms: float = 15.0
    packets_per_event: int = 4
    ll_payload: int = 251
    loss: float = 0.0
    adv_jitter_ms: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 7.5 <= self.interval_ms <= 4000.0:
            raise ValueError("interval_ms must be within 7.5..4000 ms")
        if not 1 <= self.packets_per_event <= 64:
            raise ValueError("packets_per_event must be within 1..64")
        if not 27 <= self.ll_payload <= 251:
            raise ValueError("ll_payload must be within 27..251")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError("loss must be within [0, 1)")
        if not 0.0 <= self.adv_jitter_ms <= 10.0:
            raise ValueError("adv_jitter_ms must be within 0..10 ms")

    def packets_for(self, pdu_len: int) -> int:
        """Link-layer packets needed for an L2CAP PDU of ``pdu_len`` bytes."""
        return max(1, math.ceil(pdu_len / self.ll_payload))


@dataclasses.dataclass
class LegacyAdvPdu(ll.AdvertisingPdu):
    """A legacy advertising event as seen on the air (with its scan response)."""

    advertiser_address: hci.Address
    adv_type: int
    data: bytes
    scan_response: bytes


class _Advertiser(LegacyAdvertiser):
    # Bumble's legacy advertiser only sends ADV_IND and reads the interval in ms.
    def _on_timer_fired(self) -> None:
        self.send_advertising_data()
        ctrl = self.controller
        assert isinstance(ctrl, VirtualController)
        delay = self.advertising_interval_min * 0.625 / 1000.0
        delay = max(delay, 0.02) + ctrl.radio.adv_jitter()
        self.timer_handle = asyncio.get_running_loop().call_later(delay, self._on_timer_fired)

    def send_advertising_data(self) -> None:
        if not self.enabled or self.advertising_type not in _REPORT_OF_ADV:
            return
        self.controller.send_advertising_pdu(
            LegacyAdvPdu(
                advertiser_address=self.address,
                adv_type=self.advertising_type,
                data=bytes(self.advertising_data),
                scan_response=bytes(self.scan_response_data),
            )
        )


@dataclasses.dataclass
class _TxQueue:
    # Data waiting for air time on one connection, one direction.
    connection: Connection
    assembler: hci.HCI_AclDataPacketAssembler
    pdus: collections.deque[tuple[bytes, int]] = dataclasses.field(default_factory=collections.deque)
    fragments: int = 0  # HCI fragments of the PDU being assembled
    head_left: int = -1  # LL packets still to send for the head PDU (-1: not started)
    timer: asyncio.TimerHandle | None = None


class VirtualController(Controller):
    """A Bumble controller with faithful legacy advertising, timing and faults."""

    le_features = (
        Controller.le_features
        & ~hci.LeFeatureMask.LE_EXTENDED_ADVERTISING
        & ~hci.LeFeatureMask.LE_PERIODIC_ADVERTISING
    )
    le_acl_data_packet_length = 251
    total_num_le_acl_data_packets = 12
    supported_max_tx_octets = 251
    supported_max_rx_octets = 251

    def __init__(self, name: str, radio: Radio) -> None:
        self.radio = radio
        super().__init__(name, link=radio.link)
        self.le_legacy_advertiser = _Advertiser(self)
        self._tx: dict[int, _TxQueue] = {}
        self._seen: set[tuple[hci.Address, int, bytes]] = set()
        self._anchor = asyncio.get_running_loop().time()
        self._scan_start = self._anchor

    # -- advertising and scanning ------------------------------------------------
    def on_ll_advertising_pdu(self, packet: ll.AdvertisingPdu) -> None:
        if isinstance(packet, LegacyAdvPdu):
            self._on_legacy_adv(packet)
        else:
            super().on_ll_advertising_pdu(packet)

    def _hears(self) -> bool:
        # Timed radio: a scanner only listens during its scan window of each interval.
        if not self.le_scan_enable:
            return False
        if self.radio.timing is None or self.le_scan_window >= self.le_scan_interval:
            return True
        interval = self.le_scan_interval * 0.000625
        phase = (asyncio.get_running_loop().time() - self._scan_start) % interval
        return phase < self.le_scan_window * 0.000625

    def _on_legacy_adv(self, pdu: LegacyAdvPdu) -> None:
        if self._hears():
            self._report(pdu.advertiser_address, _REPORT_OF_ADV[pdu.adv_type], pdu.data)
            if self.le_scan_type == 1 and pdu.adv_type in _SCANNABLE:
                self._report(pdu.advertiser_address, int(_REPORT_TYPE.SCAN_RSP), pdu.scan_response)
        pending = self.pending_le_connection
        if (
            pending is not None
            and pdu.adv_type in _CONNECTABLE
            and pending.peer_address == pdu.advertiser_address
        ):
            self.create_le_connection(pdu.advertiser_address)

    def _report(self, address: hci.Address, event_type: int, data: bytes) -> None:
        if self.filter_duplicates:
            key = (address, event_type, data)
            if key in self._seen:
                return
            self._seen.add(key)
        report = hci.HCI_LE_Advertising_Report_Event.Report(
            event_type=event_type,
            address_type=address.address_type,
            address=address,
            data=data,
            rssi=self.radio.rssi_of(self, address),
        )
        self.send_hci_packet(hci.HCI_LE_Advertising_Report_Event([report]))

    def on_hci_le_set_scan_enable_command(
        self, command: hci.HCI_LE_Set_Scan_Enable_Command
    ) -> hci.HCI_StatusReturnParameters:
        if getattr(command, "le_scan_enable", 0) and not self.le_scan_enable:
            self._seen.clear()
            self._scan_start = asyncio.get_running_loop().time()
        return super().on_hci_le_set_scan_enable_command(command)

    def on_le_connect_ind(self, packet: ll.ConnectInd) -> None:
        adv = self.le_legacy_advertiser
        if adv.address == packet.advertiser_address and adv.advertising_type not in _CONNECTABLE:
            return
        super().on_le_connect_ind(packet)

    def on_hci_le_create_connection_cancel_command(
        self, command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        pending = self.pending_le_connection
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        self.pending_le_connection = None
        # The spec: the cancelled attempt completes with Unknown Connection Identifier.
        asyncio.get_running_loop().call_soon(
            self.send_hci_packet,
            hci.HCI_LE_Connection_Complete_Event(
                status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
                connection_handle=0,
                role=hci.Role.CENTRAL,
                peer_address_type=pending.peer_address.address_type,
                peer_address=pending.peer_address,
                connection_interval=0,
                peripheral_latency=0,
                supervision_timeout=0,
                central_clock_accuracy=0,
            ),
        )
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)

    def on_hci_reset_command(self, command: hci.HCI_Reset_Command) -> hci.HCI_StatusReturnParameters:
        self.reset_state(notify_host=False)
        return super().on_hci_reset_command(command)

    # -- connections -------------------------------------------------------------
    def reset_state(self, notify_host: bool) -> None:
        """Stop advertising and scanning and drop every link (peers see a timeout)."""
        self.le_legacy_advertiser.stop()
        self.le_scan_enable = False
        self.pending_le_connection = None
        for connection in list(self.le_connections.values()):
            self.radio.drop(connection, notify_self=notify_host)

    def drop_link(self, connection: Connection, reason: int, notify_host: bool) -> None:
        """Forget ``connection`` (no LL exchange), reporting ``reason`` to our host."""
        queue = self._tx.pop(connection.handle, None)
        if queue is not None and queue.timer is not None:
            queue.timer.cancel()
        if self.le_connections.get(connection.peer_address) is not connection:
            return
        if notify_host:
            self.on_le_disconnected(connection, reason)
        else:
            del self.le_connections[connection.peer_address]

    def on_le_disconnected(self, connection: Connection, reason: int) -> None:
        queue = self._tx.pop(connection.handle, None)
        if queue is not None and queue.timer is not None:
            queue.timer.cancel()
        super().on_le_disconnected(connection, reason)

    # -- data path with timing and faults ----------------------------------------
    def on_hci_acl_data_packet(self, packet: hci.HCI_AclDataPacket) -> None:
        connection = self.find_le_connection_by_handle(packet.connection_handle)
        if connection is None:
            super().on_hci_acl_data_packet(packet)
            return
        queue = self._tx.get(connection.handle)
        if queue is None or queue.connection is not connection:
            queue = _TxQueue(connection, hci.HCI_AclDataPacketAssembler(lambda _pdu: None))
            queue.assembler.callback = lambda pdu, q=queue: self._on_pdu(q, pdu)
            self._tx[connection.handle] = queue
        queue.fragments += 1
        queue.assembler.feed_packet(packet)

    def _on_pdu(self, queue: _TxQueue, pdu: bytes) -> None:
        queue.pdus.append((pdu, queue.fragments))
        queue.fragments = 0
        if self.radio.timing is None:
            while queue.pdus and self._tx.get(queue.connection.handle) is queue:
                self._transmit(queue)
        elif queue.timer is None:
            self._schedule(queue)

    def _schedule(self, queue: _TxQueue) -> None:
        timing = self.radio.timing
        assert timing is not None
        loop = asyncio.get_running_loop()
        interval = timing.interval_ms / 1000.0
        now = loop.time()
        events = math.floor((now - self._anchor) / interval) + 1
        queue.timer = loop.call_at(self._anchor + events * interval, self._connection_event, queue)

    def _connection_event(self, queue: _TxQueue) -> None:
        queue.timer = None
        timing = self.radio.timing
        if self._tx.get(queue.connection.handle) is not queue:
            return
        if timing is None:
            while queue.pdus and self._tx.get(queue.connection.handle) is queue:
                self._transmit(queue)
            return
        slots = timing.packets_per_event
        while slots > 0 and queue.pdus:
            if queue.head_left < 0:
                queue.head_left = timing.packets_for(len(queue.pdus[0][0]))
            slots -= 1
            if timing.loss and self.radio.rng.random() < timing.loss:
                continue  # lost: retransmitted in a later slot
            queue.head_left -= 1
            if queue.head_left == 0:
                queue.head_left = -1
                self._transmit(queue)
                if self._tx.get(queue.connection.handle) is not queue:
                    return  # dropped by a fault
        if queue.pdus:
            self._schedule(queue)

    def _transmit(self, queue: _TxQueue) -> None:
        pdu, fragments = queue.pdus.popleft()
        connection = queue.connection
        self.send_hci_packet(
            hci.HCI_Number_Of_Completed_Packets_Event(
                connection_handles=[connection.handle], num_completed_packets=[fragments]
            )
        )
        if self.link is not None:
            self.link.send_acl_data(self, connection.peer_address, PhysicalTransport.LE, pdu)
        self.radio.on_pdu_sent(self, connection)


class _TcpHost(asyncio.Protocol):
    # One HCI client (a Bumble host on tcp-client:) of one controller.
    def __init__(self, server: _ControllerServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser: PacketParser | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self.server.client is not None:
            logger.warning("%s: refusing a second HCI client", self.server.controller.name)
            transport.close()
            return
        self.transport = transport
        self.server.client = self
        controller = self.server.controller
        self.parser = PacketParser(controller)
        controller.host = self  # type: ignore[assignment]  # TransportSink protocol

    def on_packet(self, packet: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(packet)

    def data_received(self, data: bytes) -> None:
        if self.parser is not None:
            self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.server.client is not self:
            return
        self.server.client = None
        self.transport = None
        controller = self.server.controller
        controller.host = None
        logger.info("%s: HCI client gone, dropping its links", controller.name)
        controller.reset_state(notify_host=False)


@dataclasses.dataclass
class _ControllerServer:
    controller: VirtualController
    server: asyncio.Server | None = None
    client: _TcpHost | None = None
    port: int = 0


class Radio:
    """The radio hub: virtual controllers on one link, timing model, faults.

    Create it inside a running asyncio loop. ``timing=None`` keeps Bumble's untimed
    link (as fast as the CPU).
    """

    def __init__(self, timing: LinkTiming | None = None, *, rssi: int = -50) -> None:
        self.link = LocalLink()
        self.timing = timing
        self.rng = random.Random(timing.seed if timing else 0)
        self.rssi = rssi
        self.controllers: dict[str, VirtualController] = {}
        self._servers: dict[str, _ControllerServer] = {}
        self._drops: list[tuple[str, int, int]] = []  # (controller name, pdus left, reason)
        self.pdus_sent = 0
        self.drop_listeners: list[Callable[[str, str], None]] = []

    # -- controllers --------------------------------------------------------------
    def add_controller(self, name: str) -> VirtualController:
        """Add a controller named ``name`` (unique) to the link."""
        if name in self.controllers:
            raise ValueError(f"controller {name!r} exists")
        controller = VirtualController(name, self)
        self.controllers[name] = controller
        return controller

    def endpoint(self, name: str) -> tuple[Any, Any]:
        """In-process HCI ``(source, sink)`` for ``bumble.host.Host`` on controller ``name``.

        The controller is created on first use.
        """
        controller = self.controllers.get(name) or self.add_controller(name)
        return controller, AsyncPipeSink(controller)

    async def serve(self, name: str, port: int = 0, host: str = "127.0.0.1") -> str:
        """Serve controller ``name`` as H4 over TCP; returns the Bumble transport spec."""
        controller = self.controllers.get(name) or self.add_controller(name)
        entry = _ControllerServer(controller)
        entry.server = await asyncio.get_running_loop().create_server(
            lambda: _TcpHost(entry), host=host, port=port
        )
        entry.port = entry.server.sockets[0].getsockname()[1]
        self._servers[name] = entry
        return f"tcp-client:{host}:{entry.port}"

    async def close(self) -> None:
        """Stop serving and silence every controller."""
        for entry in self._servers.values():
            if entry.client is not None and entry.client.transport is not None:
                entry.client.transport.close()
            if entry.server is not None:
                entry.server.close()
                with contextlib.suppress(Exception):
                    await entry.server.wait_closed()
        self._servers.clear()
        for controller in self.controllers.values():
            controller.le_legacy_advertiser.stop()
            for queue in controller._tx.values():
                if queue.timer is not None:
                    queue.timer.cancel()
            controller.host = None

    # -- radio properties -----------------------------------------------------------
    def adv_jitter(self) -> float:
        """Random advertising delay in seconds (0 without jitter)."""
        if self.timing is None or not self.timing.adv_jitter_ms:
            return 0.0
        return self.rng.uniform(0.0, self.timing.adv_jitter_ms / 1000.0)

    def rssi_of(self, _receiver: VirtualController, _address: hci.Address) -> int:
        """RSSI reported for an advertisement (constant; override for geometry)."""
        return self.rssi

    # -- faults -----------------------------------------------------------------------
    def connections(self, name: str) -> list[Connection]:
        """The live LE connections of controller ``name``."""
        return list(self.controllers[name].le_connections.values())

    def drop(
        self, connection: Connection, reason: int = CONNECTION_TIMEOUT, *, notify_self: bool = True
    ) -> None:
        """Drop a link as if the radio failed: both hosts see ``reason`` (no LL terminate)."""
        local = connection.controller
        assert isinstance(local, VirtualController)
        peer = self.link.find_le_controller(connection.peer_address)
        if isinstance(peer, VirtualController):
            peer_conn = peer.le_connections.get(connection.self_address)
            if peer_conn is not None:
                peer.drop_link(peer_conn, reason, notify_host=True)
        local.drop_link(connection, reason, notify_host=notify_self)
        for listener in list(self.drop_listeners):
            listener(local.name, peer.name if peer is not None else "?")

    def drop_all(self, name: str, reason: int = CONNECTION_TIMEOUT) -> int:
        """Drop every link of controller ``name``; returns how many."""
        links = self.connections(name)
        for connection in links:
            self.drop(connection, reason)
        return len(links)

    def drop_after(self, name: str, pdus: int, reason: int = CONNECTION_TIMEOUT) -> None:
        """Drop the links of ``name`` once it has sent ``pdus`` more L2CAP PDUs."""
        if pdus < 1:
            raise ValueError("pdus must be >= 1")
        self._drops.append((name, pdus, reason))

    def on_pdu_sent(self, controller: VirtualController, connection: Connection) -> None:
        """Called by a controller for each PDU that left over the air."""
        self.pdus_sent += 1
        if not self._drops:
            return
        remaining: list[tuple[str, int, int]] = []
        fire: list[int] = []
        for name, left, reason in self._drops:
            if name == controller.name:
                left -= 1
                if left == 0:
                    fire.append(reason)
                    continue
            remaining.append((name, left, reason))
        self._drops = remaining
        for reason in fire:
            # After the current call stack: the PDU in flight is lost with the link.
            asyncio.get_running_loop().call_soon(self.drop_all, controller.name, reason)


async def _run(args: argparse.Namespace) -> int:
    timing = None
    if not args.untimed:
        timing = LinkTiming(
            interval_ms=args.interval_ms,
            packets_per_event=args.packets_per_event,
            loss=args.loss,
            seed=args.seed,
        )
    radio = Radio(timing)
    port = args.port
    for name in args.names:
        spec = await radio.serve(name, port=port)
        print(f"{name} {spec}", flush=True)
        if port:
            port += 1
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await radio.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the hub as a process: one TCP HCI endpoint per controller name."""
    parser = argparse.ArgumentParser(
        prog="python -m mirrorband.sim.vradio.hub",
        description="Virtual BLE radio hub: Bumble controllers on one link, each served as "
        "H4 HCI over TCP on 127.0.0.1 (Bumble transport tcp-client:127.0.0.1:PORT). Prints "
        "one 'NAME SPEC' line per controller, then 'ready'.",
    )
    parser.add_argument("names", nargs="*", default=["host", "band-L", "band-R"], help="controller names")
    parser.add_argument("--port", type=int, default=0, help="first TCP port (0: any free port)")
    parser.add_argument("--untimed", action="store_true", help="no timing model (as fast as the CPU)")
    parser.add_argument("--interval-ms", type=float, default=15.0, help="connection interval (ms)")
    parser.add_argument("--packets-per-event", type=int, default=4, help="LL packets per connection event")
    parser.add_argument("--loss", type=float, default=0.0, help="LL packet loss probability (retransmitted)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the timing model")
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    args = parser.parse_args(argv)
    if len(set(args.names)) != len(args.names):
        print("error: controller names must be unique", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    try:
        return asyncio.run(_run(args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
