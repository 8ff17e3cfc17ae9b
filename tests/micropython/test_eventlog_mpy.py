"""The event log on real MicroPython interpreters.

* unix port, ``-X heapsize=64K``, firmware compiled with mpy-cross as on a band:
  appends allocate nothing (measured with gc.mem_alloc and under heap_lock),
  hundreds of appends with segment rotation leave the heap where it was, a
  reboot recovers the same status and every record, a torn tail is truncated;
* a log written by CPython is recovered and read by MicroPython (same format);
* 32-bit WebAssembly port: the same check; there binascii.crc32 returns a big
  int for CRCs >= 2**30, the only allocation of an append (bounded here).
"""

from __future__ import annotations

from pathlib import Path

from mbfw.eventlog import EventLog
from mbfw.fsio import OsFS
from mbfw.logrec import T_EVENT

from ..conftest import compile_firmware, run_unix, run_wasm
from ..firmware.test_eventlog import event_payload

HERE = Path(__file__).parent
CHECK = HERE.parents[1] / "host" / "mirrorband" / "benchmarks" / "mpscripts" / "eventlog_check.py"


def _figures(out: str) -> dict[str, int]:
    lines = out.splitlines()
    assert lines and lines[-1].strip() == "OK", out
    f = {}
    for ln in lines[:-1]:
        w = ln.split()
        f.update({w[i]: int(w[i + 1]) for i in range(0, len(w) - 1, 2)})
    return f


def test_append_and_recover_within_64k_heap(tmp_path):
    dest = compile_firmware(tmp_path / "fw", [CHECK])
    root = tmp_path / "log"
    code = f"import sys; sys.path.insert(0, {str(dest)!r}); import eventlog_check; eventlog_check.run({str(root)!r}, 800)"
    proc = run_unix(code, heapsize="64K")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    f = _figures(proc.stdout)
    assert f["ALLOC_PER_APPEND"] == 0
    assert f["LOCKED_APPENDS"] == 20            # 20 appends with the heap locked
    assert f["HEAP_GROWTH"] == 0                # 800 more, with rotations
    assert f["STATE"] < 4096                    # the log object itself
    assert f["HEAP_IN_USE"] < 48 * 1024
    assert f["RECORDS"] == 862 and f["NEXT"] == 863 and f["USED"] > 40_000
    assert f["READ"] == f["LAST"] == 862
    # MicroPython's files are CPython-readable: same log, same records
    log = EventLog(OsFS(), root=str(root), seg_size=4096, nseg=16)
    log.recover()
    assert log.status()[2:5] == (863, 1, 864)  # + the record appended after the torn tail


def test_micropython_recovers_a_log_written_by_cpython(tmp_path):
    root = tmp_path / "log"
    log = EventLog(OsFS(), root=str(root), seg_size=2048, nseg=8)
    log.recover()
    for k in range(300):
        log.append(T_EVENT, event_payload(k))
    log.ack(120)
    log.erase_acked()
    st = log.status()
    dest = compile_firmware(tmp_path / "fw", [CHECK])
    code = (f"import sys; sys.path.insert(0, {str(dest)!r}); import eventlog_check; "
            f"eventlog_check.recover_only({str(root)!r}, 2048, 8)")
    proc = run_unix(code, heapsize="64K")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    f = _figures(proc.stdout)
    assert f["USED"] == st[0]
    assert f["RECORDS"] == st[2] == 180
    assert f["NEXT"] == 301
    assert f["READ"] == 300 - (st[3] - 1)  # every record still on the band


def test_event_log_on_32bit_port(tmp_path):
    script = tmp_path / "eventlog_wasm.py"
    script.write_text("import os\ntry:\n    os.mkdir('/tmp')\nexcept OSError:\n    pass\n"
                      + CHECK.read_text() + "\nrun('/tmp/log', 300)\n")
    proc = run_wasm(script)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    f = _figures(proc.stdout)
    assert f["ALLOC_PER_APPEND"] <= 64   # CRC big ints only
    assert f["READ"] == f["LAST"] == 342


def test_log_bench_fills_1mb_and_both_runtimes_recover_it():
    from mirrorband.benchmarks.eventlog import run_log_bench

    msgs: list[str] = []
    r = run_log_bench(msgs.append)
    assert len(msgs) == 3
    fill = r["fill"]
    assert r["log_bytes"] == 1 << 20
    assert fill["free_bytes"] < 512 and fill["records"] > 27_000     # really full
    assert fill["snippets_evicted"] > 0 and fill["snippets_refused"] > 0
    assert r["cpython"]["records_read"] == fill["records"]
    mp = r["micropython"]
    assert "error" not in mp, mp
    assert mp["records_read"] == mp["records"] == fill["records"] and mp["next_seq"] == fill["next_seq"]
    assert r["consistent"] is True
