"""Finding bands: a scan filtered by the Mirrorband service UUID (bleak public API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bleak import BleakScanner
from bleak.backends.device import BLEDevice

from mbfw import bleservice as S


@dataclass
class BandAd:
    """One advertising band."""

    device: BLEDevice
    name: str
    hand: str  # "L", "R" or "?"
    rssi: int

    @property
    def address(self) -> str:
        return self.device.address


async def scan(timeout: float = 3.0, *, backend: Any = None) -> list[BandAd]:
    """Bands advertising the Mirrorband service, strongest first."""
    found = await BleakScanner.discover(timeout=timeout, return_adv=True, service_uuids=[S.SERVICE_UUID],
                                        backend=backend)
    out = []
    for dev, adv in found.values():
        if S.SERVICE_UUID not in [u.lower() for u in adv.service_uuids]:
            continue
        hand = "?"
        m = adv.manufacturer_data.get(S.COMPANY)
        if m is not None and len(m) >= 2 and m[0] == S.ADV_KIND:
            hand = "LR"[m[1]] if m[1] in (0, 1) else "?"
        out.append(BandAd(dev, adv.local_name or dev.name or "", hand, adv.rssi))
    out.sort(key=lambda b: -b.rssi)
    return out


