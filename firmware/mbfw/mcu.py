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


def build(name, spi, ads, i2c, imu_int1, motor, button, led, battery, bluetooth_factory=None):
    # the board record from a board's pin table: spi = (id, sck, mosi, miso),
    # ads = (cs, drdy), i2c = (id, scl, sda); led and battery are built by the
    # board (they differ between ports)
    from mbfw.fsio import OsFS

    Pin = machine.Pin
    return Board(
        name=name, uid=uid(), clock=Clock(),
        spi=machine.SPI(spi[0], baudrate=2000000, polarity=0, phase=1,
                        sck=Pin(spi[1]), mosi=Pin(spi[2]), miso=Pin(spi[3])),
        ads_cs=Pin(ads[0], Pin.OUT, value=1), ads_drdy=Pin(ads[1], Pin.IN, Pin.PULL_UP),
        ads_start=None, ads_reset=None,
        i2c=machine.I2C(i2c[0], scl=Pin(i2c[1]), sda=Pin(i2c[2]), freq=400000),
        imu_int1=Pin(imu_int1, Pin.IN),
        led=led,
        motor=machine.PWM(Pin(motor, Pin.OUT, value=0), freq=200, duty_u16=0),
        battery=battery, button=Pin(button, Pin.IN, Pin.PULL_UP),
        fs=OsFS(), bluetooth=bluetooth_factory or bluetooth,
    )
