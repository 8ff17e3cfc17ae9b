"""What the terminal UI asks of the bands: :class:`BandsController`, and a playback implementation.

The TUI (:mod:`mirrorband.tui`) never talks to a radio itself. It talks to a
:class:`BandsController`: scan, pair, read a band's status, configure and run
a task, follow it live, download the bands' logs into the session store, and
provision a band over USB. Every method is ``async`` and every failure the
user can act on is a :class:`ControllerError` whose message says what
happened and what to do.

Two implementations:

* the BLE controller (bleak, real bands or the virtual bands of
  ``mirrorband sim`` / ``mirrorband demo``) -- wired in by the BLE link;
* :class:`PlaybackController` (this module) -- **no radio**: it plays a
  simulated patient (a ``mirrorband simulate`` scenario, generated for the
  configured protocol) through the band firmware's own detection pipeline
  (``mbfw.pipeline.Hand``, run block by block in this process, two bands in
  lockstep as the activity beacon would couple them), in real time or
  accelerated. Its logs are downloaded page by page (sequence numbers, CRC,
  resume after an interrupted transfer) and stored with
  :func:`mirrorband.sessions.session.ingest_band_pages`, exactly like band logs. It lets
  the UI be used, tested and demonstrated without bands; the BLE controller
  replaces it for real or virtual bands.

Core module: it must never import ``textual`` (a test checks).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

HANDS = ("L", "R")
STEP_KINDS = ("REST", "WRITE L", "WRITE R")
#: Longest step and task the host configures (s).
MAX_STEP_S = 600.0
MAX_TASK_S = 1200.0
MAX_STEPS = 16


class ControllerError(Exception):
    """Something the user can act on; the message is one or two plain sentences."""


class BandLost(ControllerError):
    """A band stopped answering (out of range, battery, switched off)."""


class StorageFull(ControllerError):
    """A band has no room for a new task until its log is downloaded."""


class DownloadInterrupted(ControllerError):
    """The link dropped during a download; calling ``download`` again resumes it."""


# --- plain data the UI shows --------------------------------------------------------------------

@dataclass(frozen=True)
class BandInfo:
    """A band seen by a scan (or provisioned)."""

    id: str
    name: str
    hand: str | None
    patient_id: str | None
    rssi: int | None
    paired: bool = False


@dataclass(frozen=True)
class ChannelQuality:
    """Electrode contact of one EMG channel: ``lead_off`` or a noise level at rest."""

    name: str
    lead_off: bool
    noise_uv: float | None

    @property
    def label(self) -> str:
        if self.lead_off:
            return "lead off"
        if self.noise_uv is None:
            return "unknown"
        return "good" if self.noise_uv < 8.0 else "fair" if self.noise_uv < 20.0 else "poor"


@dataclass(frozen=True)
class BandStatus:
    """What the host knows about a paired band."""

    band_id: str
    hand: str | None
    patient_id: str | None
    connected: bool
    battery_pct: int
    storage_used_pct: float
    undownloaded_events: int
    clock_error_ms: float | None  # estimated offset error after time sync; None before sync
    firmware_version: str
    channels: tuple[ChannelQuality, ...]
    state: str  # idle | task | lost | full

    @property
    def clock_label(self) -> str:
        if self.clock_error_ms is None:
            return "not synced"
        q = "good" if self.clock_error_ms <= 1.0 else "fair" if self.clock_error_ms <= 5.0 else "poor"
        return f"±{self.clock_error_ms:.1f} ms ({q})"


@dataclass(frozen=True)
class ProtocolStep:
    """One step of a task: ``REST``, ``WRITE L`` or ``WRITE R`` for ``seconds``."""

    kind: str
    seconds: float

    def __post_init__(self) -> None:
        if self.kind not in STEP_KINDS:
            raise ControllerError(f"unknown step {self.kind!r}: use REST, WRITE L or WRITE R")
        if not 1.0 <= float(self.seconds) <= MAX_STEP_S:
            raise ControllerError(f"a step lasts 1 to {MAX_STEP_S:g} s, not {self.seconds!r}")

    @property
    def hand(self) -> str | None:
        return self.kind[-1] if self.kind.startswith("WRITE") else None


def check_protocol(steps: Sequence[ProtocolStep]) -> tuple[ProtocolStep, ...]:
    """Validate a whole protocol (1..MAX_STEPS steps, at most MAX_TASK_S s)."""
    steps = tuple(steps)
    if not steps:
        raise ControllerError("the protocol has no steps")
    if len(steps) > MAX_STEPS:
        raise ControllerError(f"a protocol has at most {MAX_STEPS} steps")
    if sum(s.seconds for s in steps) > MAX_TASK_S:
        raise ControllerError(f"a protocol lasts at most {MAX_TASK_S:g} s")
    return steps


def _protocol(*pairs: tuple[str, float]) -> tuple[ProtocolStep, ...]:
    return tuple(ProtocolStep(k, s) for k, s in pairs)


#: Protocols offered to the patient (name -> steps); the affected hand writes last.
PROTOCOLS: dict[str, tuple[ProtocolStep, ...]] = {
    "Standard, right hand affected": _protocol(
        ("REST", 15), ("WRITE L", 60), ("REST", 10), ("WRITE R", 60), ("REST", 10)),
    "Standard, left hand affected": _protocol(
        ("REST", 15), ("WRITE R", 60), ("REST", 10), ("WRITE L", 60), ("REST", 10)),
    "Short check (1 min)": _protocol(("REST", 10), ("WRITE L", 20), ("REST", 5), ("WRITE R", 20), ("REST", 5)),
}


@dataclass
class LiveFrame:
    """What happened since the previous frame of a running task.

    ``envelopes[hand]``: new envelope values (FLEX, ratio to the band's resting
    baseline, one per :attr:`PlaybackController.ENV_DT` s) of each hand whose band
    is heard; ``events``: bursts the bands reported (docs/formats.md objects,
    times from the task start); ``notices``: plain sentences for the user.
    """

    t_s: float
    duration_s: float
    step_index: int
    step: ProtocolStep | None
    remaining_s: float
    envelopes: dict[str, list[float]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    lost: frozenset[str] = frozenset()
    finished: bool = False
    stopped: bool = False


@dataclass(frozen=True)
class DownloadProgress:
    """Progress of one band's log transfer."""

    band_id: str
    hand: str | None
    pages: int
    total_pages: int
    events: int
    resumed_from: int  # pages already acknowledged before this transfer


@dataclass(frozen=True)
class DownloadResult:
    """One band's finished transfer (``session_id`` is the merged session in the store)."""

    band_id: str
    hand: str | None
    pages: int
    events: int
    counts: dict[str, int]
    session_id: int | None


class BandsController(abc.ABC):
    """The bands, as the TUI sees them (see the module docstring)."""

    #: One line describing where the bands are (shown in the UI's title).
    description: str = ""

    @abc.abstractmethod
    async def scan(self, timeout_s: float = 5.0) -> list[BandInfo]:
        """Bands advertising nearby; raise :class:`ControllerError` when the radio is unusable."""

    @abc.abstractmethod
    async def pair(self, band_id: str) -> BandStatus:
        """Connect and authenticate with a provisioned band."""

    @abc.abstractmethod
    async def band_status(self, band_id: str) -> BandStatus:
        """Current status of a paired band (:class:`BandLost` when it does not answer)."""

    @abc.abstractmethod
    def paired(self) -> list[str]:
        """Ids of the paired bands, left hand first."""

    @abc.abstractmethod
    async def set_task(self, steps: Sequence[ProtocolStep]) -> None:
        """Configure the task protocol on the paired bands."""

    @abc.abstractmethod
    async def start_task(self) -> None:
        """Synchronise the band clocks and start the configured task (:class:`StorageFull`, ...)."""

    @abc.abstractmethod
    async def stop_task(self) -> None:
        """Stop the running task early; what was recorded is kept on the bands."""

    @abc.abstractmethod
    def live(self) -> AsyncIterator[LiveFrame]:
        """Frames of the running task (about 10 a second) until it finishes or is stopped."""

    @abc.abstractmethod
    async def download(self, progress: Callable[[DownloadProgress], object] | None = None) -> list[DownloadResult]:
        """Download every paired band's new log pages into the store.

        Resumes from the last acknowledged page after an interruption
        (:class:`DownloadInterrupted`: call again).
        """

    @abc.abstractmethod
    async def ports(self) -> list[str]:
        """USB serial ports where a band could be provisioned."""

    @abc.abstractmethod
    async def provision(self, port: str, hand: str, patient_id: str) -> BandInfo:
        """Give the band on ``port`` its identity (hand, patient pseudonym) and a new 256-bit key."""

    async def close(self) -> None:  # noqa: B027 (optional hook: nothing to release by default)
        """Release the radio and anything started."""
