"""Clock sync (mbfw.timesync) on a simulated clock model: random offsets up to 10 s and
drifts up to +-50 ppm, host sync at task start over a BLE-like link (connection-event
delays), then the resting band's offset/drift fit from beacon timestamp pairs."""

from __future__ import annotations

import random

import pytest

from mbfw.timesync import PairFit, best_offset

TASK_US = 600_000_000  # 10 minutes


class Clock:
    def __init__(self, rng: random.Random) -> None:
        self.off = rng.uniform(0, 10e6)
        self.ppm = rng.uniform(-50, 50)
        self.adj = 0

    def at(self, true_us: float) -> int:
        return int(self.off + true_us * (1 + self.ppm * 1e-6)) + self.adj


def host_sync(clock: Clock, t_true: float, rng: random.Random, n: int = 8) -> int:
    """n TIME_GET exchanges; one-way delays of 0.2-15 ms (a 15 ms connection interval)."""
    samples = []
    t = t_true
    for _ in range(n):
        d1, d2 = rng.uniform(200, 15000), rng.uniform(200, 15000)
        samples.append((int(t), clock.at(t + d1), int(t + d1 + d2)))  # host clock = true time
        t += d1 + d2 + 1000
    off, rtt = best_offset(samples)
    clock.adj -= off  # TIME_SET TIME_ADJ -offset
    return rtt


def run_task(seed: int, loss: float = 0.2) -> list[float]:
    rng = random.Random(seed)
    writer, rest = Clock(rng), Clock(rng)
    host_sync(writer, 1e6, rng)
    host_sync(rest, 1.2e6, rng)
    t0 = 2e6
    fit = PairFit()
    events = sorted(rng.uniform(t0, t0 + TASK_US) for _ in range(300))
    errors = []
    t = t0
    ei = 0
    while t < t0 + TASK_US:
        while ei < len(events) and events[ei] <= t:
            te = events[ei]  # both bands timestamp the same true instant; rest maps to the writer's time
            mapped = fit.to_peer(rest.at(te)) if fit.ok else rest.at(te)
            errors.append(abs(mapped - writer.at(te)) / 1000.0)
            ei += 1
        if rng.random() >= loss:
            delay = rng.uniform(200, 10000)  # advertising + scan scheduling delay
            fit.add(rest.at(t + delay), writer.at(t))
        t += rng.uniform(20000, 50000)  # beacon every 20-50 ms
    return errors


def test_best_offset_keeps_the_minimum_round_trip() -> None:
    samples = [(0, 5000 + 900, 3000), (10000, 5000 + 10000 + 400, 10800), (20000, 25000 + 9000, 30000)]
    off, rtt = best_offset(samples)
    assert rtt == 800 and off == 5000
    with pytest.raises(ValueError):
        best_offset([])


def test_host_sync_error_is_within_half_the_round_trip() -> None:
    rng = random.Random(3)
    for _ in range(200):
        c = Clock(rng)
        rtt = host_sync(c, 5e6, rng)
        assert abs(c.at(7e6) - 7e6) <= rtt / 2 + 50 * 2  # + drift over 2 s


def test_pair_fit_recovers_offset_and_drift_exactly_without_noise() -> None:
    fit = PairFit()
    for i in range(5000):
        peer = 1_000_000 + i * 30_000
        fit.add(peer + 123_456 + peer * 37 // 1_000_000, peer)
    fit.flush()
    assert abs(fit.b - 37_000) < 50  # ppb
    for peer in (2_000_000, 100_000_000, 150_000_000):
        local = peer + 123_456 + peer * 37 // 1_000_000
        assert abs(fit.to_local(peer) - local) <= 2
        assert abs(fit.to_peer(local) - peer) <= 2


def test_two_bands_agree_within_1ms_p95_over_10_minutes() -> None:
    errors: list[float] = []
    for seed in range(20):
        errors += run_task(seed)
    errors.sort()
    p95 = errors[int(0.95 * len(errors))]
    p50 = errors[len(errors) // 2]
    print(f"\nband-to-band event time error over 20 x 10 min: p50 {p50:.3f} ms, p95 {p95:.3f} ms, "
          f"max {errors[-1]:.3f} ms")
    assert p95 <= 1.0


def test_without_beacons_host_sync_alone_drifts_apart() -> None:
    # the reason for the beacon fit: +-50 ppm is up to 60 ms apart after 10 minutes
    rng = random.Random(9)
    worst = 0.0
    for _ in range(20):
        a, b = Clock(rng), Clock(rng)
        host_sync(a, 1e6, rng)
        host_sync(b, 1e6, rng)
        worst = max(worst, abs(a.at(6.01e8) - b.at(6.01e8)) / 1000)
    assert worst > 5.0
