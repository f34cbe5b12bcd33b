"""Real bulk TCP uploads through a MASQUERADE host, captured by tcpdump on both sides.

The real kernel's own TCP stack makes the captures nflab's pcap analysis is tested on
(captures nflab did not write). Three namespaces from :class:`sim.kernel.netns.NamespaceSet`::

    ctr: eth0 192.0.2.2 ──veth── host: docker0 192.0.2.1 ┐ ip_forward, Docker's ruleset
                                       eth0 198.51.100.1 ┘ (MASQUERADE)  ──veth── remote: eth0 198.51.100.2

A socket in ctr connects to a listener in remote and sends ``size`` bytes; ``tcpdump -w``
runs on host eth0 (the uplink, after NAT) and on ctr eth0. Loss, duplication, delay and
reordering are made in the end hosts' namespaces (nft and nfnetlink_queue: this kernel has no
``sch_netem``), so the host's capture shows what the host's conntrack saw. Segmentation
offloads are limited to one segment (``gso_max_segs 1``) so every segment on the wire is one
packet in the capture and one packet through conntrack, and the MTU is 1400 so every payload
fits a replay case. Everything is bounded: the transfer size,
a deadline for the transfer, and the namespaces are removed afterwards, also on failure.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sim.kernel.netns import NamespaceSet, NetnsError, in_netns
from sim.kernel.nfqueue import DelayQueue
from sim.kernel.rulesets import BRIDGE, BRIDGE_PORT, END_DEV, UPLINK, docker_rules
from sim.scenario.case import Topology

DEFAULT_TOPOLOGY = Topology()
MAX_UPLOAD = 512 * 1024 * 1024  # bytes: a bound on any transfer the harness makes
PORT = 443
CLIENT_PORT = 40000
TCPDUMP_READY_S = 10.0
ETH_P_ALL = 0x0003


@dataclass(frozen=True, slots=True)
class Upload:
    """One upload: its size, the impairments, the capture's snaplen, the MTU and the deadline.

    Impairments (per mille where they are rates), all applied in the end hosts' namespaces so
    that the host's capture on its uplink holds exactly what the host's conntrack saw:
    ``loss`` drops data segments as they reach the remote (after the host's capture: the
    container retransmits), ``dup`` duplicates data segments leaving the container,
    ``ack_dup`` duplicates the remote's segments, and ``ack_delay`` + uniform ``ack_jitter``
    seconds (reordering) plus ``ack_late`` more for a fraction ``ack_late_p`` hold the
    remote's segments back (:class:`sim.kernel.nfqueue.DelayQueue`, seeded with ``seed``).
    ``rcvbuf`` caps the remote's receive buffer (a small advertised window keeps
    MAXACKWINDOW near its 66000-byte floor, so a held-back ACK falls under bound IV).
    """

    size: int = 256 * 1024
    loss: int = 0
    dup: int = 0
    ack_dup: int = 0
    ack_delay: float = 0.0
    ack_jitter: float = 0.0
    ack_late_p: float = 0.0
    ack_late: float = 0.0
    seed: int = 0
    snaplen: int = 96
    mtu: int = 1400
    rcvbuf: int = 0
    ctr_any: str = ""  # capture in ctr with `tcpdump -i any -y LINUX_SLL|LINUX_SLL2` instead of eth0
    host_any: str = ""  # the same on the host: every interface, each forwarded packet twice
    offload: bool = False  # keep the veths' segmentation offloads (super-packets in the captures)
    inject: int = 0  # out-of-window ACKs the remote sends to the NATed address during the transfer
    timeout_s: float = 60.0
    topology: Topology = DEFAULT_TOPOLOGY

    def describe(self) -> str:
        parts = [f"{self.size} bytes"]
        for name in ("loss", "dup", "ack_dup"):
            if getattr(self, name):
                parts.append(f"{name} {getattr(self, name)}/1000")
        if self.ack_delay or self.ack_jitter or self.ack_late_p:
            parts.append(
                f"remote segments held {self.ack_delay * 1e3:g}+U(0,{self.ack_jitter * 1e3:g}) ms"
                + (
                    f", {self.ack_late_p:.0%} of them {self.ack_late * 1e3:g} ms more"
                    if self.ack_late_p
                    else ""
                )
            )
        if self.rcvbuf:
            parts.append(f"remote SO_RCVBUF {self.rcvbuf}")
        if self.offload:
            parts.append("offloads on")
        if self.inject:
            parts.append(f"{self.inject} out-of-window ACKs injected by the remote")
        return ", ".join(parts)


def _impairments(ns: NamespaceSet, up: Upload) -> None:
    """nft rules in ctr and remote (never in host) for loss, duplication and the delay queue."""
    remote_in = f"tcp dport {PORT} numgen random mod 1000 < {up.loss} drop" if up.loss else ""
    remote_out = (
        f'tcp sport {PORT} numgen random mod 1000 < {up.ack_dup} dup to "{END_DEV}"' if up.ack_dup else ""
    )
    ctr_out = f'tcp dport {PORT} numgen random mod 1000 < {up.dup} dup to "{END_DEV}"' if up.dup else ""
    for role, hook, rule in (
        ("remote", "ingress", remote_in),
        ("remote", "egress", remote_out),
        ("ctr", "egress", ctr_out),
    ):
        if rule:
            ns.exec(
                ns[role],
                ["nft", "-f", "-"],
                input_text=f"table netdev nflab_{hook} {{\n chain c {{\n"
                f'  type filter hook {hook} device "{END_DEV}" priority 0; policy accept;\n'
                f"  {rule}\n }}\n}}\n",
            )
    if up.ack_delay or up.ack_jitter or up.ack_late_p:
        # iptables' NFQUEUE target (nft's own queue statement needs nft_queue, not built everywhere)
        ns.exec(
            ns["remote"], ["iptables", "-A", "OUTPUT", "-p", "tcp", "--sport", str(PORT), "-j", "NFQUEUE"]
        )


def _tcpdump(
    ns: NamespaceSet,
    name: str,
    path: Path,
    snaplen: int,
    any_as: str = "",
    iface: list[str] | None = None,
    expr: str = "tcp",
) -> subprocess.Popen[bytes]:
    """Start ``tcpdump -i eth0 -w PATH tcp`` (or ``-i any -y ANY_AS``, or the ``iface``
    arguments given, and the filter ``expr``) in ``name``; returns once it is listening."""
    iface = iface or (["-i", "any", "-y", any_as] if any_as else ["-i", END_DEV])
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            name,
            "tcpdump",
            *iface,
            "-n",
            "-U",
            "--immediate-mode",
            "-Z",
            "root",
            "-s",
            str(snaplen),
            "-w",
            str(path),
            *([expr] if expr else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + TCPDUMP_READY_S
    line = b""
    while b"listening on" not in line:
        line = proc.stderr.readline()
        if not line or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise NetnsError(f"tcpdump did not start in {name}: {line.decode(errors='replace').strip()}")
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


def _build(ns: NamespaceSet, up: Upload) -> None:
    t = up.topology
    ctr, host, remote = ns["ctr"], ns["host"], ns["remote"]
    for key in ("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"):
        ns.sysctl(host, key, "0")
    ns.ip(host, "link", "add", BRIDGE, "type", "bridge", "mcast_snooping", "0")
    ns.ip(host, "link", "add", BRIDGE_PORT, "type", "veth", "peer", "name", END_DEV, "netns", ctr)
    ns.ip(host, "link", "add", UPLINK, "type", "veth", "peer", "name", END_DEV, "netns", remote)
    for name, dev in ((host, BRIDGE_PORT), (host, UPLINK), (ctr, END_DEV), (remote, END_DEV), (host, BRIDGE)):
        gso = () if up.offload else ("gso_max_segs", "1")
        ns.ip(name, "link", "set", dev, "mtu", str(up.mtu), *gso)
    ns.ip(host, "link", "set", BRIDGE_PORT, "master", BRIDGE, "up")
    ns.ip(host, "addr", "add", f"{t.bridge_ip}/24", "dev", BRIDGE)
    ns.ip(host, "link", "set", BRIDGE, "up")
    ns.ip(host, "addr", "add", f"{t.host_ip}/24", "dev", UPLINK)
    ns.ip(host, "link", "set", UPLINK, "up")
    ns.ip(ctr, "addr", "add", f"{t.ctr_ip}/24", "dev", END_DEV)
    ns.ip(ctr, "link", "set", END_DEV, "up")
    ns.ip(ctr, "route", "add", "default", "via", t.bridge_ip)
    ns.ip(remote, "addr", "add", f"{t.remote_ip}/24", "dev", END_DEV)
    ns.ip(remote, "link", "set", END_DEV, "up")
    ns.sysctl(host, "net.ipv4.ip_forward", "1")
    ns.exec(host, ["iptables-restore"], input_text=docker_rules(str(t.ctr_net)))
    _impairments(ns, up)


class _Injector:
    """Out-of-window ACKs from the remote to the host's NATed address (the incident's trigger).

    A packet socket on the remote's eth0 sees the remote's own segments; each injected ACK
    copies the latest one's ports and takes ``seq + 2**30`` (far over the receiver's window:
    ``tcp_in_window`` marks it INVALID, so NAT skips it and the host's stack answers it with a
    RST) and ``ack - 1`` (the host's RST then carries ``seq = ack - 1``, under the remote's
    ``rcv_nxt``: RFC 5961 makes the remote drop it instead of resetting the transfer).
    """

    def __init__(self, ns: NamespaceSet, t: Topology) -> None:
        self.t = t
        with in_netns(ns["remote"]):
            self.sniff = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
            self.sniff.bind((END_DEV, ETH_P_ALL))
            self.raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.sniff.settimeout(2.0)

    def send(self) -> None:
        from sim.packet import TCPHDR_ACK, Packet
        from sim.wire import emit, parse

        latest: Packet | None = None
        self.sniff.setblocking(False)
        while True:  # drain: the newest of the remote's own segments
            try:
                data, addr = self.sniff.recvfrom(65536)
            except BlockingIOError:
                if latest is not None:
                    break
                self.sniff.settimeout(2.0)
                data, addr = self.sniff.recvfrom(65536)
                self.sniff.setblocking(False)
            if addr[2] == socket.PACKET_OUTGOING and addr[1] == 0x0800:
                p = parse(data)
                if p.src == self.t.remote_ip and p.sport == PORT:
                    latest = p
        assert latest is not None
        bad = Packet(
            latest.src, latest.dst, latest.sport, latest.dport,
            (latest.seq + (1 << 30)) & 0xFFFFFFFF, (latest.ack - 1) & 0xFFFFFFFF,
            TCPHDR_ACK, latest.window, 0,
        )  # fmt: skip
        self.raw.sendto(emit(bad), (bad.dst, 0))

    def close(self) -> None:
        self.sniff.close()
        self.raw.close()


def run_upload(
    up: Upload, host_pcap: Path, ctr_pcap: Path | None = None, uplink_pcap: Path | None = None
) -> int:
    """Make the upload and write the captures; returns the bytes the remote received.
    ``uplink_pcap``: a second capture on the host's uplink, beside a ``host_any`` one."""
    if not 0 < up.size <= MAX_UPLOAD:
        raise ValueError(f"upload size {up.size} outside 1..{MAX_UPLOAD}")
    t = up.topology
    received = 0
    with NamespaceSet(("ctr", "host", "remote")) as ns:
        _build(ns, up)
        with in_netns(ns["remote"]):
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with in_netns(ns["ctr"]):
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        dumps: list[subprocess.Popen[bytes]] = []
        queue: DelayQueue | None = None
        try:
            if up.ack_delay or up.ack_jitter or up.ack_late_p:
                with in_netns(ns["remote"]):
                    queue = DelayQueue(0, up.ack_delay, up.ack_jitter, up.ack_late_p, up.ack_late, up.seed)
                queue.start()
            if up.rcvbuf:
                server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, up.rcvbuf)
            server.bind((t.remote_ip, PORT))
            server.listen(1)
            server.settimeout(up.timeout_s)
            dumps.append(_tcpdump(ns, ns["host"], host_pcap, up.snaplen, up.host_any))
            if uplink_pcap is not None:
                dumps.append(_tcpdump(ns, ns["host"], uplink_pcap, up.snaplen))
            injector = _Injector(ns, t) if up.inject else None
            if ctr_pcap is not None:
                dumps.append(_tcpdump(ns, ns["ctr"], ctr_pcap, up.snaplen, up.ctr_any))

            def serve() -> None:
                nonlocal received
                conn, _ = server.accept()
                conn.settimeout(up.timeout_s)
                with conn:
                    while chunk := conn.recv(1 << 16):
                        received += len(chunk)

            reader = threading.Thread(target=serve, daemon=True)
            reader.start()
            client.settimeout(up.timeout_s)
            client.bind((t.ctr_ip, CLIENT_PORT))
            client.connect((t.remote_ip, PORT))
            block = bytes(1 << 16)
            left = up.size
            marks = [up.size * (i + 1) // (up.inject + 1) for i in range(up.inject)]
            while left:
                n = client.send(block[: min(left, len(block))])
                left -= n
                while injector is not None and marks and up.size - left >= marks[0]:
                    marks.pop(0)
                    time.sleep(0.005)  # the remote has answered some of it
                    injector.send()
            if injector is not None:
                injector.close()
            client.shutdown(socket.SHUT_WR)
            reader.join(up.timeout_s)
            client.recv(1)  # the remote's FIN
            time.sleep(0.2)  # the last ACKs reach both captures
        finally:
            client.close()
            server.close()
            for proc in dumps:
                _stop(proc)
            if queue is not None:
                queue.close()
    if received != up.size:
        raise NetnsError(f"the remote received {received} of {up.size} bytes")
    return received


def main() -> None:  # pragma: no cover - a developer's entry point: python -m sim.kernel.upload
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("host_pcap")
    p.add_argument("ctr_pcap", nargs="?")
    p.add_argument("--size", type=int, default=256 * 1024)
    for name in ("loss", "dup", "ack_dup", "snaplen", "mtu", "rcvbuf", "seed"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(Upload(), name))
    for name in ("ack_delay", "ack_jitter", "ack_late_p", "ack_late"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=0.0)
    p.add_argument("--ctr-any", default="", choices=("", "LINUX_SLL", "LINUX_SLL2"))
    p.add_argument("--host-any", default="", choices=("", "LINUX_SLL", "LINUX_SLL2"))
    p.add_argument("--inject", type=int, default=0)
    p.add_argument("--offload", action="store_true", help="keep segmentation offloads (super-packets)")
    p.add_argument("--uplink-pcap", help="with --host-any: also capture the host's uplink alone")
    a = p.parse_args()
    skip = ("host_pcap", "ctr_pcap", "uplink_pcap")
    up = Upload(**{k: v for k, v in vars(a).items() if k not in skip})
    n = run_upload(
        up,
        Path(a.host_pcap),
        Path(a.ctr_pcap) if a.ctr_pcap else None,
        Path(a.uplink_pcap) if a.uplink_pcap else None,
    )
    print(f"{n} bytes uploaded; pid {os.getpid()}")


if __name__ == "__main__":  # pragma: no cover
    main()
