"""The conntrack sysctls of one namespace (net/netfilter/nf_conntrack_standalone.c's sysctl
table, include/net/netns/conntrack.h).

``net.netfilter.nf_conntrack_*`` with the kernel's defaults, the TCP timeouts among them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from sim.include.nf_conntrack_tcp import TcpState
from sim.netfilter.profiles import KernelProfile

# tcp_timeouts[] in seconds; unchanged from 3.10 to 6.18.
TCP_TIMEOUTS: dict[TcpState, int] = {
    TcpState.SYN_SENT: 2 * 60,
    TcpState.SYN_RECV: 60,
    TcpState.ESTABLISHED: 5 * 24 * 3600,
    TcpState.FIN_WAIT: 2 * 60,
    TcpState.CLOSE_WAIT: 60,
    TcpState.LAST_ACK: 30,
    TcpState.TIME_WAIT: 2 * 60,
    TcpState.CLOSE: 10,
    TcpState.SYN_SENT2: 2 * 60,
    # "RFC1122 says the R2 limit should be at least 100 seconds. Linux uses 15 packets as
    # limit, which corresponds to ~13-30min depending on RTO."
    TcpState.RETRANS: 5 * 60,
    TcpState.UNACK: 5 * 60,
}


class UdpCt(Enum):
    """``enum udp_conntrack`` (nf_conntrack_proto_udp.c's ``udp_timeouts[]`` index): the two
    UDP timeouts, by their sysctl names."""

    UNREPLIED = "nf_conntrack_udp_timeout"
    REPLIED = "nf_conntrack_udp_timeout_stream"


def udp_default_timeouts(profile: KernelProfile) -> dict[UdpCt, int]:
    """``udp_timeouts[]`` in seconds: 30 and 180, or 30 and 120 from 5.10 on."""
    return {UdpCt.UNREPLIED: 30, UdpCt.REPLIED: 120 if profile.udp_stream_after_2s else 180}


# nf_conntrack_max: 262144 is the limit the kernel picks on a machine with more than 4 GiB
# of memory (nf_conntrack_init_start()): 65536 buckets times max_factor 4 up to 5.10, 262144
# buckets times 1 from 5.15 on.
NF_CONNTRACK_MAX_DEFAULT = 262144


INT_MAX = 2**31 - 1
# The boolean TCP sysctls: proc_dointvec (any int) in the per-protocol table of 3.10 and
# 4.19 (nf_conntrack_proto_tcp.c); proc_dointvec_minmax with extra1/extra2 = 0/1 in
# nf_conntrack_standalone.c's table (5.10.13 has it; the SYSCTL_ZERO rename of 5.3 already
# finds it), proc_dou8vec_minmax 0..1 later. The release is bounded by the recorded trees
# (absent in 4.19.1, present in 5.10.13): no profile lies between.
_BOOLEAN = frozenset({"tcp_be_liberal", "tcp_loose", "tcp_ignore_invalid_rst"})
MINMAX_SINCE = (5, 3)


def _release_key(release: str) -> tuple[int, int]:
    major, _, rest = release.partition(".")
    return int(major), int(rest.split(".")[0].split("-")[0])


@dataclass(slots=True)
class ConntrackSysctls:
    """``net.netfilter.nf_conntrack_*`` of one namespace, with the kernel's defaults."""

    tcp_be_liberal: int = 0
    tcp_loose: int = 1
    tcp_max_retrans: int = 3
    tcp_ignore_invalid_rst: int = 0
    log_invalid: int = 0
    checksum: int = 1
    max: int = NF_CONNTRACK_MAX_DEFAULT
    buckets: int = 0  # nf_conntrack_buckets; 0: the kernel's default for max (buckets_for)
    timeouts: dict[TcpState, float] = field(default_factory=lambda: dict(TCP_TIMEOUTS))
    # nf_conntrack_udp_timeout / _stream (udp_timeouts[], per profile) and _icmp_timeout
    udp_timeouts: dict[UdpCt, int] = field(default_factory=lambda: {UdpCt.UNREPLIED: 30, UdpCt.REPLIED: 120})
    icmp_timeout: int = 30  # nf_ct_icmp_timeout = 30*HZ

    _NAMES = (
        "tcp_be_liberal",
        "tcp_loose",
        "tcp_max_retrans",
        "tcp_ignore_invalid_rst",
        "log_invalid",
        "checksum",
        "max",
        "icmp_timeout",
        "buckets",
    )

    @classmethod
    def for_profile(cls, profile: KernelProfile) -> ConntrackSysctls:
        """The defaults of ``profile``'s kernel."""
        return cls(udp_timeouts=udp_default_timeouts(profile))

    def set(self, name: str, value: int, profile: KernelProfile) -> None:
        """Set ``net.netfilter.nf_conntrack_<name>``; ValueError names what is wrong."""
        short = name.removeprefix("net.netfilter.").removeprefix("nf_conntrack_")
        udp = {t.value.removeprefix("nf_conntrack_"): t for t in UdpCt}
        if short in udp:
            if not 0 <= value <= INT_MAX:  # proc_dointvec_jiffies(): an int of seconds
                raise ValueError(f"sysctl {name}: expected 0..{INT_MAX} seconds, got {value}")
            self.udp_timeouts[udp[short]] = value
            return
        if short.startswith("tcp_timeout_"):
            state = short.removeprefix("tcp_timeout_").upper()
            slots = {"MAX_RETRANS": TcpState.RETRANS, "UNACKNOWLEDGED": TcpState.UNACK}
            key = slots.get(state) or TcpState.__members__.get(state)
            if key is None or key not in self.timeouts:
                raise ValueError(f"unknown sysctl {name}")
            self.timeouts[key] = float(value)
            return
        if short not in self._NAMES:
            raise ValueError(f"unknown sysctl {name}")
        if short == "tcp_ignore_invalid_rst" and not profile.has_ignore_invalid_rst:
            raise ValueError(f"sysctl {name} does not exist in kernel {profile.name} (added in 5.14)")
        if value < 0:
            raise ValueError(f"sysctl {name} must not be negative, got {value}")
        if short == "buckets" and value == 0:
            raise ValueError(f"sysctl {name} must be at least 1")
        if value > INT_MAX:  # proc_dointvec*(): "if (lval > INT_MAX) return -EINVAL"
            raise ValueError(f"sysctl {name}: {value} is more than an int holds ({INT_MAX}): EINVAL")
        if short in _BOOLEAN and value > 1 and _release_key(profile.release) >= MINMAX_SINCE:
            raise ValueError(
                f"sysctl {name}: kernel {profile.name} accepts 0 or 1 (proc_dou8vec_minmax), got {value}"
            )
        setattr(self, short, value)

    def buckets_for(self, profile: KernelProfile) -> int:
        """The hash size: the sysctl when set, else what ``nf_conntrack_init_start()`` picks
        on a machine with more than 4 GiB: 65536 buckets up to 5.10 (max_factor 4), 262144
        from 5.15 (max_factor 1)."""
        if self.buckets:
            return self.buckets
        return NF_CONNTRACK_MAX_DEFAULT if profile.buckets_eq_max else NF_CONNTRACK_MAX_DEFAULT // 4
