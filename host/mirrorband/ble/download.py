"""Log download over a :class:`~mirrorband.ble.link.BandLink`, resumable.

The host reads pages from the first sequence after what it already holds (its own
record, or the band's last acknowledged sequence), hands each raw page to ``on_page``
*before* parsing (so a caller can write it to disk first), delivers every record once
(sequence numbers only grow), and acknowledges every ``ack_every`` pages and at the
end. A disconnect anywhere (mid-request, mid-page, mid-ack) costs a reconnect and the
re-read of at most the page in flight; records already delivered are skipped by sequence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from mbfw import protocol as P
from mbfw.logrec import LogError, parse_records

from ..client import BandError
from .link import BandLink, LinkLost, page_len_for

Record = tuple[int, int, bytes]  # sequence, record type, payload


@dataclass
class DownloadResult:
    """Outcome of one band's download."""

    records: int = 0
    pages: int = 0
    last_seq: int = 0
    acked: int = 0
    reconnects: int = 0
    page_bytes: int = 0
    record_bytes: int = 0
    seconds: float = 0.0


async def download(link: BandLink, on_record: Callable[[Record], object], *,
                   start_after: int = 0, on_page: Callable[[bytes], object] | None = None,
                   progress: Callable[[int, int], object] | None = None, ack_every: int = 16,
                   max_reconnects: int = 1000, erase: bool = False) -> DownloadResult:
    """Download every record above ``start_after`` (and above the band's acknowledged one)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    res = DownloadResult()
    last = start_after
    acked_band = 0
    target: int | None = None
    unacked_pages = 0

    async def attempt() -> bool:
        # one pass until done; False if the band has nothing more
        nonlocal last, target, unacked_pages, acked_band
        await link.ensure()
        rng = P.LogRange.from_bytes(await link.call(P.OP_LOG_RANGE))
        acked_band = rng.acked
        if last < rng.acked:
            last = rng.acked  # records acknowledged earlier are already on this computer
        if target is None or rng.next - 1 > target:
            target = rng.next - 1
        while last < target:
            max_len = page_len_for(link.mtu)
            raw, page = await _read(link, last + 1, max_len)
            res.pages += 1
            res.page_bytes += len(raw)
            if on_page is not None:
                on_page(raw)
            got = False
            try:
                records = list(parse_records(page.body))
            except LogError as e:
                raise BandError(P.ERR_STORAGE, f"corrupt log page from the band: {e}") from None
            for seq, rtype, payload in records:
                if seq > last:
                    on_record((seq, rtype, payload))
                    res.records += 1
                    res.record_bytes += 14 + len(payload)
                    last = seq
                    got = True
            if not got:
                break  # nothing stored above `last` (records lost on the band's flash)
            unacked_pages += 1
            if progress is not None:
                progress(last, target)
            if unacked_pages >= ack_every:
                await link.call(P.OP_LOG_ACK, bytes(P.LogAck(last)))
                acked_band = last
                unacked_pages = 0
        if last > acked_band:
            await link.call(P.OP_LOG_ACK, bytes(P.LogAck(last)))
            acked_band = last
        if erase:
            await link.call(P.OP_LOG_ERASE)
        return True

    while True:
        try:
            await attempt()
            break
        except LinkLost:
            res.reconnects += 1
            if res.reconnects > max_reconnects:
                raise
    res.last_seq = last
    res.acked = acked_band
    res.seconds = loop.time() - t0
    return res


async def _read(link: BandLink, seq_from: int, max_len: int):  # noqa: ANN202
    raw = await link.call(P.OP_LOG_READ, bytes(P.LogRead(seq_from, max_len)))
    return raw, link.client.open_page(raw)
