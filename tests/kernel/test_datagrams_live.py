"""UDP, ICMP and the signatures on the live kernel, freshly (root only).

``sim.kernel.datagrams`` makes the traffic now; the host's NFLOG groups hold the kernel's
ctstate of every packet conntrack saw. Every datagram of the uplink capture must get the
kernel's ctstate from ``nflab pcap``'s tracker for this kernel's profile, and the dns-race,
snat-port-clash and pod-ip-leak signatures must be named where the traffic made them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.cli import main
from sim.kernel import skip_reason
from sim.kernel.datagrams import STATES, run_datagrams
from sim.netfilter.profiles import resolve_kernel
from sim.packet import IpProto, Packet
from sim.pcap.analyse import Analysis, Tracker, Verdict
from sim.pcap.datagram import datagram_of
from sim.pcap.flows import DatagramAnalysis, DatagramFlagged, Flow
from sim.pcap.reader import Frame, read_frames

pytestmark = pytest.mark.kernel
REASON = skip_reason()


def _key(p: Packet) -> tuple[int, int, int, int]:
    """What NAT leaves alone: protocol, IP ID, length and the ICMP sequence / UDP source port
    (MASQUERADE keeps the port here)."""
    return (int(p.proto), p.ip_id, p.payload_len, p.seq if p.proto is IpProto.ICMP else p.sport)


def _kernel_states(out: Path) -> dict[tuple[int, int, int, int], str]:
    truth = {}
    for state in STATES.values():
        for fr in read_frames(out / f"dg-nflog-{state}.pcap"):
            p = datagram_of(fr.skipped)
            if p is not None:
                truth[_key(p)] = state.upper()
    return truth


@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_fresh_datagrams_get_the_kernels_ctstate(tmp_path, capsys):
    run_datagrams(tmp_path)
    truth = _kernel_states(tmp_path)
    got: dict[tuple[int, int, int, int], str] = {}

    def seen(fr: Frame, _f: Flow, _d: int, _p: Packet, verdicts: list[Verdict]) -> None:
        p = datagram_of(fr.skipped)
        assert p is not None
        got[_key(p)] = verdicts[0].ctstate.name or ""

    def flagged(f: DatagramFlagged) -> None:
        got.setdefault(_key(f.pkt), f.verdicts[0].ctstate.name or "")

    trackers = [Tracker(resolve_kernel("6.18"))]
    dg = DatagramAnalysis(trackers, flagged, on_datagram=seen)
    a = Analysis(trackers, on_datagram=dg.feed)
    for fr in read_frames(tmp_path / "dg-uplink.pcap"):
        a.feed(fr)
    assert len(got) >= 18
    assert got == {k: v for k, v in truth.items() if k in got}
    assert set(got.values()) == {"NEW", "ESTABLISHED", "RELATED", "INVALID"}

    assert main(["pcap", str(tmp_path / "dg-any.pcap"), "--json"]) == 0
    names = [s["name"] for s in json.loads(capsys.readouterr().out.splitlines()[-1])["summary"]["signatures"]]
    assert names == ["dns-race", "dns-race", "snat-port-clash", "pod-ip-leak"]  # the leak: its uplink copy
    argv = ["pcap", str(tmp_path / "dg-uplink.pcap"), str(tmp_path / "dg-ctr.pcap"), "--json"]
    assert main(argv) == 0
    names = [s["name"] for s in json.loads(capsys.readouterr().out.splitlines()[-1])["summary"]["signatures"]]
    assert sorted(names) == ["dns-race"] * 4 + ["pod-ip-leak"]
