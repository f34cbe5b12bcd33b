"""UDP and ICMP in ``nflab pcap``, judged against the live 6.18 kernel.

``data/dg-*.pcap`` were made by ``python -m sim.kernel.datagrams`` on Linux 6.18 (see
data/README.md). The host logged every packet to an NFLOG group per ctstate after conntrack;
the expected frame numbers below were typed from those four captures (``dg-nflog-*.pcap``),
matched to the uplink, container and ``-i any`` frames by IP ID, protocol and ports with
tshark -- not produced by nflab.
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.cli import main
from sim.include.netfilter import CtState
from sim.netfilter.profiles import resolve_kernel
from sim.packet import TCPHDR_SYN, IcmpType, IpProto, Packet, icmp_error_reply, udp_packet
from sim.pcap.analyse import Analysis, Tracker, Verdict
from sim.pcap.datagram import Datagram, datagram_of, decode_datagram, parse_dns
from sim.pcap.flows import DatagramAnalysis, DatagramFlagged, Flow
from sim.pcap.reader import Frame, read_frames
from sim.report.capture import write_pcap
from sim.wire import emit

DATA = Path(__file__).parent / "data"


def _states(path: Path, kernel: str = "6.18") -> tuple[dict[int, str], list[DatagramFlagged], Analysis]:
    """Each tracked datagram's ctstate (flagged ones included), frame by frame."""
    got: dict[int, str] = {}
    flagged: list[DatagramFlagged] = []

    def seen(fr: Frame, _f: Flow, _d: int, _p: object, verdicts: list[Verdict]) -> None:
        got[fr.number] = verdicts[0].ctstate.name or ""

    def error(f: DatagramFlagged) -> None:
        flagged.append(f)
        got.setdefault(f.frame, f.verdicts[0].ctstate.name or "")

    trackers = [Tracker(resolve_kernel(kernel))]
    dg = DatagramAnalysis(trackers, error, on_datagram=seen)
    a = Analysis(trackers, on_datagram=dg.feed)
    for fr in read_frames(path):
        a.feed(fr)
    return got, flagged, a


def _by_state(got: dict[int, str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for frame, state in sorted(got.items()):
        out.setdefault(state, []).append(frame)
    return out


# The kernel's ctstates (dg-nflog-*.pcap) of the datagrams in each capture
UPLINK = {
    "NEW": [3, 7, 11, 25, 26, 46],
    "ESTABLISHED": [4, 5, 6, 8, 9, 10, 27, 28, 29, 30, 31, 47, 48, 49, 50, 51],
    "RELATED": [12],
    "INVALID": [13, 14, 15],
}
CTR = {
    "NEW": [3, 7, 11, 22, 23, 38, 39],
    "ESTABLISHED": [4, 5, 6, 8, 9, 10, 24, 25, 26, 27, 28, 40, 41, 42, 43, 44],
    "RELATED": [12],
}
# -i any: each forwarded datagram two or three times; conntrack saw the first copy
ANY = {
    "NEW": [6, 20, 32, 68, 71, 138, 140],
    "ESTABLISHED": [11, 14, 17, 23, 26, 29, 74, 77, 80, 83, 86, 143, 150, 153, 156, 159],
    "RELATED": [35],
    "INVALID": [38, 39, 40],
}


def test_uplink_ctstates_are_the_kernels():
    got, flagged, a = _states(DATA / "dg-uplink.pcap")
    assert _by_state(got) == UPLINK
    assert [(f.frame, f.verdicts[0].ctstate) for f in flagged] == [
        (12, CtState.RELATED),
        (13, CtState.INVALID),
        (14, CtState.INVALID),
        (15, CtState.INVALID),
    ]
    assert a.stats.tcp == 23  # the uplink's TCP frames, beside 19 UDP, 7 ICMP and 2 ARP


def test_container_side_ctstates_are_the_kernels():
    got, _flagged, _a = _states(DATA / "dg-ctr.pcap")
    assert _by_state(got) == CTR


def test_any_capture_joins_nat_and_skips_copies():
    """The reply to 198.51.100.1 (frame 11, on the uplink first) joins the flow seen before NAT
    as 192.0.2.2 (frame 6); the port unreachable quoting the NATed datagram (frame 35) is
    RELATED to it; its copies towards the container are not tracked again."""
    got, flagged, _a = _states(DATA / "dg-any.pcap")
    assert _by_state(got) == ANY
    related = next(f for f in flagged if f.frame == 35)
    assert related.flow == "u2"


def test_kernel_reasons_and_json(capsys):
    assert main(["pcap", str(DATA / "dg-uplink.pcap"), "--json", "--kernel", "3.10", "--kernel", "6.18"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    summary = lines[-1]["summary"]
    assert (summary["udp_packets"], summary["icmp_packets"]) == (19, 7)
    by_frame = {x["frame"]: x for x in lines[:-1]}
    assert by_frame[12]["proto"] == "ICMP" and by_frame[12]["icmp"]["type"] == 3
    assert by_frame[12]["verdicts"]["6.18"]["ctstate"] == "RELATED"
    # nf_conntrack_proto_udp.c udp_error(): "truncated/malformed packet" on every version
    assert by_frame[15]["verdicts"]["3.10"] == {
        "ctstate": "INVALID",
        "reason": "truncated/malformed packet",
        "entry": "NONE",
    }
    assert by_frame[14]["verdicts"]["6.18"]["ctstate"] == "INVALID"  # echo reply: not valid_new[]
    flows = {f["id"]: f for f in summary["flows"]}
    assert flows["u1"]["src"] == "198.51.100.1:42000" and flows["u1"]["ctstates"]["6.18"] == {
        "NEW": 1,
        "ESTABLISHED": 3,
    }
    # 5.15+ (b7b1d02fc439): ASSURED only once the flow is a stream (2 s); 3.10 on the first reply
    assert flows["u1"]["final_state"] == {"3.10": "ASSURED", "6.18": "REPLIED"}


def test_text_report(capsys):
    assert main(["pcap", str(DATA / "dg-uplink.pcap")]) == 0
    out = capsys.readouterr().out
    assert "19 UDP, 7 ICMP in 7 flow(s)" in out
    assert "about u2      198.51.100.2 > 198.51.100.1 ICMP dest unreach (type 3 code 3) quoting" in out
    assert "u3 UDP 198.51.100.2:5000 > 198.51.100.1:6000: frames 15-15" in out


# ---------------------------------------------------------------- decoding


def _ip(proto: int, body: bytes, total: int | None = None, frag: int = 0) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total or 20 + len(body), 7, frag, 64, proto, 0,
                      bytes([192, 0, 2, 2]), bytes([198, 51, 100, 2]))  # fmt: skip
    return hdr + body


def test_dns_question_read_as_rfc1035_lays_it_out():
    # id 0x1234, RD, one question: www.example. AAAA IN
    msg = bytes.fromhex(
        "1234 0100 0001 0000 0000 0000 03777777 076578616d706c65 00 001c 0001".replace(" ", "")
    )
    dns = parse_dns(msg, 0, len(msg))
    assert dns is not None
    assert (dns.id, dns.response, dns.qtype, dns.qname, dns.qtype_name) == (
        0x1234,
        False,
        28,
        "www.example.",
        "AAAA",
    )
    assert parse_dns(bytes(33), 0, 33) is None  # zeroed payload: no question
    assert parse_dns(msg[:-5], 0, len(msg) - 5) is None  # the type cut off


def test_udp_length_field_and_fragments():
    body = struct.pack("!HHHH", 42000, 53, 200, 0) + bytes(10)  # length 200 of 18 bytes
    _, why = decode_datagram(_ip(17, body), 0, 20 + len(body))
    pkt = datagram_of(why)
    assert why == "IPv4 UDP" and isinstance(pkt, Datagram)
    assert pkt.udp_check is not None and pkt.udp_check.length_field == 200
    assert pkt.udp_check.available == 18
    assert decode_datagram(_ip(17, body, frag=0x2000), 0, 38) == (None, "IPv4 fragment")
    assert decode_datagram(_ip(17, body[:4]), 0, 24) == (None, "IPv4 UDP header cut by the snaplen")


def test_icmp_error_quotes_the_packet():
    quoted = udp_packet("198.51.100.1", 42000, "198.51.100.2", 9, 6)
    raw = emit(icmp_error_reply(quoted, IcmpType.DEST_UNREACH, 3, "198.51.100.2"))
    pkt = datagram_of(decode_datagram(raw, 0, len(raw))[1])
    assert pkt is not None and pkt.proto is IpProto.ICMP
    assert (pkt.icmp_type, pkt.icmp_code, pkt.sport) == (3, 3, 0)
    assert pkt.inner is not None
    inner = pkt.inner
    assert (inner.src, inner.sport, inner.dst, inner.dport, inner.proto) == (
        "198.51.100.1",
        42000,
        "198.51.100.2",
        9,
        IpProto.UDP,
    )


@settings(max_examples=300, deadline=None)
@given(proto=st.sampled_from([1, 17]), body=st.binary(max_size=80), total=st.integers(0, 0xFFFF))
def test_any_bytes_decode_without_error(proto, body, total):
    """A malformed datagram is a skip reason or a packet, never an exception."""
    data = _ip(proto, body, total=total or None)
    seg, why = decode_datagram(data, 0, len(data))
    pkt = datagram_of(why)
    assert seg is None and why
    assert pkt is None or pkt.proto == proto


# ---------------------------------------------------------------- crafted: per-kernel errors

MACS = ("02:00:00:00:00:01", "02:00:00:00:00:02")


def test_icmp_error_about_a_tcp_connection_and_the_outer_daddr_check(tmp_path, capsys):
    """A fragmentation-needed error quoting the connection's SYN is RELATED to #1. Sent to an
    address that is not the quoted packet's source, it is RELATED on 4.19 (icmp_error_message()
    has no such check) and INVALID on 5.10 (nf_conntrack_inet_error(): "outer daddr %pI4 !=
    inner %pI4", net/netfilter/nf_conntrack_proto_icmp.c)."""
    syn = Packet("198.51.100.1", "198.51.100.2", 40000, 443, 1000, 0, TCPHDR_SYN, 64240)
    good = icmp_error_reply(syn, IcmpType.DEST_UNREACH, 4, "203.0.113.1")
    stray = icmp_error_reply(syn, IcmpType.DEST_UNREACH, 4, "203.0.113.1")
    stray = stray.rewritten(stray.src, stray.sport, "198.51.100.9", stray.dport, stray.ttl)
    path = tmp_path / "frag.pcap"
    write_pcap(path, [(0.0, syn, *MACS), (0.01, good, *MACS), (0.02, stray, *MACS)])
    assert main(["pcap", str(path), "--json", "--kernel", "4.19", "--kernel", "5.10"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    by_frame = {x["frame"]: x for x in lines[:-1]}
    assert by_frame[2]["flow"] == "#1"
    assert {k: v["ctstate"] for k, v in by_frame[2]["verdicts"].items()} == {
        "4.19": "RELATED",
        "5.10": "RELATED",
    }
    assert by_frame[3]["verdicts"]["4.19"]["ctstate"] == "RELATED"
    assert by_frame[3]["verdicts"]["5.10"] == {
        "ctstate": "INVALID",
        "reason": "outer daddr 198.51.100.9 != inner 198.51.100.1",
        "entry": "NONE",
    }


@settings(max_examples=60, deadline=None)
@given(damage=st.lists(st.tuples(st.integers(24, 3000), st.integers(0, 255)), min_size=1, max_size=12))
def test_damaged_live_capture_is_analysed_or_refused_in_one_line(tmp_path_factory, damage):
    """The live capture with bytes overwritten (headers, lengths, quoted packets, DNS): a
    report or a one-line refusal (exit 2), never a traceback."""
    data = bytearray((DATA / "dg-uplink.pcap").read_bytes())
    for pos, value in damage:
        data[pos % len(data)] = value
    path = tmp_path_factory.mktemp("damaged") / "d.pcap"
    path.write_bytes(bytes(data))
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        status = main(["pcap", str(path), "--kernel", "3.10", "--kernel", "6.18"])
    assert status in (0, 2)
    assert status == 0 or len(err.getvalue().strip().splitlines()) == 1
