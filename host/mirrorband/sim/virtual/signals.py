"""Signal sources of the virtual bands: a simulated scenario or an EDF+ recording.

A :class:`Session` holds what the two bands' sensors see (EMG in uV, IMU in g
and deg/s, at the band's native rates), the task protocol the host would
configure, and the firmware settings ``mirrorband replay`` uses for the same
recording (mains frequency, LF rule), so that the virtual bands and replay can
be compared event for event.

The signals are the ones replay feeds the firmware, expressed back in
physical units: EMG quantised to 0.5 uV, acceleration to 1 mg and angular rate
to 0.1 deg/s (see :mod:`mirrorband.detect.bandio`). The emulated converters quantise
them again with their own resolution; the firmware drivers convert back to the
same integers replay uses (exactly, for |acc| < 15.99 g: the LSM6DSOX's ±16 g
range ends at 32767 x 0.488 mg).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mirrorband.detect.bandio import HandStream, band_settings, streams, task_points
from mirrorband.recording import HANDS, Recording, RecordingError

MAX_MINUTES = 20.0
OPEN_STEP_S = 60.0  # simulated length of the last step of a task without an end


@dataclass
class BandSignals:
    """One band's analog inputs."""

    hand: str
    emg_uv: np.ndarray  # (2, n): FLEX on channel 1, EXT on channel 2 (zeros when absent)
    has_ext: bool
    acc_g: np.ndarray | None  # (m, 3) at 104 Hz
    gyr_dps: np.ndarray | None

    @property
    def n_samples(self) -> int:
        return int(self.emg_uv.shape[1])


@dataclass
class Session:
    """Both bands' inputs, the task protocol (ms from the task start) and settings."""

    name: str
    bands: dict[str, BandSignals]
    points: list[tuple[int, int]]
    settings: dict[str, int]
    notes: list[str] = field(default_factory=list)
    recording: Recording | None = None
    #: the ``mirrorband simulate`` scenario, seed and mains frequency this session was simulated
    #: from (None for a recording): a task with another protocol re-simulates the patient
    scenario: str | None = None
    seed: int = 0
    mains_hz: int = 50
    _variants: dict[tuple[tuple[int, int], ...], Session] = field(default_factory=dict, repr=False)

    def for_points(self, points: list[tuple[int, int]] | tuple[tuple[int, int], ...]) -> Session | None:
        """This patient doing the task ``points`` (firmware change points, from the task start).

        For a simulated session: the same scenario and seed simulated for exactly that
        protocol (this session itself when the points are its own), cached so that both bands
        get the same signals. For a recording: None (the recording plays as it is).
        """
        key = tuple((int(t), int(k)) for t, k in points)
        if self.scenario is None:
            return None
        if key == tuple(self.points):
            return self
        hit = self._variants.get(key)
        if hit is None:
            from mirrorband.sim.simulate import simulate

            protocol = points_protocol(key)
            rec = simulate(self.scenario, seed=self.seed, mains_hz=self.mains_hz, protocol=protocol)
            rec.name = f"{self.scenario} (seed {self.seed})"
            hit = from_recording(rec, rec.name)
            hit.scenario, hit.seed, hit.mains_hz = self.scenario, self.seed, self.mains_hz
            self._variants[key] = hit
        return hit

    @property
    def n_samples(self) -> int:
        return min(b.n_samples for b in self.bands.values())

    @property
    def duration_ms(self) -> int:
        return self.n_samples  # 1 kHz

    @property
    def duration_s(self) -> float:
        return self.n_samples / 1000.0


def _band(s: HandStream) -> BandSignals:
    n = s.emg.shape[1]
    emg = np.zeros((2, n))
    emg[0] = s.emg[0] / 2.0
    if s.nch > 1:
        emg[1] = s.emg[1] / 2.0
    acc = gyr = None
    if s.acc is not None and s.gyr is not None:
        acc = s.acc / 1000.0
        gyr = s.gyr / 10.0
    return BandSignals(s.hand, emg, s.nch > 1, acc, gyr)


def points_protocol(points: tuple[tuple[int, int], ...] | list[tuple[int, int]]) -> list[tuple[str, float]]:
    """Firmware task points -> the ``simulate`` protocol a patient follows for them.

    One protocol step per point (as ``mirrorband task run`` and the TUI send them). A gap
    without a step (STEP_NONE before the last point) is spent at rest; a task without an
    end (last point not STEP_NONE) gets :data:`OPEN_STEP_S` of its last step. Raises
    :class:`RecordingError` for points that do not describe a task.
    """
    from mbfw.task import STEP_NONE, STEP_REST, STEP_WRITE_L, STEP_WRITE_R

    texts = {STEP_REST: "REST", STEP_WRITE_L: "WRITE L", STEP_WRITE_R: "WRITE R", STEP_NONE: "REST"}
    pts = [(int(t), int(k)) for t, k in points]
    if not pts or pts[0][0] != 0:
        raise RecordingError("task points must start at 0 ms")
    if pts[-1][1] != STEP_NONE:
        pts.append((pts[-1][0] + int(OPEN_STEP_S * 1000), STEP_NONE))
    out: list[tuple[str, float]] = []
    for (t, kind), (t1, _) in zip(pts, pts[1:], strict=False):
        if kind not in texts or t1 <= t:
            raise RecordingError(f"bad task point ({t} ms, kind {kind})")
        out.append((texts[kind], (t1 - t) / 1000.0))
    return out


def from_recording(rec: Recording, name: str | None = None) -> Session:
    """The session two bands would record for ``rec`` (both hands needed)."""
    missing = [h for h in HANDS if h not in rec.hands]
    if missing:
        raise RecordingError(
            f"the recording has no EMG {missing[0]} FLEX channel; virtual bands need both hands")
    settings, notes = band_settings(rec)
    bands = {s.hand: _band(s) for s in streams(rec)}
    return Session(name or rec.name, bands, task_points(rec), settings, notes, rec)


def session_protocol(affected: str, seconds: float) -> list[tuple[str, float]]:
    """A protocol of about ``seconds``: the default one with WRITE periods stretched."""
    from mirrorband.sim.simulate import default_protocol

    base = default_protocol(affected)
    rest = sum(s for t, s in base if t == "REST")
    writes = [i for i, (t, _) in enumerate(base) if t.startswith("WRITE")]
    each = max(10.0, (seconds - rest) / len(writes))
    return [(t, each if i in writes else s) for i, (t, s) in enumerate(base)]


def from_scenario(scenario: str, seed: int = 0, minutes: float | None = None, mains_hz: int = 50) -> Session:
    """A simulated patient session (``mirrorband simulate`` scenario), optionally ``minutes`` long."""
    from mirrorband.sim.simulate import parse_scenario, simulate

    _, affected = parse_scenario(scenario)
    protocol = None
    if minutes is not None:
        if not 0.5 <= minutes <= MAX_MINUTES:
            raise RecordingError(f"session length must be 0.5-{MAX_MINUTES:g} minutes")
        protocol = session_protocol(affected, minutes * 60.0)
    rec = simulate(scenario, seed=seed, mains_hz=mains_hz, protocol=protocol)
    rec.name = f"{scenario} (seed {seed})"
    session = from_recording(rec, rec.name)
    session.scenario, session.seed, session.mains_hz = scenario, seed, mains_hz
    return session


def from_edf(path: str | Path) -> Session:
    from mirrorband.sessions.edf import read_edf

    rec = read_edf(path)
    return from_recording(rec, Path(path).name)
