# The band's USB console: a line in, text out (pure; the board or the virtual
# band's pty feeds it). Every answer ends with one line starting with OK, ERR
# or CONFIRM, so a host can read up to it:
#   info | status                      OK info key=value ... / OK status ... (with electrodes)
#   provision <hex key> <L|R> <patient> OK provisioned ... or, on a band that
#                                      already has a key: CONFIRM <token> ...
#   confirm <token>                    re-provision (wipes the log)
#   frame <hex>                        FRAME <hex>: one protocol frame over USB
#   help
# Commands go through the Handler as USB frames, so the rules are the same.
# The key is never echoed back.
import struct

from mbfw import protocol as P
from mbfw.handler import STATUS_X
from mbfw.security import seal

_HELP = ("commands: info | status | provision <64 hex key> <L|R> <patient> | confirm <token>"
         " | frame <hex> | help")
_HANDS = "LR"


def _hex(b):
    return "".join("%02x" % c for c in b)


class Console:
    def __init__(self, handler):
        self.handler = handler
        self._pending = None   # Provision awaiting its confirmation
        self._req = 0

    def _call(self, op, payload=b"", transport=P.USB):
        self._req = (self._req + 1) & 0xFFFF
        raw = self.handler.handle(seal(P.Frame(op, payload, self._req), None), transport)
        rsp = P.Frame.from_bytes(raw)
        return rsp.status, rsp.payload

    def line(self, text):
        # one command line -> the answer (lines joined with \r\n, no final newline)
        try:
            return self._line(text.strip())
        except Exception as e:  # never let a typo stop the console
            return "ERR %d %s" % (P.ERR_INTERNAL, e)

    def _err(self, code, msg=""):
        return "ERR %d %s" % (code, msg or P.error_name(code))

    def _line(self, text):
        words = text.split()
        if not words:
            return ""
        cmd = words[0].lower()
        pending = self._pending
        self._pending = None  # a confirmation must come right after its request
        if cmd == "help":
            return "OK " + _HELP
        if cmd == "info" and len(words) == 1:
            code, pl = self._call(P.OP_INFO)
            if code:
                return self._err(code)
            i = P.Info.from_bytes(pl)
            return ("OK info id=%s provisioned=%d hand=%s patient=%s fw=%s board=%s encrypted=%d proto=%d"
                    % (_hex(i.band_id), i.provisioned, _HANDS[i.hand], i.patient or "-", i.fw,
                       i.board or "-", i.features & 1, P.VERSION))
        if cmd == "status" and len(words) == 1:
            code, pl = self._call(P.OP_STATUS, bytes((STATUS_X,)))
            if code:
                return self._err(code)
            s = P.StatusX.from_bytes(pl)
            # electrodes: lead-off bits (0x80 not sampled yet), rest levels 0.1 uV (0 unknown)
            return ("OK status state=%d step=%d battery=%d used=%d free=%d pending=%d clock_us=%d"
                    " loff=0x%02x rest_flex=%d rest_ext=%d" % s.values())
        if cmd == "provision":
            if len(words) != 4 or len(words[1]) != 64 or words[2].upper() not in ("L", "R"):
                return self._err(P.ERR_RANGE, "usage: provision <64 hex key> <L|R> <patient>")
            try:
                key = bytes.fromhex(words[1])
            except ValueError:
                return self._err(P.ERR_RANGE, "key must be 64 hex digits")
            try:
                prov = P.Provision(key, _HANDS.index(words[2].upper()), words[3])
            except P.ProtocolError as e:
                return self._err(e.code, str(e))
            return self._provision(prov)
        if cmd == "confirm" and len(words) == 2:
            if pending is None:
                return self._err(P.ERR_CONFIRM, "nothing to confirm: send provision first")
            try:
                prov = P.Provision(pending.key, pending.hand, pending.patient, int(words[1], 16))
            except ValueError:
                return self._err(P.ERR_RANGE, "token must be 8 hex digits")
            return self._provision(prov)
        if cmd == "frame" and len(words) == 2:
            try:
                data = bytes.fromhex(words[1])
            except ValueError:
                return self._err(P.ERR_BAD_FRAME, "frame must be hex")
            return "FRAME " + _hex(self.handler.handle(data, P.USB))
        return self._err(P.ERR_UNKNOWN_OP, "unknown command; " + _HELP)

    def _provision(self, prov):
        code, pl = self._call(P.OP_PROVISION, P.encode(prov))
        if code == P.ERR_CONFIRM and len(pl) == 8:
            token, pending = struct.unpack("<II", pl)
            self._pending = prov
            return ("CONFIRM %08x pending=%d this band is provisioned already: re-provisioning erases "
                    "its log (%d undownloaded records); send: confirm %08x" % (token, pending, pending, token))
        if code:
            return self._err(code)
        i = P.Info.from_bytes(pl)
        return "OK provisioned id=%s hand=%s patient=%s" % (_hex(i.band_id), _HANDS[i.hand], i.patient)
