# Board factory of the virtual band (CPython): the same kinds of objects a real
# board's factory gives the firmware (see board.json), backed by emulated chips.
# The firmware's entry point calls make(); the simulation passes the band's
# hand, signal source, clock and flash (mirrorband.sim.virtual.band does this).
# The radio hook: make(bluetooth=factory) where factory() returns an object with
# MicroPython's bluetooth.BLE API (built by the BLE layer); None means no radio.


def make(hand, signals, clock, flash, **options):
    from mirrorband.sim.virtual.hardware import build_board

    return build_board(hand, signals, clock, flash, **options)
