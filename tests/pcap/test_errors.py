"""Bad captures: one line naming the file and the frame, exit status 2, never a traceback.

The broken files are cut or patched copies of a capture tcpdump wrote (data/clean-host.pcap,
Ethernet, 340 frames, snaplen 96) and of its pcapng conversion by editcap.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from sim.cli import main

DATA = Path(__file__).parent / "data"


def record_offsets(raw: bytes) -> list[int]:
    offs, off = [], 24
    while off < len(raw):
        offs.append(off)
        off += 16 + struct.unpack_from("<I", raw, off + 8)[0]
    return offs


def fails(tmp_path: Path, capsys, data: bytes, suffix: str = ".pcap") -> str:
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(data)
    assert main(["pcap", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(path) in err
    return err


def cut(tmp_path: Path, capsys, data: bytes, suffix: str = ".pcap") -> tuple[str, str]:
    """A capture cut off mid-frame: analysed up to its last complete frame, one warning line."""
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data)
    assert main(["pcap", str(path)]) == 0
    io = capsys.readouterr()
    assert io.err.count("\n") == 1 and str(path) in io.err and "cut short in the middle of a frame" in io.err
    return io.out, io.err


def test_truncated_record(tmp_path, capsys):
    raw = (DATA / "clean-host.pcap").read_bytes()
    offs = record_offsets(raw)
    out, err = cut(tmp_path, capsys, raw[: offs[99] + 20])
    assert "frame 100: truncated record (4 of " in err and "the 99 complete frame(s)" in err
    assert "\n99 frames, 99 IPv4 TCP packets" in out


def test_truncated_record_header(tmp_path, capsys):
    raw = (DATA / "clean-host.pcap").read_bytes()
    out, err = cut(tmp_path, capsys, raw[: record_offsets(raw)[5] + 7])
    assert "frame 6: truncated record header" in err and "the 5 complete frame(s)" in err
    assert "\n5 frames, 5 IPv4 TCP packets" in out


def test_wrong_magic(tmp_path, capsys):
    err = fails(tmp_path, capsys, b"GIF89a" + bytes(100))
    assert "file header: bad magic number" in err


def test_unknown_link_type(tmp_path, capsys):
    raw = bytearray((DATA / "clean-host.pcap").read_bytes())
    struct.pack_into("<I", raw, 20, 105)  # LINKTYPE_IEEE802_11
    err = fails(tmp_path, capsys, bytes(raw))
    assert "unknown link type 105" in err


def test_a_packet_claiming_4_gb(tmp_path, capsys):
    raw = bytearray((DATA / "clean-host.pcap").read_bytes())
    struct.pack_into("<I", raw, record_offsets(raw)[2] + 8, 0xFFFFFFF0)
    err = fails(tmp_path, capsys, bytes(raw))
    assert "frame 3: record claims 4294967280 bytes" in err


def test_pcapng_block_claiming_4_gb(tmp_path, capsys):
    raw = bytearray((DATA / "clean-host.pcapng").read_bytes())
    # walk to the first Enhanced Packet Block (type 6) and break its length
    off = 0
    while struct.unpack_from("<I", raw, off)[0] != 6:
        off += struct.unpack_from("<I", raw, off + 4)[0]
    struct.pack_into("<I", raw, off + 4, 0xFFFFFFFC)
    err = fails(tmp_path, capsys, bytes(raw), ".pcapng")
    assert "frame 1: block claims 4294967292 bytes" in err


def test_pcapng_truncated(tmp_path, capsys):
    raw = (DATA / "clean-host.pcapng").read_bytes()
    out, err = cut(tmp_path, capsys, raw[: len(raw) - 50], ".pcapng")
    assert "frame 340: truncated block" in err and "339 frames" in out


def test_empty_and_missing_files(tmp_path, capsys):
    assert "truncated (0 bytes)" in fails(tmp_path, capsys, b"")
    assert main(["pcap", str(tmp_path / "nope.pcap")]) == 2
    assert "No such file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--kernel", "2.6"], "kernel '2.6': older than every profile"),
        (["--sysctl", "tcp_be_liberal"], "expected KEY=INTEGER"),
        (
            ["--sysctl", "nf_conntrack_tcp_ignore_invalid_rst=1", "--kernel", "3.10"],
            "does not exist in kernel 3.10",
        ),
        (["--sysctl", "nf_conntrack_bogus=1"], "unknown sysctl"),
    ],
)
def test_bad_arguments(capsys, argv, message):
    assert main(["pcap", str(DATA / "clean-host.pcap"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_other_traffic_is_counted_and_skipped(capsys):
    """editcap -s 60 cut the TCP headers with options: counted with a one-line note."""
    assert main(["pcap", str(DATA / "late-host-s60.pcap")]) == 0
    out = capsys.readouterr().out
    assert "430 frames" in out and "other frames (" in out and "TCP header cut by the snaplen" in out


def test_progress_line_only_on_a_terminal():
    import io

    from sim.pcap.command import _Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = _Progress(str(DATA / "clean-host.pcap"), stream)
        bar(16_900)
        bar.done()
    assert "clean-host.pcap:  50.0%" in tty.getvalue() and tty.getvalue().endswith("\r")
    assert pipe.getvalue() == ""
