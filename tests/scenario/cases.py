"""Build replay cases: a handshake + 1000 bytes from the container, then one probe packet."""

from __future__ import annotations

from typing import Any

CTR = "192.0.2.2:40000"
REMOTE = "198.51.100.2:443"
HOST = "198.51.100.1:40000"  # MASQUERADE keeps the port


def out(flags: str, seq: int, ack: int = 0, length: int = 0, win: int = 502, **kw: Any) -> dict[str, Any]:
    return {
        "from": "ctr",
        "src": CTR,
        "dst": REMOTE,
        "flags": flags,
        "seq": seq,
        "ack": ack,
        "win": win,
        "len": length,
        **kw,
    }


def back(flags: str, seq: int, ack: int = 0, length: int = 0, win: int = 509, **kw: Any) -> dict[str, Any]:
    return {
        "from": "remote",
        "src": REMOTE,
        "dst": HOST,
        "flags": flags,
        "seq": seq,
        "ack": ack,
        "win": win,
        "len": length,
        **kw,
    }


# After this prefix (no window scaling):
#   container: td_end 2001, td_maxwin 64240, td_maxend 2001 + 509 = 2510 (remote's last ACK)
#   remote:    td_end 5001, td_maxwin 65160, td_maxend 5001 + 502 = 5503
PREFIX = [
    out("S", 1000, win=64240),
    back("SA", 5000, 1001, win=65160),
    out("A", 1001, 5001),
    out("PA", 1001, 5001, 1000),
    back("A", 5001, 2001),
]


def case(
    *probes: dict[str, Any],
    sysctl: dict[str, Any] | None = None,
    rules: list[str] | None = None,
    kernel: str = "6.1",
) -> dict[str, Any]:
    return {
        "name": "t",
        "kernel": kernel,
        "sysctl": sysctl or {},
        "iptables": {"host": rules or []},
        "packets": [*PREFIX, *probes],
    }
