"""A Docker default-bridge host built from real namespaces (Docker's bridge driver + libnetwork iptables).

Three namespaces (and one per extra host of a v2 case), all created by
:class:`sim.kernel.netns.NamespaceSet`::

    ctr: eth0 ctr_ip/24 ──veth── host: veth0 ∈ docker0 bridge_ip/24 ┐ routing, conntrack,
                                       eth0 host_ip/24 ─────────────┘ MASQUERADE
                                         │ veth
                                 remote: eth0 remote_ip

- host: a Linux bridge ``docker0`` (multicast snooping off, so it sends no IGMP queries)
  with the container's veth as its only port, ``net.ipv4.ip_forward=1``, Docker's ruleset
  (:data:`sim.kernel.rulesets.DOCKER_TABLES`), permanent neighbour entries for ctr and remote (no ARP timing),
  rp_filter off, and ``net.bridge.bridge-nf-call-iptables=0``: the bridge is only L2 to one
  port, the host routes. (Docker itself loads br_netfilter and sets it to 1; a case may do
  the same through ``sysctl``. On 6.18 the observations of handshake, data, late ACK, ACK
  over the upper bound, remote SYN on an established entry and an old container RST were
  identical either way: with br_netfilter the frame meets PREROUTING in the bridge path and
  ``ip_sabotage_in`` stops a second traversal.) conntrack logs invalid TCP packets
  (``nf_conntrack_log_invalid=6``) to nfnetlink_log (``nf_log.2=nfnetlink_log``); its ICMP
  errors are not rate limited (``icmp_ratelimit=0``).
- ctr and remote are passive: an nft table drops their stack's input and output, so they
  never answer; crafted frames are sent and every arriving frame is captured on AF_PACKET
  sockets bound to their eth0 (packet(7): taps run before the IP stack, and sends bypass
  the output hook).
- observation (:data:`sim.kernel.rulesets.OBS_RULESET`, an nft table in host): the barrier
  rule, the ctstate rules at prerouting -180 and the input rule at priority 300, for every
  protocol (see :mod:`sim.kernel.observe`).
- races (``race: "prev"``): the earlier packet is held in NFQUEUE :data:`HOLD_QUEUE` by nft
  base chains at postrouting/input priority 200 (after NAT, before confirmation) that jump to
  an iptables-nft chain ``-j NFQUEUE`` matching only its IP ID; it is re-injected once its
  racer (and whatever races that) has been observed (:func:`_run`).

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
import struct
import time
from dataclasses import dataclass, replace
from typing import Any

from sim import wire
from sim.kernel import craft, observe
from sim.kernel.endhost import EndHost, udp_barrier
from sim.kernel.netns import NamespaceSet, NetnsError, in_netns, read_sysctl, write_sysctl
from sim.kernel.nflog import LogMessage, NflogSocket
from sim.kernel.nfqueue import HoldQueue
from sim.kernel.rulesets import (
    BARRIER_TIMEOUT_S,
    BASE_SYSCTLS,
    BRIDGE,
    BRIDGE_NF_SYSCTL,
    BRIDGE_PORT,
    END_DEV,
    MAC,
    OBS_RULESET,
    PASSIVE_RULESET,
    SETTLE_S,
    UPLINK,
    docker_rules,
)
from sim.packet import Packet
from sim.scenario.case import IPTABLES_TABLES, CasePacket, check_sysctl, iptables_argv, parse_case
from sim.scenario.case import CaseError as CaseError  # re-exported for callers of the harness
from sim.scenario.case import Topology as Topology

HOLD_QUEUE = 7  # the NFQUEUE number of race holds
HOLD_CHAIN = "NFLAB_HOLD"  # iptables chain (table mangle) whose only rule is -j NFQUEUE
HOLD_TABLE = "mangle"
# nft base chains in iptables-nft's own table, after NAT (src nat 100) and before confirmation
# (NF_IP_PRI_CONNTRACK_CONFIRM = INT_MAX): forwarded and sent packets at postrouting, local
# ones at input (nf_ip_hook_priorities in include/uapi/linux/netfilter_ipv4.h).
HOLD_PRIORITY = 200
HOLD_HOOKS = {"nflab_hold_post": "postrouting", "nflab_hold_in": "input"}


def _role(index: int) -> str:
    """The namespace role of the index-th extra host (roles are lowercase letters)."""
    return "x" + chr(ord("a") + index)


def _mac(prefix: int, ip: str) -> str:
    return ":".join(f"{b:02x}" for b in (2, prefix, *wire.ip_to_bytes(ip)))


@dataclass(slots=True)
class _Held:
    """A packet waiting in the hold queue, and what was seen of it before the hold."""

    side: str
    sent: Packet
    ip_id: int
    packet_id: int
    logs: list[LogMessage]
    captures: list[observe.Capture]
    stats: dict[str, int]


class Testbed:
    """The docker-bridge world in real namespaces; reuse it across cases with :meth:`reset`.

    The topology's ``hosts`` (the contract's extra end hosts) add, per ``ctr…`` name, a
    namespace behind ``docker0`` (one more veth port), and per ``remote…`` name a namespace on
    its own veth from the host, which carries the host's uplink address as a /32 and a /32
    route to the remote, so the host still answers and masquerades as ``host_ip``.
    """

    __test__ = False  # not a pytest class, despite the name

    def __init__(self, topology: Topology | None = None) -> None:
        self.topology = topology or Topology()
        self.hosts = dict(self.topology.hosts)
        self.roles = {name: _role(i) for i, name in enumerate(sorted(self.hosts))}
        self.ns = NamespaceSet(("ctr", "host", "remote", *self.roles.values()))
        self.ends: dict[str, EndHost] = {}
        self.nflog: NflogSocket | None = None
        self.ct: observe.Ctnetlink | None = None
        self.hold: HoldQueue | None = None
        self._hold_ready = False
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
        for sock in (self.nflog, self.ct, self.hold):
            if sock is not None:
                sock.close()
        self.nflog = self.ct = self.hold = None
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
        ns.ip(host, "addr", "add", f"{t.bridge_ip}/24", "dev", BRIDGE)
        ns.ip(host, "link", "set", BRIDGE, "up")
        self._add_container(ctr, BRIDGE_PORT, MAC["port"], MAC["ctr"], t.ctr_ip)
        # uplink
        self._veth(UPLINK, MAC["uplink"], remote, MAC["remote"])
        ns.ip(host, "addr", "add", f"{t.host_ip}/24", "dev", UPLINK)
        ns.ip(host, "link", "set", UPLINK, "up")
        remote_prefix = 24 if ipaddress.ip_address(t.remote_ip) in t.uplink_net else 32
        ns.ip(remote, "addr", "add", f"{t.remote_ip}/{remote_prefix}", "dev", END_DEV)
        ns.ip(remote, "link", "set", END_DEV, "up")
        if remote_prefix == 32:
            ns.ip(host, "route", "add", f"{t.remote_ip}/32", "dev", UPLINK)
        ns.ip(
            host, "neigh", "replace", t.remote_ip, "lladdr", MAC["remote"], "dev", UPLINK, "nud", "permanent"
        )
        gateways = {"ctr": (MAC["bridge"], t.bridge_ip), "remote": (MAC["uplink"], t.host_ip)}
        addrs = {"ctr": t.ctr_ip, "remote": t.remote_ip, **self.hosts}
        macs = {"ctr": MAC["ctr"], "remote": MAC["remote"]}
        for k, (name, ip) in enumerate(sorted(self.hosts.items())):
            end_ns, macs[name] = ns[self.roles[name]], _mac(0, ip)
            if name.startswith("ctr"):
                self._add_container(end_ns, f"vc{k}", _mac(0xFE, ip), macs[name], ip)
                gateways[name] = (MAC["bridge"], t.bridge_ip)
            else:
                dev = f"vr{k}"
                self._veth(dev, _mac(1, ip), end_ns, macs[name])
                ns.ip(host, "addr", "add", f"{t.host_ip}/32", "dev", dev)
                ns.ip(host, "link", "set", dev, "up")
                ns.ip(host, "route", "add", f"{ip}/32", "dev", dev)
                ns.ip(host, "neigh", "replace", ip, "lladdr", macs[name], "dev", dev, "nud", "permanent")
                ns.ip(end_ns, "addr", "add", f"{ip}/24", "dev", END_DEV)
                ns.ip(end_ns, "link", "set", END_DEV, "up")
                gateways[name] = (_mac(1, ip), t.host_ip)
        for key, value in BASE_SYSCTLS.items():
            ns.sysctl(host, key, value)
        try:
            ns.sysctl(host, BRIDGE_NF_SYSCTL, "0")
            self.bridge_nf_sysctl = True
        except NetnsError:
            self.bridge_nf_sysctl = False  # no br_netfilter: bridged frames never see iptables
        for name in addrs:
            ns.exec(self._ns_of(name), ["nft", "-f", "-"], input_text=PASSIVE_RULESET)
        self._load_rules()
        with in_netns(host):
            self.nflog = NflogSocket(group=0)
            self.ct = observe.Ctnetlink()
            self.hold = HoldQueue(HOLD_QUEUE)
        for name, ip in addrs.items():
            gw_mac, gw_ip = gateways[name]
            self.ends[name] = EndHost(self._ns_of(name), name, macs[name], gw_mac, gw_ip, ip)

    def _ns_of(self, name: str) -> str:
        return self.ns[name] if name in ("ctr", "remote") else self.ns[self.roles[name]]

    def _veth(self, dev: str, mac: str, end_ns: str, end_mac: str) -> None:
        """A veth pair: ``dev`` (``mac``) in the host, its peer ``END_DEV`` (``end_mac``) in
        ``end_ns``."""
        self.ns.ip(
            self.ns["host"], "link", "add", dev, "address", mac, "type", "veth",
            "peer", "name", END_DEV, "address", end_mac, "netns", end_ns,
        )  # fmt: skip

    def _add_container(self, end_ns: str, port: str, port_mac: str, mac: str, ip: str) -> None:
        """One more container: a veth from docker0 into ``end_ns``, default route via docker0."""
        ns, host = self.ns, self.ns["host"]
        self._veth(port, port_mac, end_ns, mac)
        ns.ip(host, "link", "set", port, "master", BRIDGE, "up")
        ns.ip(end_ns, "addr", "add", f"{ip}/24", "dev", END_DEV)
        ns.ip(end_ns, "link", "set", END_DEV, "up")
        ns.ip(end_ns, "route", "add", "default", "via", self.topology.bridge_ip)
        ns.ip(host, "neigh", "replace", ip, "lladdr", mac, "dev", BRIDGE, "nud", "permanent")

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
        self._remove_hold()
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

    # ------------------------------------------------------------ race holds
    def _add_hold(self, sent: Packet, ip_id: int) -> None:
        """Queue exactly this packet (protocol, addresses as sent, IP ID) after NAT, before
        confirmation: nft has no ``queue`` statement on this kernel (CONFIG_NFT_QUEUE unset),
        so nft base chains at priority 200 jump to an iptables-nft chain with ``-j NFQUEUE``."""
        host = self.ns["host"]
        if not self._hold_ready:
            self.ns.exec(host, ["iptables", "-t", HOLD_TABLE, "-N", HOLD_CHAIN])
            self.ns.exec(
                host,
                [
                    "iptables",
                    "-t",
                    HOLD_TABLE,
                    "-A",
                    HOLD_CHAIN,
                    "-j",
                    "NFQUEUE",
                    "--queue-num",
                    str(HOLD_QUEUE),
                ],
            )
            chains = "".join(
                f"add chain ip {HOLD_TABLE} {chain} {{ type filter hook {hook} priority {HOLD_PRIORITY}; }}\n"
                for chain, hook in HOLD_HOOKS.items()
            )
            self.ns.exec(host, ["nft", "-f", "-"], input_text=chains)
            self._hold_ready = True
        match = f"ip id {ip_id} meta l4proto {int(sent.proto)}"
        rules = "".join(
            f"add rule ip {HOLD_TABLE} {chain} {match} jump {HOLD_CHAIN}\n" for chain in HOLD_HOOKS
        )
        self.ns.exec(host, ["nft", "-f", "-"], input_text=rules)

    def flush_holds(self) -> None:
        """Remove the per-packet hold rules once every held packet is released."""
        rules = "".join(f"flush chain ip {HOLD_TABLE} {chain}\n" for chain in HOLD_HOOKS)
        self.ns.exec(self.ns["host"], ["nft", "-f", "-"], input_text=rules)

    def _remove_hold(self) -> None:
        if not self._hold_ready:
            return
        host = self.ns["host"]
        chains = "".join(f"delete chain ip {HOLD_TABLE} {chain}\n" for chain in HOLD_HOOKS)
        self.ns.exec(host, ["nft", "-f", "-"], input_text=chains)
        self.ns.exec(host, ["iptables", "-t", HOLD_TABLE, "-F", HOLD_CHAIN])
        self.ns.exec(host, ["iptables", "-t", HOLD_TABLE, "-X", HOLD_CHAIN])
        self._hold_ready = False

    # ------------------------------------------------------------ per packet
    def _drain_all(self) -> None:
        for end in self.ends.values():
            end.drain()
        if self.nflog is not None:
            self.nflog.read_available()
        if self.hold is not None:
            self.hold.take()

    def _next_ip_id(self) -> int:
        self._ip_id = self._ip_id % 0xFFFF + 1
        return self._ip_id

    def _end(self, side: str) -> EndHost:
        if side not in self.ends:
            raise CaseError(f"packet 'from' must be one of {sorted(self.ends)}, not {side!r}")
        return self.ends[side]

    def _captures(self) -> list[observe.Capture]:
        return [observe.Capture(name, d) for name, e in self.ends.items() for d in e.drain()]

    def _stats(self) -> dict[str, int]:
        assert self.ct is not None
        return self.ct.stats()

    def _observe(
        self,
        sent: Packet,
        ip_id: int,
        logs: list[LogMessage],
        captures: list[observe.Capture],
        stats: dict[str, int],
    ) -> dict[str, Any]:
        assert self.ct is not None
        ctstate, reasons, reached_input = _read_logs(logs, sent, ip_id)
        entry = self.ct.get(craft.ct_tuple(sent))
        seen = observe.Seen(ctstate, reasons, reached_input, captures, entry, stats)
        return observe.build_observation(sent, ip_id, seen)

    def send(self, side: str, pkt: Packet) -> dict[str, Any]:
        """Send one crafted packet from ``side`` and observe what the host did with it."""
        end = self._end(side)
        ip_id = self._next_ip_id()
        before = self._stats()
        logs = self._send_pinned(end, wire.emit(replace(pkt, ip_id=ip_id)))
        stats = observe.stats_delta(before, self._stats())
        return self._observe(pkt, ip_id, logs, self._captures(), stats)

    def send_held(self, side: str, pkt: Packet) -> _Held | dict[str, Any]:
        """Send a packet that the next one races: it is held after NAT, before confirmation.
        A packet that never reaches the hold (dropped or consumed earlier) has run to its
        end: its observation is returned instead."""
        assert self.hold is not None
        end = self._end(side)
        ip_id = self._next_ip_id()
        self._add_hold(pkt, ip_id)
        before = self._stats()
        logs = self._send_pinned(end, wire.emit(replace(pkt, ip_id=ip_id)))
        stats = observe.stats_delta(before, self._stats())
        queued = self.hold.take()
        captures = self._captures()
        if not queued:
            return self._observe(pkt, ip_id, logs, captures, stats)
        [(packet_id, queued_id)] = queued
        if queued_id != ip_id:
            raise NetnsError(f"the hold queue holds IP ID {queued_id}, expected {ip_id}")
        return _Held(side, pkt, ip_id, packet_id, logs, captures, stats)

    def release(self, held: _Held) -> dict[str, Any]:
        """Re-inject a held packet (its confirmation runs now) and observe the rest of it."""
        assert self.hold is not None
        end = self._end(held.side)
        before = self._stats()
        logs = self._send_pinned(end, None, held.packet_id)
        stats = observe.add_stats(held.stats, observe.stats_delta(before, self._stats()))
        return self._observe(held.sent, held.ip_id, held.logs + logs, held.captures + self._captures(), stats)

    def _send_pinned(
        self, end: EndHost, datagram: bytes | None, release: int | None = None
    ) -> list[LogMessage]:
        """Send ``datagram`` (or re-inject held packet ``release``), then a barrier from the
        same end host, on one CPU; return the log lines up to the barrier's."""
        self._nonce += 1
        nonce = self._nonce
        barrier = udp_barrier(end.ip, end.gateway_ip, nonce)
        cpus = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(cpus)})
        try:
            if datagram is not None:
                end.send_ip(datagram)
            if release is not None:
                assert self.hold is not None
                self.hold.release(release)
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


def _is_barrier(msg: LogMessage, nonce: int) -> bool:
    return msg.prefix.startswith("nflab:barrier") and msg.payload[-8:] == struct.pack("!Q", nonce)


def _read_logs(logs: list[LogMessage], sent: Packet, ip_id: int) -> tuple[str | None, list[str], bool]:
    """Pick the log lines about the packet: its ctstate, conntrack's reasons, input reached."""
    ctstate: str | None = None
    reasons: list[str] = []
    reached_input = False
    for msg in logs:
        if not observe.is_sent(sent, ip_id, msg.payload):
            continue
        if msg.prefix.startswith("nflab:ct:"):
            ctstate = msg.prefix.removeprefix("nflab:ct:")
        elif msg.prefix == "nflab:input":
            reached_input = True
        elif msg.prefix.startswith(observe.CT_LOG_PREFIX):
            hdr, _body = wire.parse_ip(msg.payload)
            if (hdr.src, hdr.dst) == (sent.src, sent.dst):
                reasons.append(msg.prefix.removeprefix(observe.CT_LOG_PREFIX).strip())
    return ctstate, reasons, reached_input


def run_case(case: dict[str, Any], testbed: Testbed | None = None) -> list[dict[str, Any]]:
    """Replay a case (contract v1 or v2) on the real kernel: one observation per packet, in order.

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
    """Play the packets; a packet followed by one with ``race: "prev"`` is held (see
    :meth:`Testbed.send_held`) until the racer (and whatever races it) has gone through. A
    packet that ends before its hold (dropped, or taken earlier) has gone through too: the
    packets held before it are released then, as the model does."""
    tb.reset()
    for key, value in sysctls.items():
        tb.set_sysctl(key, value)
    for line in lines:
        tb.iptables(line)
    out: list[dict[str, Any] | None] = [None] * len(packets)
    held: list[tuple[int, _Held]] = []
    for i, (side, pkt, delay, _race) in enumerate(packets):
        if delay:
            time.sleep(delay)
        if i + 1 < len(packets) and packets[i + 1].race is not None:
            result = tb.send_held(side, pkt)
            if isinstance(result, _Held):
                held.append((i, result))
                continue
            out[i] = result
        else:
            out[i] = tb.send(side, pkt)
        if held:
            while held:
                j, h = held.pop()
                out[j] = tb.release(h)
            tb.flush_holds()
    return [o for o in out if o is not None]
