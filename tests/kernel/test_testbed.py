"""The real-kernel harness on the running kernel (needs root; skipped otherwise).

Expected values come from /work/shared/KERNEL-NOTES.md and the kernel sources it cites:
the TCP state table of nf_conntrack_proto_tcp.c (SYN: NONE -> SYN_SENT, reply SYN/ACK ->
SYN_RECV, ACK -> ESTABLISHED), tcp_in_window()'s messages and verdicts since 6.1 (bound III
"ACK is over upper bound" is INVALID, bound IV "ignored ACK under lower bound" is IGNORE),
nf_nat's rule that a packet without an entry is never translated, and tcp_v4_send_reset()
(a RST answering a segment with ACK set carries seq = that ack and no ACK flag).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from sim.kernel import CaseError, Testbed, run_case, skip_reason
from sim.kernel.netns import Interrupted, NamespaceSet, list_namespaces

REASON = skip_reason()
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(REASON is not None, reason=REASON or "")]

CTR = "192.0.2.2:40000"
REMOTE = "198.51.100.2:443"
HOST = "198.51.100.1:40000"  # MASQUERADE keeps the container's port when it is free
ISN_CTR, ISN_REMOTE = 1_000_000, 5_000_000


def handshake_and_data() -> list[dict[str, Any]]:
    syn_opts = {"mss": 1460, "sack_perm": True, "ts": [100, 0], "wscale": 7}
    return [
        {
            "from": "ctr",
            "src": CTR,
            "dst": REMOTE,
            "flags": "S",
            "seq": ISN_CTR,
            "ack": 0,
            "win": 64240,
            "options": syn_opts,
        },
        {
            "from": "remote",
            "src": REMOTE,
            "dst": HOST,
            "flags": "SA",
            "seq": ISN_REMOTE,
            "ack": ISN_CTR + 1,
            "win": 65160,
            "options": {**syn_opts, "ts": [200, 100]},
        },
        {
            "from": "ctr",
            "src": CTR,
            "dst": REMOTE,
            "flags": "A",
            "seq": ISN_CTR + 1,
            "ack": ISN_REMOTE + 1,
            "win": 502,
        },
        {
            "from": "ctr",
            "src": CTR,
            "dst": REMOTE,
            "flags": "PA",
            "seq": ISN_CTR + 1,
            "ack": ISN_REMOTE + 1,
            "win": 502,
            "len": 1000,
        },
        {
            "from": "remote",
            "src": REMOTE,
            "dst": HOST,
            "flags": "A",
            "seq": ISN_REMOTE + 1,
            "ack": ISN_CTR + 1001,
            "win": 509,
        },
    ]


def case(*extra: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "test", "kernel": "6.1", "packets": handshake_and_data() + list(extra), **fields}


def root_state() -> dict[str, str]:
    """What the root namespace shows; the harness must leave all of it unchanged."""

    def out(*argv: str) -> str:
        proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
        return proc.stdout + proc.stderr

    sysctls = out("sysctl", "net.netfilter", "net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter")
    return {
        "link": out("ip", "-o", "link"),
        "addr": out("ip", "-o", "addr"),
        "iptables": out("iptables-save"),
        "nft": out("nft", "list", "ruleset"),
        "sysctl": "\n".join(ln for ln in sysctls.splitlines() if "nf_conntrack_count" not in ln),
    }


def own_namespaces() -> list[str]:
    return [n for n in list_namespaces() if n.startswith(f"nflab-{os.getpid()}-")]


@pytest.fixture
def no_new_namespaces() -> Iterator[None]:
    """Fails the test if it leaves a namespace of this process behind (the shared testbed's excepted)."""
    before = set(own_namespaces())
    yield
    assert set(own_namespaces()) == before


@pytest.fixture(scope="module")
def testbed() -> Iterator[Testbed]:
    with Testbed() as tb:
        yield tb


def test_handshake_and_data_are_tracked_and_translated(testbed: Testbed) -> None:
    obs = run_case(case(), testbed)
    assert [o["ctstate"] for o in obs] == ["NEW", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED"]
    assert [o["window"] for o in obs] == ["ACCEPT"] * 5
    assert [o["reason"] for o in obs] == [None] * 5
    assert [o["tcp_state"] for o in obs] == [
        "SYN_SENT",
        "SYN_RECV",
        "ESTABLISHED",
        "ESTABLISHED",
        "ESTABLISHED",
    ]
    out = {"fate": "delivered:remote", "delivered_as": {"src": HOST, "dst": REMOTE}}
    back = {"fate": "delivered:ctr", "delivered_as": {"src": REMOTE, "dst": CTR}}
    assert [{k: o[k] for k in out} for o in obs] == [out, back, out, out, back]
    assert all(o["emitted"] == [] for o in obs)


def test_ack_over_upper_bound_is_invalid_and_answered_with_a_rst(testbed: Testbed) -> None:
    ack = ISN_CTR + 1001 + 500_000  # acknowledges data the container never sent
    over = {
        "from": "remote",
        "src": REMOTE,
        "dst": HOST,
        "flags": "A",
        "seq": ISN_REMOTE + 1,
        "ack": ack,
        "win": 509,
    }
    o = run_case(case(over), testbed)[-1]
    assert o["ctstate"] == "INVALID"
    assert o["window"] == "INVALID"
    assert "ACK is over upper bound" in o["reason"]
    assert o["tcp_state"] == "ESTABLISHED"
    assert o["fate"] == "local:host"
    assert o["delivered_as"] is None
    assert o["emitted"] == [{"to": "remote", "flags": "R", "seq": ack, "ack": 0}]


def test_late_ack_is_ignored_and_still_translated(testbed: Testbed) -> None:
    # Bound IV: sack must be after receiver.td_end - MAXACKWINDOW(sender) - 1, and
    # MAXACKWINDOW is at least 66000; this ACK is 70000 below what the remote already acked.
    late = {
        "from": "remote",
        "src": REMOTE,
        "dst": HOST,
        "flags": "A",
        "seq": ISN_REMOTE + 1,
        "ack": ISN_CTR + 1001 - 70_000,
        "win": 509,
    }
    o = run_case(case(late), testbed)[-1]
    assert o["ctstate"] == "ESTABLISHED"
    assert o["window"] == "IGNORE"
    assert "ignored ACK under lower bound" in o["reason"]
    assert o["tcp_state"] == "ESTABLISHED"
    assert o["fate"] == "delivered:ctr"
    assert o["delivered_as"] == {"src": REMOTE, "dst": CTR}
    assert o["emitted"] == []


def test_cases_do_not_leak_into_each_other(testbed: Testbed) -> None:
    drop = {"host": ["iptables -A INPUT -m conntrack --ctstate INVALID -j DROP"]}
    over = {
        "from": "remote",
        "src": REMOTE,
        "dst": HOST,
        "flags": "A",
        "seq": ISN_REMOTE + 1,
        "ack": ISN_CTR + 600_000,
        "win": 509,
    }
    dropped = run_case(case(over, iptables=drop), testbed)[-1]
    assert (dropped["fate"], dropped["emitted"]) == ("dropped:host", [])
    liberal = run_case(case(over, sysctl={"net.netfilter.nf_conntrack_tcp_be_liberal": 1}), testbed)[-1]
    assert (liberal["window"], liberal["fate"]) == ("ACCEPT", "delivered:ctr")
    plain = run_case(case(over), testbed)[-1]
    assert (plain["window"], plain["fate"]) == ("INVALID", "local:host")


def test_root_namespace_is_untouched(no_new_namespaces: None) -> None:
    before = root_state()
    drop = {"host": ["iptables -A INPUT -m conntrack --ctstate INVALID -j DROP"]}
    run_case(case(iptables=drop, sysctl={"net.netfilter.nf_conntrack_tcp_be_liberal": 1}))
    assert root_state() == before


def test_no_namespace_left_when_a_case_raises(no_new_namespaces: None) -> None:
    with pytest.raises(CaseError, match="failed"):
        run_case(case(iptables={"host": ["iptables -A NO_SUCH_CHAIN -j ACCEPT"]}))
    with pytest.raises(RuntimeError, match="boom"), Testbed():
        assert len(own_namespaces()) >= 3
        raise RuntimeError("boom")


def test_no_namespace_left_after_sigint_or_sigterm(no_new_namespaces: None) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        with pytest.raises(Interrupted) as info, Testbed():
            os.kill(os.getpid(), sig)
        assert info.value.signum == sig


def test_stale_namespaces_of_a_killed_run_are_removed() -> None:
    script = textwrap.dedent("""
        import os, signal
        from sim.kernel.netns import NamespaceSet
        ns = NamespaceSet(["stale"]).open()
        print(ns["stale"], flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    stale = proc.stdout.strip()
    assert stale.startswith("nflab-") and stale in list_namespaces()
    with NamespaceSet(["fresh"]):
        assert stale not in list_namespaces()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"topology": {"ctr_ip": "10.0.0.2"}}, "outside the documentation ranges"),
        ({"packets": [{"from": "remote", "src": "8.8.8.8:53", "dst": HOST}]}, "outside the documentation"),
        ({"packets": [{"from": "moon", "src": CTR, "dst": REMOTE}]}, "one of 'ctr', 'remote'"),
        ({"packets": [{"from": "ctr", "src": CTR, "dst": REMOTE, "flags": "SX"}]}, "unknown TCP flag"),
        ({"iptables": {"ctr": ["iptables -F"]}}, "host namespace only"),
        ({"iptables": {"host": ["nft flush ruleset"]}}, "expected iptables arguments"),
        ({"sysctl": {"kernel.panic": 1}}, "only net.netfilter"),
    ],
)
def test_bad_cases_are_refused_in_one_line(
    bad: dict[str, Any], message: str, no_new_namespaces: None
) -> None:
    with pytest.raises(CaseError, match=message) as info:
        run_case({"packets": handshake_and_data(), **bad})
    assert "\n" not in str(info.value)
