"""pytest-embedded serial test against a virtual band's pty console.

Not collected by the main run (no ``test_`` file prefix): tests/virtual/test_sim_cli.py
runs it in a nested pytest with ``--embedded-services serial --port=/dev/pts/N``
while ``mirrorband sim`` serves the port, as CI would against a band.
"""


def test_banner_and_commands(dut):
    # the port's input buffer was flushed on open: Ctrl-D gets a fresh banner
    dut.write("\x04")
    dut.expect_exact("MPY: soft reboot", timeout=10)
    dut.expect(r"Mirrorband band firmware \S+ on virtual band [LR]", timeout=10)
    dut.expect_exact(">>> ", timeout=5)
    dut.write("info\r")  # submitted on CR, like the MicroPython REPL
    dut.expect(r"OK info .*board=virtual", timeout=5)
    dut.write("diag\r")
    dut.expect(r"OK diag state=IDLE .*ads_id=0x73", timeout=5)
    dut.write("bogus\r")
    dut.expect(r"ERR \d+", timeout=5)
