"""``nflab pcap --to-case`` conversions of real captures, judged by the live kernel (root only).

Each committed capture of the real kernel's TCP (tests/pcap/data) and a fresh upload
made now through impairments are converted into replay cases; ``nflab kernel-check`` replays
them on this machine's kernel and every field of every packet must agree with the model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.cli import main
from sim.kernel import skip_reason

pytestmark = pytest.mark.kernel
REASON = skip_reason()
DATA = Path(__file__).parent.parent / "pcap" / "data"


def check(capture: Path, tmp_path: Path, capsys) -> str:
    case = tmp_path / f"{capture.stem}.json"
    assert main(["pcap", str(capture), "--kernel", "6.1", "--to-case", str(case)]) == 0
    capsys.readouterr()
    status = main(["kernel-check", str(case), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert status == 0, out
    total, agree = out.strip().splitlines()[-1].replace(" packets,", "").replace(" agree", "").split()
    assert total == agree and int(total) > 150
    return out


@pytest.mark.skipif(REASON is not None, reason=REASON or "")
@pytest.mark.parametrize(
    "name",
    [
        "clean-host.pcap",
        "lossdup-host.pcap",
        "late-host.pcap",
        "any-host.pcap",
        "offload-host.pcap",
        "inject-uplink.pcap",
    ],
)
def test_committed_captures_agree_with_the_live_kernel(name, tmp_path, capsys):
    check(DATA / name, tmp_path, capsys)


@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_a_fresh_impaired_upload_is_analysed_and_agrees(tmp_path, capsys):
    from sim.kernel.upload import Upload, run_upload

    host, ctr = tmp_path / "host.pcap", tmp_path / "ctr.pcap"
    up = Upload(
        size=400_000,
        loss=10,
        dup=10,
        ack_dup=10,
        ack_delay=0.002,
        ack_jitter=0.004,
        ack_late_p=0.03,
        ack_late=0.05,
        rcvbuf=32768,
        seed=3,
    )
    assert run_upload(up, host, ctr) == 400_000
    assert main(["pcap", str(host), str(ctr), "--kernel", "3.10", "--kernel", "6.1"]) == 0
    text = capsys.readouterr().out
    assert "handshake seen" in text and "1 connection(s)" in text
    check(host, tmp_path, capsys)
