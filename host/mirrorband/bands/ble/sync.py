"""Host-driven clock sync at task start (mbfw.timesync.best_offset over TIME_GET exchanges)."""

from __future__ import annotations

import time
from collections.abc import Callable

from mbfw import protocol as P
from mbfw.timesync import best_offset
from mirrorband.bands.ble.link import BandLink


def host_clock_us() -> int:
    """The host's reference: Unix time in microseconds."""
    return time.time_ns() // 1000


async def sync_clock(link: BandLink, *, exchanges: int = 8,
                     now_us: Callable[[], int] = host_clock_us) -> tuple[int, int]:
    """Set the band clock to the host's: returns (offset corrected, round trip kept), in us.

    Each exchange is a TIME_GET; the one with the smallest round trip gives the band's
    offset (error at most half that round trip); a TIME_SET TIME_ADJ removes it.
    """
    samples = []
    for _ in range(exchanges):
        t0 = now_us()
        band = P.TimeNow.from_bytes(await link.call(P.OP_TIME_GET)).now_us
        t1 = now_us()
        samples.append((t0, band, t1))
    offset, rtt = best_offset(samples)
    await link.call(P.OP_TIME_SET, bytes(P.TimeSet(P.TIME_ADJ, -offset)))
    return offset, rtt
