"""Virtual clocks: one "true" time per simulation and a clock per band.

* :class:`TrueTime` is the simulation's reference time in microseconds. In
  *fast* mode it only moves when the simulation driver advances it (as fast as
  the CPU goes); in *real-time* mode it follows the host's monotonic clock.
* :class:`VirtualClock` is what one band's firmware sees (the ``clock`` object
  of the board): ``ticks_us``/``ticks_ms`` run from the band's power-up with
  the band's own crystal error (``drift_ppm``) and start offset
  (``offset_us``), and ``time_us`` is the absolute time the host sets with
  ``set_time_us`` (the band keeps it by its ticks, so it drifts with them).
"""

from __future__ import annotations

import time


class TrueTime:
    """Reference time of a simulation, in microseconds since its start."""

    def __init__(self, fast: bool = True) -> None:
        self.fast = fast
        self._us = 0
        self._t0 = time.monotonic_ns()

    def now_us(self) -> int:
        if self.fast:
            return self._us
        return (time.monotonic_ns() - self._t0) // 1000

    def advance_to(self, us: int) -> None:
        """Fast mode: move the reference time forward (never backwards)."""
        if not self.fast:
            raise RuntimeError("real-time clocks follow the host clock")
        if us > self._us:
            self._us = us

    def real_time(self) -> None:
        """Switch to real time from the current instant (time keeps counting on)."""
        if self.fast:
            self._t0 = time.monotonic_ns() - self._us * 1000
            self.fast = False


class VirtualClock:
    """A band's clock (board.clock): ticks with offset and drift, settable time."""

    def __init__(self, true: TrueTime, offset_us: int = 0, drift_ppm: float = 0.0) -> None:
        if abs(drift_ppm) > 1000:
            raise ValueError("drift must be within +-1000 ppm")
        if offset_us < 0:
            raise ValueError("offset must be >= 0 (ticks count from power-up)")
        self.true = true
        self.offset_us = int(offset_us)
        self.drift_ppm = float(drift_ppm)
        self._rate = 1.0 + drift_ppm * 1e-6
        self._epoch_us = 0  # time_us() - ticks_us()

    # --- conversions ------------------------------------------------------------------
    def band_us(self, true_us: int) -> int:
        """Band ticks (us) at a reference time."""
        return self.offset_us + int(true_us * self._rate)

    def true_us(self, band_us: int) -> int:
        """Reference time (us) at which the band's ticks read ``band_us`` (rounded up)."""
        t = (band_us - self.offset_us) / self._rate
        it = int(t)
        return it if it >= t else it + 1

    # --- the firmware's view ----------------------------------------------------------
    def ticks_us(self) -> int:
        return self.band_us(self.true.now_us())

    def ticks_ms(self) -> int:
        return self.ticks_us() // 1000

    def time_us(self) -> int:
        """Absolute band time (set by the host), microseconds."""
        return self.ticks_us() + self._epoch_us

    def set_time_us(self, us: int) -> None:
        self._epoch_us = int(us) - self.ticks_us()
