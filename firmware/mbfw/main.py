# Firmware entry point: board factory -> drivers -> event log -> app.
# On a band, main.py at the filesystem root does `from mbfw.main import main;
# main()`: the frozen `board` module of the board folder builds the hardware
# objects. The virtual band calls build() with its board and runs the app on
# its own asyncio loop.
import asyncio

from mbfw.ads1292r import ADS1292R
from mbfw.app import App
from mbfw.lsm6dsox import LSM6DSOX, LSM6DSOXError
from mbfw.sampler import Sampler

LOG_ROOT = "/log"
IDENTITY = "/identity"


def open_log(fs):
    # the band's event log on its flash (mbfw.eventlog), recovered at boot
    from mbfw.eventlog import EventLog

    log = EventLog(fs, LOG_ROOT)
    log.recover()
    return log


def build(board, log=None):
    ads = ADS1292R(board.spi, board.ads_cs, board.ads_drdy, start=board.ads_start,
                   reset=board.ads_reset)
    ads.init()
    imu = LSM6DSOX(board.i2c, int1=board.imu_int1)
    try:
        imu.init()
    except LSM6DSOXError:
        imu = None              # run on EMG alone
    sampler = Sampler(ads, imu)
    if log is None:
        log = open_log(board.fs)
    return App(board, sampler, log)


def build_console(app, fs):
    # the USB console's command interpreter over the protocol handler
    from mbfw.console import Console
    from mbfw.handler import Handler
    from mbfw.identity import FileStore, Identity

    handler = Handler(app, app.log, Identity(FileStore(fs, IDENTITY)))
    return Console(handler)


def main(board=None):
    if board is None:
        import board as board_module  # pyright: ignore[reportMissingImports]  # frozen in

        board = board_module.make()
    app = build(board)
    asyncio.run(app.run())
    if app.reboot_requested:
        board.reset()
