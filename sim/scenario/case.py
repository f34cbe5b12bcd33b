"""Crafted-packet case files: the schema shared by ``nflab replay`` (the model) and
``nflab kernel-check`` (the real kernel).

A case names a topology (four documentation addresses, plus any extra ``hosts``), host
sysctls, host iptables lines and the packets to send from the passive end hosts: TCP, UDP or
ICMP (the replay contract, version 2, in docs/contract.md). Everything is validated before
anything runs; a bad case raises :class:`CaseError` with one line naming the field.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import shlex
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from sim.errors import InputError
from sim.netfilter.profiles import DEFAULT_PROFILE
from sim.packet import (
    ICMP_ERROR_TYPES,
    ICMP_HEADER_LEN,
    ICMP_INVMAP,
    IP_HEADER_LEN,
    TCP_HEADER_LEN,
    UDP_HEADER_LEN,
    Packet,
    TcpOptions,
    icmp_packet,
    parse_flags,
    udp_packet,
)
from sim.scenario.fixes import fix_of, with_fix
from sim.scenario.loader import read_data
from sim.wire import MAX_TCP_OPTION_SPACE

IPTABLES_TABLES = ("raw", "mangle", "nat", "filter")
DOCUMENTATION_NETS = tuple(
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
)  # RFC 5737 TEST-NET-1/2/3
SYSCTL_PREFIXES = ("net.netfilter.", "net.ipv4.", "net.bridge.", "net.core.")


class CaseError(InputError):
    """A case file the harness refuses; the message is one line."""


def check_documentation_address(addr: str, what: str) -> str:
    """Refuse anything outside 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24."""
    problem = _address_problem(addr)
    if problem is not None:
        raise CaseError(f"{what}: {problem}")
    return addr


@functools.lru_cache(maxsize=256)
def _address_problem(addr: str) -> str | None:
    """Why ``addr`` is not a documentation address, None when it is one (remembered: a case
    names a handful of addresses, each in thousands of packets)."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return f"not an IP address: {addr!r}"
    if not any(ip in net for net in DOCUMENTATION_NETS):
        return f"{addr} is outside the documentation ranges (RFC 5737)"
    return None


# An extra host's name: ``ctr...`` behind docker0, ``remote...`` on the uplink (contract v2).
HOST_NAME = re.compile(r"(ctr|remote)[A-Za-z0-9_-]{1,8}")


@dataclass(frozen=True, slots=True)
class Topology:
    """The addresses of the docker-bridge world: the case file's ``topology`` (four addresses)
    and its extra end hosts ``hosts`` (name, address), in the file's order."""

    ctr_ip: str = "192.0.2.2"
    bridge_ip: str = "192.0.2.1"
    host_ip: str = "198.51.100.1"
    remote_ip: str = "198.51.100.2"
    hosts: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name in ("ctr_ip", "bridge_ip", "host_ip", "remote_ip"):
            check_documentation_address(getattr(self, name), f"topology.{name}")
        if len({self.ctr_ip, self.bridge_ip, self.host_ip, self.remote_ip}) != 4:
            raise CaseError("topology: the four addresses must differ")
        ip = ipaddress.IPv4Address
        if ip(self.ctr_ip) not in self.ctr_net:
            raise CaseError(f"topology: ctr_ip {self.ctr_ip} and bridge_ip {self.bridge_ip} must share a /24")
        if ip(self.host_ip) in self.ctr_net or ip(self.remote_ip) in self.ctr_net:
            raise CaseError("topology: host_ip and remote_ip must be outside the bridge's /24")
        taken = {self.ctr_ip, self.bridge_ip, self.host_ip, self.remote_ip}
        for name, addr in self.hosts:
            what = f"hosts.{name}"
            check_documentation_address(addr, what)
            net = self.ctr_net if name.startswith("ctr") else self.uplink_net
            if ip(addr) not in net or addr in (str(net.network_address), str(net.broadcast_address)):
                side = "docker0's" if name.startswith("ctr") else "the uplink's"
                raise CaseError(f"{what}: {addr} is not a host address in {side} subnet {net}")
            if addr in taken:
                raise CaseError(f"{what}: {addr} is already another host's address")
            taken.add(addr)

    @property
    def host_names(self) -> dict[str, str]:
        """Every end host a packet may come ``from``, with its address."""
        return {"ctr": self.ctr_ip, "remote": self.remote_ip, **dict(self.hosts)}

    @property
    def containers(self) -> tuple[tuple[str, str], ...]:
        return (("ctr", self.ctr_ip), *((n, a) for n, a in self.hosts if n.startswith("ctr")))

    @property
    def remotes(self) -> tuple[tuple[str, str], ...]:
        return (("remote", self.remote_ip), *((n, a) for n, a in self.hosts if n.startswith("remote")))

    @property
    def ctr_net(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{self.bridge_ip}/24", strict=False)

    @property
    def uplink_net(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{self.host_ip}/24", strict=False)

    @classmethod
    def from_dict(cls, d: object) -> Topology:
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise CaseError("topology must be an object")
        unknown = set(d) - {"ctr_ip", "bridge_ip", "host_ip", "remote_ip"}
        if unknown:
            raise CaseError(f"topology: unknown keys {sorted(unknown)}")
        if not all(isinstance(v, str) for v in d.values()):
            raise CaseError("topology: addresses must be strings")
        return cls(**d)

    def with_hosts(self, d: object) -> Topology:
        """The case's ``hosts`` object added: ``{"ctr2": "192.0.2.3", "remote2": ...}``."""
        if d is None:
            return self
        if not isinstance(d, dict):
            raise CaseError('hosts must be an object like {"ctr2": "192.0.2.3"}')
        for name, addr in d.items():
            if name in ("ctr", "remote") or not HOST_NAME.fullmatch(name):
                raise CaseError(
                    f"hosts.{name}: a name is ctr or remote followed by 1 to 8 letters, digits, - or _"
                    " (ctr and remote themselves are the topology's)"
                )
            if not isinstance(addr, str):
                raise CaseError(f"hosts.{name}: expected an address string, got {addr!r}")
        return Topology(self.ctr_ip, self.bridge_ip, self.host_ip, self.remote_ip, tuple(d.items()))


def check_sysctl(key: object, value: object) -> None:
    """Refuse sysctls outside the per-namespace net.* families the harness allows."""
    if not isinstance(key, str) or not key.startswith(SYSCTL_PREFIXES):
        raise CaseError(f"sysctl {key!r}: only {', '.join(p + '*' for p in SYSCTL_PREFIXES)} are allowed")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise CaseError(f"sysctl {key}: value must be an integer or a string")


def iptables_argv(line: str) -> tuple[list[str], str]:
    """Split one iptables command line like a shell would (no shell runs) -> (argv, table).
    The leading ``iptables`` is optional (the replay contract); argv always starts with it."""
    try:
        argv = shlex.split(line)
    except ValueError as e:
        raise CaseError(f"iptables line {line!r}: {e}") from None
    if not argv:
        raise CaseError("iptables line is empty")
    if argv[0] != "iptables":
        if not argv[0].startswith(("-", "!")):
            raise CaseError(f"iptables line {line!r}: expected iptables arguments, 'iptables' optional")
        argv.insert(0, "iptables")
    found = "filter"
    for i, arg in enumerate(argv):
        table = None
        if arg in ("-t", "--table"):
            table = argv[i + 1] if i + 1 < len(argv) else ""
        elif arg.startswith("--table="):
            table = arg.split("=", 1)[1]
        elif arg.startswith("-t") and len(arg) > 2 and not arg.startswith("--"):
            table = arg[2:]
        if table is not None and table not in IPTABLES_TABLES:
            raise CaseError(f"iptables line {line!r}: table must be one of {', '.join(IPTABLES_TABLES)}")
        if table is not None:
            found = table
    return argv, found


# ---------------------------------------------------------------- case files

CASE_KEYS = {"name", "kernel", "sysctl", "iptables", "topology", "hosts", "packets", "description"}
# "comment": free text for readers (how seq/ack were computed); the harness ignores it.
COMMON_KEYS = {"from", "proto", "src", "dst", "len", "delay", "race", "comment"}
PACKET_KEYS = {
    "tcp": COMMON_KEYS | {"flags", "seq", "ack", "win", "options"},
    "udp": COMMON_KEYS,
    "icmp": COMMON_KEYS | {"type", "code", "id", "seq", "inner"},
}
INNER_KEYS = {"proto", "src", "dst"}
OPTION_KEYS = {"mss", "wscale", "sack_perm", "sack", "ts"}
# The replay contract (DESIGN.md): "a delay after the previous packet (default 0.05)" seconds.
DEFAULT_DELAY_S = 0.05
MAX_DELAY_S = 600.0
IPV4_PACKET_LIMIT = 1500  # the contract: a payload fits in a 1500-byte IPv4 packet with its options
# An ICMP error quotes the offending packet's IP header and first 64 bits (RFC 792)
ICMP_QUOTE_LEN = IP_HEADER_LEN + 8


class Race(StrEnum):
    """A packet's ``race``: ``prev`` runs it while the previous packet is held before
    ``__nf_conntrack_confirm()`` (contract v2)."""

    PREV = "prev"


class CasePacket(NamedTuple):
    """One entry of a case's ``packets``: the end host it leaves, the packet, the delay after
    the previous one (seconds) and whether it races the previous packet's confirmation."""

    side: str
    pkt: Packet
    delay: float
    race: Race | None = None


def strip_comments(value: object) -> object:
    """The case without its comments: keys starting with ``_`` are dropped at every level."""
    if isinstance(value, dict):
        return {k: strip_comments(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list):
        return [strip_comments(v) for v in value]
    return value


def max_payload(options: TcpOptions) -> int:
    """Payload bytes that fit in a 1500-byte IPv4 packet (no IP options) with these TCP options."""
    return IPV4_PACKET_LIMIT - IP_HEADER_LEN - TCP_HEADER_LEN - options.wire_length()


def _endpoint(text: object, what: str) -> tuple[str, int]:
    if not isinstance(text, str) or text.count(":") != 1:
        raise CaseError(f"{what}: expected 'ip:port', got {text!r}")
    addr, port = text.split(":")
    if not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 0xFFFF:
        raise CaseError(f"{what}: bad port in {text!r}")
    return check_documentation_address(addr, what), int(port)


def _address(text: object, what: str) -> str:
    if not isinstance(text, str) or ":" in text:
        raise CaseError(f"{what}: expected an address without a port, got {text!r}")
    return check_documentation_address(text, what)


def _int(d: dict[str, Any], key: str, what: str, default: int, hi: int) -> int:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
        raise CaseError(f"{what}.{key}: expected an integer in 0..{hi}, got {v!r}")
    return v


def _options(d: object, what: str) -> TcpOptions:
    if d is None:
        return TcpOptions()
    if not isinstance(d, dict):
        raise CaseError(f"{what}: expected an object, got {d!r}")
    unknown = set(d) - OPTION_KEYS
    if unknown:
        raise CaseError(f"{what}: unknown keys {sorted(unknown)}")
    mss = None if d.get("mss") is None else _int(d, "mss", what, 0, 0xFFFF)
    wscale = None if d.get("wscale") is None else _int(d, "wscale", what, 0, 0xFF)
    sack_perm = d.get("sack_perm", False)
    if not isinstance(sack_perm, bool):
        raise CaseError(f"{what}.sack_perm: expected true or false")
    sack: list[tuple[int, int]] = []
    blocks = d.get("sack") or []
    if not isinstance(blocks, list | tuple):
        raise CaseError(f"{what}.sack: expected a list of [left, right] pairs, got {blocks!r}")
    for block in blocks:
        if not (isinstance(block, list | tuple) and len(block) == 2):
            raise CaseError(f"{what}.sack: blocks must be [left, right] pairs")
        pair = dict(zip(("left", "right"), block, strict=True))
        sack.append(
            (
                _int(pair, "left", f"{what}.sack", 0, 0xFFFFFFFF),
                _int(pair, "right", f"{what}.sack", 0, 0xFFFFFFFF),
            )
        )
    ts: tuple[int, int] | None = None
    if d.get("ts") is not None:
        raw = d["ts"]
        if not (isinstance(raw, list | tuple) and len(raw) == 2):
            raise CaseError(f"{what}.ts: expected [value, echo_reply]")
        pair = dict(zip(("val", "ecr"), raw, strict=True))
        ts = (_int(pair, "val", f"{what}.ts", 0, 0xFFFFFFFF), _int(pair, "ecr", f"{what}.ts", 0, 0xFFFFFFFF))
    opts = TcpOptions(mss=mss, wscale=wscale, sack_perm=sack_perm, sack=tuple(sack), ts=ts)
    if opts.wire_length() > MAX_TCP_OPTION_SPACE:
        raise CaseError(f"{what}: options need {opts.wire_length()} bytes, more than 40")
    return opts


def options_json(opts: TcpOptions) -> dict[str, Any] | None:
    """TcpOptions -> a case packet's ``options`` object (None when there are none): the inverse
    of what :func:`packet_from_case` reads."""
    out: dict[str, Any] = {}
    if opts.mss is not None:
        out["mss"] = opts.mss
    if opts.wscale is not None:
        out["wscale"] = opts.wscale
    if opts.sack_perm:
        out["sack_perm"] = True
    if opts.sack:
        out["sack"] = [[left, right] for left, right in opts.sack]
    if opts.ts is not None:
        out["ts"] = [opts.ts[0], opts.ts[1]]
    return out or None


def _tcp(d: dict[str, Any], what: str) -> Packet:
    src, sport = _endpoint(d.get("src"), f"{what}.src")
    dst, dport = _endpoint(d.get("dst"), f"{what}.dst")
    flags_text = d.get("flags", "")
    if not isinstance(flags_text, str):
        raise CaseError(f"{what}.flags: expected letters like 'SA'")
    try:
        flags = parse_flags(flags_text)
    except ValueError as e:
        raise CaseError(f"{what}.flags: {e}") from None
    options = _options(d.get("options"), f"{what}.options")
    return Packet(
        src=src,
        dst=dst,
        sport=sport,
        dport=dport,
        seq=_int(d, "seq", what, 0, 0xFFFFFFFF),
        ack=_int(d, "ack", what, 0, 0xFFFFFFFF),
        flags=flags,
        window=_int(d, "win", what, 0, 0xFFFF),
        payload_len=_int(d, "len", what, 0, max_payload(options)),
        options=options,
    )


def _udp(d: dict[str, Any], what: str) -> Packet:
    src, sport = _endpoint(d.get("src"), f"{what}.src")
    dst, dport = _endpoint(d.get("dst"), f"{what}.dst")
    length = _int(d, "len", what, 0, IPV4_PACKET_LIMIT - IP_HEADER_LEN - UDP_HEADER_LEN)
    return udp_packet(src, sport, dst, dport, length)


def _inner(d: object, what: str) -> Packet:
    """An ICMP error's quoted packet: ``{"proto": "tcp"|"udp", "src": "ip:port", "dst": ...}``."""
    if not isinstance(d, dict):
        raise CaseError(f"{what}: expected an object {{proto, src, dst}}, got {d!r}")
    unknown = set(d) - INNER_KEYS
    if unknown:
        raise CaseError(f"{what}: unknown keys {sorted(unknown)}")
    if d.get("proto") not in ("tcp", "udp"):
        raise CaseError(f"{what}.proto: expected 'tcp' or 'udp', got {d.get('proto')!r}")
    src, sport = _endpoint(d.get("src"), f"{what}.src")
    dst, dport = _endpoint(d.get("dst"), f"{what}.dst")
    if d["proto"] == "udp":
        return udp_packet(src, sport, dst, dport)
    return Packet(src, dst, sport, dport)


def _icmp(d: dict[str, Any], what: str) -> Packet:
    src = _address(d.get("src"), f"{what}.src")
    dst = _address(d.get("dst"), f"{what}.dst")
    if "type" not in d:
        raise CaseError(f"{what}.type: an ICMP packet needs its type (0..255)")
    icmp_type = _int(d, "type", what, 0, 0xFF)
    code = _int(d, "code", what, 0, 0xFF)
    error = icmp_type in ICMP_ERROR_TYPES
    if error and "inner" not in d:
        raise CaseError(f"{what}.inner: ICMP type {icmp_type} is an error and needs the packet it quotes")
    if not error and "inner" in d:
        raise CaseError(f"{what}.inner: only an error (type 3, 4, 5, 11, 12) quotes a packet")
    if icmp_type not in ICMP_INVMAP:
        for key in ("id", "seq"):
            if key in d:
                raise CaseError(f"{what}.{key}: only echo and the other queries (types 0, 8, 13-18) have it")
    inner = _inner(d["inner"], f"{what}.inner") if error else None
    room = IPV4_PACKET_LIMIT - IP_HEADER_LEN - ICMP_HEADER_LEN - (ICMP_QUOTE_LEN if error else 0)
    return icmp_packet(
        src,
        dst,
        icmp_type,
        code,
        ident=_int(d, "id", what, 0, 0xFFFF),
        seq=_int(d, "seq", what, 0, 0xFFFF),
        payload_len=_int(d, "len", what, 0, room),
        inner=inner,
    )


def packet_from_case(d: object, index: int, hosts: dict[str, str] | None = None) -> CasePacket:
    """One entry of a case's ``packets`` -> (from, Packet, delay in seconds, race). ``hosts``
    are the end hosts ``from`` may name (default: ``ctr`` and ``remote``)."""
    what = f"packets[{index}]"
    if not isinstance(d, dict):
        raise CaseError(f"{what}: must be an object")
    proto = d.get("proto", "tcp")
    if proto not in PACKET_KEYS:
        raise CaseError(f"{what}.proto: expected 'tcp', 'udp' or 'icmp', got {proto!r}")
    unknown = set(d) - PACKET_KEYS[proto]
    if unknown:
        only = " (TCP-only fields on a non-TCP packet?)" if unknown & PACKET_KEYS["tcp"] else ""
        raise CaseError(f"{what}: unknown keys {sorted(unknown)} for proto {proto}{only}")
    names = hosts or {"ctr": "", "remote": ""}
    side = d.get("from")
    if not isinstance(side, str) or side not in names:
        raise CaseError(f"{what}.from: expected one of {', '.join(repr(n) for n in names)}, got {side!r}")
    delay = d.get("delay", DEFAULT_DELAY_S)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_DELAY_S:
        raise CaseError(f"{what}.delay: expected seconds in 0..{MAX_DELAY_S:.0f}, got {delay!r}")
    race = None
    if "race" in d:
        if d["race"] != Race.PREV:
            raise CaseError(f"{what}.race: expected 'prev', got {d['race']!r}")
        if index == 0:
            raise CaseError(f"{what}.race: the first packet has no previous packet to race")
        race = Race.PREV
    pkt = {"tcp": _tcp, "udp": _udp, "icmp": _icmp}[proto](d, what)
    return CasePacket(side, pkt, float(delay), race)


def parse_case(case: object) -> tuple[Topology, dict[str, Any], list[str], list[CasePacket]]:
    """Validate a case (the JSON schema shared with ``nflab replay``) before touching the kernel."""
    topology, sysctls, lines = parse_head(case)
    assert isinstance(case, dict)  # parse_head refuses anything else
    packets = case.get("packets")
    if not isinstance(packets, list) or not packets:
        raise CaseError("case.packets must be a non-empty list")
    hosts = topology.host_names
    checked = [packet_from_case(strip_comments(p), i, hosts) for i, p in enumerate(packets)]
    return topology, sysctls, lines, checked


def parse_head(case: object) -> tuple[Topology, dict[str, Any], list[str]]:
    """Validate everything of a case but its packets: the topology with its extra hosts, the
    host sysctls and the host iptables lines."""
    if not isinstance(case, dict):
        raise CaseError("a case must be a JSON object")
    case = {k: strip_comments(v) for k, v in case.items() if k != "packets" and not str(k).startswith("_")}
    for key in ("name", "description", "kernel"):
        if key in case and not isinstance(case[key], str):
            hint = ' like "6.1" or a `uname -r` release' if key == "kernel" else ""
            raise CaseError(f"case.{key}: expected a string{hint}, got {case[key]!r}")
    unknown = set(case) - CASE_KEYS
    if unknown:
        raise CaseError(f"case: unknown keys {sorted(unknown)}")
    topology = Topology.from_dict(case.get("topology")).with_hosts(case.get("hosts"))
    sysctls = case.get("sysctl") or {}
    if not isinstance(sysctls, dict):
        raise CaseError("case.sysctl must be an object of host sysctls")
    ipt = case.get("iptables") or {}
    if not isinstance(ipt, dict) or set(ipt) - {"host"}:
        raise CaseError('case.iptables must be {"host": [lines]}: rules go in the host namespace only')
    lines = ipt.get("host") or []
    if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
        raise CaseError("case.iptables.host must be a list of strings")
    for key, value in sysctls.items():
        check_sysctl(key, value)
    for line in lines:
        iptables_argv(line)
    return topology, sysctls, lines


def load_case_file(path: str | Path) -> dict[str, Any]:
    """Read a case from JSON (or TOML with the same schema) and validate it; CaseError names
    the file, and the line for syntax errors."""
    case = read_data(path, "json", CaseError)
    if isinstance(case, dict) and "upload" in case and "packets" not in case:
        raise CaseError(f"{path}: this is a scenario file: use nflab run {path}")
    try:
        parse_case(case)
    except CaseError as e:
        raise CaseError(f"{path}: {e}") from None
    assert isinstance(case, dict)  # parse_case refuses anything else
    return case


@dataclass(frozen=True, slots=True)
class Case:
    """A crafted-packet case as its file writes it (the replay contract): ``data`` is the JSON
    object. :func:`load_case` gives one checked; the ``with_*`` methods give changed copies."""

    data: dict[str, Any]

    @property
    def name(self) -> str | None:
        name = self.data.get("name")
        return str(name) if name is not None else None

    @property
    def kernel(self) -> str:
        """The kernel the case names (a profile or a release), else the default profile."""
        return str(self.data.get("kernel", DEFAULT_PROFILE))

    @property
    def host_rules(self) -> list[str]:
        return list((self.data.get("iptables") or {}).get("host") or [])

    @property
    def fix(self) -> str:
        """Which of the fixes the case carries (``none`` when neither)."""
        return fix_of(self.data.get("sysctl") or {}, self.host_rules)

    def with_kernel(self, kernel: str) -> Case:
        return Case({**self.data, "kernel": kernel})

    def with_fix(self, fix: str) -> Case:
        """The case with exactly ``fix`` (``none``, ``drop-invalid``, ``be-liberal``) applied the
        way a user would: the INVALID DROP rule appended to the host's INPUT chain, or the
        sysctl set; the other fix taken out. Every other key, sysctl and rule (of every
        namespace) is kept. ValueError (one line) for an unknown fix."""
        sysctl, rules = with_fix(dict(self.data.get("sysctl") or {}), self.host_rules, fix)
        tables = {k: v for k, v in (self.data.get("iptables") or {}).items() if k != "host"}
        if rules:
            tables["host"] = rules
        out = {k: v for k, v in self.data.items() if k not in ("sysctl", "iptables")}
        if sysctl:
            out["sysctl"] = sysctl
        if tables:
            out["iptables"] = tables
        return Case(out)


def load_case(ref: str | Path) -> Case:
    """A built-in case name or a case file (JSON, or TOML with the same schema), checked;
    CaseError (an InputError) names the file and the place."""
    from sim.scenario.loader import find_case

    return Case(load_case_file(find_case(str(ref))))
