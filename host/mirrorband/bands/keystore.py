"""Host keystore: the band keys this user provisioned, and their command counters.

One JSON file, ``keystore.json`` in the user data directory (platformdirs;
``MIRRORBAND_DATA_DIR`` or an explicit path overrides it). The file is created
with mode 0600 inside a 0700 directory, replaced atomically (write a temporary
file, fsync, rename) under an advisory lock, so a crash never leaves a torn
keystore and two processes never lose each other's counters. Keys never appear
in ``repr``, logs or error messages.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mirrorband.errors import CliError

FILE_NAME = "keystore.json"
_FORMAT = 1
_U32 = 0xFFFFFFFF


class KeystoreError(CliError):
    """The keystore cannot be read or written (one line, no key material)."""


def data_dir() -> Path:
    """The user data directory: ``$MIRRORBAND_DATA_DIR`` or platformdirs' user data dir."""
    env = os.environ.get("MIRRORBAND_DATA_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("mirrorband", appauthor=False))


@dataclass
class BandKey:
    """One provisioned band: identity, key and the last command counter used."""

    band_id: str                      # 16 hex digits
    key: bytes = field(repr=False)    # 32 bytes, never printed
    hand: str = "R"                   # "L" or "R"
    patient: str = ""
    counter: int = 0                  # last counter sent to this band
    active: bool = False              # False until the band confirmed provisioning

    def to_json(self) -> dict:
        d = asdict(self)
        d["key"] = self.key.hex()
        return d

    @classmethod
    def from_json(cls, d: dict) -> BandKey:
        key = bytes.fromhex(d["key"])
        if len(key) != 32:
            raise ValueError("key length")
        return cls(band_id=str(d["band_id"]), key=key, hand=str(d.get("hand", "R")),
                   patient=str(d.get("patient", "")), counter=int(d.get("counter", 0)),
                   active=bool(d.get("active", False)))


class Keystore:
    """The keystore file; every method reads the current file (other processes may write it)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else data_dir() / FILE_NAME

    def __repr__(self) -> str:
        return f"Keystore({str(self.path)!r})"

    # -- file ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise KeystoreError(f"cannot open the keystore in {self.path.parent}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self) -> dict[str, BandKey]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise KeystoreError(f"cannot read the keystore {self.path}: {e.strerror}") from None
        if st.st_mode & 0o077:
            # readable by others: tighten before reading anything out of it
            os.chmod(self.path, stat.S_IRUSR | stat.S_IWUSR)
        try:
            doc = json.loads(self.path.read_text())
            if doc.get("format") != _FORMAT:
                raise ValueError("format")
            return {k: BandKey.from_json(v) for k, v in doc["bands"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise KeystoreError(f"the keystore {self.path} is damaged or of another version") from None

    def _write(self, bands: dict[str, BandKey]) -> None:
        doc = {"format": _FORMAT, "bands": {k: v.to_json() for k, v in sorted(bands.items())}}
        data = json.dumps(doc, indent=1).encode()
        try:
            fd, tmp = tempfile.mkstemp(prefix=".keystore.", dir=self.path.parent)  # mode 0600
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            raise KeystoreError(f"cannot write the keystore {self.path}: {e.strerror}") from None

    # -- records --------------------------------------------------------------------

    def bands(self) -> list[BandKey]:
        with self._locked():
            return list(self._read().values())

    def get(self, band_id: str) -> BandKey | None:
        with self._locked():
            return self._read().get(band_id)

    def put(self, rec: BandKey) -> None:
        """Add or replace a band's record."""
        with self._locked():
            bands = self._read()
            bands[rec.band_id] = rec
            self._write(bands)

    def remove(self, band_id: str) -> bool:
        with self._locked():
            bands = self._read()
            if bands.pop(band_id, None) is None:
                return False
            self._write(bands)
            return True

    def next_counter(self, band_id: str, at_least: int = 0) -> int:
        """Reserve and persist the next command counter for a band (above ``at_least - 1``)."""
        with self._locked():
            bands = self._read()
            rec = bands.get(band_id)
            if rec is None:
                raise KeystoreError(f"band {band_id} is not in the keystore (provision it first)")
            c = max(rec.counter + 1, at_least)
            if c > _U32:
                raise KeystoreError(f"band {band_id} has used all its command counters: re-provision it")
            rec.counter = c
            self._write(bands)
            return c
