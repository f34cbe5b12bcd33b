"""ICMP tracking per kernel (nf_conntrack_proto_icmp.c, nf_conntrack_core.c's
nf_conntrack_handle_icmp / l4proto->error path, nf_nat_icmp_reply_translation).

Expected values typed in from the sources: ``invmap[]``, ``valid_new[]``, the 30 s
``nf_ct_icmp_timeout``, ``NR_ICMP_TYPES`` 18 and the log texts of each tree, the counters
``error``/``invalid`` of each ``nf_conntrack_in()``; the ``conntrack -L`` lines were printed by
conntrack-tools on the live 6.18 kernel (an echo request id 7 and a timestamp request id 9 to
the namespace's own 192.0.2.1, answered by its stack).
"""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest

from sim.include.netfilter import Hook
from sim.include.nf_conntrack import CtInfo
from sim.netfilter.conntrack import ConntrackTable, format_conntrack
from sim.netfilter.nat import nf_nat_icmp_reply_translation
from sim.packet import Packet, icmp_packet, udp_packet
from sim.skb import Skb

CTR, HOST, REMOTE = "192.0.2.2", "198.51.100.1", "198.51.100.2"
ALL = ("3.10", "el7", "4.19", "5.10", "5.15", "6.1", "6.12", "6.18")
OLD = ("3.10", "el7", "4.19")  # l4proto->error(): error and invalid; no outer daddr check


def run(t: ConntrackTable, pkt: Packet, now: float = 0.0) -> tuple[Skb, str | None]:
    skb = Skb(pkt)
    res = t.nf_conntrack_in(skb, now)
    t.nf_conntrack_confirm(skb, now)
    return skb, res.reason


def counters(t: ConntrackTable) -> dict[str, int]:
    """The counters the ICMP path moves (found/insert are the lookup's and confirmation's)."""
    return {k: v for k, v in asdict(t.stats).items() if v and k in ("error", "invalid", "drop")}


def test_echo_is_a_connection_as_the_live_kernel_lists_it():
    a = "192.0.2.1"
    t = ConntrackTable("6.18")
    req, _ = run(t, icmp_packet(a, a, 8, ident=7, seq=1))
    rep, _ = run(t, icmp_packet(a, a, 0, ident=7, seq=1))
    assert (req.ctinfo, rep.ctinfo) == (CtInfo.NEW, CtInfo.ESTABLISHED_REPLY)
    run(t, icmp_packet(a, a, 13, ident=9))
    run(t, icmp_packet(a, a, 14, ident=9))
    echo, stamp = list(t)
    assert format_conntrack(echo, 0.5) == (
        "icmp     1 29 src=192.0.2.1 dst=192.0.2.1 type=8 code=0 id=7 "
        "src=192.0.2.1 dst=192.0.2.1 type=0 code=0 id=7 mark=0 use=1"
    )
    assert format_conntrack(stamp, 0.5) == (
        "icmp     1 29 src=192.0.2.1 dst=192.0.2.1 type=13 code=0 id=9 "
        "src=192.0.2.1 dst=192.0.2.1 type=14 code=0 id=9 mark=0 use=1"
    )
    assert not echo.assured  # nf_conntrack_icmp_packet() never sets ASSURED


def test_an_unanswered_echo_is_unreplied_and_expires_after_30_s():
    t = ConntrackTable("6.18")
    run(t, icmp_packet(CTR, REMOTE, 8, ident=7))
    (ct,) = list(t)
    assert "[UNREPLIED]" in format_conntrack(ct, 0.0) and ct.timeout == 30.0
    assert not t.entries(30.0)


@pytest.mark.parametrize("profile", ALL)
@pytest.mark.parametrize("icmp_type", [0, 14, 9])  # a reply, a reply, router advertisement
def test_only_a_query_opens_an_entry(profile, icmp_type):
    t = ConntrackTable(profile)
    skb, _ = run(t, icmp_packet(REMOTE, CTR, icmp_type, ident=7))
    assert skb.ct is None and len(t) == 0  # valid_new[]: "Can't create a new ICMP `conn'"
    assert counters(t) == {"invalid": 1}


def udp_entry(profile: str) -> ConntrackTable:
    """The host's own UDP probe HOST:45124 -> REMOTE:9 (no NAT)."""
    t = ConntrackTable(profile)
    run(t, udp_packet(HOST, 45124, REMOTE, 9, 8))
    return t


def unreachable(dst: str = HOST, inner_src: str = HOST) -> Packet:
    return icmp_packet(REMOTE, dst, 3, 3, inner=udp_packet(inner_src, 45124, REMOTE, 9))


@pytest.mark.parametrize("profile", ALL)
def test_an_error_is_related_to_the_entry_of_the_packet_it_quotes(profile):
    t = udp_entry(profile)
    skb, reason = run(t, unreachable())
    assert skb.ctinfo == CtInfo.RELATED_REPLY and skb.ct is next(iter(t)) and reason is None
    assert len(t) == 1 and counters(t) == {}  # no entry of its own
    # the same error the other way (about a packet from the remote) relates in ORIGINAL
    skb, _ = run(t, icmp_packet(HOST, REMOTE, 11, 0, inner=udp_packet(REMOTE, 9, HOST, 45124)))
    assert skb.ctinfo == CtInfo.RELATED


@pytest.mark.parametrize("profile", ALL)
def test_an_error_about_nothing_tracked_is_invalid(profile):
    t = udp_entry(profile)
    skb, _ = run(t, icmp_packet(REMOTE, HOST, 3, 3, inner=udp_packet(HOST, 45999, REMOTE, 9)))
    assert skb.ct is None
    # up to 4.19 l4proto->error() failing counts error and invalid; later only error
    assert counters(t) == ({"error": 1, "invalid": 1} if profile in OLD else {"error": 1})


@pytest.mark.parametrize("profile", ALL)
def test_the_outer_destination_must_match_from_5_10(profile):
    t = udp_entry(profile)
    skb, reason = run(t, unreachable(dst="198.51.100.7"))
    if profile in OLD:
        assert skb.ctinfo == CtInfo.RELATED_REPLY and reason is None
    else:
        assert skb.ct is None and reason == "outer daddr 198.51.100.7 != inner 198.51.100.1"


@pytest.mark.parametrize(
    ("profile", "checksum", "type_"),
    [
        ("3.10", "bad HW ICMP checksum", "invalid ICMP type"),
        ("4.19", "bad hw icmp checksum", "invalid icmp type"),
    ],
)
def test_refused_messages_and_their_log_texts(profile, checksum, type_):
    t = ConntrackTable(profile)
    assert run(t, replace(icmp_packet(CTR, REMOTE, 8, ident=1), bad_checksum=True))[1] == checksum
    assert run(t, icmp_packet(CTR, REMOTE, 19))[1] == type_  # NR_ICMP_TYPES is 18
    assert len(t) == 0 and counters(t) == {"error": 2, "invalid": 2}


def test_nat_of_an_error_about_a_masqueraded_flow():
    """nf_nat_icmp_reply_translation(): the remote's port unreachable about HOST:45124 ->
    REMOTE:9, for a flow the host MASQUERADEd from CTR:45124, arriving in PREROUTING."""
    t = ConntrackTable("6.18")
    skb = Skb(udp_packet(CTR, 45124, REMOTE, 9, 8))
    t.nf_conntrack_in(skb, 0.0)
    ct = skb.ct
    assert ct is not None
    ct.tuples = (ct.tuples[0], (REMOTE, 9, HOST, 45124, 17))  # the MASQUERADE binding
    ct.status |= 0x10 | 0x80  # IPS_SRC_NAT | IPS_SRC_NAT_DONE
    t.nf_conntrack_confirm(skb, 0.0)
    err = Skb(unreachable())
    t.nf_conntrack_in(err, 0.1)
    assert err.ctinfo == CtInfo.RELATED_REPLY
    out = nf_nat_icmp_reply_translation(ct, err.ctinfo, Hook.PRE_ROUTING, err.pkt)
    assert (out.src, out.dst) == (REMOTE, CTR)  # the outer: as the reply to the container
    assert out.inner is not None
    assert (out.inner.src, out.inner.sport, out.inner.dst, out.inner.dport) == (CTR, 45124, REMOTE, 9)
    # POST_ROUTING (SRC manip): for a reply-direction error the statusbit is DST_NAT: untouched
    assert nf_nat_icmp_reply_translation(ct, err.ctinfo, Hook.POST_ROUTING, out) is out
