"""A passive end host of the live harness: one AF_PACKET socket on its eth0 that sends crafted
frames and captures what arrives (packet(7): taps run before the IP stack, sends bypass the
output hook), and the barrier datagram that tells when the host has handled a packet.
"""

from __future__ import annotations

import socket
import struct

from sim import wire
from sim.kernel.netns import in_netns
from sim.kernel.rulesets import BARRIER_PORT, END_DEV

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # sll_pkttype of our own sends (include/uapi/linux/if_packet.h)


def udp_barrier(src: str, dst: str, nonce: int) -> bytes:
    """A UDP datagram port 9 -> 9 whose payload is the 8-byte nonce (checksum 0: none)."""
    body = struct.pack("!HHHHQ", BARRIER_PORT, BARRIER_PORT, 16, 0, nonce)
    ip = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(body),
            0,
            wire.IP_DF,
            64,
            17,
            0,
            wire.ip_to_bytes(src),
            wire.ip_to_bytes(dst),
        )
    )
    struct.pack_into("!H", ip, 10, wire.inet_checksum(bytes(ip)))
    return bytes(ip) + body


class EndHost:
    """A passive end host: one AF_PACKET socket on its eth0 that sends and captures."""

    def __init__(self, ns: str, role: str, mac: str, gateway_mac: str, gateway_ip: str, ip: str) -> None:
        self.role, self.mac, self.gateway_mac, self.gateway_ip, self.ip = (
            role,
            mac,
            gateway_mac,
            gateway_ip,
            ip,
        )
        with in_netns(ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        with in_netns(ns):
            self.sock.bind((END_DEV, ETH_P_ALL))
        self.sock.setblocking(False)

    def send_ip(self, datagram: bytes) -> None:
        self.sock.send(wire.emit_eth(self.gateway_mac, self.mac, datagram))

    def drain(self) -> list[bytes]:
        """IPv4 datagrams that arrived (not our own sends) since the last drain."""
        out: list[bytes] = []
        while True:
            try:
                frame, addr = self.sock.recvfrom(1 << 16)
            except BlockingIOError:
                return out
            if addr[2] == PACKET_OUTGOING:
                continue
            _dst, _src, ethertype, payload = wire.parse_eth(frame)
            if ethertype == wire.ETH_P_IP:
                out.append(payload)

    def close(self) -> None:
        self.sock.close()
