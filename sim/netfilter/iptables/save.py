"""iptables/xshared.c + iptables.c + iptables-save.c: ``iptables -nvL`` and ``iptables-save -c`` text.

Column layout from print_header(), print_rule_details(), print_fragment(), print_ifaces() and
print_ipv4_addresses() (xshared.c) and print_firewall() (iptables.c); numbers from
xtables_print_num() (libxtables/xtables.c); rule text from print_rule4() (iptables.c) and
save_ipv4_addr()/save_rule_details() (xshared.c); each extension's text from its print/save
function, next to its parser in ext/ as in its libxt_*.c. Lines keep the real tools' trailing spaces.
Modelled on iptables 1.8.x, which prints protocol 0 as "all" (xtables_chain_protos[]).
"""

from __future__ import annotations

from sim.netfilter.iptables.ext.addrtype import addrtype_print, addrtype_save
from sim.netfilter.iptables.ext.conntrack import conntrack_print, conntrack_save
from sim.netfilter.iptables.ext.ct import ct_name, ct_print, ct_save
from sim.netfilter.iptables.ext.limit import limit_print, limit_save
from sim.netfilter.iptables.ext.log import log_print, log_save
from sim.netfilter.iptables.ext.nat import nat_print
from sim.netfilter.iptables.ext.reject import reject_print, reject_save
from sim.netfilter.iptables.ext.statistic import statistic_print, statistic_save
from sim.netfilter.iptables.ext.tcp import tcp_print, tcp_save
from sim.netfilter.iptables.ext.udp import udp_print, udp_save
from sim.netfilter.log import LogTarget
from sim.netfilter.reject import RejectTarget
from sim.netfilter.xt_ct import CtTarget
from sim.netfilter.xtables import (
    Chain,
    ConntrackMatch,
    InvFlag,
    JumpTarget,
    LimitMatch,
    NatTarget,
    Rule,
    Ruleset,
    StandardTarget,
    StatisticMatch,
    Table,
    TcpMatch,
    UdpMatch,
    XtMatch,
    XtTarget,
)
from sim.packet import int_to_ip

_PROTO_NAMES = {0: "all", 6: "tcp", 17: "udp", 1: "icmp"}


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


# ---------------------------------------------------------------------------------------------
# Each extension's text comes from its module in ext/, as each libxt_*.c prints its own.


def match_print(m: XtMatch) -> str:
    """The match's ``-L -n`` text (its extension's print function)."""
    if isinstance(m, TcpMatch):
        return tcp_print(m)
    if isinstance(m, UdpMatch):
        return udp_print(m)
    if isinstance(m, ConntrackMatch):
        return conntrack_print(m)
    if isinstance(m, LimitMatch):
        return limit_print(m)
    if isinstance(m, StatisticMatch):
        return statistic_print(m)
    return addrtype_print(m)


def match_save(m: XtMatch) -> str:
    """``-m NAME`` and the match's options (its extension's save function)."""
    if isinstance(m, TcpMatch):
        return tcp_save(m)
    if isinstance(m, UdpMatch):
        return udp_save(m)
    if isinstance(m, ConntrackMatch):
        return conntrack_save(m)
    if isinstance(m, LimitMatch):
        return limit_save(m)
    if isinstance(m, StatisticMatch):
        return statistic_save(m)
    return addrtype_save(m)


def target_name(t: XtTarget | None) -> str:
    if t is None:
        return ""  # a counting rule: the target column stays empty
    if isinstance(t, StandardTarget):
        return t.verdict.value
    if isinstance(t, JumpTarget):
        return t.name
    if isinstance(t, NatTarget):
        return t.request.kind.value
    if isinstance(t, CtTarget):
        return "CT"  # -L shows the kernel target; iptables-save the alias (ct_name)
    return "LOG" if isinstance(t, LogTarget) else "REJECT"


def target_print(t: XtTarget | None) -> str:
    """The target's ``-L -n`` text (its extension's print function); nothing for standard ones."""
    if isinstance(t, LogTarget):
        return log_print(t)
    if isinstance(t, RejectTarget):
        return reject_print(t)
    if isinstance(t, NatTarget):
        return nat_print(t, save=False)
    if isinstance(t, CtTarget):
        return ct_print(t)
    return ""


def target_save(t: XtTarget | None) -> str:
    """The target's options (its extension's save function); nothing for standard ones."""
    if isinstance(t, LogTarget):
        return log_save(t)
    if isinstance(t, RejectTarget):
        return reject_save(t)
    if isinstance(t, NatTarget):
        return nat_print(t, save=True)
    if isinstance(t, CtTarget):
        return ct_save(t)
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
    if rule.target is not None:  # print_rule4() prints no -j for a fall-through rule
        t = rule.target
        name = ct_name(t) if isinstance(t, CtTarget) else target_name(t)
        out += f" -{'g' if rule.goto else 'j'} {name}" + target_save(t)
    return out


def rule_text(chain: Chain, rule: Rule) -> str:
    """:func:`rule_save` without counters, remembered on the rule: its spec never changes once
    inserted (the chain's name may, ``iptables -E``)."""
    saved = rule.saved
    if saved is None or saved[0] != chain.name:
        saved = rule.saved = (chain.name, rule_save(chain, rule, counters=False))
    return saved[1]


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
