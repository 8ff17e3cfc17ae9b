"""In-memory two-hand recording: the host's view of FORMATS.md §1.

A :class:`Recording` holds, per hand (``"L"``/``"R"``), EMG in microvolts and
optionally IMU (accelerometer in g, gyroscope in deg/s) with the band axes of
FORMATS.md, plus the EDF+ annotations. Reading an EDF+ file resamples to the
band's native rates (:data:`EMG_RATE_HZ`, :data:`IMU_RATE_HZ`); the simulator
may produce other rates and writes them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: The band's native EMG rate (ADS1292R at 1 kSPS), in Hz.
EMG_RATE_HZ = 1000
#: The band's native IMU rate (LSM6DSOX ODR 104 Hz), in Hz.
IMU_RATE_HZ = 104
#: Lowest EMG rate a recording may have (FORMATS.md §1).
MIN_EMG_RATE_HZ = 500

HANDS = ("L", "R")
EMG_CHANNELS = ("FLEX", "EXT")

# Annotation texts of FORMATS.md §1 (case-sensitive).
TASK_REST = "REST"
TASK_WRITE = "WRITE"  # followed by " L" or " R"
TRUTH_MIRROR = "MIRROR"
TRUTH_BURST = "BURST"
TRUTH_ARTIFACT = "ARTIFACT"


class RecordingError(ValueError):
    """A recording that cannot be used; the message is one line for the user."""


@dataclass
class Annotation:
    """An EDF+ annotation: onset and duration in seconds from the recording start."""

    onset: float
    duration: float
    text: str

    @property
    def end(self) -> float:
        return self.onset + self.duration

    def split(self) -> tuple[str, str | None]:
        """``"WRITE R"`` -> ``("WRITE", "R")``; ``"REST"`` -> ``("REST", None)``."""
        parts = self.text.split(" ")
        if len(parts) == 2 and parts[1] in HANDS:
            return parts[0], parts[1]
        return self.text, None


@dataclass
class HandSignals:
    """Signals of one band.

    ``emg`` maps ``"FLEX"`` (required) and optionally ``"EXT"`` to 1-D float
    arrays in microvolts at the recording's EMG rate. ``acc`` (g) and ``gyr``
    (deg/s) are ``(n, 3)`` float arrays (X, Y, Z band axes) at the IMU rate, or
    ``None`` when the recording has no such sensor.
    """

    emg: dict[str, np.ndarray]
    acc: np.ndarray | None = None
    gyr: np.ndarray | None = None

    def __post_init__(self) -> None:
        if "FLEX" not in self.emg:
            raise RecordingError("a hand needs an EMG FLEX channel")
        n = len(self.emg["FLEX"])
        for name, sig in self.emg.items():
            if name not in EMG_CHANNELS:
                raise RecordingError(f"unknown EMG channel {name!r}")
            if sig.ndim != 1 or len(sig) != n:
                raise RecordingError(f"EMG {name} must be 1-D with as many samples as FLEX")
        for name, imu in (("ACC", self.acc), ("GYR", self.gyr)):
            if imu is not None and (imu.ndim != 2 or imu.shape[1] != 3):
                raise RecordingError(f"{name} must have shape (n, 3)")


@dataclass
class Recording:
    """A (one- or two-hand) recording with annotations.

    ``emg_rate`` and ``imu_rate`` are in Hz; ``duration`` in seconds.
    ``notes`` collects human-readable remarks made while reading (for example
    "resampled EMG 2048 Hz -> 1000 Hz"), which the CLI prints on stderr.
    """

    hands: dict[str, HandSignals]
    emg_rate: float
    imu_rate: float
    annotations: list[Annotation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    name: str = ""

    def __post_init__(self) -> None:
        if not self.hands:
            raise RecordingError("the recording has no EMG FLEX channel for either hand")
        for hand in self.hands:
            if hand not in HANDS:
                raise RecordingError(f"unknown hand {hand!r}")

    @property
    def duration(self) -> float:
        """Length in seconds (of the longest EMG channel)."""
        n = max(len(h.emg["FLEX"]) for h in self.hands.values())
        return n / self.emg_rate

    def task_annotations(self) -> list[Annotation]:
        """The task protocol (``REST`` and ``WRITE H``), in onset order."""
        out = [a for a in self.annotations if a.text == TASK_REST or a.split()[0] == TASK_WRITE]
        return sorted(out, key=lambda a: a.onset)

    def truth(self, kind: str, hand: str | None = None) -> list[Annotation]:
        """Ground-truth annotations of ``kind`` (``MIRROR``, ``BURST``, ``ARTIFACT``)."""
        out = []
        for a in self.annotations:
            k, h = a.split()
            if k == kind and (hand is None or h == hand):
                out.append(a)
        return sorted(out, key=lambda a: a.onset)
