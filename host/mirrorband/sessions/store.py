"""The host's session store: SQLite in the user data directory, plus raw files.

Layout of a data directory (see :func:`data_dir`)::

    mirrorband.sqlite      the store (this module)
    raw/                   data as received, referenced from the store by relative path:
      imports/<sha256>.edf   an imported EDF+/BDF+ recording, byte for byte
      bands/<band>/...       band log pages as downloaded (written by the log client)

Guarantees:

* every change is one SQLite transaction (WAL journal, ``synchronous=FULL``): a
  process killed mid-write leaves the store as it was after the last commit;
  a session row is inserted in the same transaction as all its steps and
  events, so nothing half-written is ever visible (:meth:`Store.check` verifies);
* raw files are written to a temporary name, flushed and renamed before the
  transaction that references them, so a referenced file is always complete
  (stale temporaries are removed when the store is opened);
* the schema carries a version (table ``schema_version``); :data:`MIGRATIONS`
  are applied in order, each in its own transaction together with the version
  bump, so a store is never left half-migrated; a store written by a newer
  Mirrorband is refused (:class:`StoreError`) and left untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

#: Environment variable that overrides the data directory.
ENV_DATA_DIR = "MIRRORBAND_DATA_DIR"
DB_NAME = "mirrorband.sqlite"
RAW_DIR = "raw"
_TMP_SUFFIX = ".part"
_PATIENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")

#: Ordered schema migrations: migration ``i`` (0-based) brings the store to version ``i + 1``.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE patients (
            id TEXT PRIMARY KEY,             -- pseudonym, never a name
            created TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT '')""",
        """CREATE TABLE bands (
            id TEXT PRIMARY KEY,
            hand TEXT CHECK (hand IN ('L', 'R')),
            patient_id TEXT REFERENCES patients(id),
            board TEXT NOT NULL DEFAULT '',
            created TEXT NOT NULL)""",
        """CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            patient_id TEXT REFERENCES patients(id),
            started TEXT NOT NULL,           -- ISO 8601, local time of the task start
            source TEXT NOT NULL CHECK (source IN ('edf', 'bands')),
            name TEXT NOT NULL DEFAULT '',
            duration_s REAL NOT NULL,
            runtime TEXT NOT NULL DEFAULT '',
            firmware_version TEXT NOT NULL DEFAULT '',
            mains_hz INTEGER,
            raw_path TEXT,                   -- relative to the data directory (EDF imports)
            raw_sha256 TEXT,
            band_key TEXT UNIQUE,            -- patient/band session id (band sessions)
            n_steps INTEGER NOT NULL,
            n_events INTEGER NOT NULL,
            created TEXT NOT NULL)""",
        """CREATE TABLE steps (
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('REST', 'WRITE L', 'WRITE R')),
            onset_s REAL NOT NULL,
            offset_s REAL NOT NULL,
            PRIMARY KEY (session_id, idx))""",
        """CREATE TABLE events (
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            hand TEXT NOT NULL CHECK (hand IN ('L', 'R')),
            kind TEXT NOT NULL,
            onset_s REAL NOT NULL,
            offset_s REAL NOT NULL,
            data TEXT NOT NULL,              -- the full event object (docs/formats.md), JSON
            PRIMARY KEY (session_id, idx))""",
    ),
    (
        """CREATE TABLE treatments (
            id INTEGER PRIMARY KEY,
            patient_id TEXT NOT NULL REFERENCES patients(id),
            date TEXT NOT NULL,              -- YYYY-MM-DD
            kind TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT '',
            created TEXT NOT NULL)""",
        "CREATE INDEX treatments_patient ON treatments(patient_id, date)",
        "CREATE INDEX sessions_patient ON sessions(patient_id, started)",
    ),
    (
        # band logs as decoded: the source a band session is re-derived from
        """CREATE TABLE band_logs (
            id INTEGER PRIMARY KEY,
            band_key TEXT NOT NULL,
            band_id TEXT NOT NULL REFERENCES bands(id),
            hand TEXT NOT NULL CHECK (hand IN ('L', 'R')),
            raw_path TEXT NOT NULL,          -- pages as received, relative to the data directory
            markers TEXT NOT NULL,           -- JSON (mirrorband.sessions.session.BandMarkers)
            records BLOB NOT NULL,           -- concatenated 24-byte event records (mbfw.events)
            created TEXT NOT NULL,
            UNIQUE (band_key, band_id))""",
    ),
)
#: The schema version this Mirrorband writes.
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Exception):
    """The store cannot be used as asked; the message is one line for the user."""


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The data directory: ``override``, else ``$MIRRORBAND_DATA_DIR``, else the platform's user data dir."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("mirrorband", appauthor=False))


def now_iso() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def check_patient_id(pid: str) -> str:
    """A pseudonymous patient id: 1-32 letters, digits, ``_ . -``; raises :class:`StoreError`."""
    if not isinstance(pid, str) or not _PATIENT_RE.match(pid):
        raise StoreError(f"bad patient id {pid!r}: use 1-32 letters, digits, '_', '.', '-' (a pseudonym)")
    return pid


def check_date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except (TypeError, ValueError):
        raise StoreError(f"bad date {text!r}: use YYYY-MM-DD") from None


@dataclass
class SessionRow:
    """One row of ``sessions`` (what ``mirrorband sessions`` lists)."""

    id: int
    patient_id: str | None
    started: str
    source: str
    name: str
    duration_s: float
    runtime: str
    firmware_version: str
    mains_hz: int | None
    raw_path: str | None
    raw_sha256: str | None
    band_key: str | None
    n_steps: int
    n_events: int
    created: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_SESSION_COLS = ("id, patient_id, started, source, name, duration_s, runtime, firmware_version, "
                 "mains_hz, raw_path, raw_sha256, band_key, n_steps, n_events, created")


class Store:
    """An open store in ``directory`` (created when missing). Use as a context manager or call close()."""

    def __init__(self, directory: str | os.PathLike | None = None, *, create: bool = True) -> None:
        self.dir = data_dir(directory)
        self.db_path = self.dir / DB_NAME
        if not create and not self.db_path.exists():
            raise StoreError(f"no Mirrorband store in {self.dir}")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / RAW_DIR).mkdir(exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create data directory {self.dir} ({e.strerror or e})") from None
        try:
            self.db = sqlite3.connect(self.db_path, isolation_level=None, timeout=10.0)
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = FULL")
            self._migrate()
        except sqlite3.DatabaseError as e:
            self._close_quietly()
            raise StoreError(f"cannot open store {self.db_path} ({e})") from None
        except StoreError:
            self._close_quietly()
            raise
        self._sweep_temporaries()

    # --- lifecycle -------------------------------------------------------------------------
    def _close_quietly(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            try:
                db.close()
            except sqlite3.Error:
                pass

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- schema ----------------------------------------------------------------------------
    def schema_version(self) -> int:
        row = self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
        if row is None:
            return 0
        v = self.db.execute("SELECT version FROM schema_version").fetchone()
        return int(v[0]) if v else 0

    def _migrate(self) -> None:
        target = SCHEMA_VERSION
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.db_path} was written by a newer Mirrorband (schema {current}, this one "
                f"knows {SCHEMA_VERSION}); upgrade Mirrorband")
        for version in range(current + 1, target + 1):
            with self.transaction() as db:
                # re-read inside the write lock: another process may have migrated meanwhile
                if self.schema_version() >= version:
                    continue
                db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                for stmt in MIGRATIONS[version - 1]:
                    db.execute(stmt)
                db.execute("DELETE FROM schema_version")
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    # --- raw files -------------------------------------------------------------------------
    def _sweep_temporaries(self) -> None:
        for p in (self.dir / RAW_DIR).rglob(f"*{_TMP_SUFFIX}"):
            try:
                p.unlink()
            except OSError:
                pass

    def raw_abspath(self, rel: str) -> Path:
        return self.dir / rel

    def keep_raw(self, data: bytes, rel_dir: str, suffix: str) -> tuple[str, str]:
        """Write ``data`` under ``raw/rel_dir`` named by its SHA-256, durably; returns (relative path, sha256).

        Content-addressed: keeping the same bytes twice stores them once.
        """
        return self._keep(hashlib.sha256(data).hexdigest(), len(data), lambda: iter((data,)), rel_dir, suffix)

    def keep_raw_file(self, path: str | os.PathLike, rel_dir: str, suffix: str,
                      block: int = 1 << 20) -> tuple[str, str]:
        """:meth:`keep_raw` for a file, copied a block at a time (a long recording never sits in memory)."""
        def blocks() -> Iterator[bytes]:
            with open(path, "rb") as f:
                while b := f.read(block):
                    yield b

        h = hashlib.sha256()
        size = 0
        for b in blocks():
            h.update(b)
            size += len(b)
        return self._keep(h.hexdigest(), size, blocks, rel_dir, suffix)

    def _keep(self, digest: str, size: int, blocks: Callable[[], Iterator[bytes]], rel_dir: str,
              suffix: str) -> tuple[str, str]:
        rel = f"{RAW_DIR}/{rel_dir}/{digest}{suffix}"
        target = self.dir / rel
        if target.exists() and target.stat().st_size == size:
            return rel, digest
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + _TMP_SUFFIX)
            with open(tmp, "wb") as f:
                for b in blocks():
                    f.write(b)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except OSError as e:
            raise StoreError(f"cannot write {target} ({e.strerror or e})") from None
        return rel, digest

    # --- patients, bands, treatments -------------------------------------------------------
    def ensure_patient(self, pid: str, db: sqlite3.Connection | None = None) -> str:
        check_patient_id(pid)
        (db or self.db).execute("INSERT OR IGNORE INTO patients (id, created) VALUES (?, ?)", (pid, now_iso()))
        return pid

    def patients(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM patients ORDER BY id")]

    def ensure_band(self, band_id: str, hand: str, patient_id: str | None, board: str = "",
                    db: sqlite3.Connection | None = None) -> None:
        (db or self.db).execute(
            "INSERT INTO bands (id, hand, patient_id, board, created) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET hand = excluded.hand, "
            "patient_id = COALESCE(excluded.patient_id, bands.patient_id)",
            (band_id, hand, patient_id, board, now_iso()))

    def add_treatment(self, patient_id: str, day: str, kind: str, note: str = "") -> int:
        """Record a treatment (for example ``botox``) given on ``day`` (YYYY-MM-DD); returns its id."""
        check_patient_id(patient_id)
        day = check_date(day)
        kind = kind.strip()
        if not kind or len(kind) > 64 or "\n" in kind:
            raise StoreError("treatment kind must be 1-64 characters on one line")
        with self.transaction() as db:
            self.ensure_patient(patient_id, db)
            cur = db.execute("INSERT INTO treatments (patient_id, date, kind, note, created) VALUES (?, ?, ?, ?, ?)",
                             (patient_id, day, kind, note, now_iso()))
            return int(cur.lastrowid or 0)

    def treatments(self, patient_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, patient_id, date, kind, note FROM treatments"
        args: tuple = ()
        if patient_id is not None:
            sql += " WHERE patient_id = ?"
            args = (patient_id,)
        rows = self.db.execute(sql + " ORDER BY date, id", args).fetchall()
        return [dict(zip(("id", "patient_id", "date", "kind", "note"), r, strict=True)) for r in rows]

    # --- sessions ----------------------------------------------------------------------------
    def insert_session(self, meta: dict[str, Any], steps: Sequence[dict[str, Any]],
                       events: Sequence[dict[str, Any]], db: sqlite3.Connection | None = None,
                       replace_id: int | None = None) -> int:
        """Insert a session with all its steps and events in one transaction; returns its id.

        ``meta`` holds the ``sessions`` columns (``started``, ``source``, ``duration_s``, ...).
        With ``replace_id`` the session keeps its id and its steps and events are replaced.
        Pass ``db`` when already inside :meth:`transaction`.
        """
        if db is None:
            with self.transaction() as tdb:
                return self.insert_session(meta, steps, events, tdb, replace_id)
        cols = ["patient_id", "started", "source", "name", "duration_s", "runtime", "firmware_version",
                "mains_hz", "raw_path", "raw_sha256", "band_key"]
        vals = [meta.get(c) for c in cols]
        vals[cols.index("name")] = meta.get("name") or ""
        vals[cols.index("runtime")] = meta.get("runtime") or ""
        vals[cols.index("firmware_version")] = meta.get("firmware_version") or ""
        if meta.get("patient_id"):
            self.ensure_patient(meta["patient_id"], db)
        if replace_id is None:
            cur = db.execute(
                f"INSERT INTO sessions ({', '.join(cols)}, n_steps, n_events, created) "
                f"VALUES ({', '.join('?' * len(cols))}, ?, ?, ?)",
                (*vals, len(steps), len(events), now_iso()))
            sid = int(cur.lastrowid or 0)
        else:
            sid = replace_id
            db.execute("DELETE FROM steps WHERE session_id = ?", (sid,))
            db.execute("DELETE FROM events WHERE session_id = ?", (sid,))
            sets = ", ".join(f"{c} = ?" for c in cols)
            db.execute(f"UPDATE sessions SET {sets}, n_steps = ?, n_events = ? WHERE id = ?",
                       (*vals, len(steps), len(events), sid))
        db.executemany(
            "INSERT INTO steps (session_id, idx, kind, onset_s, offset_s) VALUES (?, ?, ?, ?, ?)",
            [(sid, i, s["kind"], s["onset_s"], s["offset_s"]) for i, s in enumerate(steps)])
        db.executemany(
            "INSERT INTO events (session_id, idx, hand, kind, onset_s, offset_s, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(sid, i, e["hand"], e["kind"], e["onset_s"], e["offset_s"], json.dumps(e, sort_keys=True))
             for i, e in enumerate(events)])
        return sid

    def sessions(self, patient_id: str | None = None) -> list[SessionRow]:
        sql = f"SELECT {_SESSION_COLS} FROM sessions"
        args: tuple = ()
        if patient_id is not None:
            sql += " WHERE patient_id = ?"
            args = (patient_id,)
        return [SessionRow(*r) for r in self.db.execute(sql + " ORDER BY started, id", args)]

    def session_row(self, sid: int | str) -> SessionRow:
        try:
            key = int(sid)
        except (TypeError, ValueError):
            raise StoreError(f"bad session id {sid!r}: a number, as listed by 'mirrorband sessions'") from None
        r = self.db.execute(f"SELECT {_SESSION_COLS} FROM sessions WHERE id = ?", (key,)).fetchone()
        if r is None:
            raise StoreError(f"no session {key} in {self.dir} (see 'mirrorband sessions')")
        return SessionRow(*r)

    def session_by_band_key(self, band_key: str) -> int | None:
        r = self.db.execute("SELECT id FROM sessions WHERE band_key = ?", (band_key,)).fetchone()
        return int(r[0]) if r else None

    def steps(self, sid: int) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT kind, onset_s, offset_s FROM steps WHERE session_id = ? ORDER BY idx", (sid,))
        return [{"kind": k, "onset_s": a, "offset_s": b} for k, a, b in rows]

    def events(self, sid: int) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT data FROM events WHERE session_id = ? ORDER BY idx", (sid,))
        return [json.loads(r[0]) for r in rows]

    # --- band logs -----------------------------------------------------------------------------
    def put_band_log(self, db: sqlite3.Connection, band_key: str, band_id: str, hand: str,
                     raw_path: str, markers: dict[str, Any], records: bytes) -> None:
        db.execute(
            "INSERT INTO band_logs (band_key, band_id, hand, raw_path, markers, records, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(band_key, band_id) DO UPDATE SET "
            "hand = excluded.hand, raw_path = excluded.raw_path, markers = excluded.markers, "
            "records = excluded.records",
            (band_key, band_id, hand, raw_path, json.dumps(markers, sort_keys=True), records, now_iso()))

    def band_logs(self, band_key: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT band_id, hand, raw_path, markers, records FROM band_logs WHERE band_key = ? ORDER BY hand",
            (band_key,))
        return [{"band_id": b, "hand": h, "raw_path": p, "markers": json.loads(m), "records": bytes(r)}
                for b, h, p, m, r in rows]

    # --- integrity ---------------------------------------------------------------------------
    def check(self) -> list[str]:
        """Problems found (empty when sound): SQLite integrity, row counts, raw files."""
        problems: list[str] = []
        res = self.db.execute("PRAGMA integrity_check").fetchall()
        if res != [("ok",)]:
            problems += [f"sqlite: {r[0]}" for r in res]
        rows = self.db.execute(
            "SELECT s.id, s.n_steps, s.n_events, s.raw_path, s.raw_sha256, "
            "(SELECT COUNT(*) FROM steps WHERE session_id = s.id), "
            "(SELECT COUNT(*) FROM events WHERE session_id = s.id) FROM sessions s").fetchall()
        for sid, ns, ne, raw, sha, cs, ce in rows:
            if ns != cs or ne != ce:
                problems.append(f"session {sid}: {cs}/{ns} steps, {ce}/{ne} events")
            if raw:
                p = self.dir / raw
                if not p.exists():
                    problems.append(f"session {sid}: raw file {raw} missing")
                elif sha and hashlib.sha256(p.read_bytes()).hexdigest() != sha:
                    problems.append(f"session {sid}: raw file {raw} does not match its checksum")
        return problems
