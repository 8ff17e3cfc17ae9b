"""Run a task on connected bands over their BLE links: clock sync, TASK_SET, a start
within the same second on every band, live events and status polls until the end."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from mirrorband.errors import CliError

STATE_IDLE = 0  # mbfw.app ST_IDLE
STATE_DONE = 3  # mbfw.app ST_DONE


def protocol_points(steps: Any) -> list[tuple[int, int]]:
    """Protocol steps -> the band's task points ``(start_ms, kind)`` ending with STEP_NONE."""
    from mbfw.task import STEP_NONE, STEP_REST, STEP_WRITE_L, STEP_WRITE_R

    kinds = {"REST": STEP_REST, "WRITE L": STEP_WRITE_L, "WRITE R": STEP_WRITE_R}
    out = []
    t = 0
    for s in steps:
        out.append((t, kinds[s.kind]))
        t += int(round(s.seconds * 1000))
    out.append((t, STEP_NONE))
    return out


@dataclass
class TaskResult:
    """What ``run_task`` saw: the session id, live events per band, final states."""

    session: int
    duration_s: float
    events: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    offsets_us: dict[str, int] = field(default_factory=dict)
    round_trips_us: dict[str, int] = field(default_factory=dict)


async def run_task(links: dict[str, Any], points: list[tuple[int, int]], *, session: int | None = None,
                   on_event: Any = None, on_progress: Any = None, poll_s: float = 1.0,
                   stop: asyncio.Event | None = None) -> TaskResult:
    """Run a task on connected bands (``hand -> BandLink``) and wait for its end.

    Time sync, TASK_SET, TASK_START within one second boundary on every band, then
    STATUS polls until every band is done; live events go to ``on_event(hand, dict)``.
    If ``stop`` is set first, TASK_STOP is sent to every band.
    """
    from mbfw import protocol as P
    from mbfw.events import EventError, unpack
    from mirrorband.bands.ble.sync import sync_clock
    from mirrorband.detect.bandio import event_dict

    sid = session if session is not None else int(time.time()) & 0x7FFFFFFF
    res = TaskResult(sid, points[-1][0] / 1000.0)
    for hand, link in links.items():
        def live(ev: bytes, _ctr: int, h: str = hand) -> None:
            try:
                d = event_dict(unpack(ev))
            except EventError:
                return  # authenticated but not an event this host knows: skip it
            res.events.append(d)
            if on_event is not None:
                on_event(h, d)
        link.on_live = live
        off, rtt = await sync_clock(link)
        res.offsets_us[hand], res.round_trips_us[hand] = off, rtt
        await link.call(P.OP_TASK_SET, bytes(P.TaskSet(points)))
    # the bands start at the next whole second of their (synced) clocks: send every
    # start early in a second so that they all fall before the same boundary
    frac = time.time() % 1.0
    if not 0.02 <= frac <= 0.5:
        await asyncio.sleep((1.02 - frac) % 1.0)
    await asyncio.gather(*(link.call(P.OP_TASK_START, bytes(P.TaskStart(sid))) for link in links.values()))
    t0 = time.monotonic()
    started = False
    while True:
        if stop is not None and stop.is_set():
            for link in links.values():
                await link.call(P.OP_TASK_STOP)
        waited = asyncio.sleep(poll_s) if stop is None else asyncio.wait_for(stop.wait(), poll_s)
        try:
            await waited
        except TimeoutError:
            pass
        for hand, link in links.items():
            st = P.Status.from_bytes(await link.call(P.OP_STATUS))
            res.states[hand] = st.state
        if any(s not in (STATE_IDLE, STATE_DONE) for s in res.states.values()):
            started = True
        elapsed = time.monotonic() - t0
        if on_progress is not None:
            on_progress(elapsed, res)
        if all(s == STATE_DONE for s in res.states.values()) and (started or elapsed > 2.0):
            return res
        if stop is not None and stop.is_set() and all(s != 2 for s in res.states.values()):
            return res
        if elapsed > res.duration_s + 30:
            raise CliError("the bands did not finish the task (check them with: mirrorband pair)")
