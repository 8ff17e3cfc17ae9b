# Event record of a detected EMG burst: field indices, kinds, flags, and its
# fixed 24-byte little-endian codec (used by the event log and the protocol).
import struct

from micropython import const

# field indices of an event held in an int array
EV_HAND = const(0)     # 0 = L, 1 = R
EV_KIND = const(1)
EV_FLAGS = const(2)
EV_ART = const(3)      # artifact reason (KIND_ARTIFACT only)
EV_ONSET = const(4)    # ms, band clock
EV_OFFSET = const(5)   # ms, band clock
EV_PEAK = const(6)     # peak envelope / baseline, x16
EV_AREA = const(7)     # sum of (envelope / baseline) x16 over 10 ms windows
EV_CCI = const(8)      # FLEX/EXT co-contraction index, percent; -1 = no EXT
EV_ROT = const(9)      # IMU rotation during the burst, 0.1 deg; -1 = no IMU
EV_CH = const(10)      # bit 0 FLEX, bit 1 EXT: channels above the onset threshold
EV_NF = const(11)

KIND_MIRROR = const(1)
KIND_BURST = const(2)
KIND_ARTIFACT = const(3)

FLAG_PEER_UNKNOWN = const(1)
FLAG_MOVEMENT = const(2)   # LF-rich at its onset or over the event, not both: moved the limb (kept)
FLAG_JOLT = const(4)       # an IMU jolt at its onset, but too long for a knock (kept)

ART_NONE = const(0)
ART_KNOCK = const(1)   # coincident IMU jerk
ART_MOTION = const(2)  # low-frequency dominated transient (cable motion)
ART_POP = const(3)     # same, on one channel only (electrode pop)

_FMT = "<BBBBiiHIhhBx"
SIZE = const(24)


class EventError(ValueError):
    pass


def pack(ev):
    # int array/sequence of EV_NF fields -> 24 bytes
    if ev[EV_HAND] > 1 or not KIND_MIRROR <= ev[EV_KIND] <= KIND_ARTIFACT:
        raise EventError("bad event")
    peak = ev[EV_PEAK]
    return struct.pack(_FMT, ev[EV_HAND], ev[EV_KIND], ev[EV_FLAGS], ev[EV_ART],
                       ev[EV_ONSET], ev[EV_OFFSET], peak if peak < 65535 else 65535,
                       ev[EV_AREA], ev[EV_CCI], ev[EV_ROT], ev[EV_CH])


def unpack(b):
    # 24 bytes -> tuple of EV_NF fields
    if len(b) != SIZE:
        raise EventError("event must be %d bytes" % SIZE)
    f = struct.unpack(_FMT, b)
    if f[0] > 1 or not KIND_MIRROR <= f[1] <= KIND_ARTIFACT or f[3] > ART_POP or f[10] > 3:
        raise EventError("bad event")
    return f
