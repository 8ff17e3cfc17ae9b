"""Leave-one-source-out (LOSO) evaluation of the band's detector on real sources.

The protocol (docs/evaluation.md, "Evaluation protocol"):

* the **frozen defaults** are the firmware's shipped configuration
  (``mbfw.config.Config``, ``overrides = {}``), fixed before any scoring;
* for each real source held out in turn, one point of a small grid of
  detector settings is **chosen on the other sources only** (best pooled burst
  F1 over all their recordings; ties go to the earlier grid point) and the
  **held-out** source is scored with that choice;
* the **tuning figure** is the best grid point on *all* sources, scored on
  those same sources: it is optimistic by construction and is named so;
* NeuroKit2 (:func:`mirrorband.analysis.nkpeer.nk_events`) is scored on the same
  recordings as a reference.

Replays of ``(recording, overrides)`` and NeuroKit2's events per recording are
cached for the lifetime of an :class:`Evaluator` (NeuroKit2 runs at only
~30-55x real time per channel).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction

from mbfw.config import FIELD_NAMES, Config, ConfigError
from mirrorband.analysis.evaluate import score_recording, summarize
from mirrorband.recording import Recording

#: Candidate values of the detector settings the grid varies (``mbfw.config.Config``
#: fields; ratios are x16, durations in 10 ms windows). The one place to change
#: when the detector's fields change: fields Config does not know are left out
#: of the grid, combinations Config rejects are skipped.
GRID_CANDIDATES: dict[str, tuple[int, ...]] = {
    "t_on": (56, 72, 96),
    "t_off": (32, 48),
    "min_win": (5, 8, 15),
    "merge_gap": (10, 30, 50),
}

#: A small grid for ``mirrorband bench --quick``.
QUICK_CANDIDATES: dict[str, tuple[int, ...]] = {
    "t_on": (56, 72),
    "merge_gap": (10, 30),
}


def valid_overrides(overrides: Mapping[str, int]) -> str | None:
    """``None`` when ``Config`` accepts ``overrides``, else its error message."""
    try:
        Config(**dict(overrides))
    except ConfigError as e:
        return str(e)
    return None


def build_grid(candidates: Mapping[str, Sequence[int]]) -> list[dict[str, int]]:
    """Every combination of ``candidates`` that ``Config`` accepts, in product order.

    Fields ``Config`` does not know (the detector's fields are being reworked)
    are left out; combinations it rejects (``ConfigError``, for example
    ``t_off >= t_on``) are skipped.
    """
    fields = [f for f in candidates if f in FIELD_NAMES]
    grid = []
    for values in itertools.product(*(tuple(candidates[f]) for f in fields)):
        point = dict(zip(fields, values, strict=True))
        if valid_overrides(point) is None:
            grid.append(point)
    return grid


#: The default LOSO grid (from :data:`GRID_CANDIDATES`).
DEFAULT_GRID: list[dict[str, int]] = build_grid(GRID_CANDIDATES)
#: The grid of ``bench --quick`` (from :data:`QUICK_CANDIDATES`).
QUICK_GRID: list[dict[str, int]] = build_grid(QUICK_CANDIDATES)


def _key(overrides: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(dict(overrides).items()))


def burst_f1(summary: dict) -> Fraction:
    """Exact pooled burst F1 of a :func:`~mirrorband.analysis.evaluate.summarize` result (for comparisons).

    Same empty-denominator rule as :func:`mirrorband.analysis.evaluate.prf`: 1 when
    there was no error at all, else 0.
    """
    b = summary["burst"]
    tp, fp, fn = int(b["tp"]), int(b["fp"]), int(b["fn"])
    den = 2 * tp + fp + fn
    if den == 0:
        return Fraction(1)
    return Fraction(2 * tp, den)


class Evaluator:
    """Scores recordings under detector settings, caching every replay and NeuroKit2 run.

    ``detect(rec, overrides) -> events`` and ``peer(rec) -> events`` default to
    the numpy replay of the firmware (``runtime``) and NeuroKit2. Recordings are
    cached by identity: keep them alive (and unchanged) while the evaluator is used.
    """

    def __init__(self, runtime: str = "numpy",
                 detect: Callable[[Recording, dict[str, int]], list[dict]] | None = None,
                 peer: Callable[[Recording], list[dict]] | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        self.runtime = runtime
        self._detect = detect or self._replay
        self._peer = peer
        self._scores: dict[tuple[int, tuple], dict] = {}
        self._peer_scores: dict[int, dict] = {}
        self._keep: dict[int, Recording] = {}
        self.progress = progress or (lambda _msg: None)
        self.replays = 0
        self.peer_runs = 0

    def _replay(self, rec: Recording, overrides: dict[str, int]) -> list[dict]:
        from mirrorband.detect.replay import replay

        return replay(rec, self.runtime, overrides=dict(overrides))["events"]

    def score(self, rec: Recording, overrides: Mapping[str, int]) -> dict:
        """``score_recording`` of ``rec`` replayed with ``overrides`` (cached)."""
        k = (id(rec), _key(overrides))
        if k not in self._scores:
            self._keep[id(rec)] = rec
            self.replays += 1
            self._scores[k] = score_recording(rec, self._detect(rec, dict(overrides)))
        return self._scores[k]

    def summary(self, recordings: Sequence[Recording], overrides: Mapping[str, int]) -> dict:
        """Pooled summary of ``recordings`` replayed with ``overrides``."""
        return summarize([self.score(r, overrides) for r in recordings])

    def peer_score(self, rec: Recording) -> dict:
        """``score_recording`` of NeuroKit2's events on ``rec`` (cached per recording)."""
        if id(rec) not in self._peer_scores:
            if self._peer is None:
                from mirrorband.analysis.nkpeer import nk_events

                self._peer = nk_events
            self._keep[id(rec)] = rec
            self.peer_runs += 1
            self.progress(f"NeuroKit2 on {rec.name or 'a recording'} ({rec.duration:.0f} s) ...")
            self._peer_scores[id(rec)] = score_recording(rec, self._peer(rec))
        return self._peer_scores[id(rec)]

    def peer_summary(self, recordings: Sequence[Recording]) -> dict:
        """Pooled summary of NeuroKit2 on ``recordings``."""
        return summarize([self.peer_score(r) for r in recordings])


def evaluate_config(recordings: Sequence[Recording], overrides: Mapping[str, int],
                    runtime: str = "numpy", evaluator: Evaluator | None = None) -> dict:
    """Replay every recording with ``overrides`` and pool the scores (``evaluate.summarize``).

    ``overrides = {}`` is the firmware's shipped (frozen) configuration.
    Raises ``ValueError`` for settings ``Config`` rejects.
    """
    err = valid_overrides(overrides)
    if err is not None:
        raise ValueError(f"detector settings {dict(overrides)} rejected: {err}")
    ev = evaluator or Evaluator(runtime)
    return ev.summary(recordings, overrides)


def brief(summary: dict) -> dict:
    """The figures LOSO reports from a summary: burst counts, P/R/F1, mirror F1, onset error."""
    b = summary["burst"]
    return {"n_recordings": summary["n_recordings"], "tp": b["tp"], "fp": b["fp"], "fn": b["fn"],
            "precision": b["precision"], "recall": b["recall"], "f1": b["f1"],
            "mirror_f1": summary["mirror_f1"], "onset_median_abs_ms": summary["onset_median_abs_ms"]}


def best_point(ev: Evaluator, recordings: Sequence[Recording],
               grid: Sequence[Mapping[str, int]]) -> tuple[int, dict]:
    """Index and summary of the grid point with the best pooled burst F1 on ``recordings``.

    Ties go to the earlier grid point.
    """
    best_i, best_s, best_f = -1, {}, Fraction(-1)
    for i, point in enumerate(grid):
        s = ev.summary(recordings, point)
        f = burst_f1(s)
        if f > best_f:
            best_i, best_s, best_f = i, s, f
    return best_i, best_s


#: Target of issue 12 for every real source, scored leave-one-source-out.
TARGET_F1 = 0.90


def loso(sources: Mapping[str, Sequence[Recording]], grid: Sequence[Mapping[str, int]] | None = None,
         *, runtime: str = "numpy", peer: bool = True, evaluator: Evaluator | None = None,
         progress: Callable[[str], None] | None = None) -> dict:
    """Leave-one-source-out evaluation over ``sources`` (name -> recordings with ground truth).

    For each held-out source: the grid point with the best pooled burst F1 on
    the *other* sources (ties: the earlier point) is chosen, then the held-out
    source is scored with it. Also per source: the frozen defaults
    (``overrides = {}``) and, with ``peer=True``, NeuroKit2 on the same
    recordings. ``tuning`` is the best grid point on *all* sources, scored on
    them (a tuning figure, not a held-out one). Grid points ``Config`` rejects
    are skipped and listed under ``invalid_points``.

    Returns plain JSON: ``grid``, ``invalid_points``, ``sources`` (per source:
    ``recordings``, ``minutes``, ``frozen_defaults``, ``held_out``,
    ``neurokit2``, ``target_met``) and ``tuning``.
    """
    if not sources:
        raise ValueError("no source to evaluate")
    for name, recs in sources.items():
        if not recs:
            raise ValueError(f"source {name!r} has no recording")
    grid = list(DEFAULT_GRID if grid is None else grid)
    valid, invalid = [], []
    for point in grid:
        err = valid_overrides(point)
        if err is None:
            valid.append(dict(point))
        else:
            invalid.append({"overrides": dict(point), "error": err})
    if not valid:
        raise ValueError("no grid point is a valid detector configuration")
    say = progress or (lambda _msg: None)
    ev = evaluator or Evaluator(runtime, progress=say)
    names = list(sources)

    out_sources: dict[str, dict] = {}
    for name in names:
        recs = list(sources[name])
        say(f"LOSO: holding out {name} ({len(recs)} recordings), tuning on {len(names) - 1} other source(s) ...")
        entry: dict = {
            "recordings": len(recs),
            "names": [r.name for r in recs],
            "minutes": round(sum(r.duration for r in recs) / 60.0, 2),
            "frozen_defaults": brief(ev.summary(recs, {})),
        }
        others = [r for o in names if o != name for r in sources[o]]
        if others:
            i, tuned = best_point(ev, others, valid)
            held = brief(ev.summary(recs, valid[i]))
            entry["held_out"] = {"overrides": valid[i], "grid_index": i, "tuned_on": [o for o in names if o != name],
                                 "tuning_f1_on_others": tuned["burst"]["f1"], **held}
        else:
            entry["held_out"] = {"skipped": "no other source to tune on"}
        if peer:
            entry["neurokit2"] = brief(ev.peer_summary(recs))
        h = entry["held_out"]
        if "f1" in h and "neurokit2" in entry:
            f1 = float(h["f1"])
            entry["target_met"] = bool(f1 >= TARGET_F1 and f1 >= float(entry["neurokit2"]["f1"]))
        out_sources[name] = entry

    everything = [r for n in names for r in sources[n]]
    i, pooled = best_point(ev, everything, valid)
    tuning = {"overrides": valid[i], "grid_index": i, "pooled": brief(pooled),
              "per_source": {n: brief(ev.summary(list(sources[n]), valid[i])) for n in names}}
    return {"grid": valid, "invalid_points": invalid, "selection": "best pooled burst F1; ties: earlier grid point",
            "target_f1": TARGET_F1, "sources": out_sources, "tuning": tuning}
