# Runs inside MicroPython (unix port): replays integer streams written by
# mirrorband.detect.mpy through the firmware, block by block, printing one line per event.
# usage: micropython _mpy_runner.py FIRMWARE_DIR INPUT   (INPUT "-": read from stdin)
import sys

sys.path.insert(0, sys.argv[1])

import json  # noqa: E402
from array import array  # noqa: E402

from mbfw.config import Config  # noqa: E402
from mbfw.events import EV_NF  # noqa: E402
from mbfw.pipeline import Hand  # noqa: E402


def read_full(f, buf, want):
    # readinto of a stream reads until the buffer is full or the input ends
    n = f.readinto(buf)
    if n != want:
        raise OSError("input ends early (%s of %d bytes)" % (n, want))


def main():
    f = sys.stdin.buffer if sys.argv[2] == "-" else open(sys.argv[2], "rb")
    head = json.loads(f.readline())
    block = head["block"]
    maxm = head["maxm"]
    hands = []
    bufs = []
    tails = []
    for spec, cfg in zip(head["hands"], head["cfg"]):
        h = Hand(Config(**cfg), nch=spec["nch"], has_imu=bool(spec["imu"]))
        h.task.set([tuple(p) for p in head["steps"]])
        h.start(0)
        hands.append(h)
        bufs.append((array("i", bytes(4 * spec["nch"] * block)), None))
        tails.append(array("i", bytes(4 * spec["nch"] * head["tail"])))
    mbuf = array("i", [0])
    imu = array("i", bytes(4 * 7 * maxm))
    ev = array("i", bytes(4 * EV_NF))
    two = len(hands) == 2
    nblocks = head["blocks"] + (1 if head["tail"] else 0)
    for b in range(nblocks):
        size = block if b < head["blocks"] else head["tail"]
        for i in range(len(hands)):
            emg = bufs[i][0] if size == block else tails[i]
            read_full(f, emg, 4 * len(emg))
            read_full(f, mbuf, 4)
            read_full(f, imu, 28 * maxm)
            hands[i].analyse(emg, size, imu, mbuf[0])
        if two:
            hands[0].detect(hands[1].act_w)
            hands[1].detect(hands[0].act_w)
        else:
            hands[0].detect(None)
        for h in hands:
            while h.pop(ev):
                print("E", *ev)
    for h in hands:
        h.finish()
        while h.pop(ev):
            print("E", *ev)
    f.close()


main()
