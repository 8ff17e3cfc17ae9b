# Runs inside MicroPython (unix port or 32-bit WebAssembly port). FW must be on
# sys.path before this file runs. Two bands process synthetic blocks (noise,
# bursts, knocks, a task protocol) with the heap locked: any allocation in the
# per-block loop, including a small int overflowing into a big int on a 31-bit
# port, raises MemoryError. Prints one line: "OK blocks events alloc" or "FAIL ...".
import gc
from array import array

import micropython

from mbfw.config import Config
from mbfw.events import EV_KIND, EV_NF
from mbfw.pipeline import Hand
from mbfw.task import STEP_REST, STEP_WRITE_L, STEP_WRITE_R

N = 100          # samples per block
NB = 600         # blocks (60 s)
seed = array("i", [12345])


def noise(amp):
    # ZX81-style LCG, small ints only
    x = (seed[0] * 75 + 74) % 65537
    seed[0] = x
    return ((x & 255) - 128) * amp >> 7


def fill(emg, imu, b, hand):
    # EMG: noise (~3 uV), bursts in some seconds, 50 Hz mains; IMU: gravity + knocks
    t0 = b * N
    sec = t0 // 1000
    burst = (sec % 7 == 3) or (hand == 1 and 20 <= sec < 40 and sec % 3 == 1)
    big = 30000 if sec == 55 else 0  # a strong burst: large intermediates
    knock = t0 == 47000  # a knock: a 100 ms transient with an IMU jolt at its onset
    if knock:
        big = 2000
    for c in range(2):
        for i in range(N):
            v = noise(8)
            if burst or big:
                v += noise(200 + big)
            v += ((t0 + i) % 20 - 10) * 4
            emg[c * N + i] = v + 1000
    m = 0
    j = (t0 * 104 + 999) // 1000
    while j * 1000 // 104 < t0 + N:
        w = (j * 1000 // 104 - t0) // 10
        k = m * 7
        imu[k] = w
        imu[k + 1] = noise(20)
        imu[k + 2] = noise(20)
        imu[k + 3] = 1000 + (1800 if knock and w == 0 else 0)
        imu[k + 4] = noise(100)
        imu[k + 5] = noise(100) + (300 if burst else 0)
        imu[k + 6] = noise(100)
        m += 1
        j += 1
    return m


def run():
    emg = array("i", bytes(4 * 2 * N))
    imu = array("i", bytes(4 * 7 * 16))
    ev = array("i", bytes(4 * EV_NF))
    counts = array("i", bytes(4 * 4))
    gc.collect()
    base = gc.mem_alloc()
    hands = (Hand(Config(hand=0)), Hand(Config(hand=1)))
    steps = ((0, STEP_REST), (15000, STEP_WRITE_L), (35000, STEP_REST), (40000, STEP_WRITE_R))
    for h in hands:
        h.task.set(steps)
        h.start(0)
    gc.collect()
    before = gc.mem_alloc()
    state = before - base
    micropython.heap_lock()
    ok = 0
    try:
        for b in range(NB):
            for hi in range(2):
                m = fill(emg, imu, b, hi)
                hands[hi].analyse(emg, N, imu, m)
            hands[0].detect(hands[1].act_w)
            hands[1].detect(hands[0].act_w)
            for h in hands:
                while h.pop(ev):
                    counts[ev[EV_KIND]] += 1
        for h in hands:
            h.finish()
            while h.pop(ev):
                counts[ev[EV_KIND]] += 1
        ok = 1
    except MemoryError:
        ok = 0
    finally:
        micropython.heap_unlock()
    grown = gc.mem_alloc() - before
    if ok:
        print("OK", NB, counts[1], counts[2], counts[3], grown, state, before)
    else:
        print("FAIL allocation in the block loop", b)


run()
