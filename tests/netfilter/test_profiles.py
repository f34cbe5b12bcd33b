"""Kernel profiles: the changelog, how releases compose, and ``resolve_kernel``.

Expected profile contents are typed in from the recorded trees (which change each tree's
nf_conntrack_proto_tcp.c carries, read in its source), not computed from CHANGES."""

import re

import pytest

from sim.netfilter.changes import CHANGES
from sim.netfilter.profiles import PROFILES, KernelProfile, build, resolve_kernel, switches


def test_profiles_are_ordered_oldest_first_and_keep_the_old_names():
    assert list(PROFILES) == ["3.10", "el7", "4.19", "5.10", "5.15", "6.1", "6.12", "6.18"]


def test_every_change_names_a_switch_a_release_and_its_commit_or_why_not():
    names = set(switches(PROFILES["3.10"]))
    for c in CHANGES:
        assert c.switch in names, c.key
        assert re.fullmatch(r"\d+\.\d+", c.release), c.key
        assert re.fullmatch(r"[0-9a-f]{12}", c.commit) or c.note, c.key
        assert c.subject.startswith("netfilter: "), c.key
    assert [c.release for c in CHANGES] == sorted(
        (c.release for c in CHANGES), key=lambda r: tuple(map(int, r.split(".")))
    )


def test_310_is_the_baseline_with_no_change():
    assert PROFILES["3.10"].changes == ()
    assert not any(switches(PROFILES["3.10"]).values())


@pytest.mark.parametrize(
    ("profile", "has", "lacks"),
    [
        # CentOS 7's file: "!receiver->td_maxwin ||", "sTW -> sSS", IP_CT_EXP_CHALLENGE_ACK;
        # still nf_log_packet("nf_ct_tcp: ..."), no IP_CT_TCP_SIMULTANEOUS_OPEN.
        ("el7", {"fast-open", "tw-reopen-reply", "rfc5961-last-ack"}, {"l4proto-log", "simultaneous-open"}),
        # 4.19.1: l4proto logging, simultaneous open; no win_raw, no exact-seq RST.
        (
            "4.19",
            {"l4proto-log", "simultaneous-open", "zero-window-timeout"},
            {"raw-window", "rst-exact-seq"},
        ),
        # 5.10.13: win_raw, "part of train", keepalive td_end++; no ignore_invalid_rst.
        ("5.10", {"raw-window", "rst-exact-seq", "keepalive-pickup"}, {"ignore-invalid-rst"}),
        # 5.15.215: stable backports of 5.18/6.0 fixes and the 2026 direction check, but
        # neither the SYN-only re-init nor the 6.1 IGNORE verdicts.
        (
            "5.15",
            {"ignore-invalid-rst", "keep-be-liberal", "exceeded-window", "rst-to-syn-other-dir"},
            {"reinit-syn-only", "overly-delayed", "log-invalid-index"},
        ),
        # 6.1.175 (file as of 6.1.168): the 6.1 series, the 6.2 challenge-ACK fix; no "invalid new".
        ("6.1", {"overly-delayed", "challenge-ack-reuse"}, {"log-invalid-new", "rst-to-syn-other-dir"}),
        ("6.12", {"log-invalid-new"}, {"rst-to-syn-other-dir"}),
        ("6.18", {"log-invalid-new", "rst-to-syn-other-dir"}, set()),
    ],
)
def test_profile_contents(profile, has, lacks):
    changes = set(PROFILES[profile].changes)
    assert has <= changes and not lacks & changes


def test_a_vendor_kernel_is_a_base_plus_backports():
    p = build("x", "3.10", "test", "3.10.0", "tree", ("fast-open",))
    assert p.changes == ("fast-open",) and p.bound_ii_unknown_receiver and not p.window_ignore
    with pytest.raises(ValueError, match="unknown backports"):
        build("x", "3.10", "test", "3.10.0", "tree", ("no-such-change",))


@pytest.mark.parametrize(
    ("text", "profile"),
    [
        ("6.1", "6.1"),
        ("el7", "el7"),
        ("3.10.0-1160.el7.x86_64", "el7"),
        ("3.10.0-1062.18.1.el7.x86_64", "el7"),
        ("3.10.108", "3.10"),
        ("4.19.0-27-amd64", "4.19"),
        ("5.4.0-150-generic", "4.19"),
        ("5.10.0-30-amd64", "5.10"),
        ("5.15.0-91-generic", "5.15"),
        ("6.1.0-26-amd64", "6.1"),
        ("6.8.0-45-generic", "6.1"),
        ("6.12.22-amd64", "6.12"),
        ("6.18", "6.18"),
        ("6.18.44-fc-v857", "6.18"),
        ("7.0.1", "6.18"),
    ],
)
def test_resolve_kernel(text, profile):
    assert resolve_kernel(text, note=False).name == profile


def test_unknown_vendor_suffix_is_one_note(capsys):
    assert resolve_kernel("6.18.44-fc-v857").name == "6.18"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "vendor suffix '-fc-v857' not known, using upstream 6.18" in err
    resolve_kernel("5.15.0-91-generic")
    assert (
        capsys.readouterr().err
        == "nflab: kernel 5.15.0-91-generic: profile 5.15 (the newest not newer than 5.15)\n"
    )


def test_a_release_between_profiles_names_the_changes_its_profile_lacks(capsys):
    """5.4 (Ubuntu 20.04's kernel) resolves to 4.19, which lacks what 5.0 to 5.3 brought: the
    same-origin skip, the random NAT search start, the raw window kept before scaling is known;
    5.9 also lacks 5.6's clash resolution for different NAT. 7.1's change is in 6.18.y, so a
    release newer than every profile lacks nothing known."""
    assert resolve_kernel("5.4.0-91-generic").name == "4.19"
    assert capsys.readouterr().err == (
        "nflab: kernel 5.4.0-91-generic: profile 4.19 (the newest not newer than 5.4); it lacks "
        "same-origin (5.0), nat-random-offset (5.0), nat-random-any (5.0), raw-window (5.3)\n"
    )
    resolve_kernel("5.9")
    assert "clash-harder (5.6)" in capsys.readouterr().err
    resolve_kernel("6.6.30")  # 6.2's challenge-ack-reuse is in the 6.1 profile (6.1.y has it)
    assert capsys.readouterr().err == "nflab: kernel 6.6.30: profile 6.1 (the newest not newer than 6.6)\n"


@pytest.mark.parametrize("text", ["7.7.7", "9.99"])
def test_a_release_newer_than_every_profile_says_so(capsys, text):
    assert resolve_kernel(text).name == "6.18"
    assert (
        capsys.readouterr().err == f"nflab: kernel {text}: newer than every profile, using the newest, 6.18\n"
    )


def test_a_profile_name_prints_nothing(capsys):
    assert resolve_kernel("6.1").name == "6.1"
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("text", ["", "linux", "6", "six.one", "2.6.32-754.el6"])
def test_malformed_or_too_old_is_one_line_value_error(text):
    with pytest.raises(ValueError) as e:
        resolve_kernel(text, note=False)
    assert "\n" not in str(e.value)


def test_profiles_are_kernel_profiles():
    assert all(isinstance(p, KernelProfile) and p.source for p in PROFILES.values())
