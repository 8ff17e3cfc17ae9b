"""Log download over a :class:`~mirrorband.bands.ble.link.BandLink`, resumable.

The host reads pages from the first sequence after what it already holds (its own
record, or the band's last acknowledged sequence), hands each raw page to ``on_page``
*before* parsing (so a caller can write it to disk first), delivers every record once
(sequence numbers only grow), and acknowledges every ``ack_every`` pages and at the
end. A disconnect anywhere (mid-request, mid-page, mid-ack) costs a reconnect and the
re-read of at most the page in flight; records already delivered are skipped by sequence.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mbfw import protocol as P
from mbfw.logrec import LogError, parse_records
from mirrorband.bands.ble.link import BandLink, LinkLost, page_len_for
from mirrorband.bands.client import BandError

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


# --- from downloaded records to the session store ----------------------------------------------

T_ACTIVITY = 4  # mbfw.logrec.T_ACTIVITY (docs/storage.md): "<IIIBBH" session, w0, w1 (excl.), hand, flags, 0
_ACT_FMT = "<IIIBBH"
TASKS_FILE = "ble-tasks.json"  # in the store's incoming/: session id -> task points (ms from start, kind)


@dataclass
class TaskRun:
    """One task run in a band's log: its markers, events and activity spans (band clock)."""

    session: int
    hand: str
    start_ms: int
    end_ms: int
    unix_s: int
    stopped: bool = False
    events: list[bytes] = field(default_factory=list)
    #: (first window, end window) of this band's activity, by first window (largest end wins)
    windows: dict[int, int] = field(default_factory=dict)

    @property
    def activity_ms(self) -> list[tuple[int, int]]:
        """Activity spans in band ms (window w covers start + 10 w .. start + 10 w + 10)."""
        return [(self.start_ms + 10 * w0, self.start_ms + 10 * w1) for w0, w1 in sorted(self.windows.items())]


def band_runs(records: Iterable[Record]) -> tuple[list[TaskRun], int]:
    """Group a band's records into task runs: (runs in log order, records outside any run).

    A run starts at a SESSION start marker and ends at its stop marker; a run cut by a
    reboot (a new start, no stop) ends at its last event. ACTIVITY records go to the
    run of their session id. Snippets are not part of a run here.
    """
    from mbfw.events import EV_OFFSET, unpack
    from mbfw.logrec import SESSION_START, T_EVENT, T_SESSION, unpack_session

    runs: list[TaskRun] = []
    by_sid: dict[int, TaskRun] = {}
    cur: TaskRun | None = None
    outside = 0
    for _seq, rtype, payload in records:
        if rtype == T_SESSION:
            sid, what, hand, _proto, clock_ms, unix_s = unpack_session(payload)
            if what == SESSION_START:
                cur = TaskRun(sid, "LR"[hand], clock_ms, clock_ms, unix_s)
                runs.append(cur)
                by_sid[sid] = cur
            elif cur is not None and cur.session == sid:
                cur.end_ms = max(cur.end_ms, clock_ms)
                cur.stopped = True
                cur = None
            else:
                outside += 1
        elif rtype == T_EVENT:
            if cur is None:
                outside += 1
                continue
            cur.events.append(payload)
            cur.end_ms = max(cur.end_ms, unpack(payload)[EV_OFFSET])
        elif rtype == T_ACTIVITY and len(payload) == struct.calcsize(_ACT_FMT):
            sid, w0, w1, _hand, _flags, _ = struct.unpack(_ACT_FMT, payload)
            run = by_sid.get(sid)
            if run is None or w1 <= w0:
                outside += 1
                continue
            run.windows[w0] = max(w1, run.windows.get(w0, 0))
            if not run.stopped:
                run.end_ms = max(run.end_ms, run.start_ms + 10 * w1)
    return runs, outside


def remember_task(store_dir: Path, session: int, points: Sequence[tuple[int, int]]) -> None:
    """Keep the task points a host sent for ``session`` (the band's log does not carry them).

    Same file as :class:`mirrorband.control.blecontroller.BleController` uses; the 50 newest are kept.
    """
    f = store_dir / "incoming" / TASKS_FILE
    f.parent.mkdir(parents=True, exist_ok=True)
    try:
        tasks = json.loads(f.read_text())
    except (OSError, ValueError):
        tasks = {}
    tasks[str(session)] = [list(p) for p in points]
    f.write_text(json.dumps(dict(list(tasks.items())[-50:])))


def remembered_task(store_dir: Path, session: int) -> list[tuple[int, int]]:
    """The task points remembered for ``session`` (ms from the task start, STEP_*), or []."""
    try:
        pts = json.loads((store_dir / "incoming" / TASKS_FILE).read_text())[str(session)]
        return [(int(t), int(k)) for t, k in pts]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def ingest_runs(store: Any, band_id: str, raw_pages: Path, runs: Sequence[TaskRun], *,
                patient_id: str | None, firmware_version: str = "") -> list[int]:
    """Store each run (``session.ingest_band_pages``; merged with the other band's log); session ids."""
    from mirrorband.sessions.session import BandMarkers, ingest_band_pages

    out = []
    for run in runs:
        started = (datetime.fromtimestamp(run.unix_s) if run.unix_s else datetime.now()).isoformat(timespec="seconds")
        steps = [(run.start_ms + t, k) for t, k in remembered_task(store.dir, run.session)
                 if run.start_ms + t <= run.end_ms]
        m = BandMarkers(run.session, run.hand, started, run.start_ms, run.end_ms, steps, run.activity_ms,
                        0.0, patient_id or None, firmware_version)
        sid = ingest_band_pages(store, band_id, raw_pages, run.events, m)
        if sid not in out:
            out.append(sid)
    return out


# --- staging: what a download has fetched but not yet stored -------------------------------------
def staging_dir(store_dir: Path, band_id: str) -> Path:
    """``incoming/band-<id>/`` of the store: the raw pages, the decoded records (fsync'd
    before the band may free them) and the last sequence received, kept between downloads
    until every task run in them is stored."""
    d = Path(store_dir) / "incoming" / f"band-{band_id}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def read_staged(path: Path) -> list[Record]:
    """Records kept between downloads: u32 seq, u8 type, u16 length, payload (a torn tail
    is dropped: the band still has it, as it was never acknowledged)."""
    out = []
    data = path.read_bytes() if path.exists() else b""
    i = 0
    while i + 7 <= len(data):
        seq, rtype, n = struct.unpack_from("<IBH", data, i)
        if i + 7 + n > len(data):
            break
        out.append((seq, rtype, data[i + 7:i + 7 + n]))
        i += 7 + n
    return out


@dataclass
class StoredDownload:
    """What :func:`download_to_store` did: the link's result, the sessions stored, the task
    runs still open on the band and the records outside any task run."""

    result: DownloadResult
    sessions: list[int]
    open_runs: int
    outside: int


async def download_to_store(store: Any, link: BandLink, band_id: str, patient_id: str | None, *,
                            progress: Callable[[int, int], object] | None = None) -> StoredDownload:
    """Download a band's new log records into its staging folder, then store every complete
    task run (``mirrorband download``). Raw pages are written before parsing and records are
    flushed before the band is told it may free them; the staging is cleared only once every
    run in it is stored."""
    pend = staging_dir(store.dir, band_id)
    pages_f, recs_f, last_f = pend / "pages", pend / "records", pend / "last"
    try:
        start = int(last_f.read_text()) if last_f.exists() else 0
    except ValueError:
        start = 0
    fw = P.Info.from_bytes(await link.call(P.OP_INFO)).fw
    with open(pages_f, "ab") as pages, open(recs_f, "ab") as recs:
        def on_page(raw: bytes) -> None:  # raw first, before parsing
            pages.write(len(raw).to_bytes(2, "little") + raw)
            pages.flush()

        def on_record(r: Record) -> None:
            recs.write(struct.pack("<IBH", r[0], r[1], len(r[2])) + r[2])
            recs.flush()  # before the band is told it may free it

        res = await download(link, on_record, start_after=start, on_page=on_page, progress=progress)
        recs.flush()
        last_f.write_text(str(res.last_seq))
    runs, outside = band_runs(read_staged(recs_f))
    sids = ingest_runs(store, band_id, pages_f, runs, patient_id=patient_id,
                       firmware_version=fw) if runs and pages_f.exists() else []
    if all(r.stopped for r in runs):  # every task run is complete and stored
        pages_f.unlink(missing_ok=True)
        recs_f.unlink(missing_ok=True)
    return StoredDownload(res, sids, sum(not r.stopped for r in runs), outside)
