# The band's USB console on real hardware: reads the USB serial (sys.stdin)
# next to the app's tasks and answers with mbfw.console, plus the diagnostics
# `diag` and `selftest` (also used by the virtual band's pty console, so that
# `mirrorband doctor` reads the same fields from both).
#
# Line rules are those of the MicroPython REPL and of the virtual console: a
# line is submitted on CR, LF is ignored, backspace edits, nothing is echoed
# (a provisioning key never comes back), every answer ends with one line
# starting OK, ERR or CONFIRM and then the prompt ">>> ".
# Ctrl-D soft-reboots the band (machine.soft_reset: "MPY: soft reboot", then
# main.py starts the firmware again with its banner; board.soft_reset is
# machine.soft_reset). Ctrl-C is MicroPython's
# keyboard interrupt: it stops the firmware and leaves the band at the REPL;
# that is how mpremote (mirrorband flash) takes over, and Ctrl-D or a reset
# starts the firmware again.
#
# Hook in mbfw.main.main(), with handler = build_handler(app, board.fs) shared
# with build_radio:
#   asyncio.run(usbconsole.serve(app, board, run(app, radio), handler))
import sys

from micropython import const

from mbfw import VERSION

_CR = const(0x0D)
_LF = const(0x0A)
_BS = const(0x08)
_DEL = const(0x7F)
_CTRL_D = const(0x04)
_MAX_LINE = const(1024)
PROMPT = ">>> "


def banner(board):
    return "Mirrorband band firmware %s on %s (type help)" % (VERSION, board.name)


def diag(app, extra=None):
    # one-line diagnostics of a running app: state, sensors, sampler, clock, log
    from mbfw.app import STATE_NAMES

    s = app.sampler
    used, free, pending, first, nxt, acked = app.log.status()
    fields = [
        ("state", STATE_NAMES[app.state]), ("step", app.step),
        ("board", app.board.name), ("fw", VERSION),
        ("samples", s.samples), ("overruns", s.overruns), ("bad_frames", s.bad),
        ("leadoff", "0x%02x" % s.ads.loff),
        ("imu", "yes" if s.imu is not None else "no"),
        ("ticks_ms", app.clock.ticks_ms()), ("time_us", app.clock.time_us()),
        ("events", app.events), ("log_used", used), ("log_free", free), ("log_pending", pending),
    ]
    if extra:
        fields.extend(extra)
    return "OK diag " + " ".join("%s=%s" % kv for kv in fields)


def _drdy_wait(pin, tries):
    # busy-wait for a conversion (bounded by iterations, not by a clock)
    while tries > 0:
        if not pin.value():
            return True
        tries -= 1
    return False


def selftest(app):
    # register-level self-test of both sensors while the band is idle:
    # ADS1292R ID, configuration written and read back (init), lead-off
    # status of each electrode after a conversion; LSM6DSOX WHO_AM_I and
    # configuration (init). Leaves both chips configured as at boot.
    from mbfw import ads1292r as A
    from mbfw.app import ST_CALIBRATING, ST_RUNNING

    if app.state in (ST_CALIBRATING, ST_RUNNING):
        return "ERR busy: stop the task first"
    s = app.sampler
    ads = s.ads
    out = []
    ok = True
    try:
        ads.init()
        out.append("ads=ok ads_id=0x%02x" % ads.read_reg(A.ID))
        ads.command(A.START)
        _drdy_wait(ads.drdy, 20000)
        lo = ads.read_reg(A.LOFF_STAT) & 0x1F
        ads.command(A.STOP)
        out.append("leadoff=0x%02x" % lo)
    except Exception as e:  # the chip is missing or does not answer
        ok = False
        out.append("ads=fail (%s)" % e)
    imu = s.imu
    if imu is None:
        from mbfw.lsm6dsox import LSM6DSOX

        board = app.board
        imu = LSM6DSOX(board.i2c, int1=board.imu_int1)
    try:
        imu.init()
        from mbfw.lsm6dsox import WHO_AM_I

        out.append("imu=ok imu_who=0x%02x" % imu.read_reg(WHO_AM_I))
    except Exception as e:
        ok = False
        out.append("imu=fail (%s)" % e)
    return ("OK selftest " if ok else "ERR selftest ") + " ".join(out)


class LineConsole:
    # bytes in -> answers out, for the USB console (write: a function of str)
    def __init__(self, console, app, write, reboot):
        self.console = console
        self.app = app
        self.write = write
        self.reboot = reboot
        self.line = bytearray()

    def feed(self, data):
        for c in data:
            if c == _CTRL_D:
                self.line = bytearray()
                self.write("MPY: soft reboot\r\n")
                self.reboot()
                return
            if c == _CR:
                text = bytes(self.line).decode()
                self.line = bytearray()
                self.write("\r\n")
                self.command(text)
            elif c == _LF:
                continue
            elif c in (_BS, _DEL):
                if self.line:
                    self.line = self.line[:-1]
            elif c >= 0x20 and len(self.line) < _MAX_LINE:
                self.line.append(c)

    def command(self, text):
        text = text.strip()
        if not text:
            self.write(PROMPT)
            return
        word = text.split()[0]
        try:
            if word == "diag":
                out = diag(self.app)
            elif word == "selftest":
                out = selftest(self.app)
            else:
                out = self.console.line(text)
        except Exception as e:
            out = "ERR %s" % e
        self.write(out.replace("\r\n", "\n").replace("\n", "\r\n") + "\r\n" + PROMPT)


async def _reader(lc):
    import asyncio

    stream = asyncio.StreamReader(getattr(sys.stdin, "buffer", sys.stdin))
    while True:
        data = await stream.read(64)
        if data:
            lc.feed(data.encode() if isinstance(data, str) else data)


def _stdout_write(text):
    sys.stdout.write(text)


async def serve(app, board, work=None, handler=None):
    # run `work` (default app.run()) with the USB console beside it; returns
    # when it returns. handler: the firmware's protocol Handler, shared with
    # the radio (default: a new one over the board's identity store)
    import asyncio

    if handler is None:
        from mbfw.main import build_console

        console = build_console(app, board.fs)
    else:
        from mbfw.console import Console

        console = Console(handler)
    lc = LineConsole(console, app, _stdout_write, board.soft_reset)
    _stdout_write(banner(board) + "\r\n" + PROMPT)
    task = asyncio.create_task(_reader(lc))
    try:
        await (app.run() if work is None else work)
    finally:
        task.cancel()
