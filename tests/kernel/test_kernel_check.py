"""``nflab kernel-check`` end to end on this machine's kernel (root only): the whole case
library and 200 fuzzed conversations must agree with the model."""

from __future__ import annotations

import pytest

from sim.cli import main
from sim.kernel import skip_reason

pytestmark = pytest.mark.kernel
REASON = skip_reason()


@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_library_and_200_fuzzed_conversations_agree(tmp_path, capsys):
    status = main(["kernel-check", "--all", "--fuzz", "200", "--seed", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    total, agree = out.strip().splitlines()[-1].replace(" packets,", "").replace(" agree", "").split()
    assert total == agree and int(total) > 1000  # 146 library packets + ~10 per conversation
