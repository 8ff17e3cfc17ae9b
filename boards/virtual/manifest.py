# Freeze manifest of the virtual board. The virtual band runs the firmware
# package from source under CPython, so nothing is frozen into a binary; this
# manifest lists what a build would include, in the form MicroPython's
# manifest.py uses (tools/manifest.py), for parity with the hardware boards.
package("mbfw", base_path="../../firmware")  # noqa: F821 - provided by MicroPython's build
module("board.py")  # noqa: F821
