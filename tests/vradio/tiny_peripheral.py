# A tiny peripheral written as MicroPython firmware would be, against the
# `bluetooth` API (here mirrorband.sim.vradio.mpble): advertise, a custom service with a
# write + notify characteristic and a protected one, Device Information, Battery;
# and a non-connectable "activity beacon". Used by tests/vradio.
import struct

from micropython import const

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)
_IRQ_ENCRYPTION_UPDATE = const(28)

_FLAG_READ = const(0x0002)
_FLAG_WRITE_NO_RESPONSE = const(0x0004)
_FLAG_WRITE = const(0x0008)
_FLAG_NOTIFY = const(0x0010)
_FLAG_READ_ENCRYPTED = const(0x0200)
_FLAG_WRITE_ENCRYPTED = const(0x1000)
_FLAG_READ_AUTHENTICATED = const(0x0400)

SERVICE_UUID = "7a3f0001-5d1e-4b5e-9f63-6d6972726f72"
CONTROL_UUID = "7a3f0002-5d1e-4b5e-9f63-6d6972726f72"
DATA_UUID = "7a3f0003-5d1e-4b5e-9f63-6d6972726f72"
SECRET_UUID = "7a3f0004-5d1e-4b5e-9f63-6d6972726f72"
MITM_UUID = "7a3f0005-5d1e-4b5e-9f63-6d6972726f72"
BEACON_COMPANY = const(0xFFFF)


def adv_payload(name=None, services=(), manufacturer=None, connectable=True):
    out = bytearray()

    def field(kind, value):
        out.extend(struct.pack("BB", len(value) + 1, kind))
        out.extend(value)

    field(0x01, b"\x06" if connectable else b"\x04")
    if name:
        field(0x09, name.encode())
    for uuid in services:
        raw = bytes(uuid)
        field(0x03 if len(raw) == 2 else 0x07, raw)
    if manufacturer is not None:
        field(0xFF, manufacturer)
    return bytes(out)


class TinyPeripheral:
    def __init__(self, bluetooth, ble, name, mtu=247):
        self.bt = bluetooth
        self.ble = ble
        self.name = name
        self.connections = set()
        self.writes = []
        self.mtus = {}
        self.security = {}
        self.events = []
        ble.active(True)
        ble.config(gap_name=name)
        ble.config(mtu=mtu)
        ble.config(bond=True, le_secure=True)
        ble.irq(self._irq)
        custom = (
            bluetooth.UUID(SERVICE_UUID),
            (
                (bluetooth.UUID(CONTROL_UUID), _FLAG_WRITE | _FLAG_WRITE_NO_RESPONSE | _FLAG_NOTIFY),
                (bluetooth.UUID(DATA_UUID), _FLAG_READ | _FLAG_NOTIFY),
                (
                    bluetooth.UUID(SECRET_UUID),
                    _FLAG_READ | _FLAG_READ_ENCRYPTED | _FLAG_WRITE | _FLAG_WRITE_ENCRYPTED | _FLAG_NOTIFY,
                ),
                (bluetooth.UUID(MITM_UUID), _FLAG_READ | _FLAG_READ_AUTHENTICATED),
            ),
        )
        dis = (
            bluetooth.UUID(0x180A),
            ((bluetooth.UUID(0x2A29), _FLAG_READ), (bluetooth.UUID(0x2A26), _FLAG_READ)),
        )
        battery = (bluetooth.UUID(0x180F), ((bluetooth.UUID(0x2A19), _FLAG_READ | _FLAG_NOTIFY),))
        (
            (self.h_control, self.h_data, self.h_secret, self.h_mitm),
            (self.h_maker, self.h_fw),
            (self.h_battery,),
        ) = ble.gatts_register_services((custom, dis, battery))
        ble.gatts_set_buffer(self.h_control, 244)
        ble.gatts_write(self.h_maker, b"Mirrorband")
        ble.gatts_write(self.h_fw, b"0.1.0")
        ble.gatts_write(self.h_battery, bytes([87]))
        ble.gatts_write(self.h_data, b"hello")
        ble.gatts_write(self.h_secret, b"secret")
        ble.gatts_write(self.h_mitm, b"mitm-only")

    def advertise(self, interval_us=100000):
        self.ble.gap_advertise(
            interval_us,
            adv_data=adv_payload(name=self.name, services=(self.bt.UUID(SERVICE_UUID),)),
            resp_data=adv_payload(services=(self.bt.UUID(0x180F),), connectable=True)[3:],
        )

    def beacon(self, seq, active, interval_us=20000):
        payload = struct.pack("<HBIB", BEACON_COMPANY, 1, seq, active)
        self.ble.gap_advertise(
            interval_us, adv_data=adv_payload(manufacturer=payload, connectable=False), connectable=False
        )

    def _irq(self, event, data):
        self.events.append(event)
        if event == _IRQ_CENTRAL_CONNECT:
            conn, _addr_type, _addr = data
            self.connections.add(conn)
        elif event == _IRQ_CENTRAL_DISCONNECT:
            conn, _addr_type, _addr = data
            self.connections.discard(conn)
        elif event == _IRQ_GATTS_WRITE:
            conn, handle = data
            value = self.ble.gatts_read(handle)
            self.writes.append((handle, value))
            if handle == self.h_control:
                # Echo the command back as a notification on the control point.
                self.ble.gatts_notify(conn, self.h_control, b"ack:" + value)
        elif event == _IRQ_MTU_EXCHANGED:
            conn, mtu = data
            self.mtus[conn] = mtu
        elif event == _IRQ_ENCRYPTION_UPDATE:
            conn, encrypted, authenticated, bonded, key_size = data
            self.security[conn] = (encrypted, authenticated, bonded, key_size)
