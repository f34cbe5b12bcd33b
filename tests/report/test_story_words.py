"""Each story's why, in plain words, at the packet it turns on: what the kernel did there, per
kernel, with the trace's numbers. The expected words are typed in from the kernel sources the
model follows (nf_conntrack_core.c's __nf_conntrack_confirm/nf_ct_resolve_clash/early_drop and
pr_fmt, nf_conntrack_proto_tcp.c's tcp_in_window/tcp_new, nf_nat_core.c's get_unique_tuple)
and the stories' own addresses, never read back from the code under test."""

from __future__ import annotations

import pytest

from sim.api import load
from sim.report.story import key_event, key_moment, why_words
from sim.scenario.story import StoryRun


def story(name: str, kernel: str, fix: str | None = None) -> StoryRun:
    run = load(name, kernel, fix).run().story
    assert run is not None
    return run


def words(name: str, kernel: str, fix: str | None = None) -> tuple[str, str]:
    """(the key moment's text, its why as one string)."""
    run = story(name, kernel, fix)
    m = key_moment(run)
    assert m is not None
    return m.text, " ".join(why_words(run, m))


def test_dns_race_3_10_drops_even_the_same_nat() -> None:
    text, why = words("dns-race", "3.10")
    assert text.startswith("lookup 1") and "the A query" in text  # the first race already loses
    assert "no clash resolution" in why and "insert_failed" in why
    assert "(the same NAT)" in why and "5 s timeout" in why


def test_dns_race_el7_drops_only_the_different_dnat() -> None:
    text, why = words("dns-race", "el7")
    assert text.startswith("lookup 2")  # lookup 1 (one NAT) was merged
    assert "198.51.100.1:42001 > 198.51.100.2:53" in why and "198.51.100.1:42001 > 198.51.100.3:53" in why
    assert "(different NAT)" in why and "only when the NAT results match" in why
    assert "insert_failed, drop" in why


@pytest.mark.parametrize("kernel", ["5.10", "6.18"])
def test_dns_race_from_5_10_resolves_the_clash(kernel: str) -> None:
    run = story("dns-race", kernel)
    assert run.succeeded
    m = key_moment(run)
    assert m is not None and "clash_resolve" in " ".join(why_words(run, m))
    e = key_event(run, m)
    assert e is not None and e.confirm is not None and "clash_resolve" in e.confirm.counters


def test_snat_port_clash_tcp_may_not_clash() -> None:
    _, why = words("snat-port-clash", "6.18")
    assert "TCP has no allow_clash" in why
    assert "192.0.2.7:39000" in why  # the other container
    assert why.count("198.51.100.1:39000 > 198.51.100.2:443") == 2  # both kept port 39000


@pytest.mark.parametrize(("kernel", "port"), [("3.10", "1024"), ("6.18", None)])
def test_snat_port_clash_tells_the_retransmission_a_second_later(kernel: str, port: str | None) -> None:
    # include/net/tcp.h TCP_TIMEOUT_INIT (1*HZ), armed by tcp_connect(), fired into
    # tcp_retransmit_timer(); the resent SYN finds no entry: init_conntrack(); 3.10's port search
    # starts at tcp_port_rover (0) + 1024 (nf_nat_proto_common.c)
    text, why = words("snat-port-clash", kernel)
    assert text.startswith("ctr's SYN (held just before confirmation)")
    assert "TCP_TIMEOUT_INIT (1 s, RFC 6298" in why and "tcp_retransmit_timer() sent the SYN again" in why
    assert "1.000 s later with the same sequence number 100" in why
    assert "init_conntrack()" in why and "port 39000 is taken now" in why
    assert "the connect took a second longer" in why
    if port is not None:
        assert f"it left as 198.51.100.1:{port} > 198.51.100.2:443" in why


def test_snat_port_clash_random_fully_chooses_another_port() -> None:
    run = story("snat-port-clash", "6.18", "random-fully")
    m = key_moment(run)
    assert run.succeeded and m is not None
    assert m.text.startswith("ctr2's SYN")  # the last SYN that opened a connection, not an ACK
    why = " ".join(why_words(run, m))
    assert "--random-fully" in why and "198.51.100.1:39000" not in why


@pytest.mark.parametrize(
    ("kernel", "line"),
    [
        ("el7", '"nf_conntrack: table full, dropping packet"'),  # no pr_fmt in el7's core
        ("6.18", '"nf_conntrack: nf_conntrack: table full, dropping packet"'),
    ],
)
def test_table_full_prints_each_kernels_line(kernel: str, line: str) -> None:
    text, why = words("conntrack-table-full", kernel)
    assert text.startswith("flow 5 SYN")  # flow 4's SYN evicted the unanswered UDP entry
    assert line in why and "nf_conntrack_max is 6" in why and "every one of the 6 entries is ASSURED" in why


def test_table_full_4_19_scans_one_bucket() -> None:
    # 4.19's early_drop(): reciprocal_scale(_hash++, hsize) eight times, nearly always one bucket
    text, why = words("conntrack-table-full", "4.19")
    assert text.startswith("flow 4 SYN") and "1 entry is not ASSURED, but not where it looked" in why


def test_stale_udp_entry_keeps_the_old_translation() -> None:
    _, why = words("stale-udp-entry", "6.18")
    assert "192.0.2.2:5060, the old container" in why
    assert "30 s unreplied, 120 s once it is a stream" in why  # udp_timeouts[] from 5.10


def test_stale_udp_entry_el7_stream_timeout() -> None:
    _, why = words("stale-udp-entry", "el7")
    assert "30 s unreplied, 180 s once it is a stream" in why  # udp_timeouts[] up to 4.19


def test_pod_ip_leak_leaves_with_the_private_address() -> None:
    _, why = words("pod-ip-leak", "el7")
    assert "192.0.2.2:40000 > 198.51.100.2:443" in why and "private address" in why
    assert "INVALID on every kernel" in why


@pytest.mark.parametrize("kernel", ["el7", "5.15"])
def test_published_port_invalid_rst_up_to_5_15(kernel: str) -> None:
    _, why = words("published-port-invalid", kernel)
    assert "198.51.100.1:8080" in why and "198.51.100.2:40000, with a RST" in why


def test_published_port_invalid_ignored_from_6_1() -> None:
    _, why = words("published-port-invalid", "6.1")
    assert "NFCT_TCP_IGNORE" in why and "198.51.100.2:40000 > 192.0.2.2:80" in why


def test_mid_stream_pickup_compares_the_liberal_entry() -> None:
    text, why = words("mid-stream-pickup", "el7")
    assert text.startswith("upload 1: a late ACK")
    assert "IP_CT_TCP_FLAG_BE_LIBERAL" in why and "conntrack -F" in why


def test_kube_clusterip_stray_source_reaches_the_client_pod() -> None:
    _, why = words("kube-clusterip-invalid", "el7")
    assert "198.51.100.2:8080 > 192.0.2.2:40000" in why and "backend's own address" in why


def test_notrack_fix_keeps_the_dns_out_of_the_table() -> None:
    _, why = words("conntrack-table-full", "6.18", "notrack")
    assert "NOTRACK" in why and "IP_CT_UNTRACKED" in why


@pytest.mark.parametrize("kernel", ["el7", "6.18"])
def test_one_sided_wscale_names_the_lost_scale(kernel: str) -> None:
    _, why = words("one-sided-wscale", kernel)
    assert "td_scale to 0 in both directions" in why and "INVALID on every kernel" in why


def test_the_scale_words_stay_out_of_a_story_where_both_scale() -> None:
    _, why = words("published-port-invalid", "el7")  # both SYNs offer wscale 7
    assert "td_scale" not in why


def test_be_liberal_fix_says_the_sysctl() -> None:
    _, why = words("published-port-invalid", "el7", "be-liberal")
    assert "nf_conntrack_tcp_be_liberal=1" in why
