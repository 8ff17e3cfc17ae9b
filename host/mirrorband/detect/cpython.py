"""Runtime ``cpython``: the firmware package ``mbfw`` imported into this interpreter.

Both bands run in lockstep, block by block (100 ms): both analyse a block, then
both detect with the other band's activity state for the same windows (what the
activity beacon delivers on real bands). The streams come chunk by chunk from
:meth:`mirrorband.detect.bandio.BandInput.chunks`; the firmware keeps its own
state across blocks, so chunking changes nothing.
"""

from __future__ import annotations

from array import array

from mbfw.events import EV_NF
from mbfw.pipeline import Hand
from mirrorband.detect.bandio import (
    BLOCK,
    CHUNK,
    WINDOW,
    BandInput,
    imu_block_buffer,
    imu_blocks,
    sort_events,
)


def run_cpython(inp: BandInput, chunk: int = CHUNK) -> list[tuple[int, ...]]:
    """Run the firmware in this interpreter; returns the raw event tuples (sorted)."""
    hands = []
    for spec in inp.hands:
        h = Hand(inp.config(spec.hand), nch=spec.nch, has_imu=spec.has_imu)
        h.task.set(inp.points)
        h.start(0)
        hands.append(h)
    out: list[tuple[int, ...]] = []
    ev = array("i", bytes(4 * EV_NF))
    emg_bufs = [array("i", bytes(4 * spec.nch * BLOCK)) for spec in inp.hands]
    none = array("i")
    for recs in inp.chunks(chunk):
        n = recs[0].emg.shape[1]
        n_blocks, tail = divmod(n, BLOCK)
        starts = [imu_blocks(s, n_blocks + 1) for s in recs]
        sizes = [BLOCK] * n_blocks + ([tail] if tail else [])
        for b, size in enumerate(sizes):
            for i, (s, h) in enumerate(zip(recs, hands, strict=True)):
                buf = emg_bufs[i]
                buf[: s.nch * size] = array("i", s.emg[:, b * BLOCK:b * BLOCK + size].reshape(-1).tobytes())
                if s.has_imu:
                    lo, hi = int(starts[i][b]), int(starts[i][b + 1])
                    rows = imu_block_buffer(s, lo, hi, s.w0 + b * (BLOCK // WINDOW))
                    h.analyse(buf, size, array("i", rows.reshape(-1).tobytes()), hi - lo)
                else:
                    h.analyse(buf, size, none, 0)
            if len(hands) == 2:
                hands[0].detect(hands[1].act_w)
                hands[1].detect(hands[0].act_w)
            else:
                hands[0].detect(None)
            for h in hands:
                while h.pop(ev):
                    out.append(tuple(ev))
    for h in hands:
        h.finish()
        while h.pop(ev):
            out.append(tuple(ev))
    return sort_events(out)
