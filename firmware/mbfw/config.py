# Detector configuration: integers only, validated on construction.
# Ratios are fixed-point with 4 fractional bits (16 == 1.0x baseline).
from micropython import const

RATIO_ONE = const(16)

HAND_L = const(0)
HAND_R = const(1)

# name: (min, max); defaults are the class attributes of Config
_FIELDS = (
    ("hand", HAND_L, HAND_R),
    ("mains_hz", 50, 60),
    ("t_on", 20, 4000),
    ("t_off", 17, 4000),
    ("min_win", 1, 500),
    ("merge_gap", 0, 500),
    ("short_win", 1, 500),
    ("t_short", 20, 4000),
    ("t_act", 17, 4000),
    ("s_act", 1, 1 << 24),
    ("act_hold", 0, 1000),
    ("mirror_frac", 1, 16),
    ("jerk_thr", 1, 1 << 20),
    ("lf_k", 0, 200),
    ("onset_adj", -200, 200),
    ("offset_adj", -200, 200),
)

FIELD_NAMES = tuple(f[0] for f in _FIELDS)


class ConfigError(ValueError):
    pass


class Config:
    hand = HAND_R
    mains_hz = 50
    t_on = 72          # onset threshold, ratio x16 (4.5x)
    t_off = 40         # offset threshold, ratio x16 (2.5x)
    min_win = 8        # minimum burst duration, 10 ms windows (80 ms)
    merge_gap = 30     # merge bursts closer than this, windows (300 ms)
    short_win = 15     # events shorter than this (windows) are brief activations:
    t_short = 96       # reported only when their peak ratio exceeds t_short (x16, 6x)
    t_act = 48         # writing activity: EMG ratio x16
    s_act = 6000       # writing activity: stroke energy 2-8 Hz
    act_hold = 50      # activity hold after the last active window
    mirror_frac = 4    # mirror if peer active >= 1/mirror_frac of the burst
    jerk_thr = 150     # knock: IMU jerk, mg per sample
    lf_k = 24          # cable/pop: LF/HF above lf_k/64 (50 Hz comb) at onset and over the event; 0 = off
    onset_adj = -36    # onset time correction, ms
    offset_adj = -26   # offset time correction, ms

    def __init__(self, **kw):
        for name, lo, hi in _FIELDS:
            v = kw.pop(name, getattr(Config, name))
            if not isinstance(v, int) or isinstance(v, bool) or v < lo or v > hi:
                raise ConfigError("%s out of range %d..%d" % (name, lo, hi))
            setattr(self, name, v)
        if kw:
            raise ConfigError("unknown setting " + sorted(kw)[0])
        if self.mains_hz not in (50, 60):
            raise ConfigError("mains_hz must be 50 or 60")
        if self.t_off >= self.t_on:
            raise ConfigError("t_off must be below t_on")

    def as_dict(self):
        return {n: getattr(self, n) for n in FIELD_NAMES}
