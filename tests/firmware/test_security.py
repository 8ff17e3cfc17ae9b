"""Security primitives: HMAC-SHA256 on hashlib against CPython's hmac, AES-CTR
built on an ECB block function against the host's AES-CTR, >= 10,000 corrupted
log pages into the host page parser, and the band identity (key, counter
floors, page nonces) surviving power cuts at every byte."""

from __future__ import annotations

import hashlib
import hmac
import random
import time

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mbfw import protocol as P
from mbfw import security as S
from mbfw.fsio import OsFS, PowerCut, PowerCutFS
from mbfw.identity import FileStore, Identity, MemStore
from mirrorband.bands.client import BandClient, BandError, aes_ctr

KEY = bytes(range(32))


def test_hmac_matches_cpython():
    rng = random.Random(1)
    for _ in range(300):
        key = rng.randbytes(rng.choice([0, 1, 16, 32, 63, 64, 65, 100, 200]))
        msg = rng.randbytes(rng.randrange(0, 300))
        assert S.Hmac(key).digest(msg) == hmac.new(key, msg, hashlib.sha256).digest()
        cut = rng.randrange(len(msg) + 1)
        assert S.Hmac(key).digest(msg[:cut], msg[cut:]) == hmac.new(key, msg, hashlib.sha256).digest()


def test_constant_time_compare():
    assert S.ct_equal(b"abc", b"abc") and not S.ct_equal(b"abc", b"abd") and not S.ct_equal(b"ab", b"abc")
    assert S.ct_equal(b"", b"")


class _FakeCryptolib:
    """cryptolib as on a port without CTR: aes(key, 1) is ECB; mode 6 is refused."""

    class _Ecb:
        def __init__(self, key):
            self.c = Cipher(algorithms.AES(key), modes.ECB()).encryptor()

        def encrypt(self, block):
            assert len(block) % 16 == 0
            return self.c.update(bytes(block))

    def aes(self, key, mode, iv=None):
        if mode != 1:
            raise ValueError("mode")
        return self._Ecb(key)


def test_band_ctr_on_ecb_matches_host_aes_ctr(monkeypatch):
    monkeypatch.setattr(S, "cryptolib", _FakeCryptolib())
    monkeypatch.setattr(S, "_native_ctr", [True])
    rng = random.Random(2)
    for n in [0, 1, 15, 16, 17, 100, 448]:
        key, data = rng.randbytes(32), rng.randbytes(n)
        for iv in (S.page_iv(rng.randrange(2**32), rng.randrange(2**32)), b"\xff" * 16, bytes(15) + b"\xfe"):
            assert S.ctr_band(key, iv, data) == aes_ctr(key, iv, data)  # incl. 128-bit counter carry
    assert S._native_ctr == [False]  # learnt that this port has no CTR mode


def test_keys_are_separated():
    k = S.Keys(KEY)
    assert len({k.cmd.digest(b"x"), k.page.digest(b"x"), S.Hmac(KEY).digest(b"x")}) == 3
    assert k.enc not in (KEY,) and len(k.enc) == 32
    with pytest.raises(P.ProtocolError):
        S.Keys(bytes(31))


def _corrupt(rng: random.Random, page: bytes) -> bytes:
    b = bytearray(page)
    kind = rng.randrange(6)
    if kind == 0:
        for _ in range(rng.randrange(1, 5)):
            i = rng.randrange(len(b) * 8)
            b[i // 8] ^= 1 << (i % 8)
    elif kind == 1:
        b = b[:rng.randrange(len(b))]
    elif kind == 2:
        b += rng.randbytes(rng.randrange(1, 20))
    elif kind == 3:
        i = rng.randrange(len(b))
        b[i] = (b[i] + rng.randrange(1, 256)) & 0xFF
    elif kind == 4:
        i = rng.randrange(len(b))
        j = rng.randrange(i, len(b) + 1)
        b[i:j] = rng.randbytes(j - i)
    else:
        b = bytearray(rng.randbytes(rng.randrange(0, 200)))
    if bytes(b) == page:  # two flips of one bit, or random bytes equal to the old ones
        b[rng.randrange(len(b))] ^= 0x10
    return bytes(b)


def test_corrupted_pages_are_all_rejected_by_the_host():
    rng = random.Random(3)
    k = S.Keys(KEY)
    client = BandClient(KEY)
    pages = [S.seal_page(k, n, n * 10, rng.randbytes(rng.randrange(0, 300)), aes_ctr if n % 3 else None)
             for n in range(20)]
    for p in pages:
        assert client.open_page(p).nonce < 20
    n, t0, codes = 20_000, time.perf_counter(), {}
    for i in range(n):
        bad = _corrupt(rng, pages[i % len(pages)])
        with pytest.raises(BandError) as e:  # and nothing else
            client.open_page(bad)
        codes[e.value.code] = codes.get(e.value.code, 0) + 1
    dt = time.perf_counter() - t0
    print(f"\n{n} corrupted pages rejected in {dt:.2f} s ({n / dt:,.0f}/s); codes {sorted(codes.items())}")
    assert set(codes) <= {P.ERR_BAD_LENGTH, P.ERR_BAD_TAG, P.ERR_RANGE}


def test_wrong_key_and_unencrypted_policy():
    page = S.seal_page(S.Keys(KEY), 1, 1, b"abc", None)
    with pytest.raises(BandError) as e:
        BandClient(bytes(32)).open_page(page)
    assert e.value.code == P.ERR_BAD_TAG
    assert BandClient(KEY).open_page(page).body == b"abc"
    with pytest.raises(BandError):
        BandClient(KEY, require_encryption=True).open_page(page)


def test_identity_round_trip_and_counter_floor():
    store = MemStore()
    ident = Identity(store)
    assert not ident.provisioned()
    ident.provision(KEY, 0, "P9")
    assert all(ident.accept_counter(c) for c in (1, 2, 5, 100))
    assert not ident.accept_counter(100) and not ident.accept_counter(3)
    nonces = [ident.next_nonce() for _ in range(70)]
    writes = ident.gen
    again = Identity(store)
    assert (again.key, again.hand, again.patient) == (KEY, 0, "P9")
    assert again.last_rx >= 100 and not again.accept_counter(100)
    assert again.next_nonce() > max(nonces)
    assert writes <= 5  # counters reserved ahead: not one flash write per command


def test_identity_survives_power_cut_at_every_byte(tmp_path):
    # a reference run without cuts, then one run per budget: after the cut a
    # fresh Identity (the reboot) must hold the key it had, a counter floor at
    # or above every accepted counter, and a nonce above every issued one
    def scenario(fs, log):
        ident = Identity(FileStore(fs, str(tmp_path / "id")))
        log["pending"] = KEY
        ident.provision(KEY, 1, "P01")
        log["key"] = KEY
        for c in range(1, 200, 3):
            if ident.accept_counter(c):
                log["rx"] = c
            log["nonce"] = ident.next_nonce()
        log["pending"] = bytes([7]) * 32
        ident.provision(bytes([7]) * 32, 0, "P02")
        log["key"], log["rx"] = bytes([7]) * 32, 0
        ident.accept_counter(1)
        log["rx"] = 1

    full = PowerCutFS(OsFS(), -1)
    scenario(full, {})
    total = full.written
    cuts = 0
    for budget in range(0, total):
        for f in tmp_path.glob("id.*"):
            f.unlink()
        log: dict = {}
        with pytest.raises(PowerCut):
            scenario(PowerCutFS(OsFS(), budget, junk=3, seed=budget), log)
        cuts += 1
        ident = Identity(FileStore(OsFS(), str(tmp_path / "id")))  # the reboot
        # the key confirmed last, or the one being written at the cut (None: never provisioned)
        assert ident.key in (log.get("key"), log.get("pending")), budget
        if ident.key is not None and ident.key == log.get("key") and "rx" in log:
            assert ident.last_rx >= log["rx"], budget  # no replay window reopened
            assert not ident.accept_counter(log["rx"])
        if "nonce" in log and ident.key is not None:
            assert ident.next_nonce() > log["nonce"], budget  # no nonce reused
    print(f"\nidentity: {cuts} power cuts (every byte of {total} written), all recovered")
    assert cuts == total > 300
