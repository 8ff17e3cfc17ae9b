"""The sampling path (DRDY handler, ADS1292R frame decode, IMU FIFO reads) on real MicroPython:
no allocation under heap_lock, within a 64 KB heap, and no big ints on the 32-bit port."""

from __future__ import annotations

from pathlib import Path

from ..conftest import compile_firmware, run_unix, run_wasm

SCRIPT = Path(__file__).with_name("io_heap_check.py")
# ch1 code -8388607 clips to -(2**19 - 1); ch2 code 5000000 = 480811 counts of 0.5 uV;
# 11 IMU samples in windows 0-9 (104 Hz), 10 in 10-19; acc 32767 LSB = 15990 mg, gyro 22937 (0.1 dps)
EXPECTED = "OK 300 2 -524287 480811 11 10 15990 22937"


def test_sampling_path_allocates_nothing_on_unix_port(tmp_path):
    dest = compile_firmware(tmp_path, [SCRIPT])
    proc = run_unix(f"import sys; sys.path.insert(0, {str(dest)!r}); import io_heap_check", heapsize="64K")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == EXPECTED


def test_sampling_path_on_32bit_port():
    proc = run_wasm(SCRIPT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == EXPECTED
