"""-m statistic --mode nth: xt_statistic.c statistic_mt() with libxt_statistic.c's counter start
(count = every - packet, every stored as n - 1) and its print/save text."""

from __future__ import annotations

import pytest

from sim.netfilter.iptables.ext.statistic import _build_statistic, statistic_print, statistic_save
from sim.netfilter.iptables.parse import RuleError
from sim.netfilter.xtables import StatisticMatch


def hits(m: StatisticMatch, n: int) -> list[int]:
    return [i for i in range(1, n + 1) if m.match(None, None)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("every", "packet", "expected"),
    [
        (2, 0, [1, 3, 5]),  # kube-proxy-like "every other packet": the first, third, ...
        (2, 1, [2, 4, 6]),
        (3, 0, [1, 4]),
        (3, 2, [3, 6]),
        (1, 0, [1, 2, 3, 4, 5, 6]),
    ],
)
def test_nth_matches_packet_p_of_every_n(every: int, packet: int, expected: list[int]) -> None:
    assert (
        hits(
            _build_statistic(
                {
                    "--mode": (False, ["nth"]),
                    "--every": (False, [str(every)]),
                    "--packet": (False, [str(packet)]),
                }
            ),
            6,
        )
        == expected
    )


def test_inverted_nth_matches_the_others() -> None:
    m = _build_statistic({"--mode": (True, ["nth"]), "--every": (False, ["2"]), "--packet": (False, ["0"])})
    assert hits(m, 4) == [2, 4]
    assert statistic_save(m) == " -m statistic --mode nth ! --every 2 --packet 0"


def test_text_as_libxt_statistic_prints_it() -> None:
    m = _build_statistic({"--mode": (False, ["nth"]), "--every": (False, ["3"]), "--packet": (False, ["2"])})
    assert statistic_print(m) == " statistic mode nth every 3 packet 2"
    assert statistic_save(m) == " -m statistic --mode nth --every 3 --packet 2"
    # iptables 1.8.9 on the live kernel: -nvL leaves packet 0 out, iptables-save keeps it
    m0 = _build_statistic({"--mode": (False, ["nth"]), "--every": (False, ["2"]), "--packet": (False, ["0"])})
    assert statistic_print(m0) == " statistic mode nth every 2"
    assert statistic_save(m0) == " -m statistic --mode nth --every 2 --packet 0"


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"--every": (False, ["2"])}, "no mode"),
        ({"--mode": (False, ["random"]), "--probability": (False, ["0.5"])}, "only the nth mode"),
        ({"--mode": (False, ["nth"]), "--every": (False, ["0"]), "--packet": (False, ["0"])}, "cannot be 0"),
        # iptables v1.8.9 (nf_tables), live: 'statistic: option "--every" also requires "--packet".'
        (
            {"--mode": (False, ["nth"]), "--every": (False, ["2"])},
            'option "--every" also requires "--packet"',
        ),
        (
            {"--mode": (False, ["nth"]), "--every": (False, ["2"]), "--packet": (False, ["2"])},
            "0 <= p <= n-1",
        ),
    ],
)
def test_bad_statistic_options_are_one_line_errors(opts: dict, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        _build_statistic(opts)  # type: ignore[arg-type]
