"""Real UDP, ICMP, DNS and port-clash traffic through a MASQUERADE host, captured with the
kernel's own ctstate of every packet (``nflab pcap``'s UDP/ICMP and signature test data).

The namespaces of :mod:`sim.kernel.upload` (ctr 192.0.2.2 behind the host's Docker ruleset,
MASQUERADE to 198.51.100.1; remote 198.51.100.2) plus a second container ``ctrb``
(192.0.2.7) on the same bridge. The host logs every packet conntrack has seen to an NFLOG
group per ctstate (mangle PREROUTING and OUTPUT, after conntrack): ``tcpdump -i nflog:N``
on each group is the kernel's verdict, packet by packet. Captures: the host's uplink, the
host's ``-i any`` (Linux cooked v2), each container's eth0, and the four NFLOG groups.

The traffic, in order (each step waits for the last one's packets):

1. UDP: ctr 192.0.2.2:42000 sends two datagrams to an echo socket on remote:7, answered;
2. ICMP: ctr sends remote two echo requests (id 0x4242), answered;
3. UDP to a closed port (remote:9): remote answers with ICMP port unreachable (RELATED);
4. remote sends the host an ICMP port unreachable quoting a flow that never existed, and an
   echo reply nobody asked for (both INVALID), and a UDP datagram whose length field claims
   more than it carries (``udp_error``: INVALID);
5. pod-ip-leak: ctr opens a TCP connection to remote:443, then sends a FIN whose sequence
   number lies 2**30 past the window: INVALID, so MASQUERADE skips it and it leaves the
   uplink with the source 192.0.2.2;
6. dns-race's pattern: ctr resolves a name with glibc (``getaddrinfo``; resolv.conf and
   nsswitch.conf bind-mounted in a private mount namespace: the nameserver is remote) while
   remote's server leaves the first A query unanswered -- the lost query of the race,
   emulated at the server, since two CPUs racing to confirmation cannot be scheduled here;
7. snat-port-clash: ctr and ctrb connect from source port 39000 to remote:443; both SYNs
   are held in NFQUEUE after NAT and before confirmation (an nft chain at postrouting
   priority 200, as the v2 harness holds races) and released the later one first, so ctr's
   clashes at ``__nf_conntrack_confirm`` (insert_failed) and ctr retransmits its SYN;
8. dns-race as the host's uplink sees it: ctr resolves again while a host rule in FORWARD
   (``-m string``, the A question's last bytes) drops the first A query, after conntrack
   and before it leaves -- where the race's loser is dropped -- so the uplink shows only the
   AAAA query, its answer, and the A query 5 s later.

Only documentation addresses, only namespaces of :class:`sim.kernel.netns.NamespaceSet`,
removed afterwards also on failure; nothing leaves them.
"""

from __future__ import annotations

import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sim.kernel.netns import NamespaceSet, NetnsError, in_netns
from sim.kernel.nfqueue import HoldQueue
from sim.kernel.rulesets import BRIDGE, END_DEV, UPLINK
from sim.kernel.upload import Upload, _build, _stop, _tcpdump
from sim.packet import TCPHDR_ACK, TCPHDR_FIN, IcmpType, Packet, icmp_error_reply, icmp_packet, udp_packet
from sim.wire import emit, parse

CTRB_IP = "192.0.2.7"
ECHO_PORT = 7
CLOSED_PORT = 9
TCP_PORT = 443
CLASH_PORT = 39000
DNS_NAME = "www.nflab.example"
DNS_ANSWER = "203.0.113.5"
HOLD_QUEUE = 9
STATES = {1: "new", 2: "established", 3: "related", 4: "invalid"}
STEP_S = 0.3
A_QUESTION_END = "|0000010001|"  # a question's root label, QTYPE A, QCLASS IN (RFC 1035 4.1.2)
NFLOG_FLUSH_S = 2.0  # nfnetlink_log sends a batch after nflog_qtimeout (1 s) at the latest
ETH_P_ALL = 0x0003


def _host_rules(ns: NamespaceSet) -> None:
    host = ns["host"]
    for chain in ("PREROUTING", "OUTPUT"):
        for group, state in STATES.items():
            ns.exec(
                host,
                ["iptables", "-t", "mangle", "-A", chain, "-m", "conntrack", "--ctstate", state.upper(),
                 "-j", "NFLOG", "--nflog-group", str(group)],
            )  # fmt: skip


def _add_ctrb(ns: NamespaceSet) -> None:
    host, ctrb = ns["host"], ns["ctrb"]
    ns.ip(host, "link", "add", "veth1", "type", "veth", "peer", "name", END_DEV, "netns", ctrb)
    ns.ip(host, "link", "set", "veth1", "mtu", "1400", "gso_max_segs", "1", "master", BRIDGE, "up")
    ns.ip(ctrb, "link", "set", END_DEV, "mtu", "1400", "gso_max_segs", "1", "up")
    ns.ip(ctrb, "addr", "add", f"{CTRB_IP}/24", "dev", END_DEV)
    ns.ip(ctrb, "route", "add", "default", "via", Upload().topology.bridge_ip)


def _dump(ns: NamespaceSet, role: str, path: Path, iface: list[str]) -> subprocess.Popen[bytes]:
    """``tcpdump IFACE -w PATH`` in ``role``'s namespace (see :func:`sim.kernel.upload._tcpdump`)."""
    return _tcpdump(ns, ns[role], path, 1500, iface=iface, expr="")


def _dns_answer(query: bytes) -> bytes | None:
    """A's answer (or AAAA's NOERROR without records) for the question in ``query``."""
    if len(query) < 12:
        return None
    ident, _flags, qdcount = struct.unpack_from("!HHH", query)
    end = 12
    while end < len(query) and query[end]:
        end += 1 + query[end]
    question = query[12 : end + 5]
    if qdcount != 1 or len(question) < 5:
        return None
    (qtype,) = struct.unpack_from("!H", question, len(question) - 4)
    answers = b""
    if qtype == 1:
        addr = bytes(int(x) for x in DNS_ANSWER.split("."))
        answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + addr
    header = struct.pack("!HHHHHH", ident, 0x8180, 1, 1 if answers else 0, 0, 0)
    return header + question + answers


class _DnsServer:
    """remote's name server: answers every query but the first A one (the lost query)."""

    def __init__(self, ns: NamespaceSet, ip: str) -> None:
        with in_netns(ns["remote"]):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 53))
        self.lost_a = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            if not select.select([self.sock], [], [], 0.1)[0]:
                continue
            query, peer = self.sock.recvfrom(512)
            answer = _dns_answer(query)
            is_a = answer is not None and answer[7] == 1
            if answer is None or (is_a and not self.lost_a):
                self.lost_a = self.lost_a or is_a
                continue
            self.sock.sendto(answer, peer)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def _first_rule_hits(ns: NamespaceSet, chain: str) -> int:
    """The packet count of the first rule of the host's ``chain`` (filter)."""
    return int(ns.exec(ns["host"], ["iptables", "-L", chain, "1", "-v", "-x", "-n"]).split()[0])


def _resolve(ns: NamespaceSet, server: str, drop_once: list[str] | None = None) -> str:
    """glibc's getaddrinfo in ctr (AF_UNSPEC without AI_ADDRCONFIG: the A and AAAA queries
    at once), with ``server`` as its only name server."""
    with tempfile.TemporaryDirectory(prefix="nflab-dns-") as tmp:
        resolv, nss = Path(tmp, "resolv.conf"), Path(tmp, "nsswitch.conf")
        resolv.write_text(f"nameserver {server}\noptions timeout:5 attempts:2\n")
        nss.write_text("hosts: dns\n")
        script = (
            f"mount --bind {resolv} /etc/resolv.conf && mount --bind {nss} /etc/nsswitch.conf && "
            f"exec nsenter --net=/run/netns/{ns['ctr']} {sys.executable} -c "
            f"'import socket; print(socket.getaddrinfo(\"{DNS_NAME}\", 53, 0, socket.SOCK_DGRAM))'"
        )
        proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        if drop_once is not None:  # the rule goes once the first A query has hit it
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline and not _first_rule_hits(ns, "FORWARD"):
                time.sleep(0.01)
            ns.exec(ns["host"], ["iptables", "-D", *drop_once])
        out, _ = proc.communicate(timeout=30)
    return out


def udp_exchange(client: socket.socket, echo: socket.socket, ctr_ip: str, remote_ip: str) -> None:
    """Two requests from ``ctr_ip``:42000 to the echo socket, each answered: a UDP flow the
    host's conntrack sees both ways (ASSURED on the second exchange)."""
    client.bind((ctr_ip, 42000))
    client.settimeout(2)
    for word in (b"one", b"two"):
        client.sendto(word, (remote_ip, ECHO_PORT))
        data, peer = echo.recvfrom(64)
        echo.sendto(data, peer)
        client.recv(64)


def _raw_send(ns: NamespaceSet, role: str, pkts: list[bytes]) -> None:
    with in_netns(ns[role]):
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    with raw:
        for data in pkts:
            raw.sendto(data, (socket.inet_ntoa(data[16:20]), 0))
            time.sleep(0.05)


def _latest_out(sniff: socket.socket, src: str) -> Packet:
    """The newest TCP segment ``src`` sent, from a packet socket on its eth0."""
    latest = None
    sniff.setblocking(False)
    while True:
        try:
            data, addr = sniff.recvfrom(65536)
        except BlockingIOError:
            break
        if addr[2] == socket.PACKET_OUTGOING and addr[1] == 0x0800 and data[9] == 6:
            p = parse(data)
            if p.src == src and p.dport == TCP_PORT:
                latest = p
    if latest is None:
        raise NetnsError("no TCP segment of ctr seen")
    return latest


def _leak(ns: NamespaceSet, ctr_ip: str, remote_ip: str, listener: socket.socket) -> None:
    """Step 5: a connection, then ctr's FIN 2**30 past the window (raw, from ctr)."""
    with in_netns(ns["ctr"]):
        sniff = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sniff, client:
        sniff.bind((END_DEV, ETH_P_ALL))
        client.settimeout(5)
        client.bind((ctr_ip, 40000))
        client.connect((remote_ip, TCP_PORT))
        conn, _ = listener.accept()
        client.sendall(b"hello")
        conn.recv(16)
        time.sleep(STEP_S)
        p = _latest_out(sniff, ctr_ip)
        late = Packet(p.src, p.dst, p.sport, p.dport, (p.seq + (1 << 30)) & 0xFFFFFFFF, p.ack,
                      TCPHDR_FIN | TCPHDR_ACK, p.window, 0)  # fmt: skip
        _raw_send(ns, "ctr", [emit(late)])
        time.sleep(STEP_S)
        client.close()
        conn.close()


def _clash(ns: NamespaceSet, remote_ip: str, listener: socket.socket) -> None:
    """Step 7: both SYNs held after NAT, the later released first; the rest released at once."""
    host = ns["host"]
    ns.exec(host, ["iptables", "-t", "mangle", "-N", "NFLAB_HOLD"])
    ns.exec(
        host,
        ["iptables", "-t", "mangle", "-A", "NFLAB_HOLD", "-j", "NFQUEUE", "--queue-num", str(HOLD_QUEUE)],
    )
    ns.exec(
        host,
        ["nft", "-f", "-"],
        input_text="add chain ip mangle nflab_hold { type filter hook postrouting priority 200; }\n"
        f"add rule ip mangle nflab_hold tcp dport {TCP_PORT} tcp flags syn jump NFLAB_HOLD\n",
    )
    with in_netns(host):
        hold = HoldQueue(HOLD_QUEUE)
    clients = []
    for role, ip in (("ctr", Upload().topology.ctr_ip), ("ctrb", CTRB_IP)):
        with in_netns(ns[role]):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.bind((ip, CLASH_PORT))
        c.setblocking(False)
        clients.append(c)
    try:
        held: list[int] = []
        for c in clients:
            c.connect_ex((remote_ip, TCP_PORT))
            deadline = time.monotonic() + 2
            while len(held) < len(clients) and time.monotonic() < deadline:
                got = hold.take()
                held += [pid for pid, _ in got]
                if len(held) >= clients.index(c) + 1:
                    break
                time.sleep(0.01)
        if len(held) != 2:
            raise NetnsError(f"held {len(held)} SYNs, expected 2")
        hold.release(held[1])  # ctrb's SYN confirms first
        hold.release(held[0])  # ctr's clashes: insert_failed, dropped
        deadline = time.monotonic() + 4  # ctr's retransmission (1 s), released as it comes
        accepted = 0
        while time.monotonic() < deadline and accepted < 2:
            for pid, _ in hold.take():
                hold.release(pid)
            listener.settimeout(0.05)
            try:
                conn, _ = listener.accept()
                conn.close()
                accepted += 1
            except TimeoutError:
                pass
        time.sleep(STEP_S)
    finally:
        for c in clients:
            c.close()
        hold.close()


def run_datagrams(out: Path, prefix: str = "dg") -> dict[str, str]:
    """Make the traffic and write the captures into ``out``; returns what the resolver printed
    and the host's ``conntrack -S`` (for the README)."""
    up = Upload()
    t = up.topology
    files = {
        "uplink": (out / f"{prefix}-uplink.pcap", "host", ["-i", UPLINK]),
        "any": (out / f"{prefix}-any.pcap", "host", ["-i", "any", "-y", "LINUX_SLL2"]),
        "ctr": (out / f"{prefix}-ctr.pcap", "ctr", ["-i", END_DEV]),
        "ctrb": (out / f"{prefix}-ctrb.pcap", "ctrb", ["-i", END_DEV]),
        **{
            f"nflog-{state}": (out / f"{prefix}-nflog-{state}.pcap", "host", ["-i", f"nflog:{group}"])
            for group, state in STATES.items()
        },
    }
    report: dict[str, str] = {}
    with NamespaceSet(("ctr", "ctrb", "host", "remote")) as ns:
        _build(ns, up)
        _add_ctrb(ns)
        _host_rules(ns)
        dumps = []
        with in_netns(ns["remote"]):
            echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with in_netns(ns["ctr"]):
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dns: _DnsServer | None = None
        try:
            echo.bind((t.remote_ip, ECHO_PORT))
            listener.bind((t.remote_ip, TCP_PORT))
            listener.listen(4)
            for path, role, iface in files.values():
                dumps.append(_dump(ns, role, path, iface))
            time.sleep(STEP_S)
            # 1. UDP request and answer
            udp_exchange(client, echo, t.ctr_ip, t.remote_ip)
            time.sleep(STEP_S)
            # 2. echo request and reply
            echoes = [icmp_packet(t.ctr_ip, t.remote_ip, IcmpType.ECHO, 0, 0x4242, n, 16) for n in (1, 2)]
            _raw_send(ns, "ctr", [emit(p) for p in echoes])
            time.sleep(STEP_S)
            # 3. a closed port: ICMP port unreachable, RELATED
            client.sendto(b"nobody", (t.remote_ip, CLOSED_PORT))
            time.sleep(STEP_S)
            # 4. INVALID: an error about no flow, an unasked echo reply, a malformed datagram
            ghost = udp_packet(t.host_ip, 4444, t.remote_ip, 9999, 4)
            bad_len = bytearray(emit(udp_packet(t.remote_ip, 5000, t.host_ip, 6000, 10)))
            struct.pack_into("!HH", bad_len, 24, 200, 0)  # UDP length 200 of 18 bytes; no checksum
            _raw_send(
                ns,
                "remote",
                [
                    emit(icmp_error_reply(ghost, IcmpType.DEST_UNREACH, 3, t.remote_ip)),
                    emit(icmp_packet(t.remote_ip, t.host_ip, IcmpType.ECHOREPLY, 0, 777, 1, 8)),
                    bytes(bad_len),
                ],
            )
            time.sleep(STEP_S)
            # 5. pod-ip-leak
            _leak(ns, t.ctr_ip, t.remote_ip, listener)
            # 6. dns-race's pattern
            dns = _DnsServer(ns, t.remote_ip)
            report["resolver"] = _resolve(ns, t.remote_ip)
            time.sleep(STEP_S)
            # 7. snat-port-clash
            _clash(ns, t.remote_ip, listener)
            # 8. dns-race as the uplink sees it: the host drops the next A query before it leaves
            drop_a = ["FORWARD", "-p", "udp", "--dport", "53", "-m", "string", "--algo", "bm",
                      "--hex-string", A_QUESTION_END, "-j", "DROP"]  # fmt: skip
            ns.exec(ns["host"], ["iptables", "-I", *drop_a])
            report["resolver, the A query dropped once"] = _resolve(ns, t.remote_ip, drop_once=drop_a)
            time.sleep(STEP_S)
            report["conntrack -S"] = ns.exec(ns["host"], ["conntrack", "-S"])
            time.sleep(NFLOG_FLUSH_S)
        finally:
            if dns is not None:
                dns.close()
            for sock in (echo, listener, client):
                sock.close()
            for proc in dumps:
                _stop(proc)
    return report


def main() -> None:  # pragma: no cover - a developer's entry point: python -m sim.kernel.datagrams
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    for key, text in run_datagrams(out).items():
        print(f"{key}:\n{text}")


if __name__ == "__main__":  # pragma: no cover
    main()
