"""moby libnetwork/drivers/bridge/setup_ip_tables_linux.go (Docker Engine 27.x, iptables backend).

The ruleset ``dockerd`` 27.x installs for its default bridge, as ``iptables-save`` text:
the nat DOCKER chain reached from PREROUTING/OUTPUT for local destinations, MASQUERADE for
traffic leaving the bridge, the filter FORWARD rules with DOCKER-USER and the two isolation
stages, and per published port a DNAT, a filter ACCEPT and the hairpin MASQUERADE.
Checked against moby's own iptablesdoc "new daemon" listing for 27.x and real ``iptables-save``
dumps of 27.x hosts (see tests/unit/netfilter/test_docker_rules.py). Docker 28 moved the
FORWARD rules into DOCKER-FORWARD/DOCKER-CT/DOCKER-BRIDGE chains; that layout is not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network

DOCKER_VERSION = "27.x"


@dataclass(frozen=True, slots=True)
class PublishedPort:
    """``docker run -p HOST_PORT:CONTAINER_PORT`` for a container at ``container_ip`` (TCP)."""

    host_port: int
    container_ip: str
    container_port: int


def docker_ruleset(
    *,
    bridge: str = "docker0",
    subnet: str = "172.17.0.0/16",
    ports: tuple[PublishedPort, ...] = (),
    forward_policy: str = "DROP",
) -> str:
    """``iptables-save`` text (nat, then filter) for the default bridge network.

    ``forward_policy`` is DROP when dockerd itself enabled ``net.ipv4.ip_forward``
    (setupIPForwarding), ACCEPT when it was already on.
    """
    net = IPv4Network(subnet)
    nat = [
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        ":DOCKER - [0:0]",
        "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
        "-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER",
        f"-A POSTROUTING -s {net} ! -o {bridge} -j MASQUERADE",
    ]
    nat += [
        f"-A POSTROUTING -s {p.container_ip}/32 -d {p.container_ip}/32"
        f" -p tcp -m tcp --dport {p.container_port} -j MASQUERADE"
        for p in ports
    ]
    nat.append(f"-A DOCKER -i {bridge} -j RETURN")
    nat += [
        f"-A DOCKER ! -i {bridge} -p tcp -m tcp --dport {p.host_port} -j DNAT"
        f" --to-destination {p.container_ip}:{p.container_port}"
        for p in ports
    ]
    filt = [
        "*filter",
        ":INPUT ACCEPT [0:0]",
        f":FORWARD {forward_policy} [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":DOCKER - [0:0]",
        ":DOCKER-ISOLATION-STAGE-1 - [0:0]",
        ":DOCKER-ISOLATION-STAGE-2 - [0:0]",
        ":DOCKER-USER - [0:0]",
        "-A FORWARD -j DOCKER-USER",
        "-A FORWARD -j DOCKER-ISOLATION-STAGE-1",
        f"-A FORWARD -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        f"-A FORWARD -o {bridge} -j DOCKER",
        f"-A FORWARD -i {bridge} ! -o {bridge} -j ACCEPT",
        f"-A FORWARD -i {bridge} -o {bridge} -j ACCEPT",
    ]
    filt += [
        f"-A DOCKER -d {p.container_ip}/32 ! -i {bridge} -o {bridge} -p tcp -m tcp --dport {p.container_port}"
        " -j ACCEPT"
        for p in ports
    ]
    filt += [
        f"-A DOCKER-ISOLATION-STAGE-1 -i {bridge} ! -o {bridge} -j DOCKER-ISOLATION-STAGE-2",
        "-A DOCKER-ISOLATION-STAGE-1 -j RETURN",
        f"-A DOCKER-ISOLATION-STAGE-2 -o {bridge} -j DROP",
        "-A DOCKER-ISOLATION-STAGE-2 -j RETURN",
        "-A DOCKER-USER -j RETURN",
    ]
    return "\n".join([*nat, "COMMIT", *filt, "COMMIT"]) + "\n"
