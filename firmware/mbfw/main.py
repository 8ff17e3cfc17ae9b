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


def build_handler(app, fs):
    # the protocol handler (one per boot: USB console and BLE share its
    # identity, so command counters stay monotonic across both)
    from mbfw.handler import Handler
    from mbfw.identity import FileStore, Identity

    return Handler(app, app.log, Identity(FileStore(fs, IDENTITY)))


def build_console(app, fs, handler=None):
    # the USB console's command interpreter over the protocol handler
    from mbfw.console import Console

    return Console(handler if handler is not None else build_handler(app, fs))


def build_radio(app, board, handler, secure=True):
    # the BLE service and the activity beacon, when the board has a radio
    # (board.bluetooth: the bluetooth module, or a factory -> (module, BLE))
    from mbfw import VERSION, events
    from mbfw.beacon import PeerRadio
    from mbfw.bleservice import BleService

    bt = getattr(board, "bluetooth", None)
    if bt is None:
        return None
    made = bt() if not hasattr(bt, "BLE") else (bt, bt.BLE())  # pyright: ignore[reportFunctionMemberAccess]
    module = made[0]
    ble = made[1]
    hand = app.cfg.hand
    name = "Mirrorband-" + ("L" if hand == 0 else "R")
    service = BleService(module, ble, handler, name, hand, secure=secure, fw=VERSION)
    app.listeners.append(lambda ev: service.live_event(events.pack(ev)))
    app.start_align_ms = 1000
    peer = PeerRadio(app, service, board.uid[:4])
    return service, peer


async def radio_loop(service, peer):
    # next to app.run(): the BLE service and the beacon's loss check
    async def checks():
        while not service.stopped:
            peer.check()
            await asyncio.sleep(0.1)

    t = asyncio.create_task(checks())
    try:
        await service.run()
    finally:
        t.cancel()


async def run(app, radio=None):
    if radio is None:
        await app.run()
        return
    t = asyncio.create_task(radio_loop(radio[0], radio[1]))
    try:
        await app.run()
    finally:
        radio[0].stop()
        t.cancel()


def main(board=None):
    if board is None:
        import board as board_module  # pyright: ignore[reportMissingImports]  # frozen in

        board = board_module.make()
    from mbfw import usbconsole

    app = build(board)
    # one handler for the radio and the USB console, so counters stay in step
    handler = build_handler(app, board.fs)
    radio = build_radio(app, board, handler)
    asyncio.run(usbconsole.serve(app, board, run(app, radio), handler))
    if app.reboot_requested:
        board.reset()
