"""Properties of UDP and ICMP echo tracking, over :func:`udp_conversations` and
:func:`icmp_echo_conversations`, on every kernel profile.

The oracle is the kernels' rules written out once more, from the sources (not from the
model): an entry lives until ``timeout`` seconds after the packet that last refreshed it
(``nf_ct_refresh_acct``); ``nf_conntrack_in()`` sets SEEN_REPLY after the tracker ran, so the
first reply still gets the unreplied timeout (30 s); after it, 3.10/el7/4.19 give every packet
180 s and ASSURED, 5.10 gives 120 s only to a packet more than 2 s after the entry's creation
(``stream_ts``) but ASSURED to any, 5.15 and later ASSURED only with the stream timeout. An
ICMP entry only starts with a request (``valid_new[]``) and lives 30 s after each packet.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.include.nf_conntrack import CtInfo
from sim.netfilter.conntrack import ConntrackTable
from sim.netfilter.profiles import PROFILES
from sim.packet import icmp_packet, udp_packet
from sim.scenario.replay import replay_case
from sim.skb import Skb
from sim.testing import DatagramConversation, icmp_echo_conversations, udp_conversations
from sim.testing.strategies import CONTAINER, REMOTE

OLD = {"3.10", "el7", "4.19"}
ASSURE_ANY = OLD | {"5.10"}
profiles = st.sampled_from(sorted(PROFILES))


class Expected:
    """The oracle's entry: who opened it, when, until when it lives, its two bits."""

    def __init__(self, opener: str, now: float) -> None:
        self.opener, self.created, self.expires = opener, now, 0.0
        self.seen_reply = self.assured = False


def udp_oracle(profile: str, conv: DatagramConversation) -> list[tuple[CtInfo, Expected]]:
    out: list[tuple[CtInfo, Expected]] = []
    now, entry = 0.0, None
    for d in conv.datagrams:
        now += d.delay
        if entry is None or now >= entry.expires:
            entry = Expected(d.frm, now)
        reply = d.frm != entry.opener
        established = CtInfo.ESTABLISHED if entry.seen_reply else CtInfo.NEW
        ctinfo = CtInfo.ESTABLISHED_REPLY if reply else established
        stream = entry.seen_reply and (profile in OLD or now > entry.created + 2)
        timeout = (180 if profile in OLD else 120) if stream else 30
        if entry.seen_reply and (stream or profile in ASSURE_ANY):
            entry.assured = True
        entry.expires = now + timeout
        entry.seen_reply |= reply
        out.append((ctinfo, _copy(entry)))
    return out


def _copy(e: Expected) -> Expected:
    c = Expected(e.opener, e.created)
    c.expires, c.seen_reply, c.assured = e.expires, e.seen_reply, e.assured
    return c


def _udp(conv: DatagramConversation, frm: str) -> Skb:
    if frm == "c":
        return Skb(udp_packet(CONTAINER, conv.sport, REMOTE, conv.dport, 8))
    return Skb(udp_packet(REMOTE, conv.dport, CONTAINER, conv.sport, 8))


@settings(max_examples=300)
@given(profiles, udp_conversations())
def test_udp_entries_follow_each_kernels_rules(profile, conv):
    table = ConntrackTable(profile)
    now = 0.0
    for d, (ctinfo, want) in zip(conv.datagrams, udp_oracle(profile, conv), strict=True):
        now += d.delay
        skb = _udp(conv, d.frm)
        table.nf_conntrack_in(skb, now)
        table.nf_conntrack_confirm(skb, now)
        assert skb.ctinfo == ctinfo
        (ct,) = table.entries(now)
        assert (ct.seen_reply, ct.assured) == (want.seen_reply, want.assured)
        assert ct.timeout == want.expires
        assert len(table) == 1  # the expired entry went at the lookup that found it dead


@settings(max_examples=300)
@given(profiles, icmp_echo_conversations())
def test_an_echo_entry_starts_only_with_a_request(profile, conv):
    table = ConntrackTable(profile)
    now, expires = 0.0, None
    for seq, d in enumerate(conv.datagrams):
        now += d.delay
        live = expires is not None and now < expires
        if d.frm == "c":
            skb = Skb(icmp_packet(CONTAINER, REMOTE, 8, ident=conv.sport, seq=seq))
        else:
            skb = Skb(icmp_packet(REMOTE, CONTAINER, 0, ident=conv.sport, seq=seq))
        table.nf_conntrack_in(skb, now)
        table.nf_conntrack_confirm(skb, now)
        if d.frm == "c":
            assert skb.ctinfo in (CtInfo.NEW, CtInfo.ESTABLISHED)
            expires = now + 30
        elif live:
            assert skb.ctinfo == CtInfo.ESTABLISHED_REPLY
            expires = now + 30
        else:  # a reply with no live request: valid_new[] refuses it
            assert skb.ct is None
        assert [ct.timeout for ct in table.entries(now)] == (
            [] if expires is None or now >= expires else [expires]
        )


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["3.10", "5.10", "6.18"]), udp_conversations(max_datagrams=6, max_delay=20.0))
def test_through_the_host_the_remote_answers_reach_the_container(profile, conv):
    """The world, for a flow the container opens and that never idles 30 s (so there is one
    entry): the container's datagrams leave MASQUERADEd with their port, every datagram of
    the remote reaches the container, and the entry's ASSURED bit follows the oracle."""
    case = conv.to_case(kernel=profile)
    expected = udp_oracle(profile, conv)
    if conv.datagrams[0].frm != "c" or any(want.opener != "c" for _, want in expected):
        return  # the remote opened an entry of its own, to the host: another story
    for d, (_ctinfo, want), obs in zip(conv.datagrams, expected, replay_case(case), strict=True):
        assert obs["proto"] == "udp"
        if d.frm == "c":
            assert obs["fate"] == "delivered:remote"
            assert obs["delivered_as"]["src"] == f"198.51.100.1:{conv.sport}"
        else:
            assert (obs["fate"], obs["ctstate"]) == ("delivered:ctr", "ESTABLISHED")
        assert ("ASSURED" in obs["ct_status"]) == want.assured


@settings(max_examples=40, deadline=None)
@given(udp_conversations(max_datagrams=4))
def test_a_remote_datagram_without_an_entry_draws_port_unreachable(conv):
    """Whatever came before, the remote's first datagram (to the host's address, where no
    socket listens and no entry of the container's leads) is answered by the host's ICMP port
    unreachable, and the container sees nothing of it (__udp4_lib_rcv's icmp_send)."""
    first = next((i for i, d in enumerate(conv.datagrams) if d.frm == "s"), None)
    if first is None or any(d.frm == "c" for d in conv.datagrams[:first]):
        return
    obs = replay_case(conv.to_case())[first]
    assert obs["ctstate"] == "NEW" and obs["fate"] == "local:host"
    assert obs["emitted"] == [{"to": "remote", "icmp": [3, 3]}]
