"""net/ipv4/netfilter/ip_tables.c: tables, chains, rules and ``ipt_do_table``, with the xt_* matches/targets.

This is the kernel half of iptables: rule data plus the per-packet decisions. Parsing the
command line lives in :mod:`sim.netfilter.iptables.cmd` (libxtables' parse functions) and
rendering in :mod:`sim.netfilter.iptables.save` (their print/save functions), as in iptables'
own split between the kernel module and the ``libxt_*.so`` extension.

Targets never act on the packet themselves (principle 4): NAT targets return a
:class:`NatRequest` for the nat module to execute, REJECT returns the packet to emit, LOG hands
its line to the caller's context. Matches and targets are precompiled objects; results of
terminal rules and chain policies are built once, so the common path allocates nothing but the
jump stack.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from enum import Enum, IntFlag

from sim.include.netfilter import HOOK_CHAIN, CtState, Hook, NatRequest, TableName
from sim.include.nf_conntrack import IP_CT_UNTRACKED, IPS_DST_NAT, IPS_SRC_NAT, CtInfo
from sim.netfilter.hooks import NF_ACCEPT, NF_DROP
from sim.netfilter.log import LogTarget
from sim.netfilter.reject import RejectTarget
from sim.netfilter.x_tables import RuleAt, Verdict, XtCode, XtContext, XtResult
from sim.netfilter.xt_ct import CtTarget
from sim.packet import ip_to_int
from sim.skb import Skb

U32 = 0xFFFFFFFF


class StdVerdict(Enum):
    """What a standard target does: ``-j ACCEPT``, ``-j DROP`` or ``-j RETURN`` (``XT_RETURN``)."""

    ACCEPT = "ACCEPT"
    DROP = "DROP"
    RETURN = "RETURN"


# The standard verdicts for ipt_do_table to test:
# on Python 3.11 reading a member as a class attribute goes through EnumType.__getattr__'s
# slow hook (about 900 machine instructions; a module global costs a few).
_STD_ACCEPT, _STD_RETURN = StdVerdict.ACCEPT, StdVerdict.RETURN
_XT_CONTINUE = XtCode.CONTINUE


# valid_hooks of each table, in hook order (the order iptables lists the built-in chains).
TABLE_HOOKS: dict[TableName, tuple[Hook, ...]] = {
    TableName.RAW: (Hook.PRE_ROUTING, Hook.LOCAL_OUT),
    TableName.MANGLE: tuple(Hook),
    TableName.NAT: (Hook.PRE_ROUTING, Hook.LOCAL_IN, Hook.LOCAL_OUT, Hook.POST_ROUTING),
    TableName.FILTER: (Hook.LOCAL_IN, Hook.FORWARD, Hook.LOCAL_OUT),
}


# ---------------------------------------------------------------------------------------------
# The IP part every rule has (struct ipt_ip) and ip_packet_match().


class InvFlag(IntFlag):
    """``IPT_INV_*`` from include/uapi/linux/netfilter_ipv4/ip_tables.h."""

    VIA_IN = 0x01
    VIA_OUT = 0x02
    TOS = 0x04
    SRCIP = 0x08
    DSTIP = 0x10
    FRAG = 0x20
    PROTO = 0x40


def _iface_matches(pattern: str, name: str | None) -> bool:
    """``ifname_compare_aligned()`` with the mask iptables builds: ``eth+`` matches by prefix."""
    if pattern.endswith("+"):
        return (name or "").startswith(pattern[:-1])
    return pattern == (name or "")


_INV_SRCIP, _INV_DSTIP = int(InvFlag.SRCIP), int(InvFlag.DSTIP)
_INV_VIA_IN, _INV_VIA_OUT, _INV_PROTO = int(InvFlag.VIA_IN), int(InvFlag.VIA_OUT), int(InvFlag.PROTO)


@dataclass(frozen=True, slots=True)
class IpSpec:
    """``struct ipt_ip``: addresses are stored already masked, as iptables sends them."""

    src: int = 0
    smsk: int = 0
    dst: int = 0
    dmsk: int = 0
    iniface: str = ""
    outiface: str = ""
    proto: int = 0
    invflags: InvFlag = InvFlag(0)  # noqa: RUF009 (an immutable flag value)

    def matches(self, skb: Skb) -> bool:
        """``ip_packet_match()`` (ip_tables.c)."""
        pkt = skb.pkt
        inv = int(self.invflags)  # plain-int tests: IntFlag arithmetic is slow on this path
        if self.smsk and ((ip_to_int(pkt.src) & self.smsk) != self.src) ^ bool(inv & _INV_SRCIP):
            return False
        if self.dmsk and ((ip_to_int(pkt.dst) & self.dmsk) != self.dst) ^ bool(inv & _INV_DSTIP):
            return False
        if self.iniface and (not _iface_matches(self.iniface, skb.indev)) ^ bool(inv & _INV_VIA_IN):
            return False
        if self.outiface and (not _iface_matches(self.outiface, skb.outdev)) ^ bool(inv & _INV_VIA_OUT):
            return False
        # "-p 0" means any protocol.
        return not (self.proto and (self.proto != pkt.proto) ^ bool(inv & _INV_PROTO))


# ---------------------------------------------------------------------------------------------
# Matches (net/netfilter/xt_*.c).


@dataclass(frozen=True, slots=True)
class TcpMatch:
    """``struct xt_tcp`` and ``tcp_mt()`` from xt_tcpudp.c."""

    spts: tuple[int, int] = (0, 0xFFFF)
    dpts: tuple[int, int] = (0, 0xFFFF)
    flg_mask: int = 0
    flg_cmp: int = 0
    inv_src: bool = False
    inv_dst: bool = False
    inv_flags: bool = False

    def match(self, skb: Skb, ctx: XtContext) -> bool:
        pkt = skb.pkt
        if (self.spts[0] <= pkt.sport <= self.spts[1]) == self.inv_src:
            return False
        if (self.dpts[0] <= pkt.dport <= self.dpts[1]) == self.inv_dst:
            return False
        # th[13] is the flags byte, CWR/ECE included, exactly as Packet.flags holds it.
        return ((pkt.flags & self.flg_mask) == self.flg_cmp) != self.inv_flags


@dataclass(frozen=True, slots=True)
class UdpMatch:
    """``struct xt_udp`` and ``udp_mt()`` from xt_tcpudp.c: the port ranges."""

    spts: tuple[int, int] = (0, 0xFFFF)
    dpts: tuple[int, int] = (0, 0xFFFF)
    inv_src: bool = False
    inv_dst: bool = False

    def match(self, skb: Skb, ctx: XtContext) -> bool:
        pkt = skb.pkt
        if (self.spts[0] <= pkt.sport <= self.spts[1]) == self.inv_src:
            return False
        return (self.dpts[0] <= pkt.dport <= self.dpts[1]) != self.inv_dst


# XT_CONNTRACK_STATE_BIT(ctinfo) = 1 << (ctinfo % IP_CT_IS_REPLY + 1)
_CTINFO_STATEBIT = {info: CtState(1 << (info % CtInfo.ESTABLISHED_REPLY + 1)) for info in CtInfo}


def ctstate_of(skb: Skb) -> CtState:
    """The state bits ``conntrack_mt()`` (xt_conntrack.c) computes for a packet.

    No entry: UNTRACKED if ``ctinfo`` says so (kernels >= 4.12 detach the untracked template),
    else INVALID. An entry with ``ct.untracked`` is the older kernels' untracked template.
    SNAT/DNAT come from ``ct.status`` (``IPS_SRC_NAT``/``IPS_DST_NAT``).
    """
    ct = skb.ct
    if ct is None:
        return CtState.UNTRACKED if skb.ctinfo is IP_CT_UNTRACKED else CtState.INVALID
    if ct.untracked:
        bits = CtState.UNTRACKED
    else:
        assert skb.ctinfo is not None, "a packet with a conntrack entry carries ctinfo"
        bits = _CTINFO_STATEBIT[skb.ctinfo]
    if ct.status & IPS_SRC_NAT:
        bits |= CtState.SNAT
    if ct.status & IPS_DST_NAT:
        bits |= CtState.DNAT
    return bits


@dataclass(frozen=True, slots=True)
class ConntrackMatch:
    """``-m conntrack --ctstate`` (and ``-m state --state``, its alias since iptables 1.4.x)."""

    state_mask: CtState
    invert: bool = False
    alias_state: bool = False  # XT_CONNTRACK_STATE_ALIAS: written as "-m state --state"

    def match(self, skb: Skb, ctx: XtContext) -> bool:
        return bool(self.state_mask & ctstate_of(skb)) != self.invert


# xt_limit.c: credits are in units of CREDITS_PER_JIFFY per jiffy.
XT_LIMIT_SCALE = 10000
XT_LIMIT_BURST = 5  # libxt_limit.c default burst
XT_LIMIT_AVG = XT_LIMIT_SCALE * 3600 // 3  # "3/hour", libxt_limit.c default rate
HZ = 1000  # CONFIG_HZ of the modelled kernels (CentOS 7 and Ubuntu 24.04 generic both use 1000)


def _pow2_below32(x: int) -> int:
    """``POW2_BELOW32()`` from xt_limit.c: the highest power of two <= x."""
    return 1 << (x.bit_length() - 1)


MAX_CPJ = U32 // (HZ * 60 * 60 * 24)
CREDITS_PER_JIFFY = _pow2_below32(MAX_CPJ)


def user2credits(user: int) -> int:
    """``user2credits()`` from xt_limit.c (u32 arithmetic)."""
    if user > U32 // (HZ * CREDITS_PER_JIFFY):
        return ((user // XT_LIMIT_SCALE) * HZ * CREDITS_PER_JIFFY) & U32
    return ((user * HZ * CREDITS_PER_JIFFY) // XT_LIMIT_SCALE) & U32


@dataclass(slots=True)
class LimitPriv:
    """``struct xt_limit_priv``: the bucket's mutable state (``prev`` in jiffies)."""

    credit: int
    prev: int | None = None  # set on first use; the bucket starts full, as after checkentry


@dataclass(frozen=True, slots=True)
class LimitMatch:
    """``struct xt_rateinfo`` and ``limit_mt()``: a token bucket in the kernel's own units.

    ``avg`` is seconds-per-packet times XT_LIMIT_SCALE, as libxt_limit.c's parse_rate() sends it.
    """

    avg: int = XT_LIMIT_AVG
    burst: int = XT_LIMIT_BURST
    credit_cap: int = field(init=False, compare=False)
    cost: int = field(init=False, compare=False)
    priv: LimitPriv = field(init=False, compare=False)

    def __post_init__(self) -> None:
        """``limit_mt_check()``: rejects overflow, fills the bucket."""
        if self.burst == 0 or user2credits((self.avg * self.burst) & U32) < user2credits(self.avg):
            raise ValueError(f"Overflow in xt_limit, try lower: {self.avg}/{self.burst}")
        cap = user2credits((self.avg * self.burst) & U32)
        object.__setattr__(self, "credit_cap", cap)
        object.__setattr__(self, "cost", user2credits(self.avg))
        object.__setattr__(self, "priv", LimitPriv(credit=cap))

    def match(self, skb: Skb, ctx: XtContext) -> bool:
        priv = self.priv
        now = int(ctx.now * HZ)
        if priv.prev is None:
            priv.prev = now
        if priv.credit < self.cost and priv.prev == now:  # the kernel's fast path
            return False
        credit = (priv.credit + (((now - priv.prev) * CREDITS_PER_JIFFY) & U32)) & U32
        priv.prev = now
        credit = min(credit, self.credit_cap)
        ok = credit >= self.cost
        priv.credit = credit - self.cost if ok else credit
        return ok


class AddrType(IntFlag):
    """``RTN_*`` bits as xt_addrtype masks them; only LOCAL is modelled (see :func:`_is_local`)."""

    LOCAL = 1 << 2


def _is_local(addr: str, ctx: XtContext) -> bool:
    """``inet_addr_type() == RTN_LOCAL``: the namespace's addresses plus the ``local 127.0.0.0/8`` route."""
    return addr in ctx.local_addrs or addr.startswith("127.")


@dataclass(frozen=True, slots=True)
class AddrTypeMatch:
    """``addrtype_mt_v1()`` from xt_addrtype.c, for the LOCAL type."""

    source: AddrType = AddrType(0)  # noqa: RUF009 (immutable)
    dest: AddrType = AddrType(0)  # noqa: RUF009
    invert_source: bool = False
    invert_dest: bool = False

    def match(self, skb: Skb, ctx: XtContext) -> bool:
        if self.source and _is_local(skb.pkt.src, ctx) == self.invert_source:
            return False
        return not (self.dest and _is_local(skb.pkt.dst, ctx) == self.invert_dest)


@dataclass(slots=True)
class StatisticPriv:
    """``struct xt_statistic_priv``: the rule's packet counter (``master->count``)."""

    count: int


@dataclass(frozen=True, slots=True)
class StatisticMatch:
    """``statistic_mt()`` from xt_statistic.c in ``--mode nth``: ``every`` is the kernel's
    ``u.nth.every`` (the option minus one) and the counter starts at ``every - packet``
    (libxt_statistic.c's final check, copied to ``master->count`` by ``statistic_mt_check()``).
    The random mode is not modelled."""

    every: int
    packet: int = 0
    invert: bool = False
    priv: StatisticPriv = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "priv", StatisticPriv(self.every - self.packet))

    def match(self, skb: Skb, ctx: XtContext) -> bool:
        """``nval = (oval == every) ? 0 : oval + 1``; the packet matches when nval is 0 (the
        3.10 form ``if (count++ == every) count = 0`` counts the same)."""
        oval = self.priv.count
        self.priv.count = 0 if oval == self.every else oval + 1
        return (self.priv.count == 0) is not self.invert


XtMatch = TcpMatch | UdpMatch | ConntrackMatch | LimitMatch | AddrTypeMatch | StatisticMatch


# ---------------------------------------------------------------------------------------------
# Targets.


@dataclass(frozen=True, slots=True)
class StandardTarget:
    """``-j ACCEPT``, ``-j DROP``, ``-j RETURN``: ``struct xt_standard_target``. The standard
    target has no target function: :func:`ipt_do_table` acts on its verdict itself."""

    verdict: StdVerdict


@dataclass(frozen=True, slots=True)
class JumpTarget:
    """A jump (``-j``) or goto (``-g``) to a user chain: the standard target with the chain's
    offset as its verdict (the chain is resolved at rule insertion); :func:`ipt_do_table`
    follows it itself."""

    name: str
    chain: Chain = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class NatTarget:
    """SNAT, DNAT or MASQUERADE: the request is built once, when the rule is."""

    request: NatRequest

    def target(self, skb: Skb, ctx: XtContext, at: RuleAt) -> XtResult:
        """``xt_snat_target_v2()`` / ``xt_dnat_target_v2()`` / ``masquerade_tg()``: NF_ACCEPT,
        with the binding for the nat module to make."""
        return XtResult(Verdict.ACCEPT, at.chain, at.rulenum, nat=self.request)


XtTarget = StandardTarget | JumpTarget | LogTarget | RejectTarget | NatTarget | CtTarget


# ---------------------------------------------------------------------------------------------
# Rules, chains, tables.


@dataclass(slots=True, eq=False)
class Rule:
    """``struct ipt_entry``: the IP part, the matches, the target, and its counters.

    ``target`` None is a rule without ``-j``: libiptc gives it a standard target whose verdict
    is the next rule (``IPTCC_R_FALLTHROUGH``), so it only counts and the walk goes on.
    """

    ip: IpSpec
    matches: tuple[XtMatch, ...]
    target: XtTarget | None
    goto: bool = False  # IPT_F_GOTO
    pkts: int = 0
    bytes: int = 0
    saved: tuple[str, str] | None = None  # (chain name, the rule as iptables -S prints it), for the trace

    def same_spec(self, other: Rule) -> bool:
        """What ``iptables -D chain rule-spec`` compares (counters and limit state excluded)."""
        return (self.ip, self.matches, self.target, self.goto) == (
            other.ip,
            other.matches,
            other.target,
            other.goto,
        )


@dataclass(slots=True, eq=False)
class Chain:
    """A built-in chain (with a policy and policy counters) or a user chain (policy None)."""

    name: str
    policy: StdVerdict | None = None
    rules: list[Rule] = field(default_factory=list)
    pkts: int = 0
    bytes: int = 0

    @property
    def builtin(self) -> bool:
        return self.policy is not None


@dataclass(slots=True, eq=False)
class Table:
    """One ``struct xt_table`` with its chains, built-in chains first in hook order."""

    name: TableName
    chains: dict[str, Chain] = field(default_factory=dict)

    @classmethod
    def new(cls, name: TableName) -> Table:
        """The table as its iptable_*.c module registers it: every built-in chain policy ACCEPT."""
        table = cls(name)
        for hook in TABLE_HOOKS[name]:
            table.chains[HOOK_CHAIN[hook]] = Chain(HOOK_CHAIN[hook], StdVerdict.ACCEPT)
        return table

    def references(self, chain: Chain) -> int:
        """How many rules jump or go to ``chain`` (``iptc_get_references()``)."""
        return sum(
            1
            for c in self.chains.values()
            for r in c.rules
            if isinstance(r.target, JumpTarget) and r.target.chain is chain
        )


def ipt_do_table(table: Table, hook: Hook, skb: Skb, ctx: XtContext) -> XtResult:
    """``ipt_do_table()`` (ip_tables.c): walk the hook's chain, follow jumps, gotos and RETURNs.

    A matching rule's counters count the packet before its target runs. The standard target
    ("Standard target?": no target function) is handled here: ACCEPT and DROP end the walk; a
    jump pushes the rule on the stack, a goto does not; RETURN or the end of a user chain pops
    the stack, and an empty stack means the built-in chain's policy (the table's "underflow"
    entry), whose counters then count the packet. Any other target's function runs: LOG
    continues (``XT_CONTINUE``), the others end the walk.
    """
    base = table.chains[HOOK_CHAIN[hook]]
    chain = base
    rules = chain.rules
    i = 0  # index of the next rule in ``chain``
    stack: list[tuple[Chain, int]] = []  # (chain, index to resume at)
    length = skb.pkt.ip_len
    while True:
        if i == len(rules):  # end of a chain: the user chain's implicit RETURN, or the policy
            if chain is base or not stack:
                return _policy(base, length)
            chain, i = stack.pop()
            rules = chain.rules
            continue
        rule = rules[i]
        i += 1
        if not rule.ip.matches(skb):
            continue
        for m in rule.matches:
            if not m.match(skb, ctx):
                break
        else:
            rule.pkts += 1
            rule.bytes += length
            target = rule.target
            if target is None:
                continue
            if isinstance(target, StandardTarget):
                if target.verdict is not _STD_RETURN:
                    return _result(_nf_verdict(target.verdict), chain.name, i)
                if not stack:
                    return _policy(base, length)
                chain, i = stack.pop()
                rules = chain.rules
            elif isinstance(target, JumpTarget):
                if not rule.goto:
                    stack.append((chain, i))
                chain = target.chain
                rules = chain.rules
                i = 0
            else:
                verdict = target.target(skb, ctx, RuleAt(table.name, chain.name, i))
                if verdict is not _XT_CONTINUE:
                    return verdict


def _nf_verdict(verdict: StdVerdict) -> Verdict:
    """The netfilter verdict of a standard ACCEPT or DROP (``-NF_ACCEPT - 1``, ``-NF_DROP - 1``)."""
    return NF_ACCEPT if verdict is _STD_ACCEPT else NF_DROP


@functools.lru_cache(maxsize=4096)
def _result(verdict: Verdict, chain: str, rulenum: int) -> XtResult:
    """A standard verdict's result at one place (``rulenum`` 0: the chain's policy). Results
    are values: each is built once."""
    return XtResult(verdict, chain, rulenum)


def _policy(base: Chain, length: int) -> XtResult:
    base.pkts += 1
    base.bytes += length
    assert base.policy is not None
    return _result(_nf_verdict(base.policy), base.name, 0)


@dataclass(slots=True, eq=False)
class Ruleset:
    """A namespace's iptables tables, loaded on first use as the iptable_* modules are.

    ``loaded`` keeps load order: ``xt_register_table()`` adds each table at the head of the
    list /proc/net/ip_tables_names (and so iptables-save) walks, newest first.
    """

    tables: dict[TableName, Table] = field(default_factory=dict)
    loaded: list[TableName] = field(default_factory=list)

    def table(self, name: TableName) -> Table:
        table = self.tables.get(name)
        if table is None:
            table = self.tables[name] = Table.new(name)
            self.loaded.append(name)
        return table
