"""Delay, reordering and holding of packets through nfnetlink_queue
(net/netfilter/nfnetlink_queue.c; constants from include/uapi/linux/netfilter/nfnetlink_queue.h).

:class:`HoldQueue` holds single packets for the replay contract's ``race: "prev"``: a
packet queued after NAT and before confirmation waits until :meth:`HoldQueue.release`,
whose ACCEPT verdict re-injects it (``nfqnl_recv_verdict()`` -> ``nf_reinject()``, which
runs the rest of its hooks, confirmation included, before the verdict message is acked).

``tc netem`` is what one would use, but not every kernel has ``sch_netem`` (the one nflab is
developed on does not). A ``queue num N`` rule hands packets to :class:`DelayQueue`, which
gives each a release time -- ``delay`` plus a uniform ``jitter`` (packets overtake each
other when the jitter exceeds their spacing), and with probability ``late_p`` an extra
``late`` -- and issues the ACCEPT verdicts in release order: nfnetlink_queue reinjects a
packet when its verdict arrives, in any order. Randomness comes from a seeded
``random.Random``.
"""

from __future__ import annotations

import heapq
import random
import select
import socket
import struct
import threading
import time

from sim.kernel.nflog import (
    NFGENMSG_LEN,
    NLM_F_ACK,
    NLM_F_REQUEST,
    iter_messages,
    nfnl_message,
    nla,
    open_netfilter_socket,
    parse_attrs,
    request,
)

NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQNL_COPY_PACKET = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_PAYLOAD = 10
NF_ACCEPT = 1


class DelayQueue:
    """Bind queue ``num`` in the current namespace and release its packets late, on a thread."""

    def __init__(
        self,
        num: int,
        delay: float,
        jitter: float = 0.0,
        late_p: float = 0.0,
        late: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.num, self.delay, self.jitter, self.late_p, self.late = num, delay, jitter, late_p, late
        self.rng = random.Random(seed)
        self.sock = open_netfilter_socket()
        self._seq = 0
        cmd = struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET)
        self._config(nla(NFQA_CFG_CMD, cmd))
        self._config(nla(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.packets = 0

    def _config(self, body: bytes) -> None:
        self._seq += 1
        msg = nfnl_message(
            NFNL_SUBSYS_QUEUE,
            NFQNL_MSG_CONFIG,
            NLM_F_REQUEST | NLM_F_ACK,
            self._seq,
            socket.AF_UNSPEC,
            self.num,
            body,
        )
        request(self.sock, msg, self._seq, f"nfnetlink_queue config queue {self.num}")

    def start(self) -> DelayQueue:
        self._thread.start()
        return self

    def _verdict(self, packet_id: int) -> None:
        body = nla(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id))
        self.sock.send(
            nfnl_message(
                NFNL_SUBSYS_QUEUE, NFQNL_MSG_VERDICT, NLM_F_REQUEST, 0, socket.AF_UNSPEC, self.num, body
            )
        )

    def _loop(self) -> None:
        held: list[tuple[float, int]] = []
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        while not self._stop.is_set() or held:
            now = time.monotonic()
            while held and held[0][0] <= now:
                self._verdict(heapq.heappop(held)[1])
            wait = 0.05 if not held else max(held[0][0] - now, 0.0)
            if not poller.poll(wait * 1000):
                continue
            data = self.sock.recv(1 << 16)
            for msg_type, _flags, _seq, payload in iter_messages(data):
                if msg_type != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    continue
                attrs = parse_attrs(payload[NFGENMSG_LEN:])
                (packet_id,) = struct.unpack_from("!I", attrs[NFQA_PACKET_HDR])
                hold = self.delay + self.rng.uniform(0.0, self.jitter)
                if self.late_p and self.rng.random() < self.late_p:
                    hold += self.late
                heapq.heappush(held, (time.monotonic() + hold, packet_id))
                self.packets += 1

    def close(self) -> None:
        """Release what is held (the thread drains its heap) and unbind."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self.sock.close()


class HoldQueue:
    """Bind queue ``num`` in the current namespace; packets wait there until released."""

    def __init__(self, num: int) -> None:
        self.num = num
        self.sock = open_netfilter_socket()
        self._seq = 0
        try:
            cmd = struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET)
            self._request(NFQNL_MSG_CONFIG, nla(NFQA_CFG_CMD, cmd), "bind")
            # struct nfqnl_msg_config_params { __be32 copy_range; __u8 copy_mode; }: the IP header
            self._request(
                NFQNL_MSG_CONFIG, nla(NFQA_CFG_PARAMS, struct.pack("!IB", 20, NFQNL_COPY_PACKET)), "params"
            )
        except BaseException:
            self.sock.close()
            raise
        self.sock.setblocking(False)

    def _request(self, msg_type: int, body: bytes, what: str) -> None:
        self._seq += 1
        msg = nfnl_message(
            NFNL_SUBSYS_QUEUE,
            msg_type,
            NLM_F_REQUEST | NLM_F_ACK,
            self._seq,
            socket.AF_UNSPEC,
            self.num,
            body,
        )
        self.sock.setblocking(True)
        try:
            request(self.sock, msg, self._seq, f"nfnetlink_queue {what} queue {self.num}")
        finally:
            self.sock.setblocking(False)

    def take(self) -> list[tuple[int, int]]:
        """The packets queued since the last call, without blocking: (packet id, IP ID)."""
        out: list[tuple[int, int]] = []
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return out
            for msg_type, _flags, _seq, payload in iter_messages(data):
                if msg_type != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    continue
                attrs = parse_attrs(payload[NFGENMSG_LEN:])
                (packet_id,) = struct.unpack_from("!I", attrs[NFQA_PACKET_HDR])
                ip = attrs.get(NFQA_PAYLOAD, b"")
                ip_id = struct.unpack_from("!H", ip, 4)[0] if len(ip) >= 6 else -1
                out.append((packet_id, ip_id))

    def release(self, packet_id: int) -> None:
        """ACCEPT the held packet; returns once the kernel has re-injected it."""
        body = nla(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id))
        self._request(NFQNL_MSG_VERDICT, body, f"verdict for packet {packet_id}")

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()
