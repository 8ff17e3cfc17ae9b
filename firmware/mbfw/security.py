# App-layer security shared by the band and the host: HMAC-SHA256 on
# hashlib.sha256 (MicroPython has no hmac module), key derivation, frame tags,
# constant-time comparison, and authenticated (encrypt-then-MAC) log pages.
# AES-CTR: cryptolib on the band (mode 6 when the port has it, else CTR built
# on ECB); the host passes its own ctr function (the cryptography package).
import hashlib
import struct

from micropython import const

from mbfw.protocol import (
    ERR_BAD_LENGTH,
    ERR_BAD_TAG,
    ERR_INTERNAL,
    ERR_NOT_PROVISIONED,
    ERR_RANGE,
    FLAG_UNAUTH,
    PAGE_ENCRYPTED,
    PAGE_HEADER,
    PAGE_MAGIC,
    TAG,
    VERSION,
    PageHeader,
    ProtocolError,
    encode,
)

try:
    import cryptolib
except ImportError:
    cryptolib = None

_BLOCK = const(64)


def sha256(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


class Hmac:
    # HMAC-SHA256 (RFC 2104) with the pads computed once per key
    def __init__(self, key):
        if len(key) > _BLOCK:
            key = sha256(key)
        k = bytes(key) + bytes(_BLOCK - len(key))
        self._i = bytes(c ^ 0x36 for c in k)
        self._o = bytes(c ^ 0x5C for c in k)

    def digest(self, *parts):
        h = hashlib.sha256(self._i)
        for p in parts:
            h.update(p)
        return sha256(self._o, h.digest())


def ct_equal(a, b):
    # constant time for equal lengths (lengths are public)
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0


class Keys:
    # per-band keys derived from the provisioned 256-bit band key
    def __init__(self, master):
        if len(master) != 32:
            raise ProtocolError(ERR_RANGE, "band key must be 32 bytes")
        m = Hmac(master)
        self.cmd = Hmac(m.digest(b"mirrorband/v1/command"))
        self.page = Hmac(m.digest(b"mirrorband/v1/page-mac"))
        self.enc = m.digest(b"mirrorband/v1/page-enc")


def seal(frame, keys):
    # tag the frame (HMAC with keys, or the SHA-256 checksum when keys is None
    # or the frame is flagged unauthenticated); returns its bytes
    if keys is None or frame.flags & FLAG_UNAUTH:
        frame.flags |= FLAG_UNAUTH
        frame.tag = sha256(frame.signed())
    else:
        frame.tag = keys.cmd.digest(frame.signed())
    return frame.__bytes__()


def verify(frame, keys):
    # raises ProtocolError(ERR_BAD_TAG) unless the tag matches; an
    # authenticated frame needs keys (ERR_NOT_PROVISIONED without)
    tag = frame.tag
    if tag is None:
        raise ProtocolError(ERR_BAD_TAG, "frame has no tag")
    if frame.flags & FLAG_UNAUTH:
        good = ct_equal(sha256(frame.signed()), tag)
    elif keys is None:
        raise ProtocolError(ERR_NOT_PROVISIONED, "band is not provisioned")
    else:
        good = ct_equal(keys.cmd.digest(frame.signed()), tag)
    if not good:
        raise ProtocolError(ERR_BAD_TAG, "tag does not match")


def page_iv(nonce, seq_from):
    # 128-bit CTR block: nonce | seq_from | 0 | block counter (big-endian)
    return struct.pack(">IIII", nonce, seq_from, 0, 0)


def _ctr_ecb(key, iv, data):
    e = cryptolib.aes(key, 1)  # type: ignore
    out = bytearray(data)
    blk = bytearray(iv)
    n = len(out)
    for off in range(0, n, 16):
        ks = e.encrypt(blk)
        m = n - off if n - off < 16 else 16
        for j in range(m):
            out[off + j] ^= ks[j]
        i = 15
        while i >= 0:  # 128-bit big-endian increment
            blk[i] = (blk[i] + 1) & 0xFF
            if blk[i]:
                break
            i -= 1
    return bytes(out)


_native_ctr = [cryptolib is not None]


def ctr_band(key, iv, data):
    # AES-256-CTR with the port's cryptolib (None when the port has none)
    if _native_ctr[0]:
        try:
            return cryptolib.aes(key, 6, iv).encrypt(data)  # type: ignore
        except (ValueError, OSError, TypeError):
            _native_ctr[0] = False  # this port's cryptolib has no CTR mode
    return _ctr_ecb(key, iv, data)


DEFAULT_CTR = ctr_band if cryptolib is not None else None


def seal_page(keys, nonce, seq_from, body, ctr=DEFAULT_CTR):
    # log page: header + body (AES-CTR encrypted when ctr is given) + tag
    # over header and (encrypted) body: encrypt-then-MAC
    flags = 0
    if ctr is not None:
        body = ctr(keys.enc, page_iv(nonce, seq_from), body)
        flags = PAGE_ENCRYPTED
    hdr = encode(PageHeader(PAGE_MAGIC, VERSION, flags, nonce, seq_from, len(body)))
    return hdr + body + keys.page.digest(hdr, body)


def open_page(keys, page, ctr, require_encryption=False):
    # verify then decrypt a page; returns (PageHeader, plaintext body)
    if len(page) < PAGE_HEADER + TAG:
        raise ProtocolError(ERR_BAD_LENGTH, "page truncated")
    if page[0] != PAGE_MAGIC:
        raise ProtocolError(ERR_BAD_LENGTH, "not a log page")
    hdr = PageHeader.from_bytes(page[:PAGE_HEADER])
    if len(page) != PAGE_HEADER + hdr.length + TAG:
        raise ProtocolError(ERR_BAD_LENGTH, "page length does not match its header")
    body = page[PAGE_HEADER:PAGE_HEADER + hdr.length]
    if not ct_equal(keys.page.digest(page[:PAGE_HEADER], body), page[PAGE_HEADER + hdr.length:]):
        raise ProtocolError(ERR_BAD_TAG, "page tag does not match")
    if hdr.flags & PAGE_ENCRYPTED:
        if ctr is None:
            raise ProtocolError(ERR_INTERNAL, "no AES here to decrypt the page")
        body = ctr(keys.enc, page_iv(hdr.nonce, hdr.seq_from), body)
    elif require_encryption:
        raise ProtocolError(ERR_BAD_TAG, "page is not encrypted")
    return hdr, bytes(body)
