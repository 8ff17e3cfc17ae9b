# Board factory of the Raspberry Pi Pico 2 W band (see board.json, which
# holds the same pin table for people and tools). make() builds the hardware
# objects the firmware expects (mbfw.main.build, mbfw.app): nothing here runs
# at import time, and the firmware never sees a pin number.
import machine
from micropython import const

from mbfw.mcu import Board, Clock, bluetooth, uid

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
        led=Pin("LED", Pin.OUT, value=0),
        motor=motor, battery=Battery(_VBAT), button=Pin(_BUTTON, Pin.IN, Pin.PULL_UP),
        fs=OsFS(), bluetooth=options.get("bluetooth", bluetooth),
    )
