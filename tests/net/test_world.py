"""The docker-bridge world: topology graph, links, routing, DNAT for a published port."""

from sim.packet import Packet, parse_flags
from sim.topology.docker_bridge import DockerBridge, docker_bridge
from sim.topology.docker_rules import PublishedPort
from sim.trace import Step, Why


def syn(src, dst, sport, dport):
    return Packet(src, dst, sport, dport, 1, 0, parse_flags("S"), 64240)


def test_topology_graph():
    w = docker_bridge(DockerBridge(containers=("172.17.0.2", "172.17.0.3")))
    g = w.graph
    assert g.edges["ctr/eth0", "host/veth0"]["kind"] == "link"
    assert g.edges["host/veth1", "host/docker0"]["kind"] == "port"
    assert g.edges["host/eth0", "remote/eth0"]["kind"] == "link"
    import networkx as nx

    assert nx.shortest_path(g, "ctr", "remote") == [
        "ctr",
        "ctr/eth0",
        "host/veth0",
        "host",
        "host/eth0",
        "remote/eth0",
        "remote",
    ]


def test_published_port_is_dnated_to_the_container():
    # docker run -p 8080:80: nat PREROUTING -> DOCKER: DNAT --to-destination 172.17.0.2:80
    w = docker_bridge(DockerBridge(ports=(PublishedPort(8080, "172.17.0.2", 80),), passive_ends=True))
    pid = w.send("remote", syn("36.110.213.207", "10.21.17.99", 50000, 8080))
    w.run()
    (got,) = [e for e in w.trace.for_packet(pid) if e.step is Step.DELIVER]
    assert got.ns == "ctr"
    assert (got.before.dst, got.before.dport, got.before.src) == ("172.17.0.2", 80, "36.110.213.207")
    (ct,) = list(w.namespaces["host"].conntrack)
    assert ct.tuples[1] == ("172.17.0.2", 80, "36.110.213.207", 50000, 6)


def test_link_delay_and_same_seed_same_loss():
    def run(seed):
        w = docker_bridge(DockerBridge(passive_ends=True, link_delay=0.05), seed=seed)
        w.namespaces["host"].devices["eth0"].loss = 0.5
        for i in range(20):
            w.send("ctr", syn("172.17.0.2", "36.110.213.207", 40000 + i, 443))
        w.run()
        return [(e.t, e.pid) for e in w.trace.events if e.step is Step.DELIVER]

    a, b = run(1), run(1)
    assert a == b and 0 < len(a) < 20
    assert all(t == 0.05 for t, _ in a)  # host -> remote one-way delay


def test_no_route_and_forwarding_off():
    w = docker_bridge(DockerBridge(passive_ends=True))
    w.namespaces["host"].ip_forward = False
    pid = w.send("ctr", syn("172.17.0.2", "36.110.213.207", 40000, 443))
    w.run()
    drop = [e for e in w.trace.for_packet(pid) if e.step is Step.DROP]
    assert drop and drop[0].why is Why.NOT_FORWARDING
