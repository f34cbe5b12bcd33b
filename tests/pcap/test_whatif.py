"""The what-if pass on the same real connection captured with ``tcpdump -i any`` and on the
uplink (``data/inject-*.pcap``, data/README.md): the remote injects three ACKs with
``seq + 2**30``; the live 6.18 host answered each with its own RST (it is in both captures),
so its conntrack marked each INVALID. The sequence check that fails (``seq <= td_maxend``,
bound I of ``tcp_in_window``) is in every kernel version's ``nf_conntrack_proto_tcp.c``, so
no other kernel would prevent the RSTs; ``be_liberal`` skips the window checks (ACCEPT).
"""

from __future__ import annotations

import json
from pathlib import Path

from sim.cli import main

DATA = Path(__file__).parent / "data"
RST_SEQS = [3548912283, 3548977819, 3549043355]  # tcpdump -nr inject-uplink.pcap 'tcp[13] & 4 != 0'


def _host_rsts(capsys, name: str) -> list[dict]:
    assert main(["pcap", str(DATA / name), "--json"]) == 0
    return json.loads(capsys.readouterr().out.splitlines()[-1])["summary"]["host_rsts"]


def test_any_and_uplink_give_every_host_rst_the_same_whatif(capsys):
    any_ = _host_rsts(capsys, "inject-any.pcap")
    uplink = _host_rsts(capsys, "inject-uplink.pcap")
    assert [h["seq"] for h in any_] == [h["seq"] for h in uplink] == RST_SEQS
    assert [h["whatif"] for h in any_] == [h["whatif"] for h in uplink]
    for h in any_:
        kernels = {k: v for k, v in h["whatif"].items() if not k.endswith("+be_liberal")}
        assert sorted(kernels) == ["3.10", "4.19", "5.10", "5.15", "6.1", "6.12", "el7"]
        assert {v["ctstate"] for v in kernels.values()} == {"INVALID"}
        assert h["whatif"]["6.18+be_liberal"] is None  # plain ACCEPT


def test_any_capture_does_not_claim_other_kernels_prevent_the_rst(capsys):
    assert main(["pcap", str(DATA / "inject-any.pcap")]) == 0
    out = capsys.readouterr().out
    assert "kernel 6.1 (frame" not in out  # "kernel 6.1 (frame N would be ACCEPT ...)" was the bug
    assert out.count("kernel 6.1 would not help") == 3


def test_a_packet_the_whatif_pass_never_tracked_is_no_verdict(tmp_path):
    from sim.netfilter.profiles import resolve_kernel
    from sim.pcap.analyse import Tracker, analyse
    from sim.pcap.findings import Findings, findings_lines, whatif
    from sim.pcap.reader import read_frames

    prof = resolve_kernel("6.18")
    fd = Findings(["6.18"])
    a, flagged = analyse(read_frames(DATA / "inject-uplink.pcap"), [Tracker(prof)])
    for f in flagged:
        fd.add(f)
    conns = {c.id: c for c in a.finish()}
    # the what-if pass reads a 60-frame capture: frames 113, 213 and 313 are not in it
    whatif(read_frames(DATA / "vlan-host.pcap"), fd, conns, [prof], {})
    assert [h.whatif for h in fd.host_rsts] == [{}, {}, {}]
    text = "\n".join(findings_lines(fd, False))
    assert "would be ACCEPT" not in text
    assert text.count("not known") == 3
