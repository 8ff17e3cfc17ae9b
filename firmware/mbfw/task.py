# Task protocol: the step in force at a given band time.
# A task is a list of change points (start_ms, kind), in time order; before the
# first one, and where the host configured none, the step is STEP_NONE.
from array import array

from micropython import const

STEP_NONE = const(0)
STEP_REST = const(1)
STEP_WRITE_L = const(2)
STEP_WRITE_R = const(3)
MAX_STEPS = const(32)


class TaskError(ValueError):
    pass


def write_step(hand):
    # the WRITE step kind of a hand (0 = L, 1 = R)
    return STEP_WRITE_L + hand


class Task:
    def __init__(self):
        self.start = array("i", bytes(4 * MAX_STEPS))
        self.kind = bytearray(MAX_STEPS)
        self.n = 0
        self.cur = 0

    def set(self, points):
        # points: sequence of (start_ms, kind) in increasing start order
        n = len(points)
        if n > MAX_STEPS:
            raise TaskError("too many steps")
        last = -1
        for i in range(n):
            t, k = points[i]
            if t < 0 or t <= last or k < STEP_NONE or k > STEP_WRITE_R:
                raise TaskError("bad step %d" % i)
            last = t
        for i in range(n):
            self.start[i] = points[i][0]
            self.kind[i] = points[i][1]
        self.n = n
        self.cur = 0

    def clear(self):
        self.n = 0
        self.cur = 0

    def step_at(self, t):
        # kind of the step in force at t (ms); fast for increasing t
        n = self.n
        if n == 0 or t < self.start[0]:
            self.cur = 0
            return STEP_NONE
        c = self.cur
        if self.start[c] > t:
            c = 0
        while c + 1 < n and self.start[c + 1] <= t:
            c += 1
        self.cur = c
        return self.kind[c]
