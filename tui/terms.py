"""The kernel's words the walkthrough uses, defined once: the why panel defines each term it
shows, the help screen lists them all, and the quiz defines a question's terms before it asks.

Each definition is typed in from the kernel source it names (nf_conntrack_proto_tcp.c,
nf_conntrack_core.c, nf_nat_core.c, include/net/netfilter/nf_conntrack_tcp.h) or the RFC.
"""

from __future__ import annotations

import re

TERMS: dict[str, str] = {
    "ACCEPT": (
        "the tracker accepts the packet: it keeps its conntrack entry, NAT translates it, and "
        "the entry's window moves forward"
    ),
    "IGNORE": (
        "the tracker keeps the packet's conntrack entry attached (ctstate stays ESTABLISHED, NAT "
        "still translates it) but learns nothing from it: the window is left as it was "
        "(tcp_packet() returns NF_ACCEPT without updating the state)"
    ),
    "INVALID": (
        "the tracker refuses the packet: tcp_packet() returns -NF_ACCEPT, so the packet goes on "
        "without a conntrack entry (ctstate INVALID); NAT does not translate it and only rules "
        "matching --ctstate INVALID see it"
    ),
    "-NF_ACCEPT": (
        "a conntrack handler's 'negative accept': nf_conntrack_in() detaches the entry from the "
        "packet (skb->nfct on 3.10, skb->_nfct later), counts it invalid, and lets it go on (NF_ACCEPT)"
    ),
    "nf_nat_inet_fn": (
        "the NAT hook function (nf_nat_core.c; nf_nat_ipv4_fn in 3.10's iptable_nat.c): it "
        "rewrites a packet by its conntrack entry, and returns NF_ACCEPT untouched when there is none"
    ),
    "td_end": "per direction: the highest seq + len conntrack has seen that side send",
    "td_maxend": (
        "per direction: the highest ack + window the other side has offered, the right edge "
        "that side may send up to"
    ),
    "td_maxwin": "per direction: the largest window that side has advertised",
    "td_scale": "per direction: that side's window scale factor",
    "sack": (
        "in tcp_in_window(): the packet's ack number, or the right edge of its highest SACK block "
        "when that is further (not the SACK option itself)"
    ),
    "MAXACKWINDOW": "the sender's td_maxwin, but at least 66000 bytes (MAXACKWINCONST)",
    "be_liberal": (
        "net.netfilter.nf_conntrack_tcp_be_liberal=1: tcp_in_window() marks only out-of-window "
        "RSTs INVALID and accepts every other out-of-window segment"
    ),
    "RCV.NXT": "RFC 793: the next sequence number a receiver expects",
}

_PATTERNS = {term: re.compile(r"(?<![\w-])" + re.escape(term) + r"(?![\w])") for term in TERMS}


def used(text: str) -> list[str]:
    """The defined terms that ``text`` uses, in the order of :data:`TERMS`."""
    return [t for t, p in _PATTERNS.items() if p.search(text)]
