"""The ``docker-bridge`` preset: container(s), the docker0 bridge, the host, a remote.

As Docker's bridge driver sets it up: each container's ``eth0`` is one end of a veth pair
whose other end is a port of ``docker0``; the host routes (``net.ipv4.ip_forward=1``),
tracks connections and runs Docker's iptables ruleset (``sim.topology.docker_rules``); its
uplink ``eth0`` leads to the remote.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from sim.net.netns import Device, DevKind, Namespace, Route
from sim.net.world import World
from sim.netfilter.conntrack import ConntrackTable
from sim.netfilter.iptables.restore import iptables_restore
from sim.netfilter.ops import register_host_ops
from sim.packet import in_subnet
from sim.topology.docker_rules import PublishedPort, docker_ruleset
from sim.topology.roles import NsRole


@dataclass(frozen=True, slots=True)
class DockerBridge:
    """Addresses of the preset. Defaults are Docker's; the article's host and remote."""

    containers: tuple[str, ...] = ("172.17.0.2",)
    bridge_ip: str = "172.17.0.1"
    bridge_prefix: int = 16
    host_ip: str = "10.21.17.99"
    host_prefix: int = 24
    remote_ip: str = "36.110.213.207"
    kernel: str = "6.1"
    passive_ends: bool = False
    ports: tuple[PublishedPort, ...] = ()
    link_delay: float = 0.0  # one way, host uplink <-> remote
    # the containers' namespace names (default ctr, ctr2, ...), and more remotes on the
    # uplink's segment as (name, address)
    container_names: tuple[str, ...] = ()
    remotes: tuple[tuple[str, str], ...] = ()

    @property
    def subnet(self) -> str:
        mask = (0xFFFFFFFF << (32 - self.bridge_prefix)) & 0xFFFFFFFF
        a, b, c, d = (int(x) for x in self.bridge_ip.split("."))
        n = (a << 24 | b << 16 | c << 8 | d) & mask
        return f"{n >> 24}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}/{self.bridge_prefix}"


def container_name(i: int) -> str:
    return NsRole.CONTAINER.value if i == 0 else f"{NsRole.CONTAINER}{i + 1}"


def _mac(i: int) -> str:
    return f"02:42:ac:11:00:{i:02x}"


def docker_bridge(cfg: DockerBridge, seed: int = 0, trace: bool = True) -> World:
    """Build the world: namespaces ``ctr`` (``ctr2``, ...), ``host``, ``remote`` and any
    further remotes."""
    w = World(seed=seed, trace=trace)
    # the tuple hash's seed (nf_conntrack_hash_rnd) comes from the world's seed
    table = ConntrackTable(cfg.kernel, hash_rnd=zlib.crc32(b"nf_conntrack_hash_rnd", seed))
    host = Namespace(NsRole.HOST.value, ip_forward=True, conntrack=table)
    w.add_namespace(host)
    w.add_device(
        host, Device("docker0", DevKind.BRIDGE, "02:42:00:00:00:01", cfg.bridge_ip, cfg.bridge_prefix)
    )
    w.add_device(host, Device("eth0", DevKind.VETH, "52:54:00:00:00:01", cfg.host_ip, cfg.host_prefix))
    if not in_subnet(cfg.remote_ip, cfg.host_ip, cfg.host_prefix):
        host.routes.append(Route("0.0.0.0", 0, "eth0"))  # the default route, on-link to the uplink
    remote = Namespace(NsRole.REMOTE.value, passive=cfg.passive_ends)
    w.add_namespace(remote)
    remote_prefix = cfg.host_prefix if in_subnet(cfg.remote_ip, cfg.host_ip, cfg.host_prefix) else 32
    w.add_device(remote, Device("eth0", DevKind.VETH, "52:54:00:00:00:02", cfg.remote_ip, remote_prefix))
    remote.routes.append(Route("0.0.0.0", 0, "eth0"))
    w.link((NsRole.HOST.value, "eth0"), (NsRole.REMOTE.value, "eth0"), delay=cfg.link_delay)
    for i, (name, ip) in enumerate(cfg.remotes):
        other = Namespace(name, passive=cfg.passive_ends)
        w.add_namespace(other)
        w.add_device(other, Device("eth0", DevKind.VETH, f"52:54:00:00:01:{i:02x}", ip, remote_prefix))
        other.routes.append(Route("0.0.0.0", 0, "eth0"))
        w.attach((NsRole.HOST.value, "eth0"), (name, "eth0"), delay=cfg.link_delay)
    for i, ip in enumerate(cfg.containers):
        name = cfg.container_names[i] if cfg.container_names else container_name(i)
        ctr = Namespace(name, passive=cfg.passive_ends)
        w.add_namespace(ctr)
        w.add_device(ctr, Device("eth0", DevKind.VETH, _mac(i + 2), ip, cfg.bridge_prefix))
        ctr.routes.append(Route("0.0.0.0", 0, "eth0", via=cfg.bridge_ip))
        port = f"veth{i}"
        w.add_device(host, Device(port, DevKind.VETH, f"a2:00:00:00:00:{i:02x}", master="docker0"))
        w.link((name, "eth0"), (NsRole.HOST.value, port))
    iptables_restore(host.ruleset, docker_ruleset(subnet=cfg.subnet, ports=cfg.ports))
    register_host_ops(host)
    return w
