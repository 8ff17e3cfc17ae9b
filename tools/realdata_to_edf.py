#!/usr/bin/env python3
"""Convert the UCI Myo gesture recordings in ../shared/data to EDF+ files.

    python tools/realdata_to_edf.py OUTDIR [--data DIR] [--no-rest]

Each ``<name>.txt.gz`` becomes ``OUTDIR/<name>.edf``: one right hand, EMG R FLEX
and EMG R EXT in uV at 1000 Hz, ``BURST R`` ground truth (and ``REST`` task
steps unless ``--no-rest``), exactly as :func:`mirrorband.datasets.load_uci`
builds them (docs/evaluation.md §10). The files can then go through
``mirrorband replay`` / ``mirrorband eval`` like any recording. The data are
licensed CC BY 4.0 (Lobov et al. 2018); keep the outputs out of the repository.
Exit 0 on success, 2 with a one-line error otherwise; progress on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Convert the UCI Myo gesture recordings to EDF+.")
    ap.add_argument("outdir", type=Path, help="output directory (created if missing)")
    ap.add_argument("--data", type=Path, default=None,
                    help="shared data folder (default: $MIRRORBAND_SHARED_DATA or <repo>/../shared/data)")
    ap.add_argument("--no-rest", action="store_true", help="do not add REST steps for the class-1 rest segments")
    args = ap.parse_args(argv)

    from mirrorband.datasets import load_uci, uci_files
    from mirrorband.edf import write_edf
    from mirrorband.recording import RecordingError

    try:
        files = uci_files(args.data)
        args.outdir.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(files, 1):
            rec = load_uci(f, rest=not args.no_rest)
            out = args.outdir / (f.name.removesuffix(".gz").removesuffix(".txt") + ".edf")
            write_edf(rec, out)
            print(f"[{i}/{len(files)}] {out}", file=sys.stderr)
    except (FileNotFoundError, RecordingError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.fspath(Path(__file__).resolve().parents[1] / "host"))
    sys.path.insert(1, os.fspath(Path(__file__).resolve().parents[1] / "firmware"))
    sys.exit(main())
