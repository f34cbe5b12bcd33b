"""iptables/xshared.c + iptables.c (do_command4): command lines into tables (iptables-restore text:
:mod:`sim.netfilter.iptables.restore`; the extensions' options: :mod:`sim.netfilter.iptables.ext`).

Only what the model evaluates is accepted; any other option is an error, never ignored. Every
error is a :class:`RuleError` with a one-line message naming the offending option and value
(and, for iptables-restore text, the line number). Option syntax and error wording follow
iptables' own parsers: libxt_tcp.c tcp_parse(), libxt_conntrack.c, libxt_limit.c parse_rate(),
libxt_addrtype.c, libxt_LOG.c, libipt_REJECT.c and libxt_NAT.c parse_to()/parse_ports().
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from sim.include.netfilter import CHAIN_HOOK, Hook, NatRangeFlag, RejectWith, TableName
from sim.netfilter.iptables.ext import MATCHES, TARGETS
from sim.netfilter.iptables.ext.reject import _reject_with
from sim.netfilter.iptables.parse import Opts, RuleError, _ip, _split
from sim.netfilter.xtables import (
    Chain,
    InvFlag,
    IpSpec,
    JumpTarget,
    NatTarget,
    Rule,
    Ruleset,
    StandardTarget,
    StdVerdict,
    Table,
    XtTarget,
)

STANDARD_TARGETS = frozenset(StdVerdict.__members__)  # ACCEPT, DROP, RETURN

PROTOCOLS = {"all": 0, "tcp": 6, "udp": 17, "icmp": 1}  # the part of xtables_chain_protos[] modelled
IFNAMSIZ = 16
XT_EXTENSION_MAXNAMELEN = 29


def _addr(opt: str, text: str) -> tuple[int, int]:
    """``xtables_ipparse_any()``: ``a.b.c.d[/len]``; the address is masked as iptables does."""
    addr, _, plen = text.partition("/")
    if plen:
        if not (plen.isascii() and plen.isdigit()) or int(plen) > 32:
            raise RuleError(f"{opt} {text!r}: invalid mask {plen!r} specified")
        mask = int(ipaddress.IPv4Network((0, int(plen))).netmask)
    else:
        mask = 0xFFFFFFFF
    return _ip(opt, addr) & mask, mask


_TWO_ARGS = {"--tcp-flags"}
_NO_ARG = {"--syn", "--log-tcp-sequence", "--random", "--random-fully", "--persistent", "--notrack"}


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
        implicit = {6: "tcp", 17: "udp"}.get(self.proto)  # libxtables' load_proto()
        if owner is None and implicit is not None and opt in MATCHES[implicit][0]:
            self.matches.append((implicit, {}))
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
            number = {"tcp": 6, "udp": 17}.get(name)
            if number is not None and (self.proto != number or self.inv & InvFlag.PROTO):
                raise RuleError(f"-m {name}: needs `-p {name}' (and not `! -p {name}')")
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
            and self.proto not in (6, 17)
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
