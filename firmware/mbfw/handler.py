# Command handler: request frame bytes -> response frame bytes, for any
# transport (BLE control point, USB console hex mode, tests). Nothing raises out
# of handle(): every bad frame gets an error response with a code, and a
# rejected command leaves the band's state (clock, task, config, log, identity)
# as it was. An authenticated request consumes its counter whatever its outcome,
# so it can never be replayed later.
#
# Access rules (docs/protocol.md):
#   unprovisioned band: INFO, STATUS, PROVISION (unauthenticated, PROVISION on
#     USB only); everything else ERR_NOT_PROVISIONED
#   provisioned band: every opcode needs a valid HMAC tag and a fresh counter,
#     except INFO and STATUS over USB; re-provisioning (USB only, with or
#     without the old key) wipes the log and needs the confirmation token the
#     first attempt answers with ERR_CONFIRM
#
# device: the band app (issue 4) provides
#   info() -> (band_id: 8 bytes, board: str, fw: str)
#   status() -> (state, step, battery_pct)          small ints
#   electrodes() -> (lead-off bits, FLEX, EXT rest level 0.1 uV)  optional (STATUS_X)
#   now_us() -> int                                  band clock, us
#   set_time(us)                                     absolute band clock
#   set_task(points)                                 [(start_ms, kind)], kinds of mbfw.task
#   start_task(session_id), stop_task()
#   calibrate(duration_ms)
#   get_config() -> config.Config, set_config(config.Config)
#   reboot()                                         after this response is sent
# and refuses with CommandError(ERR_BUSY / ERR_LOG_FULL / ...) or ValueError
# (out of range) before changing anything.
# log: mbfw.eventlog.EventLog (recovered): read_into(seq_from, buf) -> bytes,
#   ack(seq), erase_acked(), status() -> (used, free, undownloaded, first_seq,
#   next_seq, acked_seq); LogFull / LogError (mbfw.logrec) refuse
#   (ERR_LOG_FULL / ERR_STORAGE)
import struct

from micropython import const

from mbfw import protocol as P
from mbfw.config import FIELD_NAMES, Config
from mbfw.logrec import LogError, LogFull
from mbfw.security import DEFAULT_CTR, seal, seal_page, sha256, verify

_UNAUTH_OK = (P.OP_INFO, P.OP_STATUS, P.OP_PROVISION)
STATUS_X = const(1)  # OP_STATUS payload: answer with protocol.StatusX (status + electrodes)


def _status_of(log):
    used, free, pending, first, nxt, acked = log.status()
    return P.LogRange(first, nxt, acked, pending, used, free)


class Handler:
    def __init__(self, device, log, identity, ctr=DEFAULT_CTR):
        self.device = device
        self.log = log
        self.identity = identity
        self.ctr = ctr
        self.buf = bytearray(P.PAGE_MAX)
        self.mv = memoryview(self.buf)

    def handle(self, data, transport):
        try:
            return self._handle(data, transport)
        except Exception:  # last resort: never let a frame take the band down
            try:
                return self._reply(None, None, P.ERR_INTERNAL)
            except Exception:
                return b""

    def _reply(self, req, keys, status, payload=b""):
        if req is None:
            f = P.Frame(0, payload, flags=P.FLAG_RESP, status=status)
        else:
            f = P.Frame(req.op, payload, req.req_id, req.counter, P.FLAG_RESP, status)
        return seal(f, keys)

    def _handle(self, data, transport):
        try:
            req = P.Frame.from_bytes(data)
        except P.ProtocolError as e:
            return self._reply(None, None, e.code, e.detail)
        except Exception:
            return self._reply(None, None, P.ERR_BAD_FRAME)
        if req.flags & P.FLAG_RESP:
            return self._reply(req, None, P.ERR_BAD_FRAME)
        ident = self.identity
        keys = ident.keys
        try:
            verify(req, keys)
        except P.ProtocolError as e:
            return self._reply(req, None, e.code)
        auth = req.authenticated()
        if auth:
            try:
                fresh = ident.accept_counter(req.counter)
            except P.CommandError as e:  # the counter floor could not be saved
                return self._reply(req, keys, e.code)
            if not fresh:
                return self._reply(req, keys, P.ERR_REPLAY, struct.pack("<I", min(ident.last_rx + 1, 0xFFFFFFFF)))
        else:
            keys = None
            if req.op not in _UNAUTH_OK:
                return self._reply(req, None, P.ERR_AUTH_REQUIRED if ident.provisioned()
                                   else P.ERR_NOT_PROVISIONED)
            if transport != P.USB and (ident.provisioned() or req.op == P.OP_PROVISION):
                return self._reply(req, None, P.ERR_AUTH_REQUIRED if ident.provisioned()
                                   else P.ERR_TRANSPORT)
        if req.op == P.OP_PROVISION and transport != P.USB:
            return self._reply(req, keys, P.ERR_TRANSPORT)
        try:
            out = self._dispatch(req, transport)
        except P.ProtocolError as e:
            return self._reply(req, keys, e.code, e.detail)
        except P.CommandError as e:
            return self._reply(req, keys, e.code)
        except LogFull:
            return self._reply(req, keys, P.ERR_LOG_FULL)
        except LogError:
            return self._reply(req, keys, P.ERR_STORAGE)
        except ValueError:
            return self._reply(req, keys, P.ERR_RANGE)
        except OSError:
            return self._reply(req, keys, P.ERR_STORAGE)
        return self._reply(req, keys, P.OK, out)

    def _dispatch(self, req, transport):
        op = req.op
        pl = req.payload
        dev = self.device
        if op == P.OP_INFO or op == P.OP_CONFIG_GET or op == P.OP_LOG_RANGE \
                or op == P.OP_TIME_GET or op == P.OP_TASK_STOP or op == P.OP_LOG_ERASE or op == P.OP_REBOOT:
            if pl:
                raise P.ProtocolError(P.ERR_BAD_LENGTH, "no payload expected")
        if op == P.OP_INFO:
            return P.encode(self.info())
        if op == P.OP_STATUS:
            # no payload: protocol.Status (every host); STATUS_X: protocol.StatusX, the same
            # fields followed by the electrodes (a band before this answers ERR_BAD_LENGTH)
            if len(pl) > 1:
                raise P.ProtocolError(P.ERR_BAD_LENGTH, "status takes 0 or 1 byte")
            if pl and pl[0] != STATUS_X:
                raise P.ProtocolError(P.ERR_RANGE, "status: unknown variant")
            st = dev.status()
            lg = _status_of(self.log)
            if not pl:
                return P.encode(P.Status(st[0], st[1], st[2], lg.used, lg.free, lg.pending, dev.now_us()))
            el = dev.electrodes() if hasattr(dev, "electrodes") else (P.LOFF_UNKNOWN, 0, 0)
            return P.encode(P.StatusX(st[0], st[1], st[2], lg.used, lg.free, lg.pending, dev.now_us(),
                                      el[0] & 255, min(el[1], 0xFFFF), min(el[2], 0xFFFF)))
        if op == P.OP_TIME_GET:
            return P.encode(P.TimeNow(dev.now_us()))
        if op == P.OP_TIME_SET:
            ts = P.TimeSet.from_bytes(pl)
            t = ts.value if ts.mode == P.TIME_ABS else dev.now_us() + ts.value
            if t < 0:
                raise P.ProtocolError(P.ERR_RANGE, "clock would go negative")
            dev.set_time(t)
            return P.encode(P.TimeNow(dev.now_us()))
        if op == P.OP_TASK_SET:
            dev.set_task(P.TaskSet.from_bytes(pl).points)
            return b""
        if op == P.OP_TASK_START:
            dev.start_task(P.TaskStart.from_bytes(pl).session)
            return b""
        if op == P.OP_TASK_STOP:
            dev.stop_task()
            return b""
        if op == P.OP_CALIBRATE:
            dev.calibrate(P.Calibrate.from_bytes(pl).ms)
            return b""
        if op == P.OP_CONFIG_GET:
            return self._config_bytes(dev.get_config())
        if op == P.OP_CONFIG_SET:
            d = dev.get_config().as_dict()
            d.update(P.ConfigValues.from_bytes(pl).as_dict())
            cfg = Config(**d)  # ConfigError (a ValueError) -> ERR_RANGE
            dev.set_config(cfg)
            return self._config_bytes(cfg)
        if op == P.OP_LOG_RANGE:
            return P.encode(_status_of(self.log))
        if op == P.OP_LOG_READ:
            lr = P.LogRead.from_bytes(pl)
            n = self.log.read_into(lr.seq_from, self.mv[:lr.max_len])
            return seal_page(self.identity.keys, self.identity.next_nonce(), lr.seq_from,
                             bytes(self.mv[:n]), self.ctr)
        if op == P.OP_LOG_ACK:
            seq = P.LogAck.from_bytes(pl).seq
            if seq >= _status_of(self.log).next:
                raise P.ProtocolError(P.ERR_RANGE, "cannot acknowledge records not yet written")
            self.log.ack(seq)
            return b""
        if op == P.OP_LOG_ERASE:
            self.log.erase_acked()
            return P.encode(_status_of(self.log))
        if op == P.OP_REBOOT:
            dev.reboot()
            return b""
        if op == P.OP_PROVISION:
            return self._provision(P.Provision.from_bytes(pl))
        raise P.ProtocolError(P.ERR_UNKNOWN_OP)

    def _config_bytes(self, cfg):
        return P.encode(P.ConfigValues([(i, getattr(cfg, FIELD_NAMES[i])) for i in range(len(FIELD_NAMES))]))

    def info(self):
        band_id, board, fw = self.device.info()
        ident = self.identity
        return P.Info(band_id, ident.provisioned(), self.device.get_config().hand,
                      0 if self.ctr is None else 1, fw, board, ident.patient)

    def confirm_token(self, p):
        # what a re-provisioning must carry: bound to the new identity and to the
        # band's current identity generation (stale after any change)
        t = struct.unpack("<I", sha256(b"wipe", p.key, bytes((p.hand,)), p.patient.encode(),
                                       struct.pack("<I", self.identity.gen))[:4])[0]
        return t or 1

    def _provision(self, p):
        ident = self.identity
        lg = _status_of(self.log)
        if ident.provisioned() and p.token != self.confirm_token(p):
            raise P.ProtocolError(P.ERR_CONFIRM, "re-provisioning wipes the log",
                                  struct.pack("<II", self.confirm_token(p), lg.pending))
        dev = self.device
        d = dev.get_config().as_dict()
        d["hand"] = p.hand
        dev.set_config(Config(**d))  # refuses (busy) before anything is wiped
        if lg.next - 1 > lg.acked:  # wipe first: no old record may outlive the old key
            self.log.ack(lg.next - 1)
        self.log.erase_acked()
        ident.provision(p.key, p.hand, p.patient)
        return P.encode(self.info())
