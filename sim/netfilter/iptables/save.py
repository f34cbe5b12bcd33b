"""iptables/xshared.c + iptables.c + iptables-save.c: ``iptables -nvL`` and ``iptables-save -c`` text.

Column layout from print_header(), print_rule_details(), print_fragment(), print_ifaces() and
print_ipv4_addresses() (xshared.c) and print_firewall() (iptables.c); numbers from
xtables_print_num() (libxtables/xtables.c); rule text from print_rule4() (iptables.c) and
save_ipv4_addr()/save_rule_details() (xshared.c); each extension's text from its libxt_*.c
print/save function, named below. Lines keep the real tools' trailing spaces.
Modelled on iptables 1.8.x, which prints protocol 0 as "all" (xtables_chain_protos[]).
"""

from __future__ import annotations

from sim.netfilter.log import LogTarget
from sim.netfilter.reject import RejectTarget
from sim.netfilter.xtables import (
    XT_LIMIT_BURST,
    XT_LIMIT_SCALE,
    Chain,
    ConntrackMatch,
    CtState,
    InvFlag,
    JumpTarget,
    LimitMatch,
    NatKind,
    NatRange,
    NatRangeFlag,
    NatTarget,
    Rule,
    Ruleset,
    StandardTarget,
    Table,
    TcpMatch,
    XtMatch,
    XtTarget,
)
from sim.packet import TcpFlag, int_to_ip

_PROTO_NAMES = {0: "all", 6: "tcp", 17: "udp", 1: "icmp"}
# libxt_tcp.c tcp_flag_names[]
_TCP_FLAG_NAMES = tuple((flag.name or "", int(flag)) for flag in TcpFlag if flag <= TcpFlag.URG)
_REJECT_NAMES = {
    0: "icmp-net-unreachable",
    1: "icmp-host-unreachable",
    2: "icmp-proto-unreachable",
    3: "icmp-port-unreachable",
    5: "icmp-net-prohibited",
    6: "icmp-host-prohibited",
    7: "tcp-reset",
    8: "icmp-admin-prohibited",
}


def xtables_print_num(number: int, *, kmg: bool = True, table: bool = True) -> str:
    """``xtables_print_num()``: with FMT_KILOMEGAGIGA, above 99999 round to K, M, G, T."""
    if not kmg:
        return f"{number:8d} " if table else f"{number} "
    if number <= 99999:
        return f"{number:5d} " if table else f"{number} "
    for suffix in "KMG":
        number = (number + 500) // 1000
        if number <= 9999:
            return f"{number:4d}{suffix} " if table else f"{number}{suffix} "
    number = (number + 500) // 1000
    return f"{number:4d}T " if table else f"{number}T "


def _cidr(mask: int) -> int:
    return bin(mask).count("1")


def _tcpf(flags: int) -> str:
    """``print_tcpf()`` (libxt_tcp.c)."""
    return ",".join(name for name, bit in _TCP_FLAG_NAMES if flags & bit) or "NONE"


def _states(mask: CtState) -> str:
    """``print_state()`` (libxt_conntrack.c): fixed order, comma-separated."""
    order = (
        CtState.INVALID,
        CtState.NEW,
        CtState.RELATED,
        CtState.ESTABLISHED,
        CtState.UNTRACKED,
        CtState.SNAT,
        CtState.DNAT,
    )
    return ",".join(s.name for s in order if mask & s and s.name)


_RATES = (
    ("day", XT_LIMIT_SCALE * 86400),
    ("hour", XT_LIMIT_SCALE * 3600),
    ("min", XT_LIMIT_SCALE * 60),
    ("sec", XT_LIMIT_SCALE),
)


def _rate(period: int) -> str:
    """``print_rate()`` (libxt_limit.c)."""
    i = 1
    while i < len(_RATES):
        mult = _RATES[i][1]
        if period > mult or mult // period < mult % period:
            break
        i += 1
    name, mult = _RATES[i - 1]
    return f"{mult // period}/{name}"


def _nat_range(rng: NatRange) -> str:
    """``sprint_range()`` (libxt_NAT.c)."""
    text = ""
    if rng.flags & NatRangeFlag.MAP_IPS:
        text = rng.min_addr if rng.min_addr == rng.max_addr else f"{rng.min_addr}-{rng.max_addr}"
    if rng.flags & NatRangeFlag.PROTO_SPECIFIED:
        text += f":{rng.min_port}" + (f"-{rng.max_port}" if rng.max_port != rng.min_port else "")
    return text


def _nat_print(target: NatTarget, *, save: bool) -> str:
    """``__NAT_print()`` with the rangeopt of SNAT/DNAT/MASQUERADE's PSX_GEN() lines."""
    kind, rng = target.request.kind, target.request.range
    text = _nat_range(rng)
    out = ""
    if text:
        if kind is NatKind.MASQUERADE:
            out = f" {'--to-ports ' if save else 'masq ports: '}{text[1:]}"
        else:
            opt = "--to-source " if kind is NatKind.SNAT else "--to-destination "
            out = f" {opt if save else 'to:'}{text}"
    pfx = "--" if save else ""
    for flag, name in (
        (NatRangeFlag.PROTO_RANDOM, "random"),
        (NatRangeFlag.PROTO_RANDOM_FULLY, "random-fully"),
        (NatRangeFlag.PERSISTENT, "persistent"),
    ):
        if rng.flags & flag:
            out += f" {pfx}{name}"
    return out


def _save_string(value: str) -> str:
    """``xtables_save_string()``: quote unless only ``[A-Za-z0-9_-]``; escape ``" \\ '``."""
    if value and all(c.isascii() and (c.isalnum() or c in "_-") for c in value):
        return f" {value}"
    escaped = "".join("\\" + c if c in "\"\\'" else c for c in value)
    return f' "{escaped}"'


# ---------------------------------------------------------------------------------------------
# Per-extension text: (name for "-m", -L text, save text).


def match_print(m: XtMatch) -> str:
    """``-L -n`` text: tcp_print(), conntrack3_mt_print(), limit_print(), addrtype_print_v1()."""
    if isinstance(m, TcpMatch):
        out = " tcp"
        for name, (lo, hi), inv in (("spt", m.spts, m.inv_src), ("dpt", m.dpts, m.inv_dst)):
            if (lo, hi) != (0, 0xFFFF) or inv:
                bang = "!" if inv else ""
                out += f" {name}:{bang}{lo}" if lo == hi else f" {name}s:{bang}{lo}:{hi}"
        if m.flg_mask or m.inv_flags:
            out += f" flags:{'!' if m.inv_flags else ''}0x{m.flg_mask:02X}/0x{m.flg_cmp:02X}"
        return out
    if isinstance(m, ConntrackMatch):
        return f"{' !' if m.invert else ''} {'state' if m.alias_state else 'ctstate'} {_states(m.state_mask)}"
    if isinstance(m, LimitMatch):
        return f" limit: avg {_rate(m.avg)} burst {m.burst}"
    out = " ADDRTYPE match"
    if m.source:
        out += f" src-type {'!' if m.invert_source else ''}LOCAL"
    if m.dest:
        out += f" dst-type {'!' if m.invert_dest else ''}LOCAL"
    return out


def match_save(m: XtMatch) -> str:
    """``-m NAME`` + tcp_save(), conntrack3_mt_save() (or ``state``), limit_save(), addrtype_save_v1()."""
    if isinstance(m, TcpMatch):
        out = " -m tcp"
        for opt, (lo, hi), inv in (("--sport", m.spts, m.inv_src), ("--dport", m.dpts, m.inv_dst)):
            if (lo, hi) != (0, 0xFFFF) or inv:
                out += f"{' !' if inv else ''} {opt} {lo}" + (f":{hi}" if hi != lo else "")
        if m.flg_mask or m.inv_flags:
            out += f"{' !' if m.inv_flags else ''} --tcp-flags {_tcpf(m.flg_mask)} {_tcpf(m.flg_cmp)}"
        return out
    if isinstance(m, ConntrackMatch):
        name, opt = ("state", "--state") if m.alias_state else ("conntrack", "--ctstate")
        return f" -m {name}{' !' if m.invert else ''} {opt} {_states(m.state_mask)}"
    if isinstance(m, LimitMatch):
        burst = f" --limit-burst {m.burst}" if m.burst != XT_LIMIT_BURST else ""
        return f" -m limit --limit {_rate(m.avg)}{burst}"
    out = " -m addrtype"
    if m.source:
        out += f"{' !' if m.invert_source else ''} --src-type LOCAL"
    if m.dest:
        out += f"{' !' if m.invert_dest else ''} --dst-type LOCAL"
    return out


def target_name(t: XtTarget) -> str:
    if isinstance(t, StandardTarget):
        return t.verdict.value
    if isinstance(t, JumpTarget):
        return t.name
    if isinstance(t, NatTarget):
        return t.request.kind.value
    return "LOG" if isinstance(t, LogTarget) else "REJECT"


def target_print(t: XtTarget) -> str:
    """LOG_print() (numeric), REJECT_print(), the NAT targets' print; nothing for standard ones."""
    if isinstance(t, LogTarget):
        prefix = f' prefix "{t.prefix}"' if t.prefix else ""
        return f" LOG flags {int(t.tcp_sequence)} level {t.level}{prefix}"
    if isinstance(t, RejectTarget):
        return f" reject-with {_REJECT_NAMES[t.with_]}"
    if isinstance(t, NatTarget):
        return _nat_print(t, save=False)
    return ""


def target_save(t: XtTarget) -> str:
    """LOG_save(), REJECT_save(), the NAT targets' save."""
    if isinstance(t, LogTarget):
        out = f" --log-prefix{_save_string(t.prefix)}" if t.prefix else ""
        out += f" --log-level {t.level}" if t.level != 4 else ""
        return out + (" --log-tcp-sequence" if t.tcp_sequence else "")
    if isinstance(t, RejectTarget):
        return f" --reject-with {_REJECT_NAMES[t.with_]}"
    if isinstance(t, NatTarget):
        return _nat_print(t, save=True)
    return ""


# ---------------------------------------------------------------------------------------------
# iptables-save.


def rule_save(chain: Chain, rule: Rule, *, counters: bool) -> str:
    """``print_rule4()`` (iptables.c): ``[p:b] -A CHAIN`` then -s -d -i -o -p, matches, target."""
    ip = rule.ip
    out = f"[{rule.pkts}:{rule.bytes}] " if counters else ""
    out += f"-A {chain.name}"
    for letter, addr, mask, flag in (
        ("s", ip.src, ip.smsk, InvFlag.SRCIP),
        ("d", ip.dst, ip.dmsk, InvFlag.DSTIP),
    ):
        inv = bool(ip.invflags & flag)
        if mask or inv or addr:
            out += f"{' !' if inv else ''} -{letter} {int_to_ip(addr)}/{_cidr(mask)}"
    for letter, iface, flag in (("i", ip.iniface, InvFlag.VIA_IN), ("o", ip.outiface, InvFlag.VIA_OUT)):
        inv = bool(ip.invflags & flag)
        if iface and (iface != "+" or inv):
            out += f"{' !' if inv else ''} -{letter} {iface}"
    if ip.proto:
        out += f"{' !' if ip.invflags & InvFlag.PROTO else ''} -p {_PROTO_NAMES.get(ip.proto, str(ip.proto))}"
    out += "".join(match_save(m) for m in rule.matches)
    out += f" -{'g' if rule.goto else 'j'} {target_name(rule.target)}" + target_save(rule.target)
    return out


def _chains(table: Table) -> list[Chain]:
    """libiptc's order: built-in chains in hook order, then user chains sorted by name."""
    builtin = [c for c in table.chains.values() if c.builtin]
    return builtin + sorted((c for c in table.chains.values() if not c.builtin), key=lambda c: c.name)


def save_table(table: Table, *, counters: bool = True) -> str:
    """One table as ``do_output()`` (iptables-save.c) prints it, without the comment lines."""
    lines = [f"*{table.name.value}"]
    for chain in _chains(table):
        if chain.builtin:
            assert chain.policy is not None
            lines.append(f":{chain.name} {chain.policy.value} [{chain.pkts}:{chain.bytes}]")
        else:
            lines.append(f":{chain.name} - [0:0]")
    for chain in _chains(table):
        lines.extend(rule_save(chain, rule, counters=counters) for rule in chain.rules)
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def iptables_save(ruleset: Ruleset, *, counters: bool = True, stamp: str | None = None) -> str:
    """``iptables-save [-c]``: loaded tables newest first. With ``stamp`` (the tool's version and
    ``ctime()`` text, e.g. ``"v1.8.7 (legacy) on Sat Jun  1 23:43:50 2019"``) the
    ``# Generated by`` / ``# Completed on`` comment lines are added."""
    out = []
    for name in reversed(ruleset.loaded):
        text = save_table(ruleset.tables[name], counters=counters)
        if stamp is not None:
            version, _, when = stamp.partition(" on ")
            text = f"# Generated by iptables-save {version} on {when}\n{text}# Completed on {when}\n"
        out.append(text)
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# iptables -nvL.


def _header(table: Table, chain: Chain, *, kmg: bool, line_numbers: bool) -> list[str]:
    """``print_header()`` with FMT_NUMERIC|FMT_VIA|FMT_OPTIONS (and FMT_KILOMEGAGIGA unless -x)."""
    if chain.builtin:
        assert chain.policy is not None
        pkts = xtables_print_num(chain.pkts, kmg=kmg, table=False)
        byts = xtables_print_num(chain.bytes, kmg=kmg, table=False)
        first = f"Chain {chain.name} (policy {chain.policy.value} {pkts}packets, {byts}bytes)"
    else:
        first = f"Chain {chain.name} ({table.references(chain)} references)"
    cols = f"{'num':<4} " if line_numbers else ""
    cols += f"{'pkts':>5} {'bytes':>5} " if kmg else f"{'pkts':>8} {'bytes':>10} "
    cols += f"{'target':<9}  prot opt {'in':<6} {'out':<6}  {'source':<19}  {'destination':<19} "
    return [first, cols]


def rule_line(rule: Rule, num: int = 0, *, kmg: bool = True) -> str:
    """``print_firewall()`` for ``-nv``: counters, target, prot, opt, in, out, source, destination, extras."""
    ip = rule.ip
    out = f"{num:<4} " if num else ""
    out += xtables_print_num(rule.pkts, kmg=kmg) + xtables_print_num(rule.bytes, kmg=kmg)
    out += f"{target_name(rule.target):<9} "
    out += ("!" if ip.invflags & InvFlag.PROTO else " ") + f"{_PROTO_NAMES.get(ip.proto, str(ip.proto)):<4} "
    out += "-- "
    for iface, flag in ((ip.iniface, InvFlag.VIA_IN), (ip.outiface, InvFlag.VIA_OUT)):
        text = ("!" if ip.invflags & flag else "") + (iface or "*")
        out += f" {text:<6} " if flag is InvFlag.VIA_IN else f"{text:<6} "
    for addr, mask, flag in ((ip.src, ip.smsk, InvFlag.SRCIP), (ip.dst, ip.dmsk, InvFlag.DSTIP)):
        text = int_to_ip(addr) + ("" if mask == 0xFFFFFFFF else f"/{_cidr(mask)}")
        out += ("!" if ip.invflags & flag else " ") + f"{text:<19} "
    if rule.goto:
        out += "[goto] "
    out += "".join(match_print(m) for m in rule.matches)
    return out + target_print(rule.target)


def list_table(table: Table, *, expanded: bool = False, line_numbers: bool = False) -> str:
    """``iptables -t T -nvL`` (``-x`` = ``expanded``, ``--line-numbers``): ``list_entries()``."""
    blocks = []
    for chain in _chains(table):
        lines = _header(table, chain, kmg=not expanded, line_numbers=line_numbers)
        lines.extend(
            rule_line(rule, i if line_numbers else 0, kmg=not expanded)
            for i, rule in enumerate(chain.rules, 1)
        )
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)
