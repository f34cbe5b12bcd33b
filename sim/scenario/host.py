"""The host's configuration from a scenario or a case: sysctls and iptables lines, applied to
the docker-bridge world's ``host`` namespace (the kernel profile is chosen when the world is
built)."""

from __future__ import annotations

from typing import Any

from sim.errors import InputError
from sim.net.world import World
from sim.netfilter.iptables.cmd import iptables
from sim.netfilter.iptables.parse import RuleError
from sim.topology.roles import NsRole


def configure_host(w: World, sysctl: dict[str, Any], rules: list[str]) -> None:
    """Set the host's sysctls, then run its iptables lines in order; InputError names the
    sysctl or ``iptables.host[i]``."""
    for key, value in sysctl.items():
        apply_sysctl(w, key, value)
    host = w.namespaces[NsRole.HOST]
    for i, line in enumerate(rules):
        try:
            iptables(host.ruleset, line)
        except RuleError as e:
            raise InputError(f"iptables.host[{i}]: {e}") from None


def apply_sysctl(w: World, key: str, value: object) -> None:
    """One host sysctl; InputError for what the model does not have."""
    host = w.namespaces[NsRole.HOST]
    try:
        number = int(str(value))
    except ValueError:
        raise InputError(f"sysctl {key}: expected an integer, got {value!r}") from None
    if key == "net.ipv4.ip_forward":
        host.ip_forward = bool(number)
        return
    if key == "net.bridge.bridge-nf-call-iptables":
        return  # routed traffic meets the same hooks either way (one container, one port)
    if not key.startswith("net.netfilter.nf_conntrack_"):
        raise InputError(f"sysctl {key}: not modelled")
    table = host.conntrack
    assert table is not None
    try:
        table.sysctl.set(key, number, table.profile)
    except ValueError as e:
        raise InputError(f"sysctl {key}: {e}") from None
