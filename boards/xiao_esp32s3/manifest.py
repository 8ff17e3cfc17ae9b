# Freeze manifest for a custom MicroPython build of the XIAO ESP32S3 band:
#   cd micropython/ports/esp32
#   make BOARD=ESP32_GENERIC_S3 FROZEN_MANIFEST=/path/to/mirrorband/boards/xiao_esp32s3/manifest.py
# The port's own manifest comes first (asyncio, etc.), then the band firmware
# package and this board's factory as the top-level module `board`.
# (mirrorband flash copies the same files to the filesystem instead.)
include("$(PORT_DIR)/boards/manifest.py")  # noqa: F821 - provided by MicroPython's build
package("mbfw", base_path="../../firmware")  # noqa: F821
module("board.py")  # noqa: F821
