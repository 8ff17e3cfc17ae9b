# Pieces shared by the microcontroller board factories (boards/*/board.py):
# the clock, the board record, the band's identity and the radio hook. Only
# the board factories import this module, on a real MicroPython port.
import time

import machine


class Clock:
    # the firmware's clock: ticks from power-up, absolute time set by the host
    # (time_us is the port's microsecond time, offset by set_time_us)
    def __init__(self):
        self._epoch = 0

    def ticks_ms(self):
        return time.ticks_ms()

    def ticks_us(self):
        return time.ticks_us()

    def time_us(self):
        return time.time_ns() // 1000 + self._epoch

    def set_time_us(self, us):
        self._epoch = us - time.time_ns() // 1000


class Board:
    # the hardware objects mbfw.main.build expects, by name
    def __init__(self, **parts):
        for k, v in parts.items():
            setattr(self, k, v)

    def reset(self):
        machine.reset()

    def soft_reset(self):
        machine.soft_reset()


def uid():
    # 8-byte band id derived from the chip's unique id
    import hashlib

    return hashlib.sha256(b"mirrorband:" + machine.unique_id()).digest()[:8]


def bluetooth():
    # the radio hook of mbfw.main.build_radio: a factory -> (module, BLE object)
    import bluetooth as bt

    return bt, bt.BLE()
