# Freeze manifest for a custom MicroPython build of the Pico 2 W band:
#   cd micropython/ports/rp2
#   make BOARD=RPI_PICO2_W FROZEN_MANIFEST=/path/to/mirrorband/boards/pico2w/manifest.py
# The port's own manifest comes first (asyncio, the CYW43 driver, etc.), then the band firmware
# package and this board's factory as the top-level module `board`.
# (mirrorband flash copies the same files to the filesystem instead.)
include("$(BOARD_DIR)/manifest.py")  # noqa: F821 - provided by MicroPython's build
package("mbfw", base_path="../../firmware")  # noqa: F821
module("board.py")  # noqa: F821
