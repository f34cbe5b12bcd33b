"""``nflab pcap`` names the scenario library's incidents, with their packets.

On the captures the stories write (``nflab run NAME --out DIR``: host-eth0.pcap, the uplink
after NAT, and host-docker0.pcap, the bridge before it) and on the live 6.18 kernel's
(``data/dg-*.pcap``, see data/README.md). Frame numbers typed from ``tcpdump -r`` of each
capture. A capture without the pattern -- the story on a kernel or with a fix that avoids
it, the seed incident's real captures -- names nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.cli import main

DATA = Path(__file__).parent / "data"


def _signatures(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, object]]:
    assert main(["pcap", *argv, "--json"]) == 0
    return list(json.loads(capsys.readouterr().out.splitlines()[-1])["summary"]["signatures"])


def _story(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, kernel: str, fix: str = "none"
) -> Path:
    out = tmp_path / f"{name}-{kernel}-{fix}"
    assert main(["run", name, "--kernel", kernel, "--fix", fix, "--out", str(out)]) == 0
    capsys.readouterr()
    return out


# ---------------------------------------------------------------- dns-race


def test_dns_race_story_on_3_10_both_lookups(tmp_path, capsys):
    """3.10 drops the loser of both lookups: on the bridge, frames 1-2 (A and AAAA from
    192.0.2.2:42000), one answer (3), the retry at 5.0 s (4); then 8-9, 10, 11 at 10.0 s."""
    out = _story(tmp_path, capsys, "dns-race", "3.10")
    sigs = _signatures(capsys, str(out / "host-docker0.pcap"), "--kernel", "3.10")
    assert [(s["name"], s["frames"]) for s in sigs] == [
        ("dns-race", {"queries": [1, 2], "answers": [3], "retry": [4]}),
        ("dns-race", {"queries": [8, 9], "answers": [10], "retry": [11]}),
    ]
    assert "192.0.2.2:42000 to 198.51.100.2:53" in str(sigs[0]["text"])


def test_dns_race_story_on_el7_only_the_dnat_lookup(tmp_path, capsys):
    """el7 merges lookup 1 (same NAT) and drops lookup 2 (different DNAT endpoints)."""
    out = _story(tmp_path, capsys, "dns-race", "el7")
    sigs = _signatures(capsys, str(out / "host-docker0.pcap"))
    assert [s["frames"] for s in sigs] == [{"queries": [5, 6], "answers": [7], "retry": [8]}]


@pytest.mark.parametrize(("kernel", "fix"), [("6.18", "none"), ("3.10", "single-request-reopen")])
def test_dns_race_absent_when_resolved(tmp_path, capsys, kernel, fix):
    out = _story(tmp_path, capsys, "dns-race", kernel, fix)
    for capture in ("host-docker0.pcap", "host-eth0.pcap"):
        assert _signatures(capsys, str(out / capture)) == []


def test_dns_race_on_real_glibc(capsys):
    """glibc 2.36's getaddrinfo on the live kernel, in the container: A (frame 22, id 3944) and
    AAAA (23) from 192.0.2.2:55306, the AAAA answered (24), the A asked again 5.002 s later
    (25); the second lookup, whose A query the host dropped: A (38), AAAA (39), answer (40),
    the A again (41)."""
    sigs = _signatures(capsys, str(DATA / "dg-ctr.pcap"))
    assert [(s["name"], s["frames"]) for s in sigs] == [
        ("dns-race", {"queries": [22, 23], "answers": [24], "retry": [25]}),
        ("dns-race", {"queries": [38, 39], "answers": [40], "retry": [41]}),
    ]
    assert "the A query (frame 22, id 3944) got none" in str(sigs[0]["text"])


def test_dns_race_on_the_uplink_when_the_host_dropped_the_query(capsys):
    """The uplink of the same run: the first lookup's pair left the host (the server lost the
    A: frames 25-28); of the second only the AAAA (frame 46, id 1216) left, answered (47), and
    5.000 s later the socket asked for A (48, id 9922): the pair's other query never reached
    the uplink. The container's capture (FILE2) is searched too, and says so."""
    sigs = _signatures(capsys, str(DATA / "dg-uplink.pcap"), str(DATA / "dg-ctr.pcap"))
    found = [(s["capture"], s["frames"]) for s in sigs if s["name"] == "dns-race"]
    assert found == [
        ("", {"queries": [25, 26], "answers": [27], "retry": [28]}),
        ("", {"queries": [46], "answers": [47], "retry": [48]}),
        (str(DATA / "dg-ctr.pcap"), {"queries": [22, 23], "answers": [24], "retry": [25]}),
        (str(DATA / "dg-ctr.pcap"), {"queries": [38, 39], "answers": [40], "retry": [41]}),
    ]
    lone = next(s for s in sigs if s["frames"]["queries"] == [46])
    assert "the AAAA query for www.nflab.example. from one socket 198.51.100.1:50691" in str(lone["text"])
    assert "asked for A 5.000 s later (frame 48)" in str(lone["text"])


def test_dns_race_story_uplink(tmp_path, capsys):
    """The story's uplink on 3.10: only the winner of each pair leaves the host (frames 1 and
    7), answered (2, 8), and the lookup asks again 5 s later (3, 9)."""
    out = _story(tmp_path, capsys, "dns-race", "3.10")
    sigs = _signatures(capsys, str(out / "host-eth0.pcap"), "--kernel", "3.10")
    assert [s["frames"] for s in sigs] == [
        {"queries": [1], "answers": [2], "retry": [3]},
        {"queries": [7], "answers": [8], "retry": [9]},
    ]


# ---------------------------------------------------------------- snat-port-clash


@pytest.mark.parametrize("kernel", ["3.10", "6.18"])
def test_snat_port_clash_story(tmp_path, capsys, kernel):
    """ctr's SYN (frame 1, 192.0.2.2:39000) and ctr2's (frame 2, 192.0.2.7:39000), ctr2's
    answered (frame 3) and ACKed (4); ctr's client sends the SYN again 1 s later (frame 5,
    TCP_TIMEOUT_INIT), answered in frame 6, as the story's SYN/ACK comes back at once: the
    same timestamp, a later frame."""
    out = _story(tmp_path, capsys, "snat-port-clash", kernel)
    sigs = _signatures(capsys, str(out / "host-docker0.pcap"))
    assert [(s["name"], s["frames"]) for s in sigs] == [
        ("snat-port-clash", {"syn": [1], "other_syn": [2], "retransmission": [5]})
    ]
    assert "sent again 1.000 s later (frame 5) with no SYN/ACK before it" in str(sigs[0]["text"])


def _first_frames(src: Path, dst: Path, count: int) -> Path:
    """A classic pcap cut after ``count`` records (24-byte file header, 16-byte record headers
    whose third word is the captured length: the pcap-savefile format, little-endian here)."""
    data, at = src.read_bytes(), 24
    for _ in range(count):
        at += 16 + int.from_bytes(data[at + 8 : at + 12], "little")
    dst.write_bytes(data[:at])
    return dst


def test_snat_port_clash_cut_before_the_retransmission(tmp_path, capsys):
    """The same capture ended after frame 4, 0 s after ctr's SYN: too soon for the
    retransmission, so the unanswered SYN is named with that said."""
    out = _story(tmp_path, capsys, "snat-port-clash", "6.18")
    cut = _first_frames(out / "host-docker0.pcap", tmp_path / "cut.pcap", 4)
    sigs = _signatures(capsys, str(cut))
    assert [(s["name"], s["frames"]) for s in sigs] == [
        ("snat-port-clash", {"syn": [1], "other_syn": [2], "retransmission": []})
    ]
    assert "no SYN/ACK before the capture ends 0.000 s later" in str(sigs[0]["text"])


def test_snat_port_clash_absent_with_random_fully(tmp_path, capsys):
    out = _story(tmp_path, capsys, "snat-port-clash", "6.18", "random-fully")
    assert _signatures(capsys, str(out / "host-docker0.pcap")) == []


def test_snat_port_clash_on_the_live_kernel(capsys):
    """Both SYNs held after NAT, ctrb's confirmed first: ctr's SYN (frame 89) is dropped with
    insert_failed and sent again 1.019 s later (frame 111); ctrb's (96) answered in 100."""
    sigs = _signatures(capsys, str(DATA / "dg-any.pcap"))
    assert [s["name"] for s in sigs] == ["dns-race", "dns-race", "snat-port-clash"]
    clash = [s for s in sigs if s["name"] == "snat-port-clash"]
    assert [s["frames"] for s in clash] == [{"syn": [89], "other_syn": [96], "retransmission": [111]}]
    assert "sent again 1.019 s later (frame 111)" in str(clash[0]["text"])


def test_one_container_is_no_clash(capsys):
    """ctr alone retransmits its SYN (frames 29, 31) but no other container's SYN is in its
    capture: not named."""
    names = [s["name"] for s in _signatures(capsys, str(DATA / "dg-ctr.pcap"))]
    assert "snat-port-clash" not in names


# ---------------------------------------------------------------- pod-ip-leak


def test_pod_ip_leak_story(tmp_path, capsys):
    """Frame 4 of the uplink: the late FIN from 192.0.2.2:40000, INVALID, not MASQUERADEd."""
    out = _story(tmp_path, capsys, "pod-ip-leak", "6.18")
    sigs = _signatures(capsys, str(out / "host-eth0.pcap"), str(out / "host-docker0.pcap"))
    assert [(s["name"], s["frames"]) for s in sigs] == [("pod-ip-leak", {"leaked": [4]})]


def test_pod_ip_leak_absent_with_be_liberal(tmp_path, capsys):
    out = _story(tmp_path, capsys, "pod-ip-leak", "6.18", "be-liberal")
    assert _signatures(capsys, str(out / "host-eth0.pcap"), str(out / "host-docker0.pcap")) == []


def test_pod_ip_leak_on_the_live_kernel(capsys):
    """Frame 21 of the live uplink: the FIN 2**30 past the window left as 192.0.2.2 (the kernel
    logged it INVALID: dg-nflog-invalid.pcap)."""
    sigs = _signatures(capsys, str(DATA / "dg-uplink.pcap"), str(DATA / "dg-ctr.pcap"))
    leak = [s for s in sigs if s["name"] == "pod-ip-leak"]
    assert [s["frames"] for s in leak] == [{"leaked": [21]}]


# ---------------------------------------------------------------- nothing to name


@pytest.mark.parametrize(
    "capture", ["clean-host.pcap", "lossdup-host.pcap", "inject-uplink.pcap", "any-host.pcap"]
)
def test_captures_without_the_patterns_name_nothing(capsys, capture):
    assert _signatures(capsys, str(DATA / capture)) == []


def test_text_names_none(capsys):
    assert main(["pcap", str(DATA / "clean-host.pcap")]) == 0
    assert "signatures:\n- none of dns-race, snat-port-clash, pod-ip-leak.\n" in capsys.readouterr().out
