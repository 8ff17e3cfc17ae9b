# Board factory of the Raspberry Pi Pico 2 W band (see board.json, which
# holds the same pin table for people and tools). make() builds the hardware
# objects the firmware expects (mbfw.main.build, mbfw.app): nothing here runs
# at import time, and the firmware never sees a pin number.
import time

import machine
from micropython import const

NAME = "pico2w"

_SPI_ID = const(0)
_SCK = const(18)
_MOSI = const(19)
_MISO = const(16)
_ADS_CS = const(17)
_ADS_DRDY = const(20)
_I2C_ID = const(0)
_SCL = const(5)
_SDA = const(4)
_IMU_INT1 = const(6)
_MOTOR = const(15)
_BUTTON = const(14)     # push button to GND
_VBAT = const(26)       # ADC0, LiPo + through a 1:2 divider


class Clock:
    # the firmware's clock: ticks from power-up, absolute time set by the host
    # (time_us is kept by the timer's microsecond count, offset by set_time_us)
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


class Battery:
    # the RP2350's ADC: read_u16() is 0..3.3 V at the pin, as mbfw.app.battery_pct expects
    def __init__(self, pin):
        self.adc = machine.ADC(pin)

    def read_u16(self):
        return self.adc.read_u16()


class Board:
    def __init__(self, **parts):
        for k, v in parts.items():
            setattr(self, k, v)

    def reset(self):
        machine.reset()

    def soft_reset(self):
        machine.soft_reset()


def _uid():
    import hashlib

    return hashlib.sha256(b"mirrorband:" + machine.unique_id()).digest()[:8]


def _bluetooth():
    # the radio hook of mbfw.main.build_radio: a factory -> (module, BLE object)
    import bluetooth

    return bluetooth, bluetooth.BLE()


def make(**options):
    from mbfw.fsio import OsFS

    Pin = machine.Pin
    spi = machine.SPI(_SPI_ID, baudrate=2000000, polarity=0, phase=1,
                      sck=Pin(_SCK), mosi=Pin(_MOSI), miso=Pin(_MISO))
    i2c = machine.I2C(_I2C_ID, scl=Pin(_SCL), sda=Pin(_SDA), freq=400000)
    motor = machine.PWM(Pin(_MOTOR, Pin.OUT, value=0), freq=200, duty_u16=0)
    return Board(
        name=NAME, uid=_uid(), clock=Clock(),
        spi=spi, ads_cs=Pin(_ADS_CS, Pin.OUT, value=1), ads_drdy=Pin(_ADS_DRDY, Pin.IN, Pin.PULL_UP),
        ads_start=None, ads_reset=None,
        i2c=i2c, imu_int1=Pin(_IMU_INT1, Pin.IN),
        led=Pin("LED", Pin.OUT, value=0),
        motor=motor, battery=Battery(_VBAT), button=Pin(_BUTTON, Pin.IN, Pin.PULL_UP),
        fs=OsFS(), bluetooth=options.get("bluetooth", _bluetooth),
    )
