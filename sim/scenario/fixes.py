"""The fixes as data: each knows how to apply itself to a host configuration and how to
recognise itself in one. Story scenarios (sim/scenario/story.py) also take fixes that change
a workload or add an action:

- ``drop-invalid``: ``iptables -A INPUT -m conntrack --ctstate INVALID -j DROP`` (the article's
  fix: the INVALID segment is dropped before ``tcp_v4_rcv`` can answer it with a RST);
- ``be-liberal``: ``net.netfilter.nf_conntrack_tcp_be_liberal = 1`` (``tcp_in_window`` accepts
  out-of-window segments, so they stay NATed);
- ``random-fully``: Docker's MASQUERADE with ``--random-fully`` inserted first in nat
  POSTROUTING (kube-proxy PR#78547): ``get_unique_tuple()`` skips keeping the source port;
- ``kube-forward-drop``: kube-proxy's rule from PR#74840 (Kubernetes 1.15), in its own chain
  jumped to from FORWARD: ``-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP``; it drops
  INVALID packets that are forwarded, not those addressed to the node (INPUT: k8s#117924);
- ``bigger-table``: ``net.netfilter.nf_conntrack_max = 262144`` (a >4 GB host's default);
- ``notrack``: stateless DNS not tracked: ``-t raw -A PREROUTING -p udp --dport 53 -j NOTRACK``
  and the same for ``--sport 53`` (xt_CT.c; the ISC and NodeLocal DNSCache advice), so it
  takes no conntrack entry;
- ``single-request-reopen``: glibc's ``options single-request-reopen`` for the resolver;
- ``conntrack-delete``: ``conntrack -D -p udp`` after each rule change (what kube-proxy's
  ``ClearEntriesForPortNAT`` and Docker 23's published-port cleanup do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DROP_INVALID_RULE = "iptables -A INPUT -m conntrack --ctstate INVALID -j DROP"
BE_LIBERAL = "net.netfilter.nf_conntrack_tcp_be_liberal"
KUBE_FORWARD_RULES = (
    "iptables -N KUBE-FORWARD",
    "iptables -I FORWARD 1 -j KUBE-FORWARD",
    "iptables -A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
)
NOTRACK_DNS_RULES = (
    "iptables -t raw -A PREROUTING -p udp --dport 53 -j NOTRACK",
    "iptables -t raw -A PREROUTING -p udp --sport 53 -j NOTRACK",
)
RANDOM_FULLY_RULE = (
    "iptables -t nat -I POSTROUTING 1 -s 192.0.2.0/24 ! -o docker0 -j MASQUERADE --random-fully"
)


@dataclass(frozen=True, slots=True)
class Fix:
    """A fix is host rules or one host sysctl (or a change to a story's workload)."""

    name: str
    rules: tuple[str, ...] = ()
    sysctl: tuple[str, int] | None = None
    resolver: str | None = None  # a resolv.conf option of the story's resolver
    conntrack: str | None = None  # a conntrack command run after each of the story's rule changes

    def applied(self, sysctl: dict[str, Any], rules: list[str]) -> tuple[dict[str, Any], list[str]]:
        """Copies of ``sysctl`` and ``rules`` with this fix added (its rules appended last)."""
        sysctl, rules = dict(sysctl), [*rules, *self.rules]
        if self.sysctl is not None:
            sysctl[self.sysctl[0]] = self.sysctl[1]
        return sysctl, rules

    def removed(self, sysctl: dict[str, Any], rules: list[str]) -> tuple[dict[str, Any], list[str]]:
        """Copies of ``sysctl`` and ``rules`` without this fix."""
        sysctl = {k: v for k, v in sysctl.items() if self.sysctl is None or k != self.sysctl[0]}
        return sysctl, [r for r in rules if r not in self.rules]

    def present(self, sysctl: dict[str, Any], rules: list[str]) -> bool:
        """Whether the configuration carries this fix (its rules, or the sysctl set)."""
        if self.rules:
            return all(rule in rules for rule in self.rules)
        return self.sysctl is not None and str(sysctl.get(self.sysctl[0])) == str(self.sysctl[1])


FIXES = {
    fix.name: fix
    for fix in (
        Fix("none"),
        Fix("drop-invalid", rules=(DROP_INVALID_RULE,)),
        Fix("be-liberal", sysctl=(BE_LIBERAL, 1)),
        Fix("kube-forward-drop", rules=KUBE_FORWARD_RULES),
        Fix("random-fully", rules=(RANDOM_FULLY_RULE,)),
        Fix("bigger-table", sysctl=("net.netfilter.nf_conntrack_max", 262144)),
        Fix("notrack", rules=NOTRACK_DNS_RULES),
        Fix("single-request-reopen", resolver="single-request-reopen"),
        Fix("conntrack-delete", conntrack="-D -p udp"),
    )
}


# The fixes of the incident's INVALID TCP packet: what the quiz and the kernels matrix compare.
WINDOW_FIXES = ("none", "drop-invalid", "be-liberal")
# The fixes a case or an upload scenario can take: a host rule or sysctl (the others change a
# story's workload).
HOST_FIXES = tuple(name for name, fix in FIXES.items() if fix.resolver is None and fix.conntrack is None)


def get_fix(name: str) -> Fix:
    """The fix called ``name``; ValueError (one line) for an unknown name."""
    fix = FIXES.get(name)
    if fix is None:
        raise ValueError(f"expected one of {', '.join(FIXES)}, got {name!r}")
    return fix


def fix_of(sysctl: dict[str, Any], rules: list[str]) -> str:
    """The name of the fix a host configuration carries (``drop-invalid`` wins), or ``none``."""
    for fix in FIXES.values():
        if fix.name != "none" and fix.present(sysctl, rules):
            return fix.name
    return "none"


def with_fix(sysctl: dict[str, Any], rules: list[str], name: str) -> tuple[dict[str, Any], list[str]]:
    """The configuration with exactly fix ``name`` (the others taken out)."""
    for fix in FIXES.values():
        sysctl, rules = fix.removed(sysctl, rules)
    return get_fix(name).applied(sysctl, rules)
