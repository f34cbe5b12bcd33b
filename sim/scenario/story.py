"""Story scenarios: an incident told as a few crafted packets, workloads and host actions on the
docker-bridge world of the crafted-packet contract (sim/scenario/replay.py), each packet with
what its sender expects.

A story file is a scenario file (TOML) with ``[[step]]`` tables instead of an ``[upload]``::

    name, description, kernel, seed
    hosts = {ctr2 = "192.0.2.7"}            extra end hosts (contract v2)
    sysctl = {...}; iptables = [...]        the host's configuration before the first step
    answer = ["remote"]                     end hosts that answer (see ``_answer``)
    [[step]] packet = {...}                 one packet of the contract (``race = "prev"`` too)
             expect = "answered" | "delivered" | "no-rst" | "no-stray"; to = "ctr"
             as_src = "198.51.100.1"
             say = "plain words for the timeline"
    [[step]] resolver = {from, src, server, names}   glibc's resolver (``GlibcResolver``)
    [[step]] connect = {from, src, dst, seq}  a TCP client's connect() (sim/scenario/tcp_client.py);
             ``race = "prev"`` in it races the previous connect's SYN to confirmation
    [[step]] conntrack = "-D -p udp"        conntrack run on the host
    [[step]] iptables = "-t nat -I ..."     a host rule added between packets

A story succeeds when every expectation holds; the first one that fails is its decisive event.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from sim.errors import InputError
from sim.net.world import World
from sim.netfilter import conntrack_tool
from sim.netfilter.conntrack import ConntrackTable
from sim.netfilter.iptables.cmd import iptables
from sim.netfilter.iptables.parse import RuleError
from sim.packet import TCPHDR_ACK, TCPHDR_SYN, IpProto, Packet, udp_packet
from sim.scenario.case import CaseError, CasePacket, Race, Topology, check_sysctl, packet_from_case
from sim.scenario.fixes import get_fix
from sim.scenario.host import configure_host
from sim.scenario.moment import Moment, Sent, arrived, delivered
from sim.scenario.replay import _send, build_world, observe
from sim.scenario.tcp_client import TcpClients

STORY_KEYS = {
    "name",
    "description",
    "kernel",
    "seed",
    "hosts",
    "sysctl",
    "iptables",
    "answer",
    "step",
    "fixes",
}
CONNECT_KEYS = {"from", "src", "dst", "seq", "race"}
ANSWER_SEQ = 5000  # the answering host's ISN in a SYN/ACK
DNS_ANSWER_LEN = 90
RES_TIMEOUT_S = 5.0  # glibc resolv.h RES_TIMEOUT: `options timeout:5`, the default


class StepKind(StrEnum):
    """What a ``[[step]]`` does: the key that names it."""

    PACKET = "packet"
    RESOLVER = "resolver"
    CONNECT = "connect"
    CONNTRACK = "conntrack"
    IPTABLES = "iptables"


STEP_KEYS = {*StepKind, "expect", "to", "as_src", "say"}


class Expect(StrEnum):
    """What a packet's sender expects of it."""

    ANSWERED = "answered"  # it arrives, and the answer comes back to its sender
    DELIVERED = "delivered"  # it arrives at ``to`` (with source ``as_src`` when given)
    NO_RST = "no-rst"  # the host does not answer it with a RST
    # it reaches ``to`` from ``as_src`` or not at all: a segment from another source is one the
    # receiver has no socket for, so its kernel answers it with a RST (k8s#74839)
    NO_STRAY = "no-stray"


@dataclass(frozen=True, slots=True)
class Step:
    kind: StepKind
    packet: CasePacket | None = None  # a packet step's packet; a connect step's first SYN
    resolver: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    expect: Expect | None = None
    to: str = ""
    as_src: str = ""
    say: str = ""


@dataclass(frozen=True, slots=True)
class Story:
    name: str
    description: str
    kernel: str
    seed: int
    topology: Topology
    sysctl: dict[str, Any]
    rules: tuple[str, ...]
    answer: tuple[str, ...]
    steps: tuple[Step, ...]
    fixes: tuple[str, ...]  # the fixes this story is told with (``nflab run --fix``)
    fix: str = "none"
    resolver_options: tuple[str, ...] = ()
    source: str = ""

    def with_kernel(self, kernel: str) -> Story:
        return replace(self, kernel=kernel)

    def with_fix(self, name: str) -> Story:
        """A copy with fix ``name`` applied: a host rule or sysctl, a resolver option, or a
        conntrack command run after each rule change."""
        try:
            fix = get_fix(name)
        except ValueError as e:
            raise InputError(f"--fix: {e}") from None
        sysctl, rules = fix.applied(self.sysctl, list(self.rules))
        steps = self.steps
        if fix.conntrack is not None:
            steps = tuple(
                s
                for step in self.steps
                for s in (
                    (
                        step,
                        Step(
                            StepKind.CONNTRACK,
                            command=fix.conntrack,
                            say=f"the fix: conntrack {fix.conntrack}",
                        ),
                    )
                    if step.kind is StepKind.IPTABLES
                    else (step,)
                )
            )
        options = self.resolver_options + ((fix.resolver,) if fix.resolver else ())
        return replace(
            self, sysctl=sysctl, rules=tuple(rules), steps=steps, fix=name, resolver_options=options
        )


def _step(d: object, i: int, topology: Topology, where: str) -> Step:
    what = f"{where}: step[{i}]"
    if not isinstance(d, dict):
        raise InputError(f"{what}: expected a [[step]] table")
    unknown = set(d) - STEP_KEYS
    if unknown:
        raise InputError(f"{what}: unknown keys {sorted(unknown)}")
    kinds = [k for k in StepKind if k in d]
    if len(kinds) != 1:
        raise InputError(f"{what}: expected exactly one of {', '.join(StepKind)}")
    kind = kinds[0]
    try:
        expect = Expect(d["expect"]) if "expect" in d else None
    except ValueError:
        raise InputError(f"{what}.expect: expected one of {', '.join(Expect)}, got {d['expect']!r}") from None
    expect_to, as_src, say = (str(d.get(k, "")) for k in ("to", "as_src", "say"))

    def step(kind: StepKind, **kw: Any) -> Step:
        return Step(kind, expect=expect, to=expect_to, as_src=as_src, say=say, **kw)

    if kind is StepKind.PACKET:
        try:
            pkt = packet_from_case(d["packet"], i, topology.host_names)
        except CaseError as e:
            raise InputError(f"{what}: {e}") from None
        return step(kind, packet=pkt)
    if kind is StepKind.RESOLVER:
        r = d["resolver"]
        if (
            not isinstance(r, dict)
            or set(r) - {"from", "src", "server"}
            or r.get("from") not in topology.host_names
        ):
            raise InputError(
                f'{what}.resolver: expected {{from = HOST, src = "ip:port", server = "ip:port"}}'
            )
        return step(kind, resolver=dict(r))
    if kind is StepKind.CONNECT:
        if expect is not None:
            raise InputError(f"{what}.expect: a connect expects to connect without a retransmission")
        return step(kind, packet=_connect_syn(d["connect"], i, topology, f"{what}.connect"))
    command = d[kind]
    if not isinstance(command, str):
        raise InputError(f"{what}.{kind}: expected a string")
    if kind is StepKind.CONNTRACK:
        try:
            conntrack_tool.parse(command)
        except conntrack_tool.ConntrackToolError as e:
            raise InputError(f"{what}.conntrack: {e}") from None
    return step(kind, command=command)


def _connect_syn(c: object, i: int, topology: Topology, what: str) -> CasePacket:
    """A connect step's table, checked as the SYN it sends first (addresses, ports, ``seq``
    the initial sequence number, ``race``) by the case contract's own packet check."""
    if not isinstance(c, dict) or set(c) - CONNECT_KEYS or not {"from", "src", "dst"} <= set(c):
        raise InputError(f'{what}: expected {{from = HOST, src = "ip:port", dst = "ip:port", seq = ISN}}')
    try:
        return packet_from_case({**c, "flags": "S"}, i, topology.host_names)
    except CaseError as e:
        raise InputError(f"{what}{str(e).removeprefix(f'packets[{i}]')}") from None


_TYPE_WORDS = {list: "a list", dict: "a table", str: "a string", int: "an integer"}
STORY_TYPES: tuple[tuple[str, type, object], ...] = (
    *((key, list, []) for key in ("answer", "fixes", "iptables", "step")),
    *((key, dict, {}) for key in ("sysctl", "hosts")),
    *((key, str, "") for key in ("name", "description", "kernel")),
    ("seed", int, 0),
)


def _typed(
    data: dict[str, Any], key: str, want: type, default: object, source: str, error: type[InputError]
) -> None:
    """One line naming ``key`` unless ``data[key]`` (or ``default``) is a ``want``, a list's
    items strings but the steps' tables (``answer = 0`` was a TypeError traceback)."""
    value = data.get(key, default)
    if not isinstance(value, want) or (want is int and isinstance(value, bool)):
        raise error(f"{source}: {key}: expected {_TYPE_WORDS[want]}, got {value!r}")
    if isinstance(value, list) and key != "step" and not all(isinstance(v, str) for v in value):
        raise error(f"{source}: {key}: expected a list of strings, got {value!r}")


def parse_story(data: dict[str, Any], source: str, error: type[InputError] = InputError) -> Story:
    """Validate a story dict; the error names ``source`` and the key."""
    unknown = set(data) - STORY_KEYS
    if unknown:
        raise error(f"{source}: unknown keys {sorted(unknown)}")
    for key, want, default in STORY_TYPES:
        _typed(data, key, want, default, source, error)
    try:
        topology = Topology().with_hosts(data.get("hosts", {}))
        for key, value in dict(data.get("sysctl", {})).items():
            check_sysctl(key, value)
        steps = tuple(_step(d, i, topology, source) for i, d in enumerate(data.get("step", [])))
    except InputError as e:
        raise error(f"{source}: {e}" if not str(e).startswith(source) else str(e)) from None
    answer = tuple(data.get("answer", []))
    for name in answer:
        if name not in topology.host_names:
            raise error(f"{source}: answer: {name!r} is not an end host")
    fixes = tuple(data.get("fixes", []))
    for name in fixes:
        try:
            get_fix(name)
        except ValueError as e:
            raise error(f"{source}: fixes: {e}") from None
    from sim.netfilter.profiles import resolve_kernel

    try:
        kernel = resolve_kernel(str(data.get("kernel", "6.18"))).name
    except ValueError as e:
        raise error(f"{source}: kernel: {e}") from None
    return Story(
        name=str(data.get("name", source)),
        description=str(data.get("description", "")),
        kernel=kernel,
        seed=int(data.get("seed", 0)),
        topology=topology,
        sysctl=dict(data.get("sysctl", {})),
        rules=tuple(data.get("iptables", [])),
        answer=answer,
        steps=steps,
        fixes=fixes,
        source=source,
    )


# -- running ----------------------------------------------------------------------------------


def event_of(moment: Moment) -> str:
    """The decisive event in two or three words: the counter of a drop (``insert_failed``,
    ``table full``), a host RST, a leaked source, a stale translation, a resolver timeout."""
    obs = moment.obs
    if obs is None:
        if "lookup took" in moment.failed:
            return "5 s timeout"
        return "SYN retransmission" if "connect took" in moment.failed else moment.failed
    stats = obs.get("ct_stats") or {}
    if (obs.get("fate") or "").startswith("dropped"):
        if any("table full" in line for line in moment.output):
            return "table full"
        return next((k for k in ("insert_failed", "early_drop", "drop") if stats.get(k)), "dropped")
    if any("R" in (e.get("flags") or "") for e in obs.get("emitted", [])):
        return "host RST"
    if "a stray segment" in moment.failed:
        return "stray source"
    if "arrive from" in moment.failed:
        return "source leak"
    if "should reach" in moment.failed:
        return "stale DNAT"
    return "no answer"


@dataclass(slots=True)
class StoryRun:
    story: Story
    world: World
    moments: list[Moment]

    @property
    def decisive(self) -> Moment | None:
        """The first moment whose expectation failed."""
        return next((m for m in self.moments if m.failed), None)

    @property
    def succeeded(self) -> bool:
        return self.decisive is None

    @property
    def event(self) -> str:
        """``ok``, or the decisive event in a few words (:func:`event_of`)."""
        return "ok" if self.decisive is None else event_of(self.decisive)

    @property
    def table(self) -> ConntrackTable:
        table = self.world.namespaces["host"].conntrack
        assert table is not None
        return table


def _answer(pkt: Packet, src: str, dst: str) -> Packet | None:
    """What an answering end host sends back to a packet it received as ``src`` -> ``dst``
    (ip:port): a SYN/ACK (ISN ``ANSWER_SEQ``) to a SYN, a DNS-sized answer to a datagram."""
    (s_ip, s_port), (d_ip, d_port) = (x.rsplit(":", 1) for x in (src, dst))
    if pkt.proto is IpProto.UDP:
        return udp_packet(d_ip, int(d_port), s_ip, int(s_port), DNS_ANSWER_LEN)
    if pkt.proto is IpProto.TCP and pkt.flags == TCPHDR_SYN:
        return Packet(
            d_ip,
            s_ip,
            int(d_port),
            int(s_port),
            ANSWER_SEQ,
            (pkt.seq + 1) & 0xFFFFFFFF,
            TCPHDR_SYN | TCPHDR_ACK,
            29200,
            0,
        )
    return None


class _Runner:
    def __init__(self, story: Story) -> None:
        self.story = story
        try:
            self.w = build_world(story.topology, story.kernel, story.seed)
            configure_host(self.w, story.sysctl, list(story.rules))
        except (InputError, ValueError) as e:
            raise InputError(f"{story.source or story.name}: {e}") from None
        self.moments: list[Moment] = []
        self.log_seen = 0  # the host's kernel log lines already told

    def send(self, packets: list[CasePacket], says: list[str] | None = None) -> list[Sent]:
        """Send packets (the second may race the first); for each, what became of it and of
        the answer an answering host sent back (:class:`Sent`). Each packet and each answer
        becomes a moment (``says``: the packets' own words)."""
        out = []
        for n, (pid, stats, entry) in enumerate(_send(self.w, packets)):
            obs = observe(self.w, pid, stats, entry)
            sent = self.w.trace.for_packet(pid)[0].before
            assert sent is not None
            said = says[n] if says and n < len(says) and says[n] else ""
            log = self.w.namespaces["host"].conntrack.log  # type: ignore[union-attr]
            self.moments.append(
                Moment(
                    self.w.clock.now,
                    f"{said}: {sent.describe()}" if said else sent.describe(),
                    pid,
                    obs,
                    output=[f"kernel: {line}" for line in log[self.log_seen :]],
                )
            )
            self.log_seen = len(log)
            got = delivered(obs)
            reply_obs, landed = None, None
            if got is not None and got[0] in self.story.answer:
                reply = _answer(sent, got[1]["src"], got[1]["dst"])
                if reply is not None:
                    ((rpid, rstats, rentry),) = _send(self.w, [CasePacket(got[0], reply, 0.0, None)])
                    reply_obs = observe(self.w, rpid, rstats, rentry)
                    landed = arrived(self.w, rpid)
                    self.moments.append(
                        Moment(self.w.clock.now, f"{got[0]} answers: {reply.describe()}", rpid, reply_obs)
                    )
            out.append(Sent(pid, obs, reply_obs, landed))
        return out

    def check(self, step: Step, sender: str, obs: dict[str, Any], reply: dict[str, Any] | None) -> str:
        """The expectation of ``step`` that this packet broke ('' when it held)."""
        got = delivered(obs)
        if step.expect is Expect.ANSWERED:
            back = delivered(reply) if reply is not None else None
            if back is None or back[0] != sender:
                return "no answer reaches " + sender
        if step.expect is Expect.DELIVERED:
            if got is None or (step.to and got[0] != step.to):
                return f"it should reach {step.to or 'its destination'}"
            if step.as_src and got[1]["src"].rsplit(":", 1)[0] != step.as_src:
                return f"it should arrive from {step.as_src}, not {got[1]['src']}"
        stray = got is not None and got[0] == step.to and got[1]["src"].rsplit(":", 1)[0] != step.as_src
        if step.expect is Expect.NO_STRAY and stray:
            assert got is not None
            return f"it reaches {step.to} from {got[1]['src']}, not {step.as_src}: a stray segment"
        if step.expect is Expect.NO_RST and any(e.get("flags", "").find("R") >= 0 for e in obs["emitted"]):
            return "the host answers it with a RST"
        return ""

    def run(self) -> StoryRun:
        steps = list(self.story.steps)
        i = 0
        while i < len(steps):
            step = steps[i]
            if step.kind in (StepKind.PACKET, StepKind.CONNECT):
                group = [step]
                while (
                    i + 1 < len(steps)
                    and steps[i + 1].kind is step.kind
                    and getattr(steps[i + 1].packet, "race", None) is Race.PREV
                ):
                    i += 1
                    group.append(steps[i])
                if step.kind is StepKind.CONNECT:
                    TcpClients(self, [(s.packet, s.say) for s in group if s.packet is not None]).run()
                else:
                    self.packets(group)
            elif step.kind is StepKind.RESOLVER:
                GlibcResolver(self, step).run()
            elif step.kind is StepKind.CONNTRACK:
                table = self.w.namespaces["host"].conntrack
                assert table is not None
                output, _ = conntrack_tool.run(table, step.command, self.w.clock.now)
                self.moments.append(
                    Moment(self.w.clock.now, step.say or f"conntrack {step.command}", output=output)
                )
            else:
                try:
                    iptables(self.w.namespaces["host"].ruleset, step.command)
                except RuleError as e:
                    raise InputError(f"{self.story.source}: step[{i}].iptables: {e}") from None
                self.moments.append(Moment(self.w.clock.now, step.say or f"iptables {step.command}"))
            i += 1
        return StoryRun(self.story, self.w, self.moments)

    def packets(self, group: list[Step]) -> None:
        """Packet steps (the later ones racing the first), each checked against its ``expect``."""
        start = len(self.moments)
        results = self.send([s.packet for s in group], [s.say for s in group])  # type: ignore[misc]
        mine = [m for m in self.moments[start:] if m.pid in {r.pid for r in results}]
        for s, r, moment in zip(group, results, mine, strict=True):
            assert s.packet is not None
            moment.failed = self.check(s, s.packet.side, r.obs, r.reply)


class GlibcResolver:
    """glibc's stub resolver asking for A and AAAA over UDP (resolv/res_send.c, ``send_dg()``).

    - by default both queries leave back to back from one socket (``sendmmsg``), so they share
      the source port and race each other to conntrack confirmation;
    - it waits ``RES_TIMEOUT_S`` (``options timeout:5``) for both answers; on a timeout with one
      answer received it switches to ``single_request`` (``RES_SNGLKUP``) and, on the same
      socket, sends the first query, waits for its answer, then sends the second;
    - with ``options single-request-reopen`` (``RES_SNGLKUPREOP``) the queries go one after the
      other from the start, and after the first answer the socket is closed and reopened
      (``__res_iclose``, ``reopen``), so the second query leaves from a new source port.
    """

    def __init__(self, runner: _Runner, step: Step) -> None:
        self.r, self.step = runner, step
        self.side = str(step.resolver["from"])
        src = str(step.resolver.get("src", f"{runner.story.topology.host_names[self.side]}:42000"))
        server = str(step.resolver.get("server", f"{runner.story.topology.remote_ip}:53"))
        (self.ip, port), (self.server_ip, sport) = (x.rsplit(":", 1) for x in (src, server))
        self.port, self.server_port = int(port), int(sport)

    def query(self, port: int, name: str, race: bool = False) -> CasePacket:
        return CasePacket(
            self.side,
            udp_packet(self.ip, port, self.server_ip, self.server_port, 33 if name == "A" else 34),
            0.0,
            Race.PREV if race else None,
        )

    def ask(self, packets: list[CasePacket], names: list[str]) -> int:
        """Send the queries; how many answers came back to the resolver."""
        answered = 0
        says = [f"{self.step.say or 'the resolver'}: the {name} query" for name in names]
        for name, (pid, obs, reply, _arrived) in zip(names, self.r.send(packets, says), strict=True):
            if (obs.get("fate") or "").startswith("dropped"):
                counters = " ".join(
                    sorted(k for k in obs["ct_stats"] if k in ("insert_failed", "drop", "early_drop"))
                )
                moment = next(m for m in self.r.moments if m.pid == pid)
                moment.failed = f"the {name} query is dropped at the host ({counters or 'no counter'})"
            back = reply is not None and delivered(reply)
            answered += bool(back and back[0] == self.side)
        return answered

    def run(self) -> None:
        w, start = self.r.w, self.r.w.clock.now
        if "single-request-reopen" in self.r.story.resolver_options:
            got = self.ask([self.query(self.port, "A")], ["A"])
            new_port = 32768 + w.rng.randrange(61000 - 32768)  # reopen(): a new ephemeral port
            got += self.ask([self.query(new_port, "AAAA")], ["AAAA"])
            mode = f"one query at a time, the AAAA from a reopened socket (port {new_port})"
        else:
            got = self.ask(
                [self.query(self.port, "A"), self.query(self.port, "AAAA", race=True)], ["A", "AAAA"]
            )
            mode = "A and AAAA from one socket at once"
            if got < 2:
                w.run(until=start + RES_TIMEOUT_S)
                self.r.moments.append(
                    Moment(
                        w.clock.now,
                        f"the resolver times out after {RES_TIMEOUT_S:g} s with {got} answer(s): it retries "
                        "one query at a time on the same socket (single_request)",
                    )
                )
                got = self.ask([self.query(self.port, "A")], ["A"])
                got += self.ask([self.query(self.port, "AAAA")], ["AAAA"])
        took = w.clock.now - start
        failed = (
            ""
            if took < RES_TIMEOUT_S and got == 2
            else f"the lookup took {took:.3f} s (a {RES_TIMEOUT_S:g} s resolver timeout)"
        )
        self.r.moments.append(
            Moment(w.clock.now, f"lookup done ({mode}): {got} answers after {took:.3f} s", failed=failed)
        )


def run_story(story: Story) -> StoryRun:
    """Run every step of the story in order."""
    return _Runner(story).run()
