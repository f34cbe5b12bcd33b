"""published-port-invalid with docker-proxy listening on the published port (the live kernel as
judge): the host socket exists, yet an INVALID segment with ACK set draws the same RST as with no
socket, because tcp_v4_do_rcv() -> tcp_rcv_state_process() in TCP_LISTEN returns non-zero for
an ACK ("if (th->ack) return ...") and tcp_v4_send_reset() answers (seq = the segment's ack,
no ACK flag). Only a segment without ACK differs: the listener discards it (neither SYN nor RST
nor ACK: "goto discard"), while without a socket tcp_v4_send_reset() answers RST/ACK."""

from __future__ import annotations

import socket

import pytest

from sim.kernel import skip_reason
from sim.kernel.check import load_case
from sim.kernel.netns import in_netns
from sim.kernel.testbed import Testbed, run_case
from sim.scenario.case import parse_case

REASON = skip_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def _last_with_and_without_listener(case: dict) -> tuple[dict, dict]:
    with Testbed(parse_case(case)[0]) as tb:
        without = run_case(case, tb)[-1]
        with in_netns(tb.ns["host"]):
            proxy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # docker-proxy's 0.0.0.0:8080
        try:
            proxy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            proxy.bind(("0.0.0.0", 8080))
            proxy.listen(16)
            with_proxy = run_case(case, tb)[-1]
        finally:
            proxy.close()
    return without, with_proxy


def test_an_invalid_ack_draws_the_same_rst_with_docker_proxy_listening() -> None:
    without, with_proxy = _last_with_and_without_listener(load_case("story-published-port-invalid"))
    rst = [{"to": "remote", "flags": "R", "seq": 5000001, "ack": 0}]
    assert without["ctstate"] == with_proxy["ctstate"] == "INVALID"
    assert without["emitted"] == with_proxy["emitted"] == rst


def test_an_invalid_segment_without_ack_is_discarded_by_the_listener() -> None:
    case = load_case("story-published-port-invalid")
    case["packets"][-1] = {**case["packets"][-1], "flags": "F", "ack": 0, "len": 0}
    without, with_proxy = _last_with_and_without_listener(case)
    assert without["emitted"] == [{"to": "remote", "flags": "RA", "seq": 0, "ack": 1200002}]
    assert with_proxy["fate"] == "local:host" and with_proxy["emitted"] == []
