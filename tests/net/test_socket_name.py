"""How the trace names the socket a segment reaches, as ``ss -tan`` lists it: a connection by its
local and peer address (the established hash's 4-tuple), a listener by its local address."""

from __future__ import annotations

import pytest

from sim.net.tcp_ipv4 import socket_name
from sim.packet import TCPHDR_ACK, TCPHDR_FIN, TCPHDR_PSH, TCPHDR_RST, TCPHDR_SYN, Packet

SERVER, CLIENT = ("198.51.100.2", 443), ("203.0.113.1", 40000)


def to_server(flags: int) -> Packet:
    return Packet(src=CLIENT[0], dst=SERVER[0], sport=CLIENT[1], dport=SERVER[1], flags=flags)


def test_a_connection_request_is_the_listeners() -> None:
    assert socket_name({}, to_server(TCPHDR_SYN)) == "the socket listening on 198.51.100.2:443"


@pytest.mark.parametrize(
    "flags",
    [TCPHDR_ACK, TCPHDR_ACK | TCPHDR_PSH, TCPHDR_FIN | TCPHDR_ACK, TCPHDR_RST, TCPHDR_RST | TCPHDR_ACK],
)
def test_the_rest_of_the_conversation_is_the_connections(flags: int) -> None:
    """Not "listening": after the handshake ss lists ESTAB 198.51.100.2:443 203.0.113.1:40000."""
    assert socket_name({}, to_server(flags)) == "the socket 198.51.100.2:443 <-> 203.0.113.1:40000"


def test_a_connected_socket_by_its_4_tuple_even_for_a_syn() -> None:
    """The client's own socket (SYN-SENT, in the established hash since connect()) takes the
    SYN/ACK, and a simultaneous open's SYN, by the 4-tuple."""
    sockets = {(SERVER[0], SERVER[1], CLIENT[0], CLIENT[1]): object()}
    for flags in (TCPHDR_SYN, TCPHDR_SYN | TCPHDR_ACK):
        assert socket_name(sockets, to_server(flags)) == "the socket 198.51.100.2:443 <-> 203.0.113.1:40000"
