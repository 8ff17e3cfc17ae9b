"""A virtual band's flash: a host directory with the band's filesystem, and power cuts.

:class:`FlashFS` is the filesystem interface of ``mbfw.fsio`` (open, listdir,
remove, rename, mkdir, exists, size, free) over a host directory: the
firmware's absolute paths (``/log/seg0``) live under that directory, and
``free`` reports what is left of the band's flash partition (``capacity``).

Power cuts use ``mbfw.fsio.PowerCutFS`` (its model: bytes reach storage in
order, a cut mid-write keeps the bytes before it, metadata operations are
atomic) in two ways:

* ``budget``: the power goes after that many more written bytes (a cut inside
  a write; pick it at random for a random instant of the log's activity);
* :meth:`Flash.cut`: the power goes now (between two writes), used when the
  simulation kills a band at a random instant of time.

After a cut every filesystem call raises ``PowerCut``; the next boot builds a
new filesystem over the same directory (:meth:`Flash.boot`) and the event log
recovers from what is on it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from mbfw.fsio import PowerCutFS

DEFAULT_CAPACITY = 1 << 20  # 1 MB log partition


class FlashFS:
    """mbfw.fsio filesystem interface rooted at a host directory."""

    def __init__(self, root: str | os.PathLike, capacity: int = DEFAULT_CAPACITY) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.capacity = capacity

    def _p(self, path: str) -> Path:
        parts = [p for p in str(path).split("/") if p not in ("", ".")]
        if ".." in parts:
            raise OSError(2, "no such file")
        return self.root.joinpath(*parts)

    def open(self, path: str, mode: str) -> Any:
        return open(self._p(path), mode)  # noqa: SIM115 - the firmware closes it

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(self._p(path)))

    def remove(self, path: str) -> None:
        os.remove(self._p(path))

    def rename(self, old: str, new: str) -> None:
        os.replace(self._p(old), self._p(new))

    def mkdir(self, path: str) -> None:
        os.mkdir(self._p(path))

    def exists(self, path: str) -> bool:
        return self._p(path).exists()

    def size(self, path: str) -> int:
        return self._p(path).stat().st_size

    def used(self) -> int:
        return sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file())

    def free(self, path: str) -> int:
        return max(0, self.capacity - self.used())


class Flash:
    """A band's flash directory across boots, with power-cut injection."""

    def __init__(self, root: str | os.PathLike, capacity: int = DEFAULT_CAPACITY) -> None:
        self.inner = FlashFS(root, capacity)
        self.fs: PowerCutFS | None = None
        self.boots = 0

    @property
    def root(self) -> Path:
        return self.inner.root

    def boot(self, budget: int = -1, junk: int = 0, seed: int = 1) -> PowerCutFS:
        """The filesystem of a new boot; with ``budget >= 0`` the power goes after that many bytes."""
        self.boots += 1
        self.fs = PowerCutFS(self.inner, budget, junk=junk, seed=seed)
        return self.fs

    def cut(self) -> None:
        """Power off now: every later filesystem call of this boot fails."""
        if self.fs is not None:
            self.fs.dead = True

    @property
    def dead(self) -> bool:
        return self.fs is not None and self.fs.dead

    def erase(self) -> None:
        shutil.rmtree(self.inner.root, ignore_errors=True)
        self.inner.root.mkdir(parents=True, exist_ok=True)
