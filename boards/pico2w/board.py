# Board factory of the Raspberry Pi Pico 2 W band (see board.json, which
# holds the same pin table for people and tools). make() builds the hardware
# objects the firmware expects (mbfw.main.build, mbfw.app): nothing here runs
# at import time, and the firmware never sees a pin number.
import machine
from micropython import const

from mbfw.mcu import build

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


class Battery:
    # the RP2350's ADC: read_u16() is 0..3.3 V at the pin, as mbfw.app.battery_pct expects
    def __init__(self, pin):
        self.adc = machine.ADC(pin)

    def read_u16(self):
        return self.adc.read_u16()


def make(**options):
    return build(NAME, spi=(_SPI_ID, _SCK, _MOSI, _MISO), ads=(_ADS_CS, _ADS_DRDY), i2c=(_I2C_ID, _SCL, _SDA),
                 imu_int1=_IMU_INT1, motor=_MOTOR, button=_BUTTON,
                 led=machine.Pin("LED", machine.Pin.OUT, value=0),
                 battery=Battery(_VBAT), bluetooth_factory=options.get("bluetooth"))
