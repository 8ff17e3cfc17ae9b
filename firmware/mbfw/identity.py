# The band's identity on flash: band key, hand, patient pseudonym, and the
# security counters (last accepted command counter, page nonce), kept in two
# alternating slots so a power cut while saving leaves the previous one valid.
#
# Counters are reserved ahead: before the band accepts a command counter above
# the persisted floor it saves floor = counter + _RESERVE, and after a reboot it
# accepts only counters above that floor, so no reboot reopens a replay window
# (the host learns the floor from the ERR_REPLAY answer). Page nonces likewise
# never repeat under one key. Flash is written once per _RESERVE commands.
import struct

from micropython import const

from mbfw.protocol import ERR_RANGE, ERR_STORAGE, KEY_LEN, MAX_PATIENT, CommandError, ProtocolError
from mbfw.security import Keys, sha256

_MAGIC = b"MBid"
_VER = const(1)
_FMT = "<4sBI32sBBB16sII"   # magic, version, generation, key, provisioned, hand, len, patient, rx, nonce
_SIZE = const(68)
_SUM = const(8)
_RESERVE = const(64)
_U32 = 0xFFFFFFFF


class FileStore:
    # two slot files (path.0, path.1) through the event log's filesystem
    # interface (mbfw.fsio: OsFS on the band, PowerCutFS in tests)
    def __init__(self, fs, path):
        self.fs = fs
        self.path = path

    def load(self, slot):
        p = "%s.%d" % (self.path, slot)
        try:
            if not self.fs.exists(p):
                return None
            f = self.fs.open(p, "rb")
            try:
                return f.read(_SIZE + _SUM + 1)
            finally:
                f.close()
        except OSError:
            return None

    def save(self, slot, data):
        f = self.fs.open("%s.%d" % (self.path, slot), "wb")
        try:
            f.write(data)
            f.flush()
        finally:
            f.close()


class MemStore:
    # in-memory slots (a virtual band without a flash directory, tests)
    def __init__(self):
        self.slots = {}

    def load(self, slot):
        return self.slots.get(slot)

    def save(self, slot, data):
        self.slots[slot] = bytes(data)


class Identity:
    def __init__(self, store):
        self.store = store
        self.gen = 0
        self.key = None
        self.keys = None
        self.hand = 0
        self.patient = ""
        self._rx_floor = 0
        self._nonce_floor = 0
        self._load()
        self.last_rx = self._rx_floor   # nothing at or below it is accepted
        self._nonce = self._nonce_floor

    def provisioned(self):
        return self.keys is not None

    def _decode(self, raw):
        if raw is None or len(raw) != _SIZE + _SUM or sha256(raw[:_SIZE])[:_SUM] != raw[_SIZE:]:
            return None
        f = struct.unpack(_FMT, raw[:_SIZE])
        if f[0] != _MAGIC or f[1] != _VER or f[6] > MAX_PATIENT:
            return None
        return f

    def _load(self):
        best = None
        for slot in (0, 1):
            f = self._decode(self.store.load(slot))
            if f is not None and (best is None or f[2] > best[2]):
                best = f
        if best is None:
            return
        self.gen = best[2]
        if best[4]:
            self.key = best[3]
            self.keys = Keys(self.key)
        self.hand = best[5]
        self.patient = best[7][:best[6]].decode()
        self._rx_floor = best[8]
        self._nonce_floor = best[9]

    def _save(self, key, hand, patient, rx_floor, nonce_floor):
        # write the next generation into the other slot; state changes only
        # once the write returned
        p = patient.encode()
        gen = self.gen + 1
        raw = struct.pack(_FMT, _MAGIC, _VER, gen, key or bytes(KEY_LEN), 1 if key else 0, hand,
                          len(p), p, rx_floor, nonce_floor)
        try:
            self.store.save(gen & 1, raw + sha256(raw)[:_SUM])
        except OSError:
            raise CommandError(ERR_STORAGE, "identity not saved") from None
        self.gen = gen
        self._rx_floor = rx_floor
        self._nonce_floor = nonce_floor

    def accept_counter(self, c):
        # True and recorded when c is above every counter seen (persisting a
        # new floor first when needed); False for a replay
        if c <= self.last_rx:
            return False
        if c > self._rx_floor:
            self._save(self.key, self.hand, self.patient, min(c + _RESERVE, _U32), self._nonce_floor)
        self.last_rx = c
        return True

    def next_nonce(self):
        n = self._nonce
        if n >= _U32:
            raise CommandError(ERR_RANGE, "page nonces exhausted: re-provision the band")
        if n >= self._nonce_floor:
            self._save(self.key, self.hand, self.patient, self._rx_floor, min(n + _RESERVE, _U32))
        self._nonce = n + 1
        return n

    def provision(self, key, hand, patient):
        # new key: command counters start again; nonces keep running
        if len(key) != KEY_LEN:
            raise ProtocolError(ERR_RANGE, "key must be 32 bytes")
        keys = Keys(key)
        self._save(bytes(key), hand, patient, 0, self._nonce_floor)
        self.key = bytes(key)
        self.keys = keys
        self.hand = hand
        self.patient = patient
        self.last_rx = 0
