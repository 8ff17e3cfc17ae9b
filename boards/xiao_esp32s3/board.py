# Board factory of the Seeed Studio XIAO ESP32S3 band (see board.json, which
# holds the same pin table for people and tools). make() builds the hardware
# objects the firmware expects (mbfw.main.build, mbfw.app): nothing here runs
# at import time, and the firmware never sees a pin number.
import machine
from micropython import const

from mbfw.mcu import build

NAME = "xiao_esp32s3"

_SPI_ID = const(1)
_SCK = const(7)         # D8
_MOSI = const(9)        # D10
_MISO = const(8)        # D9
_ADS_CS = const(4)      # D3
_ADS_DRDY = const(3)    # D2
_I2C_ID = const(0)
_SCL = const(6)         # D5
_SDA = const(5)         # D4
_IMU_INT1 = const(43)   # D6
_MOTOR = const(44)      # D7
_LED = const(21)        # user LED, active low
_BUTTON = const(0)      # BOOT button, active low
_VBAT = const(1)        # D0, BAT+ through a 1:2 divider


class Battery:
    # ADC with the ESP32's calibrated read_uv(), scaled so that read_u16()
    # means 0..3.3 V at the pin as mbfw.app.battery_pct expects
    def __init__(self, pin):
        self.adc = machine.ADC(machine.Pin(pin), atten=machine.ADC.ATTN_11DB)

    def read_u16(self):
        uv = self.adc.read_uv()
        v = uv * 65535 // 3300000
        return 65535 if v > 65535 else v


def make(**options):
    return build(NAME, spi=(_SPI_ID, _SCK, _MOSI, _MISO), ads=(_ADS_CS, _ADS_DRDY), i2c=(_I2C_ID, _SCL, _SDA),
                 imu_int1=_IMU_INT1, motor=_MOTOR, button=_BUTTON,
                 led=machine.Signal(machine.Pin(_LED, machine.Pin.OUT, value=1), invert=True),
                 battery=Battery(_VBAT), bluetooth_factory=options.get("bluetooth"))
