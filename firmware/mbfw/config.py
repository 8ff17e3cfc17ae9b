# Detector configuration: integers only, validated on construction.
# Ratios are fixed-point with 4 fractional bits (16 == 1.0x baseline).
try:
    from micropython import const
except ImportError:  # CPython (host)
    def const(x):
        return x

RATIO_ONE = const(16)

HAND_L = const(0)
HAND_R = const(1)

# name: (default, min, max)
_FIELDS = (
    ("hand", HAND_R, HAND_L, HAND_R),
    ("mains_hz", 50, 50, 60),
    ("t_on", 56, 20, 4000),        # onset threshold, ratio x16 (3.5x)
    ("t_off", 32, 17, 4000),       # offset threshold, ratio x16 (2.0x)
    ("min_win", 8, 1, 500),        # minimum burst duration, 10 ms windows
    ("merge_gap", 10, 0, 500),     # merge bursts closer than this, windows
    ("t_act", 48, 17, 4000),       # writing activity: EMG ratio x16
    ("s_act", 6000, 1, 1 << 24),   # writing activity: stroke energy 2-8 Hz
    ("act_hold", 50, 0, 1000),     # activity hold after last active window
    ("mirror_frac", 4, 1, 16),     # mirror if peer active >= 1/mirror_frac of burst
    ("jerk_thr", 400, 1, 1 << 20), # knock: IMU jerk, mg per sample
    ("lf_k", 3, 1, 1000),          # cable/pop: LF*lf_k > HF*16 rejects
    ("onset_adj", -10, -200, 200), # onset time correction, ms
    ("offset_adj", -30, -200, 200),# offset time correction, ms
)

FIELD_NAMES = tuple(f[0] for f in _FIELDS)


class ConfigError(ValueError):
    pass


class Config:
    def __init__(self, **kw):
        for name, default, lo, hi in _FIELDS:
            v = kw.pop(name, default)
            if not isinstance(v, int) or v < lo or v > hi:
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
