# The band application (asyncio): task state machine, block processing with
# mbfw.pipeline, haptic cues at step changes, heartbeat LED, event log appends
# (events, session markers, this band's ACTIVITY spans). It is the `device` of
# mbfw.handler. Injected: the board (clock, led, motor, battery, uid, name), a
# started-up Sampler, the event log (append(rtype, payload)).
# States: IDLE -> (CALIBRATING ->) RUNNING step k -> DONE. Task change points
# are (start_ms, kind) from the task start; a final STEP_NONE point ends it.
# Peer activity: peer_in (a PeerLink) receives the other band's per-window
# activity (beacon receiver, or the virtual sim directly); peer_out gets ours
# after each block. Without lockstep, _process waits up to peer_wait_ms for the
# peer's windows, then classifies without them (peer_unknown). session_hooks:
# f(started); block_hooks: f(k0, hand, nw, step) after each block (live view);
# start_align_ms: a task starts at the next multiple of it on the synced clock.
import asyncio
from array import array

from micropython import const

from mbfw import VERSION
from mbfw import logrec as LR
from mbfw.aio import flag, sleep_ms, wait_flag
from mbfw.config import Config
from mbfw.events import EV_NF, pack
from mbfw.pipeline import Hand
from mbfw.protocol import ERR_BUSY, CommandError
from mbfw.task import STEP_NONE, STEP_REST, Task

ST_IDLE = const(0)
ST_CALIBRATING = const(1)
ST_RUNNING = const(2)
ST_DONE = const(3)
STATE_NAMES = ("IDLE", "CALIBRATING", "RUNNING", "DONE")

CUE_WRITE = const(1)        # two short pulses: start writing
CUE_REST = const(2)         # one long pulse: rest
CUE_DONE = const(3)         # three short pulses: task over
_CUES = ((), ((150, 100), (150, 0)), ((400, 0),), ((120, 80), (120, 80), (120, 0)))
_MOTOR_ON = const(45000)
_LOFF_CH2 = const(0x0C)     # IN2P | IN2N: EXT electrodes off -> FLEX only
LOFF_UNKNOWN = const(0x80)  # electrodes: no block sampled since boot
_SPAN_EVERY = const(1000)   # ACTIVITY record of an open span every 10 s

class PeerLink:
    # activity of the other band per window of the session (a ring)
    def __init__(self, nwin=1024, lockstep=False):
        self.act = bytearray(nwin)
        self.mask = nwin - 1
        self.lockstep = lockstep    # wait for the peer's windows (virtual sim)
        self.flag = asyncio.Event()
        self.reset()

    def reset(self):
        self.upto = 0               # windows 0 .. upto-1 known
        self.gone = False

    def put(self, k0, act, nw):
        m = self.mask
        for w in range(nw):
            self.act[(k0 + w) & m] = act[w]
        if k0 + nw > self.upto:
            self.upto = k0 + nw
        self.flag.set()

    def close(self):
        # the peer stopped (rebooted, out of range): classify without it
        self.gone = True
        self.flag.set()

    def get(self, k0, nw, out):
        if self.upto < k0 + nw or self.upto - k0 > self.mask:
            return False
        m = self.mask
        for w in range(nw):
            out[w] = self.act[(k0 + w) & m]
        return True


def battery_pct(raw_u16, divider=2, vref_mv=3300):
    # LiPo through a divider on an ADC pin: 3.3 V empty .. 4.2 V full
    mv = raw_u16 * vref_mv * divider // 65535
    p = (mv - 3300) * 100 // 900
    return 0 if p < 0 else (100 if p > 100 else p)


class App:
    def __init__(self, board, sampler, log, cfg=None, peer_in=None):
        self.board = board
        self.clock = board.clock
        self.sampler = sampler
        self.log = log
        self.cfg = cfg if cfg is not None else Config()
        self.flag = flag()
        sampler.notify = self.flag.set
        self.cue_flag = asyncio.Event()
        self.cue = 0
        self.state = ST_IDLE
        self.step = 0               # index of the task step in force
        self.points = []
        self._task_points = []
        self.duration = 0           # ms, 0 = until stop_task()
        self.session = 0
        self.protocol_id = 0
        self.t0 = 0
        self.hand = None
        self.k = 0                  # windows processed in this session
        self.peer_in = peer_in
        self.peer_out = []
        self.listeners = []         # live events: f(ev array) (BLE notify later)
        self.block_hooks = []       # per block: f(k0, hand, nw, step) (BLE live envelope)
        self.loff = LOFF_UNKNOWN    # lead-off bits (ADS1292R LOFF_STAT) of the last block
        self.base = [0, 0]          # last FLEX / EXT resting baseline (envelope units)
        self.span0 = -1             # first window of the open activity span
        self.span_at = 0            # window of its last ACTIVITY record
        self.session_hooks = []     # f(started: bool)
        self.peer_wait_ms = 0       # beacon path: wait for the peer's windows
        self.start_align_ms = 0     # 0: start at once
        self.t0_us = 0              # synced band time of window 0
        self._starting = None       # asyncio task of an aligned start
        self.pbuf = bytearray(sampler.block // 10)
        self.ev = array("i", bytes(4 * EV_NF))
        self.events = 0
        self.reboot_requested = False
        self.stopped = False

    # --- device interface (mbfw.handler) ---------------------------------
    def info(self):
        return (self.board.uid, self.board.name, VERSION)

    def status(self):
        return (self.state, self.step, battery_pct(self.board.battery.read_u16()))

    def electrodes(self):
        # (lead-off bits, FLEX and EXT baseline in 0.1 uV mean rectified; 0 unknown)
        return self.loff, self.base[0] >> 3, self.base[1] >> 3

    def now_us(self):
        return self.clock.time_us()

    def set_time(self, us):
        self.clock.set_time_us(us)

    def _idle(self):
        if self.state in (ST_CALIBRATING, ST_RUNNING) or self._starting is not None:
            raise CommandError(ERR_BUSY, "task running")

    def set_task(self, points):
        self._idle()
        Task().set(points)          # validates (TaskError is a ValueError)
        self.points = list(points)
        self.state = ST_IDLE

    def get_config(self):
        return self.cfg

    def set_config(self, cfg):
        self._idle()
        self.cfg = cfg

    def calibrate(self, duration_ms):
        # a rest-only task: learns the EMG baseline
        self._idle()
        if duration_ms < 1000 or duration_ms > 600000:
            raise ValueError("calibration 1..600 s")
        self._begin(0, [(0, STEP_REST), (duration_ms, STEP_NONE)], duration_ms)

    def start_task(self, session_id, duration_ms=0):
        self._idle()
        if not self.points:
            raise ValueError("no task set")
        if not duration_ms and self.points[-1][1] == STEP_NONE:
            duration_ms = self.points[-1][0]
        if self.start_align_ms > 0:
            self._starting = asyncio.create_task(self._aligned(session_id, self.points, duration_ms))
        else:
            self._begin(session_id, self.points, duration_ms)

    async def _aligned(self, session_id, points, duration_ms):
        # wait for the next multiple of start_align_ms of the synced clock
        a = self.start_align_ms * 1000
        now = self.clock.time_us()
        await sleep_ms((a - now % a) // 1000 + 1)
        self._starting = None
        if not self.stopped:
            self._begin(session_id, points, duration_ms)

    def stop_task(self):
        t = self._starting
        if t is not None:
            self._starting = None
            t.cancel()
        if self.state in (ST_CALIBRATING, ST_RUNNING):
            self.sampler.stop()
            self._finish()

    def reboot(self):
        self.reboot_requested = True
        self.stopped = True
        self.flag.set()

    # --- session ----------------------------------------------------------
    def _begin(self, session_id, points, duration_ms):
        self.session = session_id
        self.t0 = self.clock.ticks_ms()
        self.t0_us = self.clock.time_us()
        self.hand = None
        self.k = 0
        self.step = 0
        self.span0 = -1
        self._task_points = points
        self.duration = duration_ms
        if self.peer_in is not None:
            self.peer_in.reset()
        kind = points[0][1] if points and points[0][0] == 0 else STEP_NONE
        self.state = ST_CALIBRATING if kind == STEP_REST else ST_RUNNING
        self.protocol_id = len(points)
        self._session_record(LR.SESSION_START, self.t0)
        self._cue_for(kind)
        self.sampler.start(duration_ms // 10 * 10)
        for f in self.session_hooks:
            f(True)

    def _session_record(self, what, t_ms):
        # start: t_ms = band time of window 0; stop: band time of the end
        unix_s = self.clock.time_us() // 1000000
        p = LR.session_payload(self.session, what, self.cfg.hand, self.protocol_id, t_ms,
                            unix_s if unix_s > 0 else 0)
        self.log.append(LR.T_SESSION, p)

    def _finish(self):
        h = self.hand
        if h is not None:
            h.finish()
            self._drain(h)
        if self.span0 >= 0:
            self._span(self.k, 0)
        self.hand = None
        self.state = ST_DONE
        self._session_record(LR.SESSION_STOP, self.t0 + self.k * 10)
        self._cue_for(-1)
        for f in self.session_hooks:
            f(False)

    def _cue_for(self, kind):
        c = CUE_DONE if kind == -1 else (CUE_REST if kind == STEP_REST else (CUE_WRITE if kind > STEP_REST else 0))
        if c:
            self.cue = c
            self.cue_flag.set()

    def _new_hand(self, slot):
        s = self.sampler
        nch = 1 if s.loff_and[slot] & _LOFF_CH2 == _LOFF_CH2 else 2
        h = Hand(self.cfg, nch=nch, has_imu=s.imu is not None, max_block=s.block)
        t0 = self.t0
        h.task.set([(t0 + t, kind) for t, kind in self._task_points])
        h.start(t0)
        return h

    def _drain(self, h):
        ev = self.ev
        while h.pop(ev):
            self.events += 1
            self.log.append(LR.T_EVENT, pack(ev))
            for f in self.listeners:
                f(ev)

    def _analyse(self, slot):
        s = self.sampler
        n = s.size[slot]
        h = self.hand
        if h is None:
            h = self.hand = self._new_hand(slot)
        nw = n // 10
        k0 = self.k
        m = s.take_imu(k0, nw)
        h.analyse(s.views[slot], n, s.imu_buf, m)
        self.loff = s.loff_or[slot]
        s.release()
        for f in self.peer_out:
            f(k0, h.act_w, nw)
        return nw

    def _detect(self, nw):
        h = self.hand
        if h is None:
            return
        k0 = self.k
        peer = self.peer_in
        ok = peer is not None and peer.get(k0, nw, self.pbuf)
        h.detect(self.pbuf if ok else None)
        self.k = k0 + nw
        self._drain(h)
        st = h.task.cur if h.task.n else 0
        if st != self.step:
            self.step = st
            self.state = ST_RUNNING
            self._cue_for(h.step_w[nw - 1])
        for c in range(h.nch):
            self.base[c] = h.base[c].b
        act = h.act_w
        for w in range(nw):         # this band's activity spans (ACTIVITY records)
            if act[w]:
                if self.span0 < 0:
                    self.span0 = self.span_at = k0 + w
            elif self.span0 >= 0:
                self._span(k0 + w, 0)
        if self.span0 >= 0 and k0 + nw - self.span_at >= _SPAN_EVERY:
            self._span(k0 + nw, 1)
        for f in self.block_hooks:
            f(k0, h, nw, st)

    def _span(self, end, still_open):
        self.log.append(LR.T_ACTIVITY, LR.activity_payload(self.session, self.span0, end, self.cfg.hand, still_open))
        self.span_at = end
        self.span0 = self.span0 if still_open else -1

    # --- tasks --------------------------------------------------------------
    async def _process(self):
        s = self.sampler
        while not self.stopped:
            await self.flag.wait()
            self.flag.clear()
            while not self.stopped and s.pending():
                nw = self._analyse(s.take())
                peer = self.peer_in
                if peer is not None:
                    # lockstep (virtual sim): wait until the peer has these windows
                    while peer.lockstep and not peer.gone and peer.upto < self.k + nw:
                        peer.flag.clear()
                        await peer.flag.wait()
                    if not peer.lockstep and self.peer_wait_ms > 0:
                        await self._peer_wait(peer, self.k + nw)
                self._detect(nw)
                if s.done and not s.pending() and self.state != ST_DONE:
                    s.stop()
                    self._finish()

    async def _peer_wait(self, peer, upto):
        # beacon path: up to peer_wait_ms for the peer's windows (late beacons)
        left = self.peer_wait_ms
        while left > 0 and not peer.gone and peer.upto < upto and not self.stopped:
            peer.flag.clear()
            left -= 2 if await wait_flag(peer.flag, 10) else 10

    async def _haptics(self):
        motor = self.board.motor
        while not self.stopped:
            await self.cue_flag.wait()
            self.cue_flag.clear()
            for on, off in _CUES[self.cue]:
                motor.duty_u16(_MOTOR_ON)
                await sleep_ms(on)
                motor.duty_u16(0)
                if off:
                    await sleep_ms(off)

    async def _heartbeat(self):
        led = self.board.led
        while not self.stopped:
            led.value(1)
            await sleep_ms(40)
            led.value(0)
            busy = self.state in (ST_CALIBRATING, ST_RUNNING)
            await sleep_ms(960 if busy else 2960)

    async def run(self):
        # until reboot(): the band's main loop
        aux = [asyncio.create_task(self._haptics()), asyncio.create_task(self._heartbeat())]
        try:
            await self._process()
        finally:
            for t in aux:
                t.cancel()
            if self.state in (ST_CALIBRATING, ST_RUNNING):
                self.sampler.stop()
            self.board.led.value(0)
            self.board.motor.duty_u16(0)
