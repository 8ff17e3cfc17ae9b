"""The ``mirrorband`` command line (a contract: see docs/cli.md).

Every command has ``--help``, exits 0 on success and 2 with a one-line error
on stderr for bad input; progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mirrorband.errors import CliError
from mirrorband.recording import RecordingError

# Modules that add their own subcommands: each has ``register(sub)``, called
# with the subparsers object (``sub.add_parser(...)``, ``set_defaults(func=...)``);
# their functions raise :class:`CliError` for user mistakes.
_COMMAND_MODULES: tuple[str, ...] = (
    "cli.sessions",
    "cli.tui",
    "cli.provision",
    "cli.sim",
    "cli.ble",
    "cli.flash",
    "cli.task",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # one line, not usage + message
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _read(path: str):
    from mirrorband.sessions.edf import read_edf

    rec = read_edf(path)
    for note in rec.notes:
        _progress(f"{Path(path).name}: {note}")
    return rec


# --- commands -----------------------------------------------------------------

def cmd_simulate(args: argparse.Namespace) -> int:
    from mirrorband.sessions.edf import write_edf
    from mirrorband.sim.simulate import simulate

    rec = simulate(args.scenario, seed=args.seed, emg_rate=args.emg_rate, mains_hz=args.mains,
                   model=args.model, rest=not args.no_rest)
    write_edf(rec, args.output)
    truth = {k: len(rec.truth(k)) for k in ("MIRROR", "BURST", "ARTIFACT")}
    _progress(f"wrote {args.output}: {rec.duration:.0f} s, scenario {args.scenario}, seed {args.seed}; "
              f"ground truth {truth['MIRROR']} mirror, {truth['BURST']} other bursts, "
              f"{truth['ARTIFACT']} artifacts")
    return 0


def _runtime_events(rec, runtime: str, mains: int | None = None) -> dict:
    from mirrorband.detect.bandio import prepare
    from mirrorband.detect.mpy import MicroPythonMissing
    from mirrorband.detect.replay import replay

    inp = prepare(rec, {"mains_hz": mains} if mains else None)  # settings computed once
    for note in inp.notes:
        _progress(f"{inp.name}: {note}")
    try:
        return replay(inp, runtime)
    except MicroPythonMissing as e:
        raise CliError(str(e)) from None


def cmd_replay(args: argparse.Namespace) -> int:
    from mirrorband.sessions.edf import open_edf

    with open_edf(args.recording) as sig:  # read chunk by chunk: bounded memory on long recordings
        for note in sig.notes:
            _progress(f"{Path(args.recording).name}: {note}")
        out = _runtime_events(sig, args.runtime, args.mains)
    out["recording"] = Path(args.recording).name
    if not args.mains:
        _progress(f"{out['recording']}: mains {out['mains_hz']} Hz (detected; --mains to set it)")
    if args.json:
        print(json.dumps(out))
    else:
        from mirrorband.export.report import events_table

        print(events_table(out))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from mirrorband.analysis.evaluate import format_table, score_recording, summarize

    per = []
    for i, path in enumerate(args.files, 1):
        _progress(f"[{i}/{len(args.files)}] {Path(path).name}")
        rec = _read(path)
        out = _runtime_events(rec, args.runtime)
        s = score_recording(rec, out["events"])
        s["recording"] = Path(path).name
        per.append(s)
    summary = summarize(per)
    if args.json:
        print(json.dumps({"runtime": args.runtime, "summary": summary, "recordings": per}))
    else:
        print(format_table(summary))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from mirrorband.benchmarks.bench import format_bench, run_bench

    result = run_bench(quick=args.quick, progress=_progress)
    print(json.dumps(result) if args.json else format_bench(result))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.summary:
        from mirrorband.cli.demo import demo_summary

        print(demo_summary(seed=args.seed, progress=_progress))
        return 0
    if not sys.stdout.isatty():
        raise CliError("the demo opens the terminal UI and needs a terminal; "
                       "for a text summary use: mirrorband demo --summary")
    from mirrorband.cli.demo import main as demo_main

    return demo_main(args.data_dir, seed=args.seed)


# --- parser ---------------------------------------------------------------------

def _scenario(name: str) -> str:
    from mirrorband.sim.simulate import SCENARIOS

    if name not in SCENARIOS:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {name!r}; choose one of: {', '.join(sorted(SCENARIOS))}")
    return name


def _emg_rate(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 500 <= v <= 2048:
        raise argparse.ArgumentTypeError("EMG rate must be between 500 and 2048 Hz")
    return v


def build_parser() -> argparse.ArgumentParser:
    from mbfw import VERSION

    p = _Parser(prog="mirrorband", description="Mirrorband: measure mirror dystonia with two wrist bands.")
    p.add_argument("--version", action="version", version=f"mirrorband {VERSION}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=func)
        return sp

    sp = add("simulate", cmd_simulate, "write a synthetic two-hand recording (EDF+) with ground truth")
    sp.add_argument("--scenario", required=True, type=_scenario,
                    help="control, mild, moderate or severe, optionally with -L/-R (affected side)")
    sp.add_argument("-o", "--output", required=True, help="EDF+ file to write")
    sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sp.add_argument("--emg-rate", type=_emg_rate, default=1000.0, help="EMG rate in Hz, 500-2048 (default 1000)")
    sp.add_argument("--mains", type=int, choices=(50, 60), default=50, help="mains frequency (default 50)")
    sp.add_argument("--model", type=int, choices=(1, 2), default=1,
                    help="signal model: 1 original, 2 fitted to real recordings (default 1; docs/simulator.md)")
    sp.add_argument("--no-rest", action="store_true", help="a session without REST annotations (no REST step)")

    sp = add("replay", cmd_replay, "run the band firmware's detector over a recording")
    sp.add_argument("recording", help="EDF+/BDF+ recording (docs/formats.md)")
    sp.add_argument("--runtime", choices=("cpython", "micropython", "numpy"), default="cpython",
                    help="where the firmware runs (default cpython; numpy is the exact host port)")
    sp.add_argument("--json", action="store_true", help="print the JSON object of docs/formats.md")
    sp.add_argument("--mains", type=int, choices=(50, 60), help="mains frequency the bands use (default: detected)")

    sp = add("eval", cmd_eval, "replay recordings and score the detector against their ground truth")
    sp.add_argument("files", nargs="+", metavar="FILE", help="EDF+ recordings with ground-truth annotations")
    sp.add_argument("--runtime", choices=("cpython", "micropython", "numpy"), default="numpy",
                    help="pipeline runtime (default numpy: identical events, fastest)")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("bench", cmd_bench, "measure detector speed, memory and accuracy, side by side with NeuroKit2")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.add_argument("--quick", action="store_true", help="fewer recordings (for a quick look)")

    sp = add("demo", cmd_demo, "try everything without hardware: two virtual bands on a virtual radio, "
                               "a simulated patient, the terminal UI")
    sp.add_argument("--seed", type=int, default=7, help="random seed of the simulated patient")
    sp.add_argument("--summary", "--no-tui", dest="summary", action="store_true",
                    help="no UI: print a text summary of a simulated session (for scripts)")
    sp.add_argument("--data-dir", metavar="DIR",
                    help="where the demo keeps its keys, band logs and sessions (default: the user data "
                         "directory's demo/, never your real store)")

    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(f"mirrorband.{name}").register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            parser.print_help()
            return 0
        args = parser.parse_args(["tui"])  # no command: the terminal UI with real bands
    try:
        return args.func(args)
    except (CliError, RecordingError) as e:
        print(f"mirrorband: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mirrorband: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
