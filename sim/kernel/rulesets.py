"""The host namespace's setup in the live harness: Docker's bridge ruleset (libnetwork's
iptables rules for the default network), the harness's own nft observation and passive-host
rulesets, and the sysctls of the host namespace. See :mod:`sim.kernel.testbed` for their use.
"""

from __future__ import annotations

from sim.scenario.case import IPTABLES_TABLES

BRIDGE = "docker0"
BRIDGE_PORT = "veth0"
UPLINK = "eth0"
END_DEV = "eth0"
MAC = {
    "ctr": "02:00:c0:00:02:02",
    "bridge": "02:00:c0:00:02:01",
    "port": "02:00:c0:00:02:fe",
    "uplink": "02:00:c6:33:64:01",
    "remote": "02:00:c6:33:64:02",
}
BARRIER_PORT = 9  # discard
BARRIER_TIMEOUT_S = 1.0
SETTLE_S = 0.0005  # extra listening after the barrier, for stragglers from other CPUs

# What Docker's bridge driver installs for its default network (libnetwork's iptables
# setup; FORWARD policy DROP since Docker 1.13), with the bridge named BRIDGE:
# {table: ({built-in chain: policy}, [rules])}. "{ctr_net}" is the bridge's subnet.
DOCKER_TABLES: dict[str, tuple[dict[str, str], list[str]]] = {
    "raw": ({"PREROUTING": "ACCEPT", "OUTPUT": "ACCEPT"}, []),
    "mangle": (
        dict.fromkeys(("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"), "ACCEPT"),
        [],
    ),
    "nat": (
        dict.fromkeys(("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"), "ACCEPT"),
        [f"-A POSTROUTING -s {{ctr_net}} ! -o {BRIDGE} -j MASQUERADE"],
    ),
    "filter": (
        {"INPUT": "ACCEPT", "FORWARD": "DROP", "OUTPUT": "ACCEPT"},
        [
            f"-A FORWARD -o {BRIDGE} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            f"-A FORWARD -i {BRIDGE} ! -o {BRIDGE} -j ACCEPT",
            f"-A FORWARD -i {BRIDGE} -o {BRIDGE} -j ACCEPT",
        ],
    ),
}


def docker_rules(ctr_net: str, *, reset: bool = False, tables: tuple[str, ...] = IPTABLES_TABLES) -> str:
    """Docker's ruleset in iptables-restore format.

    With ``reset`` it is meant for ``iptables-restore --noflush``: every chain is flushed,
    user chains deleted and policies set back, without deleting and re-creating the tables
    (which unregisters hooks and costs tens of milliseconds).
    """
    out = []
    for table in tables:
        policies, rules = DOCKER_TABLES[table]
        out.append(f"*{table}")
        if reset:
            out += ["-F", "-X"] + [f"-P {chain} {policy}" for chain, policy in policies.items()]
        else:
            out += [f":{chain} {policy} [0:0]" for chain, policy in policies.items()]
        out += [r.replace("{ctr_net}", ctr_net) for r in rules]
        out.append("COMMIT")
    return "\n".join(out) + "\n"


OBS_RULESET = f"""\
table ip nflab_obs {{
  chain barrier {{
    type filter hook prerouting priority -350; policy accept;
    udp sport {BARRIER_PORT} udp dport {BARRIER_PORT} log group 0 prefix "nflab:barrier" drop
  }}
  chain ctstate {{
    type filter hook prerouting priority -180; policy accept;
    ct state invalid log group 0 prefix "nflab:ct:INVALID"
    ct state new log group 0 prefix "nflab:ct:NEW"
    ct state established log group 0 prefix "nflab:ct:ESTABLISHED"
    ct state related log group 0 prefix "nflab:ct:RELATED"
    ct state untracked log group 0 prefix "nflab:ct:UNTRACKED"
  }}
  chain input {{
    type filter hook input priority 300; policy accept;
    log group 0 prefix "nflab:input"
  }}
}}
"""

PASSIVE_RULESET = """\
table inet nflab_passive {
  chain input { type filter hook input priority -500; policy drop; }
  chain output { type filter hook output priority -500; policy drop; }
}
"""

BASE_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
    "net.netfilter.nf_conntrack_log_invalid": "6",
    "net.netfilter.nf_log.2": "nfnetlink_log",
    # The host's own ICMP errors (port unreachable for a datagram to a closed port) are not
    # rate limited per destination (icmpv4_xrlim_allow(): a 0 ms interval always allows), so
    # a replay does not depend on what the previous case sent; the model has no such limit.
    "net.ipv4.icmp_ratelimit": "0",
}
BRIDGE_NF_SYSCTL = "net.bridge.bridge-nf-call-iptables"
