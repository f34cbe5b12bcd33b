"""The story scenarios of issue 19: on which kernels each fails, with which decisive event, and
that its fix makes it succeed. Expected values come from the kernel source as summarised in
shared/SCENARIOS.md (cited per test), not from the model's output."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sim.netfilter.profiles import PROFILES
from sim.packet import TCPHDR_ACK, TCPHDR_SYN, IpProto
from sim.scenario.loader import InputError
from sim.scenario.scenario import load_any
from sim.scenario.story import Story, StoryRun, parse_story, run_story

STORIES = (
    "mid-stream-pickup",
    "dns-race",
    "snat-port-clash",
    "stale-udp-entry",
    "conntrack-table-full",
    "pod-ip-leak",
    "published-port-invalid",
    "kube-clusterip-invalid",
    "kube-nodeport-invalid",
    "one-sided-wscale",
)


def story(name: str, kernel: str, fix: str = "none") -> StoryRun:
    st = load_any(name)
    assert isinstance(st, Story)
    return run_story(st.with_kernel(kernel).with_fix(fix))


@pytest.mark.parametrize("kernel", list(PROFILES))
@pytest.mark.parametrize("name", STORIES)
def test_every_story_runs_on_every_profile_and_its_fix_makes_it_succeed(name: str, kernel: str) -> None:
    st = load_any(name)
    assert isinstance(st, Story) and st.fixes
    run = run_story(st.with_kernel(kernel))
    assert run.succeeded or (run.decisive is not None and run.decisive.failed)
    fixed = run_story(st.with_kernel(kernel).with_fix(st.fixes[0])).succeeded
    # NF_NAT_RANGE_PROTO_RANDOM_FULLY came in 3.13 (el7 backports it): upstream 3.10 has no such fix
    assert fixed is not (name == "snat-port-clash" and kernel == "3.10")


def test_dns_race_drops_the_loser_with_insert_failed_on_upstream_3_10() -> None:
    # 3.10.99 __nf_conntrack_confirm: no nf_ct_resolve_clash -> NF_CT_STAT_INC(insert_failed), NF_DROP
    run = story("dns-race", "3.10")
    first = run.decisive
    assert first is not None and first.obs is not None
    assert first.text.startswith("lookup 1") and "A query" in first.text
    assert first.obs["fate"] == "dropped:host" and first.obs["ct_stats"]["insert_failed"] == 1
    # the resolver's 5 s timeout, then single_request on the same socket (res_send.c send_dg)
    assert any("times out after 5 s" in m.text for m in run.moments)


@pytest.mark.parametrize("kernel", ["el7", "4.19"])
def test_dns_race_same_nat_merges_but_different_dnat_drops_on_el7_and_4_19(kernel: str) -> None:
    # nf_ct_resolve_clash (4.19.1, backported to el7): merge only if no NAT or nf_ct_match();
    # otherwise NF_CT_STAT_INC(drop) (and insert_failed, counted for every clash)
    run = story("dns-race", kernel)
    lookup1 = [m for m in run.moments if m.text.startswith("lookup 1") and m.obs]
    assert all(m.obs is not None and m.obs["fate"].startswith("delivered") for m in lookup1)
    d = run.decisive
    assert d is not None and d.obs is not None and d.text.startswith("lookup 2")
    assert d.obs["fate"] == "dropped:host"
    assert d.obs["ct_stats"]["drop"] == 1 and d.obs["ct_stats"]["insert_failed"] == 1
    done = [m for m in run.moments if m.text.startswith("lookup done")]
    assert done[-1].t == pytest.approx(5.0, abs=0.01)


@pytest.mark.parametrize("kernel", ["5.10", "5.15", "6.1", "6.12", "6.18"])
def test_dns_race_different_dnat_is_resolved_from_5_x(kernel: str) -> None:
    # nf_ct_resolve_clash_harder (5.6): the loser is inserted for the reply direction only
    run = story("dns-race", kernel)
    assert run.succeeded
    lookup2 = [m for m in run.moments if m.text.startswith("lookup 2") and m.obs]
    assert {m.obs["delivered_as"]["dst"] for m in lookup2 if m.obs} == {"198.51.100.2:53", "198.51.100.3:53"}
    assert any(m.obs is not None and m.obs["ct_stats"].get("clash_resolve") for m in lookup2)


@pytest.mark.parametrize("kernel", ["3.10", "el7"])
def test_dns_race_single_request_reopen_uses_a_new_port_for_the_second_query(kernel: str) -> None:
    run = story("dns-race", kernel, "single-request-reopen")
    assert run.succeeded
    sent = [m.obs["delivered_as"]["src"] for m in run.moments if m.obs and m.text.startswith("lookup 1")]
    assert len(sent) == 2 and len(set(sent)) == 2  # the A and AAAA queries, from two ports


@pytest.mark.parametrize("kernel", list(PROFILES))
def test_snat_port_clash_loses_a_syn_with_insert_failed_everywhere(kernel: str) -> None:
    # TCP has no allow_clash: the loser at __nf_conntrack_confirm is dropped on every kernel
    run = story("snat-port-clash", kernel)
    d = run.decisive
    assert d is not None and d.obs is not None and d.obs["fate"] == "dropped:host"
    assert d.obs["ct_stats"].get("insert_failed") == 1
    assert run.table.stats.insert_failed == 1


@pytest.mark.parametrize("kernel", ["el7", "6.18"])
def test_stale_udp_entry_keeps_the_old_translation_until_conntrack_delete(kernel: str) -> None:
    run = story("stale-udp-entry", kernel)
    d = run.decisive
    assert d is not None and d.obs is not None and d.obs["fate"] == "delivered:ctr"  # the old target
    assert d.obs["delivered_as"]["dst"] == "192.0.2.2:5060"
    # 45 s after the first datagram, still the same entry: each datagram refreshed its timeout
    last = next(m for m in run.moments if m.text.startswith("25 s later"))
    assert last.t >= 45 and last.obs is not None and last.obs["fate"] == "delivered:ctr"
    assert story("stale-udp-entry", kernel, "conntrack-delete").succeeded


@pytest.mark.parametrize(
    ("kernel", "line"),
    [
        ("el7", "nf_conntrack: table full, dropping packet"),  # no pr_fmt in el7's nf_conntrack_core.c
        ("5.10", "nf_conntrack: nf_conntrack: table full, dropping packet"),
        ("6.18", "nf_conntrack: nf_conntrack: table full, dropping packet"),
    ],
)
def test_conntrack_table_full_early_drops_then_prints_table_full(kernel: str, line: str) -> None:
    run = story("conntrack-table-full", kernel)
    assert run.table.stats.early_drop == 1  # the NTP entry: seen both ways, not ASSURED
    d = run.decisive
    assert d is not None and d.obs is not None and d.obs["fate"] == "dropped:host"
    assert "flow 5" in d.text
    assert run.table.log[0] == line
    assert story("conntrack-table-full", kernel, "bigger-table").succeeded


def test_conntrack_table_full_on_4_19_scans_one_bucket_so_flow_4_is_dropped() -> None:
    # chens37/linux-4.19.1 nf_conntrack_core.c: nf_conntrack_in() passes hash_conntrack_raw()
    # (line 1462) to __nf_conntrack_alloc() -> early_drop(net, hash) (line 1268), which scans
    # reciprocal_scale(_hash++, hsize) (line 1086) NF_CT_EVICTION_RANGE times: a raw hash + 0..7,
    # scaled to 8 buckets, is (nearly always) one bucket, the new tuple's. 5.10 walks to the
    # next bucket instead, so there 8 buckets are the whole table.
    run = story("conntrack-table-full", "4.19")
    d = run.decisive
    assert d is not None and d.text.startswith("flow 4") and run.table.stats.early_drop == 0
    table = run.table
    flow4 = next(m for m in run.moments if m.text.startswith("flow 4 SYN"))
    assert flow4.obs is not None and flow4.obs["fate"] == "dropped:host"
    ntp = next(ct for ct in table if ct.orig[3] == 123)  # the evictable entry is still there
    syn = ("192.0.2.2", 40004, "198.51.100.2", 443, IpProto.TCP)
    scanned = {table._bucket((table.hash_raw(syn) + i) & 0xFFFFFFFF, 8) for i in range(8)}
    assert len(scanned) == 1
    assert not scanned & {table._bucket(table.hash_raw(k), 8) for k in (ntp.orig, ntp.reply)}


@pytest.mark.parametrize("kernel", list(PROFILES))
def test_conntrack_table_full_notrack_keeps_the_stateless_dns_out_of_the_table(kernel: str) -> None:
    # xt_CT.c: -j NOTRACK in raw PREROUTING, both directions of the DNS: no entry, so flows 4 and 5 fit
    run = story("conntrack-table-full", kernel, "notrack")
    assert run.succeeded
    dns = [m for m in run.moments if m.obs and "53" in str(m.obs.get("delivered_as"))]
    assert dns and all(m.obs is not None and m.obs["ctstate"] == "UNTRACKED" for m in dns)
    assert len(run.table) == 6 and all(ct.orig[3] != 53 for ct in run.table)


@pytest.mark.parametrize("kernel", list(PROFILES))
def test_pod_ip_leak_seq_over_upper_bound_leaves_with_the_container_address(kernel: str) -> None:
    # SEQ over the upper bound stays INVALID on every kernel (6.1 made only the under-lower ones IGNORE)
    d = story("pod-ip-leak", kernel).decisive
    assert d is not None and d.obs is not None and d.obs["ctstate"] == "INVALID"
    assert d.obs["delivered_as"]["src"] == "192.0.2.2:40000"


@pytest.mark.parametrize("kernel", list(PROFILES))
def test_published_port_invalid_rst_until_6_1_ignores_under_lower_bound(kernel: str) -> None:
    # 6e250dcbff1d (6.1): SEQ under the lower bound -> NFCT_TCP_IGNORE, DNATed to the container
    run = story("published-port-invalid", kernel)
    if kernel in ("6.1", "6.12", "6.18"):
        assert run.succeeded
        old = next(m for m in run.moments if m.text.startswith("a segment from 70000"))
        assert old.obs is not None and old.obs["fate"] == "delivered:ctr"
    else:
        d = run.decisive
        assert d is not None and d.obs is not None and d.obs["ctstate"] == "INVALID"
        assert [e["flags"] for e in d.obs["emitted"]] == ["R"]
        assert story("published-port-invalid", kernel, "drop-invalid").succeeded


def test_bad_story_is_one_line_error() -> None:
    with pytest.raises(InputError, match=r"x.toml: step\[0\]: expected exactly one of"):
        parse_story({"step": [{"say": "nothing"}]}, "x.toml")
    with pytest.raises(InputError, match=r"step\[0\].expect: expected one of"):
        parse_story({"step": [{"conntrack": "-L", "expect": "maybe"}]}, "x.toml")


def test_decisive_events_in_a_few_words() -> None:
    assert story("dns-race", "3.10").event == "insert_failed"
    assert story("dns-race", "el7").event == "insert_failed"
    assert story("dns-race", "6.18").event == "ok"
    assert story("conntrack-table-full", "el7").event == "table full"
    assert story("stale-udp-entry", "6.18").event == "stale DNAT"
    assert story("pod-ip-leak", "el7").event == "source leak"
    assert story("published-port-invalid", "5.15").event == "host RST"


@pytest.mark.parametrize("kernel", list(PROFILES))
def test_mid_stream_pickup_is_liberal_so_the_late_ack_passes_after_a_flush(kernel: str) -> None:
    run = story("mid-stream-pickup", kernel)
    first = next(m for m in run.moments if m.text.startswith("upload 1: a late ACK"))
    second = next(m for m in run.moments if m.text.startswith("upload 2: the same late ACK"))
    assert first.obs is not None and second.obs is not None
    # tcp_in_window bound IV: INVALID up to 5.15; 6.1 (6e250dcbff1d) ignores an ACK under the lower bound
    if kernel in ("6.1", "6.12", "6.18"):
        assert first.obs["window"] == "IGNORE" and run.succeeded
    else:
        assert first.obs["ctstate"] == "INVALID" and run.event == "host RST"
    # tcp_new() pickup: IP_CT_TCP_FLAG_BE_LIBERAL on both directions, so the reply passes, de-NATed
    assert second.obs["fate"] == "delivered:ctr"
    assert second.obs["delivered_as"]["dst"] == "192.0.2.2:40001"


OLD_KERNELS = ("3.10", "el7", "4.19", "5.10", "5.15")  # no NFCT_TCP_IGNORE (6e250dcbff1d, 6.1)


@pytest.mark.parametrize("kernel", list(PROFILES))
def test_kube_clusterip_invalid_reaches_the_pod_from_the_backend_until_6_1(kernel: str) -> None:
    # k8s#74839: INVALID -> no de-DNAT -> forwarded to the pod from the backend's own address
    run = story("kube-clusterip-invalid", kernel)
    last = run.moments[-1]
    assert last.obs is not None and last.obs["fate"] == "delivered:ctr"
    if kernel in OLD_KERNELS:
        assert run.event == "stray source" and last.obs["ctstate"] == "INVALID"
        assert last.obs["delivered_as"]["src"] == "198.51.100.2:8080"
        # PR#74840's rule in KUBE-FORWARD drops it on the way; be_liberal de-DNATs it
        dropped = story("kube-clusterip-invalid", kernel, "kube-forward-drop").moments[-1]
        assert dropped.obs is not None and dropped.obs["fate"] == "dropped:host"
        liberal = story("kube-clusterip-invalid", kernel, "be-liberal").moments[-1]
        assert liberal.obs is not None and liberal.obs["delivered_as"]["src"] == "203.0.113.10:80"
    else:
        assert run.succeeded and last.obs["window"] == "IGNORE"
        assert last.obs["delivered_as"]["src"] == "203.0.113.10:80"


@pytest.mark.parametrize("kernel", OLD_KERNELS)
def test_kube_nodeport_invalid_is_not_fixed_by_the_forward_drop_rule(kernel: str) -> None:
    # the INVALID segment stays addressed to the node: INPUT, not FORWARD (k8s#117924)
    for fix in ("none", "kube-forward-drop"):
        run = story("kube-nodeport-invalid", kernel, fix)
        d = run.decisive
        assert d is not None and d.obs is not None and d.obs["fate"] == "local:host", fix
        assert [e["flags"] for e in d.obs["emitted"]] == ["R"] and run.event == "host RST"
    assert story("kube-nodeport-invalid", kernel, "be-liberal").succeeded


@pytest.mark.parametrize("kernel", list(PROFILES))
def test_one_sided_wscale_scales_neither_direction_so_scaled_data_is_invalid(kernel: str) -> None:
    # tcp_in_window(), every version (3.10.0-1160.el7 lines 560-568, 4.19.1 lines 525-536,
    # 6.1 tcp_init_sender()): "Both sides must send the Window Scale option to enable window
    # scaling in either direction": td_scale 0 both ways, so the container's 64240 is 64240 bytes
    run = story("one-sided-wscale", kernel)
    d = run.decisive
    assert d is not None and d.text.startswith("a segment 200000 bytes on")
    assert d.obs is not None and d.obs["ctstate"] == "INVALID" and d.obs["fate"] == "local:host"
    assert [e["flags"] for e in d.obs["emitted"]] == ["R"]
    bound = "" if kernel in OLD_KERNELS else " 5064242"  # 6.1+ print the bound: 5000001 + 64240 + 1
    assert (d.obs["reason"] or "").startswith(f"SEQ is over{'' if bound else ' the'} upper bound{bound}")
    # the same conversation with the server's wscale seen: 64240 << 7 covers the segment
    st = load_any("one-sided-wscale")
    assert isinstance(st, Story)
    both = [
        replace(
            s, packet=s.packet._replace(pkt=replace(s.packet.pkt, options=st.steps[0].packet.pkt.options))
        )
        if s.packet is not None and s.packet.pkt.flags == TCPHDR_SYN | TCPHDR_ACK
        else s
        for s in st.steps
        if s.packet is not None
    ]
    assert run_story(replace(st, steps=tuple(both)).with_kernel(kernel)).succeeded
