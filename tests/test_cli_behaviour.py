"""The command line behaving like one (issue 21): interrupts, no terminal, refused values, the
replay header, checks before work, --version, completion, --help.

Interrupt tests run ``python -m sim.cli`` and signal it once it has shown it is running (its
first output, or the SIGTERM handler in /proc/PID/status); no test measures time.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.cli import main

ROOT = Path(__file__).resolve().parents[1]
PCAPS = ROOT / "tests" / "pcap" / "data"


def _sigint_default() -> None:
    """A command started in a shell's background (``pytest ... &``) ignores SIGINT, and its
    children inherit that (POSIX: an asynchronous list without job control); a command at the
    terminal, which Ctrl-C reaches, has the default action."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-u", "-m", "sim.cli", *argv],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_default,
    )


def big_capture(tmp_path: Path, copies: int = 400) -> Path:
    """late-host.pcap's records repeated: long enough to be interrupted mid-way."""
    raw = (PCAPS / "late-host.pcap").read_bytes()
    path = tmp_path / "big.pcap"
    path.write_bytes(raw[:24] + raw[24:] * copies)
    return path


def interrupted(
    proc: subprocess.Popen[str], sig: int = signal.SIGINT, timeout: float = 600
) -> tuple[str, str]:
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # never leave it running
        raise
    return out, err


def test_ctrl_c_in_pcap_is_one_line_and_130(tmp_path):
    proc = spawn("pcap", str(big_capture(tmp_path)))
    assert proc.stdout is not None and proc.stdout.readline().startswith("nflab pcap ")
    _out, err = interrupted(proc)
    assert proc.returncode == 130 and err == "nflab: interrupted\n"


def test_ctrl_c_in_replay_is_one_line_and_130(tmp_path):
    from sim.bench import upload_case

    case = tmp_path / "upload.json"
    case.write_text(json.dumps(upload_case(50_000)))
    proc = spawn("replay", str(case))
    assert proc.stdout is not None and proc.stdout.readline().startswith("nflab replay ")
    _out, err = interrupted(proc)
    assert proc.returncode == 130 and err == "nflab: interrupted\n"


def test_ctrl_c_in_bench_is_one_line_and_130():
    proc = spawn("bench")
    assert proc.stderr is not None and proc.stderr.readline().startswith("measuring ")
    _out, err = interrupted(proc)
    assert proc.returncode == 130 and "Traceback" not in err and err.splitlines()[-1] == "nflab: interrupted"


def _handles_sigterm(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(status.split("SigCgt:")[1].split()[0], 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def test_diff_kernels_keeps_its_findings_on_sigterm(tmp_path):
    proc = spawn("diff-kernels", "3.10", "6.18", "--fuzz", "100000", "--out", str(tmp_path / "d"))
    for _ in range(1200):  # at most a minute: a process that never catches SIGTERM fails below
        if proc.poll() is not None or _handles_sigterm(proc.pid):
            break
        time.sleep(0.05)
    out, err = interrupted(proc, signal.SIGTERM, timeout=300)  # a bound for a hang, not a timing
    assert proc.returncode == 130
    assert "3.10 vs 6.18: " in out and "nflab diff-kernels: interrupted after" in err


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the dropped raise
def test_diff_kernels_stops_on_a_sigterm_that_arrives_during_a_garbage_collection(tmp_path, capsys):
    """The process that outlived SIGTERM: its handler raised KeyboardInterrupt inside a gc
    callback (hypothesis's ConjectureData installs one), where Python prints "Exception ignored"
    and drops the exception. The SIGTERM here is sent from a gc callback once find() runs, so
    its raise is always dropped; the run must still stop at its next example."""
    from hypothesis.internal.conjecture import junkdrawer

    before = signal.getsignal(signal.SIGTERM)
    sent: list[int] = []

    def sigterm_during_gc(phase: str, _info: object) -> None:
        handled = signal.getsignal(signal.SIGTERM) is not before  # diff-kernels' handler is in place
        in_find = getattr(junkdrawer, "_gc_initialized", True)  # hypothesis's gc callback is in place
        if phase == "start" and not sent and handled and in_find:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGTERM)

    gc.callbacks.append(sigterm_during_gc)
    try:
        status = main(["diff-kernels", "3.10", "6.18", "--fuzz", "200", "--out", str(tmp_path / "d")])
    finally:
        gc.callbacks.remove(sigterm_during_gc)
    err = capsys.readouterr().err
    assert sent and status == 130
    assert "nflab diff-kernels: interrupted after" in err


def test_diff_kernels_refuses_an_absurd_fuzz(capsys):
    assert main(["diff-kernels", "3.10", "6.18", "--fuzz", str(10**23)]) == 2
    assert "--fuzz must be 1..1000000" in capsys.readouterr().err


def test_without_a_terminal_no_tui_starts():
    proc = subprocess.run(
        [sys.executable, "-m", "sim.cli"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert "needs a terminal" in proc.stderr and "nflab run seed-incident" in proc.stderr


def _case(tmp_path: Path, kernel: str, value: int) -> Path:
    case = json.loads((ROOT / "sim" / "scenario" / "cases" / "late-ack.json").read_text())
    case["kernel"] = kernel
    case["sysctl"] = {"net.netfilter.nf_conntrack_tcp_be_liberal": value}
    path = tmp_path / f"c-{kernel}-{value}.json"
    path.write_text(json.dumps(case))
    return path


@pytest.mark.parametrize(
    ("kernel", "value", "status"),
    [
        ("6.1", 7, 2),  # proc_dou8vec_minmax 0..1
        ("5.10", 7, 2),  # proc_dointvec_minmax 0..1
        ("3.10", 7, 0),  # proc_dointvec: any int
        ("3.10", 10**20, 2),  # more than an int: EINVAL
        ("6.1", 1, 0),
    ],
)
def test_sysctl_values_the_kernel_refuses(tmp_path, capsys, kernel, value, status):
    assert main(["replay", str(_case(tmp_path, kernel, value))]) == status
    err = capsys.readouterr().err
    if status:
        assert err.count("\n") == 1 and "nf_conntrack_tcp_be_liberal" in err


def test_pcap_sysctl_out_of_range(capsys):
    argv = ["pcap", str(PCAPS / "vlan-host.pcap"), "--sysctl", "nf_conntrack_tcp_be_liberal=7"]
    assert main(argv) == 2
    assert "accepts 0 or 1" in capsys.readouterr().err


def test_a_release_string_says_how_it_was_resolved(tmp_path, capsys):
    case = json.loads(_case(tmp_path, "6.1", 0).read_text())
    case["kernel"] = "7.7.7"
    path = tmp_path / "k.json"
    path.write_text(json.dumps(case))
    assert main(["replay", str(path)]) == 0
    io = capsys.readouterr()
    assert "nflab: kernel 7.7.7: newer than every profile, using the newest, 6.18" in io.err
    assert io.out.startswith(f"nflab replay {path.name}: kernel 6.18 (from 7.7.7)")


def test_size_0x0_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        main(["tui", "--svg", "x.svg", "--size", "0x0"])
    assert e.value.code == 2 and "--size" in capsys.readouterr().err


def test_replay_header_names_kernel_sysctls_and_rules(tmp_path, capsys):
    case = json.loads((ROOT / "sim" / "scenario" / "cases" / "late-ack.json").read_text())
    case.update(kernel="3.10", sysctl={"net.netfilter.nf_conntrack_tcp_be_liberal": 1})
    case["iptables"] = {"host": ["iptables -A INPUT -m conntrack --ctstate INVALID -j DROP"]}
    path = tmp_path / "h.json"
    path.write_text(json.dumps(case))
    assert main(["replay", str(path)]) == 0
    head = capsys.readouterr().out.splitlines()[:3]
    assert head == [
        f"nflab replay {path.name}: kernel 3.10, {len(case['packets'])} packets",
        "  sysctl net.netfilter.nf_conntrack_tcp_be_liberal = 1",
        "  host: iptables -A INPUT -m conntrack --ctstate INVALID -j DROP",
    ]
    assert main(["replay", str(path), "--json"]) == 0
    assert all(json.loads(line) for line in capsys.readouterr().out.splitlines())


def test_run_out_with_a_bad_path_fails_before_the_simulation(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["run", "seed-incident", "--out", str(blocker / "out")]) == 2
    io = capsys.readouterr()
    assert io.out == "" and io.err.count("\n") == 1 and f"--out {blocker / 'out'}" in io.err


def test_version_completion_and_help(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("nflab ")
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert "complete -o filenames -F _nflab nflab" in script and " pcap) " in script and "late-ack" in script
    check = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert check.returncode == 0, check.stderr
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "built-in scenarios: conntrack-table-full, dns-race" in text
    assert "seed-incident" in text and "late-ack" in text
    assert "130  interrupted" in text and "2    bad input" in text


def test_a_record_with_ip_header_length_0(tmp_path, capsys):
    from sim.packet import TCPHDR_ACK, Packet
    from sim.wire import emit

    ip = bytearray(emit(Packet("192.0.2.2", "198.51.100.2", 40000, 443, 1, 2, TCPHDR_ACK, 100)))
    ip[0] = 0x40  # version 4, IHL 0
    path = tmp_path / "ihl0.pcap"
    path.write_bytes(
        struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 101) + struct.pack("<IIII", 0, 0, 40, 40) + ip
    )
    assert main(["pcap", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 bad IPv4 header length 0" in out and "snaplen" not in out
