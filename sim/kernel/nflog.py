"""nfnetlink_log listener and netlink helpers (net/netfilter/nfnetlink_log.c).

Constants from include/uapi/linux/netfilter/nfnetlink_log.h.

With ``net.netfilter.nf_log.2=nfnetlink_log`` set in a namespace, everything that calls
``nf_log_packet()`` there without its own logger -- in particular conntrack's
``nf_l4proto_log_invalid()`` when ``nf_conntrack_log_invalid`` is set -- is sent to
nfnetlink_log group 0, with the formatted text ("nf_ct_proto_6: ACK is over upper bound …")
as ``NFULA_PREFIX`` and the packet as ``NFULA_PAYLOAD``. nft's ``log group N prefix P``
statement lands on the same channel. :class:`NflogSocket` binds one group with a
queue threshold of one message, so every log line is sent at once instead of being batched
(``NFULNL_QTHRESH_DEFAULT`` is 100 with a one-second flush timer).

The netlink framing helpers (``struct nlmsghdr``, ``struct nfgenmsg``, ``struct nlattr``;
include/uapi/linux/netlink.h, nfnetlink.h) are shared with the ctnetlink reader.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

NETLINK_NETFILTER = 12
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLMSG_ERROR = 0x2
NLMSG_DONE = 0x3
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF  # strips NLA_F_NESTED | NLA_F_NET_BYTEORDER
NFNETLINK_V0 = 0

NFNL_SUBSYS_CTNETLINK = 1
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET = 0
NFULNL_MSG_CONFIG = 1
# enum nfulnl_attr_config
NFULA_CFG_CMD = 1
NFULA_CFG_MODE = 2
NFULA_CFG_TIMEOUT = 4
NFULA_CFG_QTHRESH = 5
# enum nfulnl_msg_config_cmds
NFULNL_CFG_CMD_BIND = 1
NFULNL_COPY_PACKET = 0x02
# enum nfulnl_attr_type
NFULA_PACKET_HDR = 1
NFULA_IFINDEX_INDEV = 4
NFULA_IFINDEX_OUTDEV = 5
NFULA_PAYLOAD = 9
NFULA_PREFIX = 10

_NLMSGHDR = struct.Struct("=IHHII")
NFGENMSG_LEN = 4  # struct nfgenmsg { u8 nfgen_family; u8 version; __be16 res_id; }
_NLATTR = struct.Struct("=HH")


class NetlinkError(RuntimeError):
    """A netlink request failed; the message is one line, ``errno`` the kernel's error."""

    def __init__(self, message: str, err: int = 0) -> None:
        super().__init__(message)
        self.errno = err


def _align(n: int) -> int:
    return (n + 3) & ~3


def nla(attr_type: int, payload: bytes) -> bytes:
    """One ``struct nlattr`` with its payload, padded to 4 bytes."""
    length = _NLATTR.size + len(payload)
    return _NLATTR.pack(length, attr_type) + payload + bytes(_align(length) - length)


def parse_attrs(data: bytes) -> dict[int, bytes]:
    """A run of nlattrs -> {type (flags stripped): payload}; the last of duplicates wins."""
    out: dict[int, bytes] = {}
    i = 0
    while i + _NLATTR.size <= len(data):
        length, attr_type = _NLATTR.unpack_from(data, i)
        if length < _NLATTR.size:
            break
        out[attr_type & NLA_TYPE_MASK] = data[i + _NLATTR.size : i + length]
        i += _align(length)
    return out


def nfnl_message(subsys: int, msg: int, flags: int, seq: int, family: int, res_id: int, body: bytes) -> bytes:
    """``nlmsghdr`` + ``nfgenmsg`` + attributes, for subsystem ``subsys`` message ``msg``."""
    payload = struct.pack("=BB", family, NFNETLINK_V0) + struct.pack("!H", res_id) + body
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(payload), (subsys << 8) | msg, flags, seq, 0) + payload


def iter_messages(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """Split a netlink datagram into (type, flags, seq, payload)."""
    i = 0
    while i + _NLMSGHDR.size <= len(data):
        length, msg_type, flags, seq, _pid = _NLMSGHDR.unpack_from(data, i)
        if length < _NLMSGHDR.size:
            break
        yield msg_type, flags, seq, data[i + _NLMSGHDR.size : i + length]
        i += _align(length)


def check_error(payload: bytes, what: str) -> None:
    """Raise for an NLMSG_ERROR payload carrying a non-zero errno (zero is an ACK)."""
    (err,) = struct.unpack_from("=i", payload)
    if err:
        raise NetlinkError(f"{what}: {os.strerror(-err)}", -err)


def open_netfilter_socket() -> socket.socket:
    """A NETLINK_NETFILTER socket in the calling thread's current namespace."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    sock.bind((0, 0))
    return sock


def request(sock: socket.socket, message: bytes, seq: int, what: str) -> list[tuple[int, bytes]]:
    """Send a request and collect (type, payload) answers up to the ACK or NLMSG_DONE.

    Ask for NLM_F_ACK on everything but dumps: ctnetlink marks even a single GET answer
    NLM_F_MULTI, so only the ACK (or NLMSG_DONE) tells that the answer is complete.
    """
    sock.send(message)
    answers: list[tuple[int, bytes]] = []
    while True:
        data = sock.recv(1 << 16)
        for msg_type, _flags, mseq, payload in iter_messages(data):
            if mseq != seq:
                continue
            if msg_type == NLMSG_ERROR:
                check_error(payload, what)
                return answers
            if msg_type == NLMSG_DONE:
                return answers
            answers.append((msg_type, payload))


# ---------------------------------------------------------------- nfnetlink_log


@dataclass(frozen=True, slots=True)
class LogMessage:
    """One NFULNL_MSG_PACKET: the log prefix text, the hook, devices and the IP packet."""

    prefix: str
    hook: int
    indev: int
    outdev: int
    payload: bytes


def parse_log_message(payload: bytes) -> LogMessage:
    """Decode one NFULNL_MSG_PACKET payload (after its nlmsghdr)."""
    attrs = parse_attrs(payload[NFGENMSG_LEN:])
    hook = 0
    if NFULA_PACKET_HDR in attrs:  # struct nfulnl_msg_packet_hdr { __be16 hw_protocol; u8 hook; u8 pad; }
        hook = attrs[NFULA_PACKET_HDR][2]
    prefix = attrs.get(NFULA_PREFIX, b"").split(b"\x00", 1)[0].decode("utf-8", "replace")
    indev = struct.unpack("!I", attrs[NFULA_IFINDEX_INDEV])[0] if NFULA_IFINDEX_INDEV in attrs else 0
    outdev = struct.unpack("!I", attrs[NFULA_IFINDEX_OUTDEV])[0] if NFULA_IFINDEX_OUTDEV in attrs else 0
    return LogMessage(prefix.strip(), hook, indev, outdev, attrs.get(NFULA_PAYLOAD, b""))


class NflogSocket:
    """Listener for one nfnetlink_log group in the namespace it was opened in.

    Open it inside the namespace (:func:`sim.kernel.netns.in_netns`); the socket keeps
    that namespace afterwards. ``fileno()`` makes it usable with select/poll.
    """

    def __init__(self, group: int = 0, copy_range: int = 0xFFFF) -> None:
        self.sock = open_netfilter_socket()
        self._seq = 0
        try:
            self._config(nla(NFULA_CFG_CMD, struct.pack("B", NFULNL_CFG_CMD_BIND)), group, "bind")
            # struct nfulnl_msg_config_mode { __be32 copy_range; u8 copy_mode; u8 _pad; }
            mode = struct.pack("!IBB", copy_range, NFULNL_COPY_PACKET, 0)
            body = nla(NFULA_CFG_MODE, mode) + nla(NFULA_CFG_QTHRESH, struct.pack("!I", 1))
            body += nla(NFULA_CFG_TIMEOUT, struct.pack("!I", 0))
            self._config(body, group, "configure")
        except BaseException:
            self.sock.close()
            raise
        self.sock.setblocking(False)

    def _config(self, body: bytes, group: int, what: str) -> None:
        self._seq += 1
        msg = nfnl_message(
            NFNL_SUBSYS_ULOG,
            NFULNL_MSG_CONFIG,
            NLM_F_REQUEST | NLM_F_ACK,
            self._seq,
            socket.AF_UNSPEC,
            group,
            body,
        )
        request(self.sock, msg, self._seq, f"nfnetlink_log {what} group {group}")

    def fileno(self) -> int:
        return self.sock.fileno()

    def read_available(self) -> list[LogMessage]:
        """Every log message queued on the socket now, without blocking."""
        out: list[LogMessage] = []
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return out
            except OSError as e:
                if e.errno == errno.ENOBUFS:  # overrun: the caller's wait will time out instead
                    continue
                raise
            for msg_type, _flags, _seq, payload in iter_messages(data):
                if msg_type == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET:
                    out.append(parse_log_message(payload))

    def close(self) -> None:
        self.sock.close()
