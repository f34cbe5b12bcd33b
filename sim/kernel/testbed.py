"""A Docker default-bridge host built from real namespaces (Docker's bridge driver + libnetwork iptables).

Three namespaces, all created by :class:`sim.kernel.netns.NamespaceSet`::

    ctr: eth0 ctr_ip/24 ──veth── host: veth0 ∈ docker0 bridge_ip/24 ┐ routing, conntrack,
                                       eth0 host_ip/24 ─────────────┘ MASQUERADE
                                         │ veth
                                 remote: eth0 remote_ip

- host: a Linux bridge ``docker0`` (multicast snooping off, so it sends no IGMP queries)
  with the container's veth as its only port, ``net.ipv4.ip_forward=1``, Docker's ruleset
  (:data:`DOCKER_TABLES`), permanent neighbour entries for ctr and remote (no ARP timing),
  rp_filter off, and ``net.bridge.bridge-nf-call-iptables=0``: the bridge is only L2 to one
  port, the host routes. (Docker itself loads br_netfilter and sets it to 1; a case may do
  the same through ``sysctl``. On 6.18 the observations of handshake, data, late ACK, ACK
  over the upper bound, remote SYN on an established entry and an old container RST were
  identical either way: with br_netfilter the frame meets PREROUTING in the bridge path and
  ``ip_sabotage_in`` stops a second traversal.) conntrack logs invalid TCP packets
  (``nf_conntrack_log_invalid=6``) to nfnetlink_log (``nf_log.2=nfnetlink_log``).
- ctr and remote are passive: an nft table drops their stack's input and output, so they
  never answer; crafted frames are sent and every arriving frame is captured on AF_PACKET
  sockets bound to their eth0 (packet(7): taps run before the IP stack, and sends bypass
  the output hook).
- observation (:data:`OBS_RULESET`, an nft table in host): the barrier rule, the ctstate
  rules at prerouting -180 and the input rule at priority 300 (see :mod:`sim.kernel.observe`).

One packet at a time: the frame is sent, then a UDP "barrier" frame from the same end host
carrying a nonce, which the host logs and drops before conntrack. Packets queued by one
CPU are processed in order (the per-CPU backlog of ``netif_rx``), and the thread is pinned
to one CPU for the two sends, so once the barrier's log line is read everything the
packet caused (forwarding, the host's RST, log lines) has been queued on our sockets.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import time
from dataclasses import replace
from typing import Any

from sim import wire
from sim.kernel import observe
from sim.kernel.netns import NamespaceSet, NetnsError, in_netns, read_sysctl, write_sysctl
from sim.kernel.nflog import LogMessage, NflogSocket
from sim.packet import Packet
from sim.scenario.case import IPTABLES_TABLES, CasePacket, check_sysctl, iptables_argv
from sim.scenario.case import CaseError as CaseError  # re-exported for callers of the harness
from sim.scenario.case import Topology as Topology
from sim.scenario.case import parse_case as parse_case

BRIDGE = "docker0"
BRIDGE_PORT = "veth0"
UPLINK = "eth0"
END_DEV = "eth0"
MAC = {
    "ctr": "02:00:c0:00:02:02",
    "bridge": "02:00:c0:00:02:01",
    "port": "02:00:c0:00:02:fe",
    "uplink": "02:00:c6:33:64:01",
    "remote": "02:00:c6:33:64:02",
}
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # sll_pkttype of our own sends (include/uapi/linux/if_packet.h)
BARRIER_PORT = 9  # discard
BARRIER_TIMEOUT_S = 1.0
SETTLE_S = 0.0005  # extra listening after the barrier, for stragglers from other CPUs

# What Docker's bridge driver installs for its default network (libnetwork's iptables
# setup; FORWARD policy DROP since Docker 1.13), with the bridge named BRIDGE:
# {table: ({built-in chain: policy}, [rules])}. "{ctr_net}" is the bridge's subnet.
DOCKER_TABLES: dict[str, tuple[dict[str, str], list[str]]] = {
    "raw": ({"PREROUTING": "ACCEPT", "OUTPUT": "ACCEPT"}, []),
    "mangle": (
        dict.fromkeys(("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"), "ACCEPT"),
        [],
    ),
    "nat": (
        dict.fromkeys(("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"), "ACCEPT"),
        [f"-A POSTROUTING -s {{ctr_net}} ! -o {BRIDGE} -j MASQUERADE"],
    ),
    "filter": (
        {"INPUT": "ACCEPT", "FORWARD": "DROP", "OUTPUT": "ACCEPT"},
        [
            f"-A FORWARD -o {BRIDGE} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            f"-A FORWARD -i {BRIDGE} ! -o {BRIDGE} -j ACCEPT",
            f"-A FORWARD -i {BRIDGE} -o {BRIDGE} -j ACCEPT",
        ],
    ),
}


def docker_rules(ctr_net: str, *, reset: bool = False, tables: tuple[str, ...] = IPTABLES_TABLES) -> str:
    """Docker's ruleset in iptables-restore format.

    With ``reset`` it is meant for ``iptables-restore --noflush``: every chain is flushed,
    user chains deleted and policies set back, without deleting and re-creating the tables
    (which unregisters hooks and costs tens of milliseconds).
    """
    out = []
    for table in tables:
        policies, rules = DOCKER_TABLES[table]
        out.append(f"*{table}")
        if reset:
            out += ["-F", "-X"] + [f"-P {chain} {policy}" for chain, policy in policies.items()]
        else:
            out += [f":{chain} {policy} [0:0]" for chain, policy in policies.items()]
        out += [r.replace("{ctr_net}", ctr_net) for r in rules]
        out.append("COMMIT")
    return "\n".join(out) + "\n"


OBS_RULESET = f"""\
table ip nflab_obs {{
  chain barrier {{
    type filter hook prerouting priority -350; policy accept;
    udp sport {BARRIER_PORT} udp dport {BARRIER_PORT} log group 0 prefix "nflab:barrier" drop
  }}
  chain ctstate {{
    type filter hook prerouting priority -180; policy accept;
    meta l4proto tcp ct state invalid log group 0 prefix "nflab:ct:INVALID"
    meta l4proto tcp ct state new log group 0 prefix "nflab:ct:NEW"
    meta l4proto tcp ct state established log group 0 prefix "nflab:ct:ESTABLISHED"
    meta l4proto tcp ct state related log group 0 prefix "nflab:ct:RELATED"
    meta l4proto tcp ct state untracked log group 0 prefix "nflab:ct:UNTRACKED"
  }}
  chain input {{
    type filter hook input priority 300; policy accept;
    meta l4proto tcp log group 0 prefix "nflab:input"
  }}
}}
"""

PASSIVE_RULESET = """\
table inet nflab_passive {
  chain input { type filter hook input priority -500; policy drop; }
  chain output { type filter hook output priority -500; policy drop; }
}
"""

BASE_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
    "net.netfilter.nf_conntrack_log_invalid": "6",
    "net.netfilter.nf_log.2": "nfnetlink_log",
}
BRIDGE_NF_SYSCTL = "net.bridge.bridge-nf-call-iptables"


def _udp_barrier(src: str, dst: str, nonce: int) -> bytes:
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


class _EndHost:
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


class Testbed:
    """The docker-bridge world in real namespaces; reuse it across cases with :meth:`reset`."""

    __test__ = False  # not a pytest class, despite the name

    def __init__(self, topology: Topology | None = None) -> None:
        self.topology = topology or Topology()
        self.ns = NamespaceSet(("ctr", "host", "remote"))
        self.ends: dict[str, _EndHost] = {}
        self.nflog: NflogSocket | None = None
        self.ct: observe.Ctnetlink | None = None
        self._ip_id = 0
        self._nonce = 0
        self._dirty_tables: set[str] = set()
        self._saved_sysctls: dict[str, str] = {}
        self.bridge_nf_sysctl = False

    # ------------------------------------------------------------ lifetime
    def open(self) -> Testbed:
        self.ns.open()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for end in self.ends.values():
            end.close()
        self.ends.clear()
        if self.nflog is not None:
            self.nflog.close()
            self.nflog = None
        if self.ct is not None:
            self.ct.close()
            self.ct = None
        self.ns.close()

    def __enter__(self) -> Testbed:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self) -> None:
        t, ns = self.topology, self.ns
        ctr, host, remote = ns["ctr"], ns["host"], ns["remote"]
        for key, value in BASE_SYSCTLS.items():
            if key.startswith("net.ipv4.conf"):
                ns.sysctl(host, key, value)
        # docker0 with the container's veth as its port; veths are born inside host
        ns.ip(host, "link", "add", BRIDGE, "address", MAC["bridge"], "type", "bridge", "mcast_snooping", "0")
        ns.ip(
            host,
            "link",
            "add",
            BRIDGE_PORT,
            "address",
            MAC["port"],
            "type",
            "veth",
            "peer",
            "name",
            END_DEV,
            "address",
            MAC["ctr"],
            "netns",
            ctr,
        )
        ns.ip(host, "link", "set", BRIDGE_PORT, "master", BRIDGE, "up")
        ns.ip(host, "addr", "add", f"{t.bridge_ip}/24", "dev", BRIDGE)
        ns.ip(host, "link", "set", BRIDGE, "up")
        ns.ip(ctr, "addr", "add", f"{t.ctr_ip}/24", "dev", END_DEV)
        ns.ip(ctr, "link", "set", END_DEV, "up")
        ns.ip(ctr, "route", "add", "default", "via", t.bridge_ip)
        # uplink
        ns.ip(
            host,
            "link",
            "add",
            UPLINK,
            "address",
            MAC["uplink"],
            "type",
            "veth",
            "peer",
            "name",
            END_DEV,
            "address",
            MAC["remote"],
            "netns",
            remote,
        )
        ns.ip(host, "addr", "add", f"{t.host_ip}/24", "dev", UPLINK)
        ns.ip(host, "link", "set", UPLINK, "up")
        remote_prefix = 24 if ipaddress.ip_address(t.remote_ip) in t.uplink_net else 32
        ns.ip(remote, "addr", "add", f"{t.remote_ip}/{remote_prefix}", "dev", END_DEV)
        ns.ip(remote, "link", "set", END_DEV, "up")
        if remote_prefix == 32:
            ns.ip(host, "route", "add", f"{t.remote_ip}/32", "dev", UPLINK)
        ns.ip(host, "neigh", "replace", t.ctr_ip, "lladdr", MAC["ctr"], "dev", BRIDGE, "nud", "permanent")
        ns.ip(
            host, "neigh", "replace", t.remote_ip, "lladdr", MAC["remote"], "dev", UPLINK, "nud", "permanent"
        )
        for key, value in BASE_SYSCTLS.items():
            ns.sysctl(host, key, value)
        try:
            ns.sysctl(host, BRIDGE_NF_SYSCTL, "0")
            self.bridge_nf_sysctl = True
        except NetnsError:
            self.bridge_nf_sysctl = False  # no br_netfilter: bridged frames never see iptables
        for end in (ctr, remote):
            ns.exec(end, ["nft", "-f", "-"], input_text=PASSIVE_RULESET)
        self._load_rules()
        with in_netns(host):
            self.nflog = NflogSocket(group=0)
            self.ct = observe.Ctnetlink()
        self.ends["ctr"] = _EndHost(ctr, "ctr", MAC["ctr"], MAC["bridge"], t.bridge_ip, t.ctr_ip)
        self.ends["remote"] = _EndHost(remote, "remote", MAC["remote"], MAC["uplink"], t.host_ip, t.remote_ip)

    def _load_rules(self) -> None:
        host = self.ns["host"]
        self.ns.exec(host, ["nft", "-f", "-"], input_text="flush ruleset\n" + OBS_RULESET)
        self.ns.exec(host, ["iptables-restore"], input_text=docker_rules(str(self.topology.ctr_net)))
        self._dirty_tables.clear()

    def _restore_rules(self) -> None:
        """Undo a case's iptables lines in the tables they touched (about 15 ms a table)."""
        tables = tuple(t for t in IPTABLES_TABLES if t in self._dirty_tables)
        rules = docker_rules(str(self.topology.ctr_net), reset=True, tables=tables)
        self.ns.exec(self.ns["host"], ["iptables-restore", "--noflush"], input_text=rules)
        self._dirty_tables.clear()

    # ------------------------------------------------------------ per case
    def reset(self) -> None:
        """Back to the freshly built state: empty conntrack table, base rules and sysctls."""
        host = self.ns["host"]
        for key, value in self._saved_sysctls.items():
            write_sysctl(host, key, value)
        self._saved_sysctls.clear()
        if self._dirty_tables:
            self._restore_rules()
        assert self.ct is not None
        self.ct.flush()
        self._drain_all()

    def set_sysctl(self, key: str, value: object) -> None:
        """A host-namespace sysctl for this case (restored by :meth:`reset`)."""
        check_sysctl(key, value)
        host = self.ns["host"]
        try:
            old = read_sysctl(host, key)
        except OSError:
            raise CaseError(f"sysctl {key} does not exist in the host namespace") from None
        self._saved_sysctls.setdefault(key, old)
        try:
            write_sysctl(host, key, str(value))
        except NetnsError as e:
            raise CaseError(str(e)) from None

    def iptables(self, line: str) -> None:
        """One ``iptables …`` command line, run in the host namespace (undone by :meth:`reset`)."""
        argv, table = iptables_argv(line)
        self._dirty_tables.add(table)
        try:
            self.ns.exec(self.ns["host"], argv)
        except NetnsError as e:
            raise CaseError(f"iptables line {line!r} failed: {e}") from None

    # ------------------------------------------------------------ per packet
    def _drain_all(self) -> None:
        for end in self.ends.values():
            end.drain()
        if self.nflog is not None:
            self.nflog.read_available()

    def _next_ip_id(self) -> int:
        self._ip_id = self._ip_id % 0xFFFF + 1
        return self._ip_id

    def send(self, side: str, pkt: Packet) -> dict[str, Any]:
        """Send one crafted packet from ``side`` and observe what the host did with it."""
        if side not in self.ends:
            raise CaseError(f"packet 'from' must be one of {sorted(self.ends)}, not {side!r}")
        assert self.nflog is not None and self.ct is not None
        end = self.ends[side]
        pkt = _with_ip_id(pkt, self._next_ip_id())
        datagram = wire.emit(pkt)
        self._nonce += 1
        barrier = _udp_barrier(end.ip, end.gateway_ip, self._nonce)
        logs = self._send_pinned(end, datagram, barrier, self._nonce)
        captures = [observe.Capture(name, d) for name, e in self.ends.items() for d in e.drain()]
        ctstate, reasons, reached_input = _read_logs(logs, pkt)
        entry = self.ct.get((pkt.src, pkt.dst, pkt.sport, pkt.dport))
        return observe.build_observation(pkt, ctstate, reasons, reached_input, captures, entry)

    def _send_pinned(self, end: _EndHost, datagram: bytes, barrier: bytes, nonce: int) -> list[LogMessage]:
        cpus = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(cpus)})
        try:
            end.send_ip(datagram)
            end.send_ip(barrier)
        finally:
            os.sched_setaffinity(0, cpus)
        assert self.nflog is not None
        logs: list[LogMessage] = []
        deadline = time.monotonic() + BARRIER_TIMEOUT_S
        poller = select.poll()
        poller.register(self.nflog.fileno(), select.POLLIN)
        while True:
            logs.extend(self.nflog.read_available())
            if any(_is_barrier(m, nonce) for m in logs):
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise NetnsError(f"the host did not log the barrier within {BARRIER_TIMEOUT_S}s")
            poller.poll(left * 1000)
        time.sleep(SETTLE_S)
        logs.extend(self.nflog.read_available())
        return [m for m in logs if not m.prefix.startswith("nflab:barrier")]


def _with_ip_id(pkt: Packet, ip_id: int) -> Packet:
    return replace(pkt, ip_id=ip_id)


def _is_barrier(msg: LogMessage, nonce: int) -> bool:
    return msg.prefix.startswith("nflab:barrier") and msg.payload[-8:] == struct.pack("!Q", nonce)


def _read_logs(logs: list[LogMessage], pkt: Packet) -> tuple[str | None, list[str], bool]:
    """Pick the log lines about ``pkt``: its ctstate, conntrack's reasons, input reached."""
    ctstate: str | None = None
    reasons: list[str] = []
    reached_input = False
    for msg in logs:
        try:
            seen = wire.parse(msg.payload)
        except wire.WireError:
            continue
        if not observe.same_packet(pkt, seen):
            continue
        if msg.prefix.startswith("nflab:ct:"):
            ctstate = msg.prefix.removeprefix("nflab:ct:")
        elif msg.prefix == "nflab:input":
            reached_input = True
        elif msg.prefix.startswith(observe.CT_LOG_PREFIX) and (seen.src, seen.dst) == (pkt.src, pkt.dst):
            reasons.append(msg.prefix.removeprefix(observe.CT_LOG_PREFIX).strip())
    return ctstate, reasons, reached_input


def run_case(case: dict[str, Any], testbed: Testbed | None = None) -> list[dict[str, Any]]:
    """Replay a case on the real kernel: one observation per packet, in order.

    With ``testbed`` the namespaces are reused (it is reset first, so a case costs a few
    milliseconds); without, a testbed is built for the case and torn down afterwards.
    """
    topology, sysctls, lines, packets = parse_case(case)
    if testbed is None:
        with Testbed(topology) as tb:
            return _run(tb, sysctls, lines, packets)
    if testbed.topology != topology:
        raise CaseError("case topology differs from the testbed's; build a Testbed for it")
    return _run(testbed, sysctls, lines, packets)


def _run(
    tb: Testbed, sysctls: dict[str, Any], lines: list[str], packets: list[CasePacket]
) -> list[dict[str, Any]]:
    tb.reset()
    for key, value in sysctls.items():
        tb.set_sysctl(key, value)
    for line in lines:
        tb.iptables(line)
    out = []
    for side, pkt, delay, _race in packets:
        if delay:
            time.sleep(delay)
        out.append(tb.send(side, pkt))
    return out
