"""The command line: help, clean one-line errors, the walkthrough's story."""

import subprocess
import sys

from sim.cli import main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim.cli", *args], capture_output=True, text=True, check=False
    )


def test_import_sim_loads_neither_textual_nor_hypothesis():
    # every module of the model except the public hypothesis strategies (sim.testing)
    # (walk_packages would import sim.testing itself to look inside it)
    code = (
        "import importlib, pkgutil, sys, sim\n"
        "def walk(path, prefix):\n"
        "    for m in pkgutil.iter_modules(path, prefix):\n"
        "        if not m.name.startswith('sim.testing'):\n"
        "            mod = importlib.import_module(m.name)\n"
        "            if m.ispkg:\n"
        "                walk(mod.__path__, m.name + '.')\n"
        "walk(sim.__path__, 'sim.')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'hypothesis', 'tui')]\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unknown_option_is_one_line_error():
    proc = run("walkthrough", "--kernel", "five")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "kernel 'five': not a profile" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_lists_commands():
    proc = run("--help")
    assert proc.returncode == 0
    for command in ("tui", "run", "replay", "kernel-check", "figures", "check", "walkthrough", "bench"):
        assert command in proc.stdout


def test_walkthrough_310_shows_invalid_late_ack_and_failed_bound(capsys):
    assert main(["walkthrough", "--kernel", "3.10"]) == 0
    out = capsys.readouterr().out
    assert (
        'INVALID, state ESTABLISHED, "nf_ct_tcp: ACK is under the lower bound (possible overly delayed ACK)"'
        in out
    )
    # receiver td_end 596701 (459 segments of 1300 bytes from seq 1), MAXACKWINDOW 66000
    assert "limit  530701  packet  530104  FAIL" in out
    assert "tcp_v4_send_reset" in out


def test_walkthrough_61_ignores_late_ack(capsys):
    assert main(["walkthrough", "--kernel", "6.1"]) == 0
    out = capsys.readouterr().out
    assert '"nf_ct_proto_6: ignored ACK under lower bound 530700 (possible overly delayed)"' in out
    assert "No RST" in out


def test_walkthrough_be_liberal_accepts(capsys):
    assert main(["walkthrough", "--kernel", "3.10", "--be-liberal"]) == 0
    out = capsys.readouterr().out
    assert "the late ACK" in out and "No RST" in out


def test_bench_functions_run_on_small_inputs():
    from sim import bench

    assert bench.conntrack_bytes_per_entry(entries=256) > 0
    assert bench.fuzz_examples_per_s(examples=5) > 0


def test_walkthrough_says_why_its_numbers_differ_from_the_run(capsys):
    assert main(["walkthrough", "--kernel", "3.10"]) == 0
    out = capsys.readouterr().out
    # the article's numbers: bound IV misses by 530701 - 530104 = 597 bytes, MAXACKWINDOW 66000
    assert "this ACK acknowledges data 597 bytes older than the oldest ACK conntrack still accepts" in out
    assert "no NAT, so replies are written to the container's address 172.17.0.2" in out
    # the run's numbers, as `nflab run seed-incident --kernel 3.10` prints them (README): ack
    # 1391384029, limit 1391914337 -> 530,308 bytes; receiver td_end 1392045409 -> 131,072 back
    assert "its held-back ACK is ack 1391384029" in out and "replies come to 10.21.17.99:39700" in out
    assert "older than the oldest ACK conntrack still accepts (at most 131,072 bytes back)" in out
    assert out.rstrip().splitlines()[-1].startswith("tcp      6 299 ESTABLISHED")


class _Terminal:
    """A stderr that says it is a terminal and keeps what is written to it."""

    def __init__(self) -> None:
        self.text = ""

    def isatty(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass


def test_replay_streams_and_shows_progress_only_on_a_terminal(tmp_path, capsys, monkeypatch):
    import json

    from sim.bench import upload_case

    case = tmp_path / "upload.json"
    case.write_text(json.dumps(upload_case(30)))
    assert main(["replay", str(case)]) == 0
    plain = capsys.readouterr()
    lines = plain.out.splitlines()
    assert lines[0].startswith(f"nflab replay {case.name}: kernel ") and plain.err == ""
    assert len([line for line in lines if line.startswith("[")]) == 30
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert main(["replay", str(case)]) == 0
    assert capsys.readouterr().out == plain.out  # the same lines on stdout
    assert "\rreplay: 30/30 packets" in term.text and term.text.endswith("\r\x1b[K")
