"""Transport-agnostic host client for the band protocol (docs/protocol.md).

:class:`BandClient` builds authenticated requests (HMAC-SHA256, a fresh counter
persisted in the keystore before the request leaves), checks the band's
responses (tag, echoed request id and counter, opcode, status) and opens log
pages (verify, then AES-CTR decrypt). The BLE client and the USB path give it a
``send(bytes) -> bytes`` callable; tests give it the firmware handler.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mbfw import protocol as P
from mbfw.security import Keys, open_page, seal, verify
from mirrorband.bands.keystore import Keystore
from mirrorband.errors import CliError

Send = Callable[[bytes], bytes]


def aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-CTR (128-bit big-endian counter block), as the band's cryptolib path."""
    enc = Cipher(algorithms.AES(bytes(key)), modes.CTR(bytes(iv))).encryptor()
    return enc.update(bytes(data)) + enc.finalize()


class BandError(CliError):
    """The band refused a request, or its answer failed a check; ``code`` is a protocol error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _refusal(op: int, code: int) -> BandError:
    name = P.OP_NAMES[op] if 0 < op < len(P.OP_NAMES) else f"opcode {op}"
    return BandError(code, f"band refused {name}: {P.error_name(code)}")


@dataclass
class Pending:
    """A request on its way: what the response must echo."""

    op: int
    req_id: int
    counter: int
    authenticated: bool
    frame: bytes


@dataclass
class Page:
    """An opened log page: its header fields and the plaintext records."""

    seq_from: int
    nonce: int
    encrypted: bool
    body: bytes


class BandClient:
    """Requests to one band and checks of its answers.

    ``key`` None speaks unauthenticated frames (an unprovisioned band, or INFO /
    STATUS over USB). With a key, counters come from ``keystore`` (persisted
    before use) or, without a keystore, from memory starting after ``counter``.
    """

    def __init__(self, key: bytes | None = None, *, band_id: str | None = None,
                 keystore: Keystore | None = None, counter: int = 0,
                 require_encryption: bool = False) -> None:
        self.keys = Keys(key) if key is not None else None
        self.band_id = band_id
        self.keystore = keystore
        self.counter = counter
        self.require_encryption = require_encryption
        self._req_id = 0
        if keystore is not None and band_id is None:
            raise ValueError("a keystore needs the band id")

    @classmethod
    def from_keystore(cls, keystore: Keystore, band_id: str, **kw) -> BandClient:
        rec = keystore.get(band_id)
        if rec is None or not rec.active:
            raise CliError(f"band {band_id} is not provisioned on this computer (mirrorband provision)")
        return cls(rec.key, band_id=band_id, keystore=keystore, counter=rec.counter, **kw)

    def __repr__(self) -> str:
        return f"BandClient(band_id={self.band_id!r}, authenticated={self.keys is not None})"

    def _next_counter(self, at_least: int = 0) -> int:
        if self.keystore is not None and self.band_id is not None:
            self.counter = self.keystore.next_counter(self.band_id, at_least)
        else:
            self.counter = max(self.counter + 1, at_least)
            if self.counter > 0xFFFFFFFF:
                raise BandError(P.ERR_RANGE, "command counters exhausted: re-provision the band")
        return self.counter

    def request(self, op: int, payload: bytes = b"", authenticated: bool = True) -> Pending:
        """Build (and seal) one request frame."""
        self._req_id = (self._req_id + 1) & 0xFFFF
        auth = authenticated and self.keys is not None
        counter = self._next_counter() if auth else 0
        frame = P.Frame(op, payload, self._req_id, counter)
        raw = seal(frame, self.keys if auth else None)
        return Pending(op, self._req_id, counter, auth, raw)

    def response(self, pending: Pending, data: bytes) -> bytes:
        """Check a response to ``pending``; returns its payload or raises :class:`BandError`."""
        try:
            rsp = P.Frame.from_bytes(data)
        except P.ProtocolError as e:
            raise BandError(e.code, f"malformed answer from the band: {e}") from None
        if not rsp.flags & P.FLAG_RESP:
            raise BandError(P.ERR_BAD_FRAME, "the band's answer is not a response")
        if pending.authenticated and rsp.status == P.OK and not rsp.authenticated():
            raise BandError(P.ERR_BAD_TAG, "unauthenticated answer to an authenticated request")
        try:  # HMAC of an authenticated answer, checksum of an unauthenticated one
            verify(rsp, self.keys if rsp.authenticated() else None)
        except P.ProtocolError as e:
            raise BandError(e.code, f"the band's answer failed its check: {e}") from None
        if rsp.status != P.OK and rsp.op == 0:
            raise _refusal(pending.op, rsp.status)  # the band could not parse the frame
        if (rsp.op, rsp.req_id, rsp.counter) != (pending.op, pending.req_id, pending.counter):
            raise BandError(P.ERR_BAD_FRAME, "the band's answer does not match the request")
        if rsp.status != P.OK:
            err = _refusal(pending.op, rsp.status)
            err.detail = rsp.payload if rsp.authenticated() else b""  # type: ignore[attr-defined]
            raise err
        return rsp.payload

    def call(self, send: Send, op: int, payload: bytes = b"", authenticated: bool = True) -> bytes:
        """One request/response exchange over ``send``; resynchronises the counter once after a
        reboot made the band's counter floor jump (ERR_REPLAY with the floor, authenticated)."""
        pending = self.request(op, payload, authenticated)
        try:
            return self.response(pending, send(pending.frame))
        except BandError as e:
            detail = getattr(e, "detail", b"")
            if e.code != P.ERR_REPLAY or len(detail) != 4:
                raise
            self._next_counter(struct.unpack("<I", detail)[0] - 1)
            pending = self.request(op, payload, authenticated)
            return self.response(pending, send(pending.frame))

    def open_page(self, page: bytes) -> Page:
        """Verify and decrypt a log page (raises :class:`BandError` for any damage)."""
        if self.keys is None:
            raise BandError(P.ERR_NOT_PROVISIONED, "no band key: cannot open log pages")
        try:
            hdr, body = open_page(self.keys, page, aes_ctr, self.require_encryption)
        except P.ProtocolError as e:
            raise BandError(e.code, f"bad log page: {e}") from None
        return Page(hdr.seq_from, hdr.nonce, bool(hdr.flags & P.PAGE_ENCRYPTED), body)

    # -- typed helpers ----------------------------------------------------------------

    def info(self, send: Send, authenticated: bool = True) -> P.Info:
        return P.Info.from_bytes(self.call(send, P.OP_INFO, b"", authenticated))

    def status(self, send: Send, authenticated: bool = True) -> P.Status:
        return P.Status.from_bytes(self.call(send, P.OP_STATUS, b"", authenticated))

    def log_range(self, send: Send) -> P.LogRange:
        return P.LogRange.from_bytes(self.call(send, P.OP_LOG_RANGE))

    def read_page(self, send: Send, seq_from: int, max_len: int = P.PAGE_MAX) -> tuple[bytes, Page]:
        """Read one page: returns the raw page (to store before parsing) and the opened page."""
        raw = self.call(send, P.OP_LOG_READ, bytes(P.LogRead(seq_from, max_len)))
        return raw, self.open_page(raw)

    def ack(self, send: Send, seq: int) -> None:
        self.call(send, P.OP_LOG_ACK, bytes(P.LogAck(seq)))

    def download(self, send: Send, sink: Callable[[bytes], None],
                 max_len: int = P.PAGE_MAX) -> list[tuple[int, int, bytes]]:
        """Every record after the band's last acknowledged one, as (seq, type, payload).

        Each raw page goes to ``sink`` (which stores it) before it is opened and parsed; the
        records of a page are acknowledged only after that, so after a disconnect (any
        exception out of ``send``) calling again resumes where the band's acknowledgement
        stands: nothing lost, nothing twice.
        """
        from mbfw.logrec import LogError, parse_records

        seq = self.log_range(send).acked + 1
        out: list[tuple[int, int, bytes]] = []
        while True:
            raw = self.call(send, P.OP_LOG_READ, bytes(P.LogRead(seq, max_len)))
            sink(raw)
            page = self.open_page(raw)
            try:
                recs = list(parse_records(page.body))
            except LogError as e:
                raise BandError(P.ERR_BAD_FRAME, f"bad records in log page from seq {seq}: {e}") from None
            if not recs:
                return out
            out += recs
            seq = recs[-1][0] + 1
            self.ack(send, recs[-1][0])

    def config(self, send: Send) -> dict[str, int]:
        return P.ConfigValues.from_bytes(self.call(send, P.OP_CONFIG_GET)).as_dict()

    def set_config(self, send: Send, **values: int) -> dict[str, int]:
        try:
            payload = bytes(P.ConfigValues.from_dict(values))
        except P.ProtocolError as e:
            raise BandError(e.code, str(e)) from None
        return P.ConfigValues.from_bytes(self.call(send, P.OP_CONFIG_SET, payload)).as_dict()
