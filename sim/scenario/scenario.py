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

``[remote]`` says how the far end treats the host's RST. The article's remote tore the
connection down although that RST's seq lay below its rcv_nxt, which no RFC 793 or RFC 5961
stack does; so the seed scenario models the remote as a service behind a stateful middlebox
that accepts any RST for the connection and silently drops segments of connections it no
longer knows (``rst = "any"``, ``unknown = "drop"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sim.net.endpoint import EndpointOptions, EndpointState, Role, TcpEndpoint
from sim.net.world import World
from sim.netfilter.profiles import DEFAULT_PROFILE, resolve_kernel
from sim.packet import SEQ_MASK, TCPHDR_ACK, TCPHDR_RST, Packet
from sim.scenario.fixes import fix_of, get_fix
from sim.scenario.host import configure_host
from sim.scenario.loader import InputError, builtin_scenario_text, builtin_scenarios, parse_text, read_data
from sim.topology.docker_bridge import DockerBridge, docker_bridge

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
    kind: str  # "late-ack" or "beyond-window"
    after_bytes: int
    hold: float = 0.0  # late-ack: how long the link holds the ACK back
    offset: int = 0  # beyond-window: how far past the remote's snd_nxt the segment starts


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

    def with_fix(self, fix: str) -> Scenario:
        """A copy with one of the two fixes applied (or ``none``)."""
        try:
            sysctl, rules = get_fix(fix).applied(self.sysctl, self.rules)
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


def _get(d: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any, where: str) -> Any:
    value = d.get(key, default)
    wrong_bool = isinstance(value, bool) and kind is not bool
    if value is not default and (wrong_bool or not isinstance(value, kind)):
        raise ScenarioError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _kernel(data: dict[str, Any], source: str) -> str:
    """The ``kernel`` key: a profile name or a ``uname -r`` release -> the profile's name."""
    try:
        return resolve_kernel(str(data.get("kernel", DEFAULT_PROFILE))).name
    except ValueError as e:
        raise ScenarioError(f"{source}: {e}") from None


def parse_scenario(data: dict[str, Any], source: str) -> Scenario:
    """Validate a scenario dict; ScenarioError names ``source`` and the key."""
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ScenarioError(f"{source}: unknown keys {sorted(unknown)}")
    topo = _get(data, "topology", dict, {}, source)
    bad = set(topo) - {
        "containers",
        "bridge_ip",
        "bridge_prefix",
        "host_ip",
        "host_prefix",
        "remote_ip",
        "link_delay",
    }
    if bad:
        raise ScenarioError(f"{source}: topology: unknown keys {sorted(bad)}")
    base = DockerBridge()
    topology = DockerBridge(
        containers=tuple(_get(topo, "containers", list, list(base.containers), f"{source}: topology")),
        bridge_ip=_get(topo, "bridge_ip", str, base.bridge_ip, f"{source}: topology"),
        bridge_prefix=_get(topo, "bridge_prefix", int, base.bridge_prefix, f"{source}: topology"),
        host_ip=_get(topo, "host_ip", str, base.host_ip, f"{source}: topology"),
        host_prefix=_get(topo, "host_prefix", int, base.host_prefix, f"{source}: topology"),
        remote_ip=_get(topo, "remote_ip", str, base.remote_ip, f"{source}: topology"),
        kernel=_kernel(data, source),
        link_delay=float(_get(topo, "link_delay", (int, float), 0.02, f"{source}: topology")),
    )
    upload = _get(data, "upload", dict, None, source)
    if upload is None:
        raise ScenarioError(f"{source}: missing [upload]")
    remote = _get(data, "remote", dict, {}, source)
    rst = _get(remote, "rst", str, "rfc5961", f"{source}: remote")
    unknown_policy = _get(remote, "unknown", str, "rst", f"{source}: remote")
    if rst not in ("any", "rfc5961") or unknown_policy not in ("drop", "rst"):
        raise ScenarioError(f"{source}: remote: rst must be 'any' or 'rfc5961', unknown 'drop' or 'rst'")
    triggers = []
    for i, t in enumerate(_get(data, "trigger", list, [], source)):
        where = f"{source}: trigger[{i}]"
        if not isinstance(t, dict) or t.get("kind") not in ("late-ack", "beyond-window"):
            raise ScenarioError(f"{where}.kind: expected 'late-ack' or 'beyond-window'")
        triggers.append(
            Trigger(
                t["kind"],
                _get(t, "after_bytes", int, 0, where),
                float(_get(t, "hold", (int, float), 0.5, where)),
                _get(t, "offset", int, 1_000_000, where),
            )
        )
    ipt = _get(data, "iptables", dict, {}, source)
    return Scenario(
        name=_get(data, "name", str, Path(source).stem, source),
        description=_get(data, "description", str, "", source),
        kernel=topology.kernel,
        seed=_get(data, "seed", int, 0, source),
        duration=float(_get(data, "duration", (int, float), 1200.0, source)),
        topology=topology,
        sysctl=dict(_get(data, "sysctl", dict, {}, source)),
        rules=list(_get(ipt, "host", list, [], f"{source}: iptables")),
        upload_from=_get(upload, "from", str, "ctr", f"{source}: upload"),
        sport=_get(upload, "sport", int, 39700, f"{source}: upload"),
        dport=_get(upload, "dport", int, 443, f"{source}: upload"),
        upload_bytes=_get(upload, "bytes", int, 2_000_000, f"{source}: upload"),
        timestamps=_get(upload, "timestamps", bool, True, f"{source}: upload"),
        remote_rst=rst,
        remote_unknown=unknown_policy,
        triggers=triggers,
    )


def load_scenario(ref: str) -> Scenario:
    """A built-in scenario by name, or a TOML/JSON file."""
    if ref in builtin_scenarios():
        return parse_scenario(parse_text(builtin_scenario_text(ref), ref, "toml", ScenarioError), ref)
    if not Path(ref).exists():
        raise ScenarioError(
            f"{ref}: No such file or directory (built-in scenarios: {', '.join(builtin_scenarios())})"
        )
    return parse_scenario(read_data(ref, "toml", ScenarioError), ref)


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
            or (ns, dev) != ("remote", "eth0")
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
        self.fired.append((w.clock.now, self.t.kind, w.send("remote", pkt)))


_TRIGGERS: dict[str, type[_LateAck | _BeyondWindow]] = {"late-ack": _LateAck, "beyond-window": _BeyondWindow}


def run_scenario(sc: Scenario, trace: bool = True) -> Run:
    """Run the scenario to the end of the upload (or the client's abort, or ``duration``)."""
    w = docker_bridge(sc.topology, seed=sc.seed, trace=trace)
    try:
        configure_host(w, sc.sysctl, sc.rules)
    except InputError as e:
        raise ScenarioError(f"{sc.name}: {e}") from None
    ctr_ns = w.namespaces[sc.upload_from]
    ctr_ip = ctr_ns.devices["eth0"].addr or ""
    remote_ns = w.namespaces["remote"]
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
        e.pid for e in w.trace.events if e.step.value == "send" and e.cause is not None and e.ns == "host"
    ]
    return Run(sc, w, client, remote, fired, rsts)
