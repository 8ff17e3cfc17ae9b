"""Commands on the session store: ``sessions``, ``report``, ``export``, ``import``,
``treatment add|list`` and ``trends``.

Every command takes ``--data-dir`` (default: ``$MIRRORBAND_DATA_DIR``, else the
platform's user data directory). Store, file and argument problems are one
line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from mirrorband.errors import CliError
from mirrorband.recording import RecordingError
from mirrorband.sessions.store import ENV_DATA_DIR, Store, StoreError


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _guard(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    @wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (StoreError, RecordingError) as e:
            raise CliError(str(e)) from None
    return run


def _open(args: argparse.Namespace) -> Store:
    return Store(args.data_dir)


def _session_id(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad session id {text!r}: a number, as listed by 'mirrorband sessions'") \
            from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"bad session id {text!r}")
    return v


# --- commands -----------------------------------------------------------------------------------

@_guard
def cmd_sessions(args: argparse.Namespace) -> int:
    from mirrorband.analysis.metrics import for_session
    from mirrorband.sessions.session import load

    with _open(args) as st:
        rows = st.sessions(args.patient)
        out = []
        for row in rows:
            d = row.as_dict()
            if args.grades:
                m, _ = for_session(st, load(st, row.id))
                d["grade"] = m["grade"]
                d["grade_hand"] = m["grade_hand"]
            out.append(d)
    if args.json:
        print(json.dumps({"data_dir": str(st.dir), "sessions": out}))
        return 0
    if not out:
        who = f" for patient {args.patient}" if args.patient else ""
        _progress(f"no sessions{who} in {st.dir} (add one with 'mirrorband import F.edf')")
        return 0
    print(f"{'id':>5}  {'patient':<12} {'started':<25} {'dur s':>6} {'events':>6}  source" +
          ("  grade" if args.grades else ""))
    for d in out:
        line = (f"{d['id']:>5}  {d['patient_id'] or '-':<12} {d['started']:<25} {d['duration_s']:6.0f} "
                f"{d['n_events']:6d}  {d['source']} {d['name']}")
        if args.grades:
            line += f"  {d['grade'] if d['grade'] is not None else '-'}"
        print(line)
    return 0


@_guard
def cmd_report(args: argparse.Namespace) -> int:
    from mirrorband.analysis.metrics import for_session
    from mirrorband.export.htmlreport import render_html, summary_text
    from mirrorband.sessions.session import load

    with _open(args) as st:
        s = load(st, args.session)
        t0 = time.perf_counter()
        m, envs = for_session(st, s, envelopes=bool(args.html))
        if args.html:
            from mirrorband.export.exports import _write_text

            text = render_html(s, m, envs, st.treatments(s.patient_id) if s.patient_id else None)
            _write_text(args.html, text)
            _progress(f"wrote {args.html} ({len(text) // 1024} KiB) in {time.perf_counter() - t0:.2f} s")
    if args.json:
        print(json.dumps({"session": s.id, "metrics": m}))
    else:
        print(summary_text(s, m))
    return 0


@_guard
def cmd_export(args: argparse.Namespace) -> int:
    from mirrorband.analysis.metrics import for_session
    from mirrorband.export.exports import export
    from mirrorband.sessions.session import load

    with _open(args) as st:
        s = load(st, args.session)
        m, _ = for_session(st, s)
        files = export(st, s, m, args.format, args.output)
    for f in files:
        _progress(f"wrote {f}")
    return 0


@_guard
def cmd_import(args: argparse.Namespace) -> int:
    from mirrorband.analysis.metrics import LONG_S, long_envelopes
    from mirrorband.sessions.session import import_edf, load

    started = None
    if args.date:
        from datetime import datetime

        try:
            started = datetime.fromisoformat(args.date).isoformat(timespec="seconds")
        except ValueError:
            raise CliError(f"bad date {args.date!r}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    with _open(args) as st:
        sid = import_edf(st, args.file, args.patient, started)
        row = st.session_row(sid)
        if row.duration_s > LONG_S:  # keep the envelope the UI shows, so opening the session is quick
            long_envelopes(st, load(st, sid))
    print(sid)
    _progress(f"session {sid}: {args.file} analysed with the numpy port of the band pipeline, {row.duration_s:.0f} s, {row.n_steps} steps, {row.n_events} events"
              + (f", patient {row.patient_id}" if row.patient_id else ""))
    return 0


@_guard
def cmd_treatment_add(args: argparse.Namespace) -> int:
    with _open(args) as st:
        tid = st.add_treatment(args.patient, args.date, args.kind, args.note or "")
    print(tid)
    _progress(f"treatment {tid}: {args.kind} on {args.date} for patient {args.patient}")
    return 0


@_guard
def cmd_treatment_list(args: argparse.Namespace) -> int:
    with _open(args) as st:
        rows = st.treatments(args.patient)
    if args.json:
        print(json.dumps({"treatments": rows}))
        return 0
    if not rows:
        _progress("no treatments recorded")
    for r in rows:
        print(f"{r['id']:>4}  {r['patient_id']:<12} {r['date']}  {r['kind']}" + (f"  ({r['note']})" if r["note"] else ""))
    return 0


@_guard
def cmd_trends(args: argparse.Namespace) -> int:
    from mirrorband.analysis.trends import format_trend, patient_trend

    with _open(args) as st:
        t = patient_trend(st, args.patient, args.hand, args.baseline)
    print(json.dumps(t) if args.json else format_trend(t))
    return 0


# --- parser ---------------------------------------------------------------------------------------

def _data_dir(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--data-dir", metavar="DIR",
                    help=f"the store's directory (default: ${ENV_DATA_DIR}, else the user data directory)")


def register(sub: Any) -> None:
    """Add the session-store commands to the ``mirrorband`` subparsers ``sub``."""
    def add(name: str, func: Callable[[argparse.Namespace], int], help: str, parent: Any = sub
            ) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, help=help, description=help)
        sp.set_defaults(func=func)
        _data_dir(sp)
        return sp

    sp = add("sessions", cmd_sessions, "list the stored sessions")
    sp.add_argument("--patient", metavar="ID", help="only this patient's sessions")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.add_argument("--grades", action="store_true", help="also compute each session's grade (slower)")

    sp = add("report", cmd_report, "summarise a session (measures, timeline); optionally as a standalone HTML file")
    sp.add_argument("session", type=_session_id, metavar="SESSION", help="session id (see 'mirrorband sessions')")
    sp.add_argument("--html", metavar="F", help="also write a standalone HTML report with plots to F")
    sp.add_argument("--json", action="store_true", help="print the measures as JSON instead of the summary")

    sp = add("export", cmd_export, "export a session as EDF+ (signals + detected events), CSV or JSON")
    sp.add_argument("session", type=_session_id, metavar="SESSION", help="session id (see 'mirrorband sessions')")
    sp.add_argument("--format", required=True, choices=("edf", "csv", "json"), help="file format")
    sp.add_argument("-o", "--output", required=True, metavar="F",
                    help="file to write (csv: F holds the events, F-metrics.csv the measures)")

    sp = add("import", cmd_import, "import an EDF+/BDF+ recording as a session (analysed like the bands would)")
    sp.add_argument("file", metavar="F.edf", help="EDF+/BDF+ two-hand recording (docs/formats.md)")
    sp.add_argument("--patient", metavar="ID", help="patient pseudonym to file it under")
    sp.add_argument("--date", help="session start, YYYY-MM-DD[THH:MM] (default: the EDF header's, else now)")

    tp = sub.add_parser("treatment", help="record and list treatments (e.g. botulinum toxin injections)",
                        description="record and list treatments (e.g. botulinum toxin injections)")
    tsub = tp.add_subparsers(dest="treatment_command", metavar="ACTION", required=True,
                             parser_class=type(tp))
    sp = add("add", cmd_treatment_add, "record a treatment given to a patient", tsub)
    sp.add_argument("--patient", required=True, metavar="ID", help="patient pseudonym")
    sp.add_argument("--date", required=True, help="date of the treatment, YYYY-MM-DD")
    sp.add_argument("--kind", required=True, help="kind of treatment, e.g. botox")
    sp.add_argument("--note", help="free text (dose, muscles)")
    sp = add("list", cmd_treatment_list, "list treatments", tsub)
    sp.add_argument("--patient", metavar="ID", help="only this patient's treatments")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("trends", cmd_trends, "a patient's measures across sessions, with treatments and change vs a baseline")
    sp.add_argument("--patient", required=True, metavar="ID", help="patient pseudonym")
    sp.add_argument("--hand", choices=("L", "R"), help="resting hand to follow (default: the most affected)")
    sp.add_argument("--baseline", type=_session_id, metavar="SESSION", help="baseline session (default: the first)")
    sp.add_argument("--json", action="store_true", help="print JSON")
