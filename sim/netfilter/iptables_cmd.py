"""iptables/xshared.c + iptables.c (do_command4) and iptables-restore.c: command lines into tables.

Only what the model evaluates is accepted; any other option is an error, never ignored. Every
error is a :class:`RuleError` with a one-line message naming the offending option and value
(and, for iptables-restore text, the line number). Option syntax and error wording follow
iptables' own parsers: libxt_tcp.c tcp_parse(), libxt_conntrack.c, libxt_limit.c parse_rate(),
libxt_addrtype.c, libxt_LOG.c, libipt_REJECT.c and libxt_NAT.c parse_to()/parse_ports().
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator

from sim.netfilter.xtables import (
    CHAIN_HOOK,
    XT_LIMIT_AVG,
    XT_LIMIT_BURST,
    XT_LIMIT_SCALE,
    AddrType,
    AddrTypeMatch,
    Chain,
    ConntrackMatch,
    CtState,
    InvFlag,
    IpSpec,
    JumpTarget,
    LimitMatch,
    LogTarget,
    NatKind,
    NatRange,
    NatRangeFlag,
    NatRequest,
    NatTarget,
    RejectTarget,
    RejectWith,
    Rule,
    Ruleset,
    StandardTarget,
    StdVerdict,
    Table,
    TableName,
    TcpMatch,
    XtMatch,
    XtTarget,
)
from sim.packet import ip_to_int
from sim.skb import Hook

STANDARD_TARGETS = frozenset(StdVerdict.__members__)  # ACCEPT, DROP, RETURN


class RuleError(ValueError):
    """A rejected command or ruleset line; ``str()`` is one line naming where."""


# ---------------------------------------------------------------------------------------------
# Value parsers (each raises RuleError naming the option and the value).

_IPV4 = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$", re.ASCII)
PROTOCOLS = {"all": 0, "tcp": 6, "udp": 17, "icmp": 1}  # the part of xtables_chain_protos[] modelled
IFNAMSIZ = 16
XT_EXTENSION_MAXNAMELEN = 29


def _ip(opt: str, text: str) -> int:
    m = _IPV4.match(text)
    if not m or any(int(part) > 255 for part in m.groups()):
        raise RuleError(f"{opt} {text!r}: host/network not found")
    return ip_to_int(text)


def _addr(opt: str, text: str) -> tuple[int, int]:
    """``xtables_ipparse_any()``: ``a.b.c.d[/len]``; the address is masked as iptables does."""
    addr, _, plen = text.partition("/")
    if plen:
        if not (plen.isascii() and plen.isdigit()) or int(plen) > 32:
            raise RuleError(f"{opt} {text!r}: invalid mask {plen!r} specified")
        mask = (0xFFFFFFFF << (32 - int(plen))) & 0xFFFFFFFF
    else:
        mask = 0xFFFFFFFF
    return _ip(opt, addr) & mask, mask


def _port(opt: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 0xFFFF:
        raise RuleError(f"{opt} {text!r}: invalid port/service specified")
    return int(text)


def _ports(opt: str, text: str) -> tuple[int, int]:
    """``parse_tcp_ports()`` (libxt_tcp.c): ``p``, ``a:b``, ``:b``, ``a:``."""
    if ":" not in text:
        port = _port(opt, text)
        return port, port
    lo, hi = text.split(":", 1)
    ports = (_port(opt, lo) if lo else 0, _port(opt, hi) if hi else 0xFFFF)
    if ports[0] > ports[1]:
        raise RuleError(f"{opt} {text!r}: invalid portrange (min > max)")
    return ports


TCP_FLAG_NAMES = {
    "FIN": 0x01,
    "SYN": 0x02,
    "RST": 0x04,
    "PSH": 0x08,
    "ACK": 0x10,
    "URG": 0x20,
    "ALL": 0x3F,
    "NONE": 0,
}


def _tcp_flags(opt: str, text: str) -> int:
    """``parse_tcp_flag()``: comma-separated names, case-insensitive."""
    bits = 0
    for name in text.split(","):
        if name.upper() not in TCP_FLAG_NAMES:
            raise RuleError(f"{opt} {text!r}: Unknown TCP flag `{name}'")
        bits |= TCP_FLAG_NAMES[name.upper()]
    return bits


_STATE_NAMES = {
    "INVALID": CtState.INVALID,
    "NEW": CtState.NEW,
    "ESTABLISHED": CtState.ESTABLISHED,
    "RELATED": CtState.RELATED,
    "UNTRACKED": CtState.UNTRACKED,
}
_CTSTATE_NAMES = {**_STATE_NAMES, "SNAT": CtState.SNAT, "DNAT": CtState.DNAT}


def _states(opt: str, text: str, names: dict[str, CtState]) -> CtState:
    """``conntrack_ps_states()`` / ``state_parse_states()``."""
    mask = CtState(0)
    for name in text.split(","):
        if name.upper() not in names:
            raise RuleError(f'{opt} {text!r}: Bad {opt.lstrip("-")} "{name}"')
        mask |= names[name.upper()]
    return mask


_RATE_UNITS = (("second", 1), ("minute", 60), ("hour", 3600), ("day", 86400))


def _rate(opt: str, text: str) -> int:
    """``parse_rate()`` (libxt_limit.c): ``N[/second|/minute|/hour|/day]``, unit by prefix."""
    number, _, unit = text.partition("/")
    mult = 1
    if unit:
        mult = next((m for name, m in _RATE_UNITS if name.startswith(unit.lower())), 0)
    if (
        not (number.isascii() and number.isdigit())
        or int(number) == 0
        or mult == 0
        or (unit == "" and "/" in text)
    ):
        raise RuleError(f"{opt} {text!r}: bad rate")
    avg = XT_LIMIT_SCALE * mult // int(number)
    if avg == 0:
        raise RuleError(f"{opt} {text!r}: Rate too fast")
    return avg


_SYSLOG_LEVELS = {
    "emerg": 0,
    "panic": 0,
    "alert": 1,
    "crit": 2,
    "err": 3,
    "error": 3,
    "warning": 4,
    "warn": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}


def _log_level(opt: str, text: str) -> int:
    if text.isascii() and text.isdigit() and int(text) <= 7:
        return int(text)
    if text.lower() in _SYSLOG_LEVELS:
        return _SYSLOG_LEVELS[text.lower()]
    raise RuleError(f"{opt} {text!r}: log level is not a number from 0 to 7 or a syslog level name")


REJECT_NAMES = {
    RejectWith.ICMP_NET_UNREACHABLE: ("icmp-net-unreachable", "net-unreach"),
    RejectWith.ICMP_HOST_UNREACHABLE: ("icmp-host-unreachable", "host-unreach"),
    RejectWith.ICMP_PROT_UNREACHABLE: ("icmp-proto-unreachable", "proto-unreach"),
    RejectWith.ICMP_PORT_UNREACHABLE: ("icmp-port-unreachable", "port-unreach"),
    RejectWith.ICMP_NET_PROHIBITED: ("icmp-net-prohibited", "net-prohib"),
    RejectWith.ICMP_HOST_PROHIBITED: ("icmp-host-prohibited", "host-prohib"),
    RejectWith.TCP_RESET: ("tcp-reset", "tcp-rst"),
    RejectWith.ICMP_ADMIN_PROHIBITED: ("icmp-admin-prohibited", "admin-prohib"),
}


def _reject_with(opt: str, text: str) -> RejectWith:
    """``REJECT_parse()``: the first name or alias that ``text`` is a prefix of."""
    for with_, names in REJECT_NAMES.items():
        if text and any(name.startswith(text.lower()) for name in names):
            return with_
    raise RuleError(f"{opt} {text!r}: unknown reject type")


def _nat_ports(opt: str, text: str, rng: NatRange) -> NatRange:
    """``parse_ports()`` (libxt_NAT.c): ``p`` or ``a-b``."""
    lo, dash, hi = text.partition("-")
    if ":" in text:
        raise RuleError(f"{opt} {text!r}: Invalid port:port syntax - use dash")
    first = _port(opt, lo)
    last = _port(opt, hi) if dash else first
    if last < first:
        raise RuleError(f"{opt} {text!r}: Port range `{text}' funky")
    return NatRange(rng.flags | NatRangeFlag.PROTO_SPECIFIED, rng.min_addr, rng.max_addr, first, last)


def _nat_to(opt: str, text: str) -> NatRange:
    """``parse_to()`` (libxt_NAT.c): ``ip[-ip][:port[-port]]``."""
    addrs, colon, ports = text.partition(":")
    rng = NatRange()
    if colon:
        rng = _nat_ports(opt, ports, rng)
    if addrs:
        lo, _, hi = addrs.partition("-")
        _ip(opt, lo)
        if hi:
            _ip(opt, hi)
        rng = NatRange(rng.flags | NatRangeFlag.MAP_IPS, lo, hi or lo, rng.min_port, rng.max_port)
    return rng


# ---------------------------------------------------------------------------------------------
# Match and target builders: each consumes its own options from a mutable option dict.

Opts = dict[str, tuple[bool, list[str]]]  # option -> (inverted, arguments)


def _build_tcp(opts: Opts) -> TcpMatch:
    """``tcp_parse()`` (libxt_tcp.c)."""
    kw: dict[str, object] = {}
    for names, key, inv_key in (
        (("--sport", "--source-port"), "spts", "inv_src"),
        (("--dport", "--destination-port"), "dpts", "inv_dst"),
    ):
        given = [n for n in names if n in opts]
        if len(given) > 1:
            raise RuleError(f"{given[1]}: Only one `{names[1]}' allowed")
        if given:
            inv, (value,) = opts.pop(given[0])
            kw[key], kw[inv_key] = _ports(given[0], value), inv
    if "--syn" in opts and "--tcp-flags" in opts:
        raise RuleError("--syn: Only one of `--syn' or `--tcp-flags'  allowed")
    if "--syn" in opts:
        inv, _ = opts.pop("--syn")
        kw.update(flg_mask=0x17, flg_cmp=0x02, inv_flags=inv)  # "SYN,RST,ACK,FIN" "SYN"
    if "--tcp-flags" in opts:
        inv, (mask, comp) = opts.pop("--tcp-flags")
        kw.update(
            flg_mask=_tcp_flags("--tcp-flags", mask), flg_cmp=_tcp_flags("--tcp-flags", comp), inv_flags=inv
        )
    return TcpMatch(**kw)  # type: ignore[arg-type]


def _build_conntrack(opts: Opts) -> ConntrackMatch:
    if "--ctstate" not in opts:
        raise RuleError("-m conntrack: this model supports only --ctstate; it is required")
    inv, (value,) = opts.pop("--ctstate")
    return ConntrackMatch(_states("--ctstate", value, _CTSTATE_NAMES), inv)


def _build_state(opts: Opts) -> ConntrackMatch:
    if "--state" not in opts:
        raise RuleError("-m state: --state is required")
    inv, (value,) = opts.pop("--state")
    return ConntrackMatch(_states("--state", value, _STATE_NAMES), inv, alias_state=True)


def _build_limit(opts: Opts) -> LimitMatch:
    """``limit_parse()``: no inversion, burst 0..10000."""
    avg, burst = XT_LIMIT_AVG, XT_LIMIT_BURST
    for opt in ("--limit", "--limit-burst"):
        if opt in opts and opts[opt][0]:
            raise RuleError(f"! {opt}: limit does not support invert")
    if "--limit" in opts:
        avg = _rate("--limit", opts.pop("--limit")[1][0])
    if "--limit-burst" in opts:
        value = opts.pop("--limit-burst")[1][0]
        if not (value.isascii() and value.isdigit()) or int(value) > 10000:
            raise RuleError(f"--limit-burst {value!r}: must be a number from 0 to 10000")
        burst = int(value)
    try:
        return LimitMatch(avg, burst)
    except ValueError as exc:
        raise RuleError(f"-m limit: {exc}") from None


def _build_addrtype(opts: Opts) -> AddrTypeMatch:
    """``addrtype_parse_v1()``; only the LOCAL type is modelled."""
    kw: dict[str, object] = {}
    for opt, key in (("--src-type", "source"), ("--dst-type", "dest")):
        if opt in opts:
            inv, (value,) = opts.pop(opt)
            if value.upper() != "LOCAL":
                raise RuleError(f"{opt} {value!r}: only the LOCAL address type is modelled")
            kw[key], kw[f"invert_{key}"] = AddrType.LOCAL, inv
    if not kw:
        raise RuleError("-m addrtype: you must specify --src-type or --dst-type")
    return AddrTypeMatch(**kw)  # type: ignore[arg-type]


MATCHES: dict[str, tuple[frozenset[str], Callable[[Opts], XtMatch]]] = {
    "tcp": (
        frozenset({"--sport", "--source-port", "--dport", "--destination-port", "--syn", "--tcp-flags"}),
        _build_tcp,
    ),
    "conntrack": (frozenset({"--ctstate"}), _build_conntrack),
    "state": (frozenset({"--state"}), _build_state),
    "limit": (frozenset({"--limit", "--limit-burst"}), _build_limit),
    "addrtype": (frozenset({"--src-type", "--dst-type"}), _build_addrtype),
}
_TWO_ARGS = {"--tcp-flags"}
_NO_ARG = {"--syn", "--log-tcp-sequence", "--random", "--random-fully", "--persistent"}


def _build_log(opts: Opts) -> LogTarget:
    prefix = opts.pop("--log-prefix", (False, [""]))[1][0]
    if len(prefix) > 29:
        raise RuleError(f"--log-prefix {prefix!r}: Maximum prefix length 29 for --log-prefix")
    if "\n" in prefix:
        raise RuleError("--log-prefix: Newlines not allowed in --log-prefix")
    level = _log_level("--log-level", opts.pop("--log-level")[1][0]) if "--log-level" in opts else 4
    return LogTarget(prefix, level, opts.pop("--log-tcp-sequence", None) is not None)


def _build_reject(opts: Opts) -> RejectTarget:
    if "--reject-with" in opts:
        return RejectTarget(_reject_with("--reject-with", opts.pop("--reject-with")[1][0]))
    return RejectTarget()


def _nat_flags(opts: Opts, rng: NatRange, allowed: tuple[str, ...]) -> NatRange:
    flags = rng.flags
    for opt, bit in (
        ("--random", NatRangeFlag.PROTO_RANDOM),
        ("--random-fully", NatRangeFlag.PROTO_RANDOM_FULLY),
        ("--persistent", NatRangeFlag.PERSISTENT),
    ):
        if opt in allowed and opts.pop(opt, None) is not None:
            flags |= bit
    return NatRange(flags, rng.min_addr, rng.max_addr, rng.min_port, rng.max_port)


def _build_nat(kind: NatKind, opts: Opts) -> NatTarget:
    if kind is NatKind.MASQUERADE:
        rng = NatRange()
        if "--to-ports" in opts:
            rng = _nat_ports("--to-ports", opts.pop("--to-ports")[1][0], rng)
        rng = _nat_flags(opts, rng, ("--random", "--random-fully"))
    else:
        opt = "--to-source" if kind is NatKind.SNAT else "--to-destination"
        if opt not in opts:
            raise RuleError(f"-j {kind.value}: {opt} is required")
        rng = _nat_to(opt, opts.pop(opt)[1][0])
        rng = _nat_flags(opts, rng, ("--random", "--random-fully", "--persistent"))
    return NatTarget(NatRequest(kind, rng))


# target name -> (options, builder, table it is restricted to, hooks it may be used from)
TARGETS: dict[str, tuple[frozenset[str], Callable[[Opts], XtTarget], TableName | None, frozenset[Hook]]] = {
    "LOG": (
        frozenset({"--log-prefix", "--log-level", "--log-tcp-sequence"}),
        _build_log,
        None,
        frozenset(Hook),
    ),
    "REJECT": (
        frozenset({"--reject-with"}),
        _build_reject,
        TableName.FILTER,
        frozenset({Hook.LOCAL_IN, Hook.FORWARD, Hook.LOCAL_OUT}),
    ),
    "SNAT": (
        frozenset({"--to-source", "--random", "--random-fully", "--persistent"}),
        lambda o: _build_nat(NatKind.SNAT, o),
        TableName.NAT,
        frozenset({Hook.POST_ROUTING, Hook.LOCAL_IN}),
    ),
    "DNAT": (
        frozenset({"--to-destination", "--random", "--persistent"}),
        lambda o: _build_nat(NatKind.DNAT, o),
        TableName.NAT,
        frozenset({Hook.PRE_ROUTING, Hook.LOCAL_OUT}),
    ),
    "MASQUERADE": (
        frozenset({"--to-ports", "--random", "--random-fully"}),
        lambda o: _build_nat(NatKind.MASQUERADE, o),
        TableName.NAT,
        frozenset({Hook.POST_ROUTING}),
    ),
}


# ---------------------------------------------------------------------------------------------
# The command line.

_SHORT = {
    "-t": "--table",
    "-A": "--append",
    "-I": "--insert",
    "-D": "--delete",
    "-N": "--new-chain",
    "-P": "--policy",
    "-F": "--flush",
    "-X": "--delete-chain",
    "-s": "--source",
    "-d": "--destination",
    "-i": "--in-interface",
    "-o": "--out-interface",
    "-p": "--protocol",
    "-j": "--jump",
    "-g": "--goto",
    "-m": "--match",
}
_LONG_ALIASES = {"--src": "--source", "--dst": "--destination", "--new": "--new-chain"}
_EXTENSION_OPTIONS = frozenset().union(*(m[0] for m in MATCHES.values()), *(t[0] for t in TARGETS.values()))
_COMMANDS = {"--append", "--insert", "--delete", "--new-chain", "--policy", "--flush", "--delete-chain"}


class _Args:
    """A cursor over argv that remembers the option being parsed, for error messages."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.pos = 0

    def __iter__(self) -> Iterator[str]:
        while self.pos < len(self.argv):
            self.pos += 1
            yield self.argv[self.pos - 1]

    def value(self, opt: str) -> str:
        if self.pos >= len(self.argv):
            raise RuleError(f"{opt}: option requires an argument")
        self.pos += 1
        return self.argv[self.pos - 1]

    def optional(self) -> str | None:
        if (
            self.pos < len(self.argv)
            and not self.argv[self.pos].startswith("-")
            and self.argv[self.pos] != "!"
        ):
            self.pos += 1
            return self.argv[self.pos - 1]
        return None


class _RuleParser:
    """The rule-specification part of ``do_parse()`` (xshared.c)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.src = self.smsk = self.dst = self.dmsk = self.proto = 0
        self.iniface = self.outiface = ""
        self.inv = InvFlag(0)
        self.seen: set[str] = set()
        self.matches: list[tuple[str, Opts]] = []
        self.target: tuple[str, Opts] | None = None
        self.goto = False

    def option(self, opt: str, invert: bool, args: _Args) -> None:
        if opt in ("--source", "--destination", "--in-interface", "--out-interface", "--protocol"):
            if opt in self.seen:
                raise RuleError(f"{opt}: multiple {opt} flags not allowed")
            self.seen.add(opt)
            self._ip_option(opt, invert, args.value(opt))
        elif opt in ("--jump", "--goto"):
            self._target(opt, invert, args.value(opt))
        elif opt == "--match":
            if invert:
                raise RuleError("! --match: unexpected ! flag before --match")
            name = args.value(opt)
            if name not in MATCHES:
                raise RuleError(f"-m {name}: match not modelled (known: {', '.join(MATCHES)})")
            self.matches.append((name, {}))
        else:
            self._extension_option(opt, invert, args)

    def _ip_option(self, opt: str, invert: bool, value: str) -> None:
        flag = {
            "--source": InvFlag.SRCIP,
            "--destination": InvFlag.DSTIP,
            "--in-interface": InvFlag.VIA_IN,
            "--out-interface": InvFlag.VIA_OUT,
            "--protocol": InvFlag.PROTO,
        }[opt]
        if invert:
            self.inv |= flag
        if opt == "--source":
            self.src, self.smsk = _addr(opt, value)
        elif opt == "--destination":
            self.dst, self.dmsk = _addr(opt, value)
        elif opt == "--protocol":
            if value.lower() not in PROTOCOLS and not (
                value.isascii() and value.isdigit() and int(value) <= 255
            ):
                raise RuleError(f"{opt} {value!r}: unknown protocol")
            self.proto = PROTOCOLS.get(
                value.lower(), int(value) if value.isascii() and value.isdigit() else 0
            )
            if self.proto == 0 and invert:
                raise RuleError(f"! {opt} {value}: rule would never match protocol")
        else:
            if len(value) >= IFNAMSIZ or not value:
                raise RuleError(f"{opt} {value!r}: interface name must be shorter than IFNAMSIZ ({IFNAMSIZ})")
            if opt == "--in-interface":
                self.iniface = value
            else:
                self.outiface = value

    def _target(self, opt: str, invert: bool, name: str) -> None:
        if invert:
            raise RuleError(f"! {opt}: cannot have ! before {opt}")
        if self.target is not None:
            raise RuleError(f"{opt} {name}: multiple -j flags not allowed")
        self.goto = opt == "--goto"
        if name in TARGETS and self.goto:
            raise RuleError(f"-g {name}: goto only to a chain, not to a target")
        if name not in TARGETS and name not in STANDARD_TARGETS and name not in self.table.chains:
            raise RuleError(f"{opt} {name}: Couldn't load target `{name}': No such file or directory")
        self.target = (name, {})

    def _extension_option(self, opt: str, invert: bool, args: _Args) -> None:
        """``command_default()``: the latest loaded match (or the target) that knows ``opt``;
        tcp options with ``-p tcp`` and no ``-m tcp`` load the tcp match implicitly."""
        owner: Opts | None = None
        if self.target is not None and opt in TARGETS.get(self.target[0], (frozenset(),))[0]:
            owner = self.target[1]
        for name, opts in reversed(self.matches):
            if owner is None and opt in MATCHES[name][0]:
                owner = opts
        if owner is None and opt in MATCHES["tcp"][0] and self.proto == 6:
            self.matches.append(("tcp", {}))
            owner = self.matches[-1][1]
        if owner is None:
            raise RuleError(f"{opt}: unknown option (no loaded match or target takes it)")
        if opt in owner:
            raise RuleError(f"{opt}: option given twice")
        if opt in _NO_ARG:
            values: list[str] = []
        elif opt in _TWO_ARGS:
            values = [args.value(opt), args.value(opt)]
        else:
            values = [args.value(opt)]
        owner[opt] = (invert, values)

    def build(self, chain: Chain) -> Rule:
        matches = []
        for name, opts in self.matches:
            if name == "tcp" and (self.proto != 6 or self.inv & InvFlag.PROTO):
                raise RuleError("-m tcp: needs `-p tcp' (and not `! -p tcp')")
            match = MATCHES[name][1](opts)
            if opts:
                raise RuleError(f"{next(iter(opts))}: option not used by -m {name}")
            matches.append(match)
        target = self._build_target(chain)
        ip = IpSpec(
            self.src, self.smsk, self.dst, self.dmsk, self.iniface, self.outiface, self.proto, self.inv
        )
        return Rule(ip, tuple(matches), target, self.goto)

    def _build_target(self, chain: Chain) -> XtTarget | None:
        if self.target is None:
            return None  # a counting rule (libiptc IPTCC_R_FALLTHROUGH)
        name, opts = self.target
        if name in STANDARD_TARGETS:
            return StandardTarget(StdVerdict[name])
        if name not in TARGETS:
            return JumpTarget(name, self.table.chains[name])
        _, builder, table, hooks = TARGETS[name]
        if table is not None and table != self.table.name:
            raise RuleError(f"-j {name}: only valid in {table.value} table, not {self.table.name.value}")
        if chain.builtin and CHAIN_HOOK[chain.name] not in hooks:
            raise RuleError(f"-j {name}: not usable from chain {chain.name}")
        if name == "REJECT" and opts.get("--reject-with") and self.proto != 6:
            with_ = _reject_with("--reject-with", opts["--reject-with"][1][0])
            if with_ is RejectWith.TCP_RESET:
                raise RuleError("--reject-with tcp-reset: TCP_RESET invalid for non-tcp")
        target = builder(opts)
        if opts:
            raise RuleError(f"{next(iter(opts))}: option not used by -j {name}")
        if (
            name in ("SNAT", "DNAT", "MASQUERADE")
            and self.proto != 6
            and isinstance(target, NatTarget)
            and (target.request.range.flags & NatRangeFlag.PROTO_SPECIFIED)
        ):
            raise RuleError(f"-j {name}: Need TCP, UDP, SCTP or DCCP with port specification")
        return target


def _chain(table: Table, name: str, opt: str) -> Chain:
    chain = table.chains.get(name)
    if chain is None:
        raise RuleError(f"{opt} {name}: No chain/target/match by that name")
    return chain


# quoting, and the ASCII whitespace str.split() splits on but shlex does not
_SHLEX_SPECIAL = frozenset("'\"\\\x0b\x0c\x1c\x1d\x1e\x1f")


def _split(line: str) -> list[str]:
    """The line split as a shell would (iptables-restore's add_param_to_argv() quoting)."""
    if line.isascii() and _SHLEX_SPECIAL.isdisjoint(line):
        return line.split()  # the same words as shlex.split(), without its per-character loop
    try:
        return shlex.split(line)
    except ValueError as e:  # "No closing quotation", "No escaped character"
        raise RuleError(f"{line!r}: {e}") from None


def iptables(ruleset: Ruleset, command: str | list[str]) -> None:
    """Run one ``iptables`` command line (``do_command4()``); the leading "iptables" is optional."""
    argv = _split(command) if isinstance(command, str) else list(command)
    if argv and argv[0] == "iptables":
        argv = argv[1:]
    table_name = TableName.FILTER
    if "-t" in argv or "--table" in argv:
        at = argv.index("-t") if "-t" in argv else argv.index("--table")
        if at + 1 >= len(argv):
            raise RuleError(f"{argv[at]}: option requires an argument")
        try:
            table_name = TableName(argv[at + 1])
        except ValueError:
            raise RuleError(
                f"-t {argv[at + 1]}: table does not exist (modelled: raw, mangle, nat, filter)"
            ) from None
        del argv[at : at + 2]
    _run(ruleset.table(table_name), argv)


def _run(table: Table, argv: list[str]) -> None:
    args = _Args(argv)
    command: tuple[str, str | None, str | None] | None = None  # (command, chain, extra)
    parser = _RuleParser(table)
    invert = False
    for raw in args:
        if raw == "!":
            if invert:
                raise RuleError("!: multiple consecutive ! not allowed")
            invert = True
            continue
        opt = _LONG_ALIASES.get(raw, _SHORT.get(raw, raw))
        if opt in _COMMANDS:
            if command is not None:
                raise RuleError(f"{raw}: only one command allowed (already {command[0]})")
            if invert:
                raise RuleError(f"! {raw}: cannot have ! before {raw}")
            chain = args.optional() if opt in ("--flush", "--delete-chain") else args.value(raw)
            extra = args.value(raw) if opt == "--policy" else args.optional()
            command = (opt, chain, extra)
        elif opt == "--table":
            raise RuleError(f"{raw}: multiple -t flags not allowed")
        elif opt.startswith("-"):
            if opt in _SHORT.values() or opt in _EXTENSION_OPTIONS:
                parser.option(opt, invert, args)
            else:
                raise RuleError(f"{raw}: unknown option")
        else:
            raise RuleError(f"{raw}: bad argument")
        invert = False
    # do_parse() (xshared.c) refuses DROP in the nat table before it looks at anything else
    policy = command[2] if command is not None and command[0] == "--policy" else None
    if table.name is TableName.NAT and "DROP" in (policy, parser.target and parser.target[0]):
        raise RuleError(
            '-t nat: The "nat" table is not intended for filtering, the use of DROP is therefore inhibited.'
        )
    if command is None:
        raise RuleError("no command specified (modelled: -A -I -D -N -P -F -X)")
    _execute(table, command, parser)


def _execute(table: Table, command: tuple[str, str | None, str | None], parser: _RuleParser) -> None:
    opt, name, extra = command
    has_spec = parser.target is not None or parser.matches or parser.seen
    if opt in ("--append", "--insert", "--delete"):
        assert name is not None
        chain = _chain(table, name, opt)
        if opt == "--delete" and extra is not None:
            _delete_at(chain, extra)
            return
        if opt == "--append" and extra is not None:
            raise RuleError(f"{opt} {name} {extra}: bad argument")
        if chain.builtin:
            hook = CHAIN_HOOK[chain.name]
            if parser.iniface and hook in (Hook.LOCAL_OUT, Hook.POST_ROUTING):
                raise RuleError(f"-i {parser.iniface}: Can't use -i with {chain.name}")
            if parser.outiface and hook in (Hook.PRE_ROUTING, Hook.LOCAL_IN):
                raise RuleError(f"-o {parser.outiface}: Can't use -o with {chain.name}")
        rule = parser.build(chain)
        if opt == "--append":
            chain.rules.append(rule)
        elif opt == "--insert":
            pos = _rulenum(chain, extra or "1", insert=True)
            chain.rules.insert(pos - 1, rule)
        else:
            for i, existing in enumerate(chain.rules):
                if existing.same_spec(rule):
                    del chain.rules[i]
                    return
            raise RuleError(f"-D {name}: Bad rule (does a matching rule exist in that chain?)")
        return
    if has_spec:
        raise RuleError(f"{opt}: rule options are not allowed with this command")
    if opt == "--new-chain":
        assert name is not None
        _new_chain(table, name)
    elif opt == "--policy":
        assert name is not None and extra is not None
        chain = _chain(table, name, opt)
        if not chain.builtin:
            raise RuleError(f"-P {name}: Bad built-in chain name")
        if extra not in ("ACCEPT", "DROP"):
            raise RuleError(f"-P {name} {extra}: Bad policy name")
        chain.policy = StdVerdict[extra]
    elif opt == "--flush":
        for chain in [_chain(table, name, opt)] if name else table.chains.values():
            chain.rules.clear()
    else:
        _delete_chains(table, name)


def _rulenum(chain: Chain, text: str, *, insert: bool) -> int:
    limit = len(chain.rules) + (1 if insert else 0)
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= max(limit, 1 if insert else 0):
        raise RuleError(f"{chain.name} {text}: Index of {'insertion' if insert else 'deletion'} too big")
    return int(text)


def _delete_at(chain: Chain, text: str) -> None:
    del chain.rules[_rulenum(chain, text, insert=False) - 1]


def _new_chain(table: Table, name: str) -> None:
    """``iptables -N``: xshared.c assert_valid_chain_name() and libiptc's checks."""
    if name in table.chains:
        raise RuleError(f"-N {name}: Chain already exists")
    if len(name) >= XT_EXTENSION_MAXNAMELEN:
        raise RuleError(
            f"-N {name}: chain name `{name}' too long (must be under {XT_EXTENSION_MAXNAMELEN} chars)"
        )
    if (
        name.startswith(("-", "!"))
        or name in TARGETS
        or name in STANDARD_TARGETS
        or any(c.isspace() for c in name)
    ):
        raise RuleError(f"-N {name}: Invalid chain name `{name}'")
    table.chains[name] = Chain(name)


def _delete_chains(table: Table, name: str | None) -> None:
    targets = [_chain(table, name, "-X")] if name else [c for c in table.chains.values() if not c.builtin]
    for chain in targets:
        if chain.builtin:
            raise RuleError(f"-X {chain.name}: Can't delete built-in chain")
        if table.references(chain):
            raise RuleError(f"-X {chain.name}: Too many links (the chain is still referenced)")
        if chain.rules:
            raise RuleError(f"-X {chain.name}: Directory not empty (flush the chain first)")
        del table.chains[chain.name]


# ---------------------------------------------------------------------------------------------
# iptables-restore.

_COUNTERS = re.compile(r"^\[(\d+):(\d+)\]$", re.ASCII)


def iptables_restore(ruleset: Ruleset, text: str) -> None:
    """Load ``iptables-save`` text (``[pkts:bytes]`` counters optional), as ``iptables-restore -c``.

    Each ``*table`` ... ``COMMIT`` block replaces that table (no ``--noflush``). Errors name the
    line. The tables are changed only when the whole text is valid.
    """
    staged = Ruleset()
    table: Table | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        try:
            table = _restore_line(staged, table, line.strip())
        except RuleError as exc:
            raise RuleError(f"line {lineno}: {exc}") from None
    if table is not None:
        raise RuleError(f"line {len(text.splitlines())}: table {table.name.value} has no COMMIT")
    for name in staged.loaded:
        ruleset.table(name)  # record the load
        ruleset.tables[name] = staged.tables[name]


def _restore_line(staged: Ruleset, table: Table | None, line: str) -> Table | None:
    if not line or line.startswith("#"):
        return table
    if line.startswith("*"):
        if table is not None:
            raise RuleError(f"{line}: table {table.name.value} has no COMMIT")
        try:
            name = TableName(line[1:])
        except ValueError:
            raise RuleError(f"{line}: table does not exist") from None
        staged.tables.pop(name, None)
        if name in staged.loaded:
            staged.loaded.remove(name)
        return staged.table(name)
    if table is None:
        raise RuleError(f"{line.split()[0]}: no table specified (missing *table line)")
    if line == "COMMIT":
        return None
    if line.startswith(":"):
        _restore_chain(table, line)
        return table
    argv = _split(line)
    counters = _COUNTERS.match(argv[0]) if argv else None
    if counters:
        argv = argv[1:]
    _run(table, argv)
    if counters:
        chain = table.chains[argv[1]]
        rule = chain.rules[-1] if argv[0] in ("-A", "--append") else chain.rules[0]
        rule.pkts, rule.bytes = int(counters[1]), int(counters[2])
    return table


def _restore_chain(table: Table, line: str) -> None:
    """``:CHAIN POLICY [pkts:bytes]``; user chains have policy ``-``."""
    parts = line[1:].split()
    if len(parts) not in (2, 3):
        raise RuleError(f"{line}: bad chain line (expected ':CHAIN POLICY [pkts:bytes]')")
    name, policy = parts[0], parts[1]
    counters = _COUNTERS.match(parts[2]) if len(parts) == 3 else None
    if len(parts) == 3 and not counters:
        raise RuleError(f"{parts[2]}: bad counters (expected [pkts:bytes])")
    if policy == "-":
        if name in table.chains and table.chains[name].builtin:
            raise RuleError(f"{line}: built-in chain {name} needs a policy")
        _new_chain(table, name)
        return
    chain = table.chains.get(name)
    if chain is None or not chain.builtin:
        raise RuleError(f"{line}: {name} is not a built-in chain of table {table.name.value}")
    if policy not in ("ACCEPT", "DROP"):
        raise RuleError(f"{line}: Bad policy name {policy!r}")
    chain.policy = StdVerdict[policy]
    if counters:
        chain.pkts, chain.bytes = int(counters[1]), int(counters[2])
