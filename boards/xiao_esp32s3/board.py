# Board factory of the Seeed Studio XIAO ESP32S3 band (see board.json, which
# holds the same pin table for people and tools). make() builds the hardware
# objects the firmware expects (mbfw.main.build, mbfw.app): nothing here runs
# at import time, and the firmware never sees a pin number.
import machine
from micropython import const

from mbfw.mcu import Board, Clock, bluetooth, uid

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
    from mbfw.fsio import OsFS

    Pin = machine.Pin
    spi = machine.SPI(_SPI_ID, baudrate=2000000, polarity=0, phase=1,
                      sck=Pin(_SCK), mosi=Pin(_MOSI), miso=Pin(_MISO))
    i2c = machine.I2C(_I2C_ID, scl=Pin(_SCL), sda=Pin(_SDA), freq=400000)
    motor = machine.PWM(Pin(_MOTOR, Pin.OUT, value=0), freq=200, duty_u16=0)
    return Board(
        name=NAME, uid=uid(), clock=Clock(),
        spi=spi, ads_cs=Pin(_ADS_CS, Pin.OUT, value=1), ads_drdy=Pin(_ADS_DRDY, Pin.IN, Pin.PULL_UP),
        ads_start=None, ads_reset=None,
        i2c=i2c, imu_int1=Pin(_IMU_INT1, Pin.IN),
        led=machine.Signal(Pin(_LED, Pin.OUT, value=1), invert=True),
        motor=motor, battery=Battery(_VBAT), button=Pin(_BUTTON, Pin.IN, Pin.PULL_UP),
        fs=OsFS(), bluetooth=options.get("bluetooth", bluetooth),
    )
