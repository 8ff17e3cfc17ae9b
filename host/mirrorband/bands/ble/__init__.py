"""Mirrorband over Bluetooth LE on bleak's public API (docs/ble.md).

``backend=None`` uses bleak's platform backend (real adapters); the virtual radio passes
:class:`mirrorband.sim.vradio.bleak_backend.BumbleAdapter` backends.
"""

from mirrorband.bands.ble.link import BandLink, BandUnreachable, LinkLost, State, page_len_for
from mirrorband.bands.ble.scan import BandAd, scan
from mirrorband.bands.ble.sync import sync_clock

__all__ = ["BandAd", "BandLink", "BandUnreachable", "LinkLost", "State", "page_len_for", "scan", "sync_clock"]
