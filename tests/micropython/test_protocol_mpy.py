"""The wire protocol on real MicroPython interpreters: the golden byte vectors of
protocol_check.py (the same table tests/firmware/test_protocol.py checks under
CPython), log pages encrypted with the port's cryptolib (CTR built on its ECB
mode) decrypting with the host's AES, and the command handler answering mutated
frames without raising.

* unix port (64-bit small ints, cryptolib present), firmware compiled by mpy-cross;
* 32-bit WebAssembly port (31-bit small ints, no cryptolib: pages unencrypted).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..conftest import compile_firmware, run_unix, run_wasm

HERE = Path(__file__).parent
CHECK = HERE / "protocol_check.py"


def _unix(dest: Path, code: str, heapsize: str) -> str:
    proc = run_unix(f"import sys; sys.path.insert(0, {str(dest)!r})\n" + code, heapsize=heapsize)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


def test_golden_vectors_on_unix_port_within_64k(tmp_path):
    dest = compile_firmware(tmp_path, [CHECK])
    out = _unix(dest, "import protocol_check as pc\nfrom mbfw.security import DEFAULT_CTR\n"
                      "assert DEFAULT_CTR is not None, 'no cryptolib'\n"
                      "f, n = pc.run()\nprint('RESULT', n, ' '.join(f) or 'none')", "64K")
    m = re.search(r"RESULT (\d+) (.*)", out)
    assert m, out
    assert m.group(2) == "none", m.group(2)
    assert int(m.group(1)) >= 240  # every vector, round trip, tamper and range check ran


def test_handler_and_console_on_unix_port(tmp_path):
    # protocol + security + identity + handler + console loaded from .mpy files
    # (not frozen) need ~60 KB of heap on the unix port; a band freezes them
    dest = compile_firmware(tmp_path, [CHECK])
    out = _unix(dest, "import gc, protocol_check as pc\ngc.collect(); a = gc.mem_alloc()\n"
                      "f, codes = pc.run_handler(mutants=5000)\ngc.collect()\n"
                      "print('RESULT', codes, gc.mem_alloc() - a, ' '.join(f) or 'none')", "96K")
    m = re.search(r"RESULT (\d+) (-?\d+) (.*)", out)
    assert m, out
    assert m.group(3) == "none", m.group(3)
    codes = int(m.group(1))
    for code in (1, 3, 4):  # bad frame, bad length, bad tag all seen
        assert codes & (1 << code), codes


def test_golden_vectors_on_32bit_port():
    proc = run_wasm(CHECK)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = re.search(r"^OK (\d+) (\d+) no-aes$", proc.stdout, re.M)
    assert m, proc.stdout
    assert int(m.group(1)) >= 140
