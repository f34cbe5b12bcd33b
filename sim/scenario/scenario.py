"""Scenario files: the docker-bridge world, a kernel profile, host sysctls and rules, an
upload, and the triggers that make a reply segment fall out of conntrack's window.

A scenario is TOML (JSON with the same keys is accepted). Built-in scenarios live in
``sim/scenario/scenarios/``; ``nflab run NAME|FILE`` runs one. Schema (every key optional but
``upload``)::

    name, description, kernel (a profile such as "el7" or "6.18", or what ``uname -r`` prints),
    seed, duration (virtual seconds)
    [topology] containers, bridge_ip, bridge_prefix, host_ip, host_prefix, remote_ip, link_delay
    [sysctl] host sysctls ("net.netfilter.nf_conntrack_tcp_be_liberal" = 1, ...)
    [iptables] host = ["iptables -A INPUT ...", ...]
    [upload] from, sport, dport, bytes, timestamps (TCP timestamps on both ends; default true)
    [remote] rst = "any" | "rfc5961"; unknown = "drop" | "rst"
    [[trigger]] kind = "late-ack", after_bytes, hold        (the article's trigger)
    [[trigger]] kind = "beyond-window", after_bytes, offset (still fires on 6.1)
    [[trigger]] kind = "conntrack", after_bytes, command    (e.g. "-F" or "-D -s 192.0.2.2":
                                                            conntrack run on the host)

``[remote]`` says how the far end treats the host's RST. The article's remote tore the
connection down although that RST's seq lay below its rcv_nxt, which no RFC 793 or RFC 5961
stack does; so the seed scenario models the remote as a service behind a stateful middlebox
that accepts any RST for the connection and silently drops segments of connections it no
longer knows (``rst = "any"``, ``unknown = "drop"``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sim.errors import InputError
from sim.net.endpoint import EndpointOptions, EndpointState, Role, TcpEndpoint
from sim.net.world import World
from sim.netfilter import conntrack_tool
from sim.netfilter.profiles import DEFAULT_PROFILE, resolve_kernel
from sim.packet import SEQ_MASK, TCPHDR_ACK, TCPHDR_RST, Packet
from sim.scenario.case import CaseError, check_sysctl
from sim.scenario.fixes import fix_of, get_fix, with_fix
from sim.scenario.host import configure_host
from sim.scenario.loader import builtin_scenario_text, builtin_scenarios, parse_text, read_data
from sim.scenario.story import Story, parse_story
from sim.topology.docker_bridge import DockerBridge, container_name, docker_bridge
from sim.topology.roles import NsRole
from sim.trace import Step

TOP_KEYS = {
    "name",
    "description",
    "kernel",
    "seed",
    "duration",
    "topology",
    "sysctl",
    "iptables",
    "upload",
    "remote",
    "trigger",
}


class ScenarioError(InputError):
    """A scenario file nflab refuses; the message is one line naming the file and key."""


@dataclass(frozen=True, slots=True)
class Trigger:
    kind: str  # "late-ack", "beyond-window" or "conntrack"
    after_bytes: int
    hold: float = 0.0  # late-ack: how long the link holds the ACK back
    offset: int = 0  # beyond-window: how far past the remote's snd_nxt the segment starts
    command: str = ""  # conntrack: the conntrack command line run on the host


@dataclass(slots=True)
class Scenario:
    name: str
    description: str
    kernel: str
    seed: int
    duration: float
    topology: DockerBridge
    sysctl: dict[str, Any]
    rules: list[str]
    upload_from: str
    sport: int
    dport: int
    upload_bytes: int
    timestamps: bool
    remote_rst: str
    remote_unknown: str
    triggers: list[Trigger] = field(default_factory=list)
    source: str = ""  # the file (or built-in name) it was read from, for error messages

    def with_fix(self, fix: str) -> Scenario:
        """A copy with exactly ``fix`` (``none``, ``drop-invalid``, ``be-liberal``, ...), the
        others taken out, as :meth:`sim.scenario.case.Case.with_fix` does for a case; a fix
        that changes a story's workload is refused."""
        try:
            chosen = get_fix(fix)
            if chosen.resolver or chosen.conntrack:
                raise ValueError(f"{fix} changes a story's workload; this scenario is an upload")
            sysctl, rules = with_fix(self.sysctl, self.rules, fix)
        except ValueError as e:
            raise ScenarioError(f"--fix: {e}") from None
        return replace(self, sysctl=sysctl, rules=rules)

    @property
    def fix(self) -> str:
        """The fix this scenario's host configuration carries (``none`` without one)."""
        return fix_of(self.sysctl, self.rules)

    def with_kernel(self, kernel: str) -> Scenario:
        """A copy run on another kernel profile."""
        return replace(self, kernel=kernel, topology=replace(self.topology, kernel=kernel))


_KIND_NAMES = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}
MAX_UPLOAD_BYTES = 100_000_000  # every segment is simulated: about 70,000 segments of 1448 bytes
MAX_DURATION_S = 86_400.0
MAX_LINK_DELAY_S = 10.0
MAX_HOLD_S = 600.0
MAX_CONTAINERS = 250  # container MACs and veth names are numbered in one byte


class _Reader:
    """Typed, range-checked access to one table of a scenario; errors name file and key."""

    def __init__(self, data: dict[str, Any], source: str, section: str = "") -> None:
        self.data, self.source, self.section = data, source, section

    def where(self, key: str) -> str:
        return f"{self.source}: {self.section}{'.' if self.section else ''}{key}"

    def error(self, key: str, message: str) -> ScenarioError:
        return ScenarioError(f"{self.where(key)}: {message}")

    def check_keys(self, allowed: set[str]) -> None:
        unknown = set(self.data) - allowed
        if unknown:
            where = f"{self.section}: " if self.section else ""
            raise ScenarioError(f"{self.source}: {where}unknown keys {sorted(unknown)}")

    def get(self, key: str, kind: type, default: Any) -> Any:
        if key not in self.data:
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) is not (kind is bool) or not isinstance(value, kind):
            raise self.error(key, f"expected {_KIND_NAMES[kind]}, got {value!r}")
        return value

    def number(self, key: str, kind: type, default: Any, lo: float, hi: float) -> Any:
        value = self.get(key, kind, default)
        if not lo <= value <= hi:  # NaN fails too
            raise self.error(key, f"expected {_KIND_NAMES[kind]} in {lo}..{hi}, got {value!r}")
        return value

    def table(self, key: str, allowed: set[str]) -> _Reader:
        reader = _Reader(self.get(key, dict, {}), self.source, key)
        reader.check_keys(allowed)
        return reader


def _ipv4(r: _Reader, key: str, default: str) -> str:
    text = r.get(key, str, default)
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        raise r.error(key, f"not an IPv4 address: {text!r}") from None
    return str(text)


def _topology(data: _Reader) -> DockerBridge:
    r = data.table(
        "topology",
        {"containers", "bridge_ip", "bridge_prefix", "host_ip", "host_prefix", "remote_ip", "link_delay"},
    )
    base = DockerBridge()
    bridge_ip, host_ip, remote_ip = (
        _ipv4(r, key, getattr(base, key)) for key in ("bridge_ip", "host_ip", "remote_ip")
    )
    bridge_prefix = r.number("bridge_prefix", int, base.bridge_prefix, 1, 30)
    host_prefix = r.number("host_prefix", int, base.host_prefix, 1, 32)
    bridge = ipaddress.IPv4Network(f"{bridge_ip}/{bridge_prefix}", strict=False)
    containers = r.get("containers", list, list(base.containers))
    if not 1 <= len(containers) <= MAX_CONTAINERS:
        raise r.error(
            "containers", f"expected 1..{MAX_CONTAINERS} container addresses, got {len(containers)}"
        )
    for i, ip in enumerate(containers):
        _ipv4(_Reader({"ip": ip}, r.source, f"topology.containers[{i}]"), "ip", "")
        if ipaddress.IPv4Address(ip) not in bridge or ip == bridge_ip:
            raise r.error("containers", f"{ip} is not a free address of the bridge's {bridge}")
    if len(set(containers)) != len(containers):
        raise r.error("containers", "the addresses must differ")
    for key, ip in (("host_ip", host_ip), ("remote_ip", remote_ip)):
        if ipaddress.IPv4Address(ip) in bridge:
            raise r.error(key, f"{ip} is inside the bridge's {bridge}")
    if host_ip == remote_ip:
        raise r.error("remote_ip", "must differ from host_ip")
    try:  # a profile name or a `uname -r` release -> the profile's name
        kernel = resolve_kernel(data.get("kernel", str, DEFAULT_PROFILE)).name
    except ValueError as e:
        raise data.error("kernel", str(e)) from None
    return DockerBridge(
        containers=tuple(containers),
        bridge_ip=bridge_ip,
        bridge_prefix=bridge_prefix,
        host_ip=host_ip,
        host_prefix=host_prefix,
        remote_ip=remote_ip,
        kernel=kernel,
        link_delay=r.number("link_delay", float, 0.02, 0.0, MAX_LINK_DELAY_S),
    )


def _triggers(data: _Reader, upload_bytes: int) -> list[Trigger]:
    triggers = []
    for i, t in enumerate(data.get("trigger", list, [])):
        if not isinstance(t, dict):
            raise data.error(f"trigger[{i}]", "expected a [[trigger]] table")
        r = _Reader(t, data.source, f"trigger[{i}]")
        r.check_keys({"kind", "after_bytes", "hold", "offset", "command"})
        kind = r.get("kind", str, None)
        if kind not in _TRIGGERS:
            raise r.error("kind", f"expected 'late-ack', 'beyond-window' or 'conntrack', got {kind!r}")
        command = r.get("command", str, "-F" if kind == "conntrack" else "")
        if kind == "conntrack":
            try:
                conntrack_tool.parse(command)
            except conntrack_tool.ConntrackToolError as e:
                raise r.error("command", str(e)) from None
        triggers.append(
            Trigger(
                kind,
                r.number("after_bytes", int, 0, 0, upload_bytes),
                r.number("hold", float, 0.5, 0.0, MAX_HOLD_S),
                r.number("offset", int, 1_000_000, 0, SEQ_MASK),
                command,
            )
        )
    return triggers


def parse_scenario(data: dict[str, Any], source: str) -> Scenario:
    """Validate a scenario dict; ScenarioError names ``source`` and the key."""
    top = _Reader(data, source)
    top.check_keys(TOP_KEYS)
    topology = _topology(top)
    if "upload" not in data:
        raise ScenarioError(f"{source}: missing [upload]")
    upload = top.table("upload", {"from", "sport", "dport", "bytes", "timestamps"})
    names = [container_name(i) for i in range(len(topology.containers))]
    upload_from = upload.get("from", str, "ctr")
    if upload_from not in names:
        raise upload.error("from", f"expected one of {', '.join(names)}, got {upload_from!r}")
    upload_bytes = upload.number("bytes", int, 2_000_000, 1, MAX_UPLOAD_BYTES)
    remote = top.table("remote", {"rst", "unknown"})
    rst = remote.get("rst", str, "rfc5961")
    unknown_policy = remote.get("unknown", str, "rst")
    if rst not in ("any", "rfc5961") or unknown_policy not in ("drop", "rst"):
        raise ScenarioError(f"{source}: remote: rst must be 'any' or 'rfc5961', unknown 'drop' or 'rst'")
    sysctl = top.get("sysctl", dict, {})
    for key, value in sysctl.items():
        try:
            check_sysctl(key, value)
        except CaseError as e:
            raise top.error("sysctl", str(e)) from None
    rules = top.table("iptables", {"host"}).get("host", list, [])
    for i, line in enumerate(rules):
        if not isinstance(line, str):
            raise top.error(f"iptables.host[{i}]", f"expected a string, got {line!r}")
    return Scenario(
        name=top.get("name", str, Path(source).stem),
        description=top.get("description", str, ""),
        kernel=topology.kernel,
        seed=top.get("seed", int, 0),
        duration=top.number("duration", float, 1200.0, 1e-3, MAX_DURATION_S),
        topology=topology,
        sysctl=dict(sysctl),
        rules=list(rules),
        upload_from=upload_from,
        sport=upload.number("sport", int, 39700, 1, 0xFFFF),
        dport=upload.number("dport", int, 443, 1, 0xFFFF),
        upload_bytes=upload_bytes,
        timestamps=upload.get("timestamps", bool, True),
        remote_rst=rst,
        remote_unknown=unknown_policy,
        triggers=_triggers(top, upload_bytes),
        source=source,
    )


def load_scenario(ref: str) -> Scenario:
    """An upload scenario: a built-in one by name, or a TOML/JSON file."""
    sc = load_any(ref)
    if isinstance(sc, Story):
        raise ScenarioError(f"{ref}: a story scenario ([[step]] tables): run it with nflab run {ref}")
    return sc


def load_any(ref: str) -> Scenario | Story:
    """A built-in scenario by name, or a TOML/JSON file: an upload scenario, or a story
    (``[[step]]`` tables, sim/scenario/story.py)."""
    if ref in builtin_scenarios():
        data, source = parse_text(builtin_scenario_text(ref), ref, "toml", ScenarioError), ref
    else:
        if not Path(ref).exists():
            raise ScenarioError(f"{ref}: no such file (built-in scenarios: {', '.join(builtin_scenarios())})")
        data, source = read_data(ref, "toml", ScenarioError), ref
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{source}: a scenario must be a table (a JSON object), got {type(data).__name__}"
        )
    if "packets" in data:
        raise ScenarioError(f"{source}: this is a crafted-packet case file: use nflab replay {ref}")
    if "step" in data:
        return parse_story(data, source, ScenarioError)
    return parse_scenario(data, source)


class _Remote:
    """The far end: a server endpoint behind the scenario's ``[remote]`` policy. A middlebox
    that accepts any RST forgets the connection: the listener goes from ``listeners``."""

    def __init__(self, endpoint: TcpEndpoint, accept_any_rst: bool, listeners: dict[int, Any]) -> None:
        self.endpoint = endpoint
        self.accept_any_rst = accept_any_rst
        self.listeners = listeners
        self.torn_down_at: float | None = None

    def receive(self, pkt: Packet, now: float) -> list[Packet]:
        if self.accept_any_rst and pkt.flags & TCPHDR_RST and self.endpoint.state is not EndpointState.LISTEN:
            self.torn_down_at = now
            self.listeners.pop(self.endpoint.local[1], None)
            return []
        return self.endpoint.receive(pkt, now)

    def next_deadline(self) -> float | None:
        return self.endpoint.next_deadline()

    def poll(self, now: float) -> list[Packet]:
        return self.endpoint.poll(now)

    def __repr__(self) -> str:
        return f"remote:{self.endpoint.local[1]}"


@dataclass(slots=True)
class Run:
    """The outcome of a scenario run; ``world.trace`` holds every decision."""

    scenario: Scenario
    world: World
    client: TcpEndpoint
    remote: _Remote
    fired: list[tuple[float, str, int]]  # (time, trigger kind, pid)
    rsts: list[int]  # pids of RSTs the host sent

    @property
    def completed(self) -> bool:
        return self.client.bytes_acked >= self.scenario.upload_bytes


class _LateAck:
    """The article's trigger: once the remote has received ``after_bytes``, its uplink holds
    the next bare ACK back ``hold`` seconds, so the ACK reaches the host after later ones."""

    def __init__(self, t: Trigger, w: World, remote: _Remote, fired: list[tuple[float, str, int]]) -> None:
        self.t, self.clock, self.remote, self.fired, self.done = t, w.clock, remote, fired, False

    def delay(self, ns: str, dev: str, pkt: Packet, pid: int) -> float:
        if (
            self.done
            or (ns, dev) != (NsRole.REMOTE, "eth0")
            or not pkt.flags & TCPHDR_ACK
            or pkt.payload_len
            or self.remote.endpoint.bytes_received < self.t.after_bytes
        ):
            return 0.0
        self.done = True
        self.fired.append((self.clock.now, self.t.kind, pid))
        return self.t.hold

    def after_socket(self, w: World) -> None:
        pass


class _BeyondWindow:
    """Once the remote has received ``after_bytes``, it sends one segment starting ``offset``
    past its snd_nxt (unless the middlebox has forgotten the connection)."""

    def __init__(self, t: Trigger, w: World, remote: _Remote, fired: list[tuple[float, str, int]]) -> None:
        self.t, self.remote, self.fired, self.done = t, remote, fired, False

    def delay(self, ns: str, dev: str, pkt: Packet, pid: int) -> float:
        return 0.0

    def after_socket(self, w: World) -> None:
        ep = self.remote.endpoint
        if self.done or ep.bytes_received < self.t.after_bytes:
            return
        self.done = True
        if self.remote.torn_down_at is not None:
            return
        pkt = Packet(
            ep.local[0],
            ep.remote[0],
            ep.local[1],
            ep.remote[1],
            (ep.snd_nxt + self.t.offset) & SEQ_MASK,
            ep.rcv_nxt,
            TCPHDR_ACK,
            502,
            100,
        )
        self.fired.append((w.clock.now, self.t.kind, w.send(NsRole.REMOTE, pkt)))


class _ConntrackCommand:
    """Once the remote has received ``after_bytes``, run the ``conntrack`` command on the host
    (``conntrack -F`` mid-transfer: the next packet is picked up mid-stream)."""

    def __init__(self, t: Trigger, w: World, remote: _Remote, fired: list[tuple[float, str, int]]) -> None:
        self.t, self.remote, self.fired, self.done = t, remote, fired, False
        self.output: list[str] = []

    def delay(self, ns: str, dev: str, pkt: Packet, pid: int) -> float:
        return 0.0

    def after_socket(self, w: World) -> None:
        if self.done or self.remote.endpoint.bytes_received < self.t.after_bytes:
            return
        self.done = True
        table = w.namespaces[NsRole.HOST].conntrack
        assert table is not None
        self.output, _ = conntrack_tool.run(table, self.t.command, w.clock.now)
        self.fired.append((w.clock.now, self.t.kind, 0))


_TRIGGERS: dict[str, type[_LateAck | _BeyondWindow | _ConntrackCommand]] = {
    "late-ack": _LateAck,
    "beyond-window": _BeyondWindow,
    "conntrack": _ConntrackCommand,
}


def run_scenario(sc: Scenario, trace: bool = True) -> Run:
    """Run the scenario to the end of the upload (or the client's abort, or ``duration``)."""
    w = docker_bridge(sc.topology, seed=sc.seed, trace=trace)
    try:
        configure_host(w, sc.sysctl, sc.rules)
    except InputError as e:
        raise ScenarioError(f"{sc.source or sc.name}: {e}") from None
    ctr_ns = w.namespaces[sc.upload_from]
    ctr_ip = ctr_ns.devices["eth0"].addr or ""
    remote_ns = w.namespaces[NsRole.REMOTE]
    remote_ip = sc.topology.remote_ip
    opts = EndpointOptions(timestamps=sc.timestamps)
    client = TcpEndpoint(
        (ctr_ip, sc.sport),
        (remote_ip, sc.dport),
        Role.CLIENT,
        isn=w.rng.getrandbits(32),
        rng=w.rng,
        options=opts,
    )
    server = TcpEndpoint(
        (remote_ip, sc.dport), ("0.0.0.0", 0), Role.SERVER, isn=w.rng.getrandbits(32), rng=w.rng, options=opts
    )
    remote = _Remote(server, sc.remote_rst == "any", remote_ns.listeners)
    ctr_ns.sockets[(ctr_ip, sc.sport, remote_ip, sc.dport)] = client
    remote_ns.listeners[sc.dport] = remote
    remote_ns.reset_unknown = sc.remote_unknown == "rst"
    fired: list[tuple[float, str, int]] = []
    w.triggers.extend(_TRIGGERS[t.kind](t, w, remote, fired) for t in sc.triggers)
    syn = client.connect(w.clock.now)
    client.send(sc.upload_bytes)
    for pkt in syn:
        w.send(ctr_ns.name, pkt)
    w.arm(ctr_ns.name, client)
    while w.clock.peek() is not None and w.clock.now <= sc.duration:
        w.clock.step()
        if client.state is EndpointState.CLOSED or client.bytes_acked >= sc.upload_bytes:
            break
    rsts = [
        e.pid for e in w.trace.events if e.step is Step.SEND and e.cause is not None and e.ns == NsRole.HOST
    ]
    return Run(sc, w, client, remote, fired, rsts)
