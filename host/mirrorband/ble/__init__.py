"""Mirrorband over Bluetooth LE on bleak's public API (docs/ble.md).

``backend=None`` uses bleak's platform backend (real adapters); the virtual radio passes
:class:`mirrorband.vradio.bleak_backend.BumbleAdapter` backends.
"""

from .download import DownloadResult, download
from .link import BandLink, BandUnreachable, LinkLost, State, page_len_for
from .scan import BandAd, scan
from .sync import sync_clock

__all__ = ["BandAd", "BandLink", "BandUnreachable", "DownloadResult", "LinkLost", "State", "download",
           "page_len_for", "scan", "sync_clock"]
