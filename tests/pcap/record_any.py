"""Record data/leak-any-sll.pcap, leak-any-sll2.pcap and leak-nflog-invalid.pcap: pod-ip-leak as
``tcpdump -i any`` shows it, in both Linux cooked link types (not a test; root, run by hand on
a kernel with the harness's tools):

    python tests/pcap/record_any.py tests/pcap/data

The namespaces of :mod:`sim.kernel.datagrams` (ctr 192.0.2.2 and ctrb 192.0.2.7 behind the
host's Docker ruleset, MASQUERADE to 198.51.100.1; remote 198.51.100.2), created and removed
by :class:`sim.kernel.netns.NamespaceSet`; documentation addresses only. The traffic:

1. ctr 192.0.2.2:42000 sends two datagrams to remote:7, answered; then one on the same flow
   whose UDP length field claims 200 bytes (``udp_error``: INVALID), so MASQUERADE skips it;
2. ctrb connects from port 40000 to remote:443 and stays connected, so that ctr's connection
   from the same port cannot keep it: MASQUERADE rewrites ctr's source port;
3. ctr connects from port 40000 to remote:443, sends 5 bytes, then a FIN 2**30 past the
   window (INVALID): it leaves with 192.0.2.2:40000, its connection's other packets with
   198.51.100.1 and another port.

Captures on the host: ``-i any -y LINUX_SLL`` and ``-y LINUX_SLL2`` at once, and NFLOG group 4
(every packet conntrack marked INVALID: the kernel's own verdict).
"""

from __future__ import annotations

import socket
import struct
import sys
import time
from pathlib import Path

from sim.kernel.datagrams import (
    CTRB_IP,
    ECHO_PORT,
    STEP_S,
    TCP_PORT,
    _add_ctrb,
    _dump,
    _host_rules,
    _leak,
    _raw_send,
    udp_exchange,
)
from sim.kernel.netns import NamespaceSet, in_netns
from sim.kernel.upload import Upload, _build, _stop
from sim.packet import udp_packet
from sim.wire import emit

NFLOG_FLUSH_S = 2.0


def record(out: Path) -> None:
    up = Upload()
    t = up.topology
    files = [
        (out / "leak-any-sll.pcap", ["-i", "any", "-y", "LINUX_SLL"]),
        (out / "leak-any-sll2.pcap", ["-i", "any", "-y", "LINUX_SLL2"]),
        (out / "leak-nflog-invalid.pcap", ["-i", "nflog:4"]),
    ]
    with NamespaceSet(("ctr", "ctrb", "host", "remote")) as ns:
        _build(ns, up)
        _add_ctrb(ns)
        _host_rules(ns)
        with in_netns(ns["remote"]):
            echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with in_netns(ns["ctr"]):
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with in_netns(ns["ctrb"]):
            holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        dumps = []
        try:
            echo.bind((t.remote_ip, ECHO_PORT))
            listener.bind((t.remote_ip, TCP_PORT))
            listener.listen(4)
            dumps = [_dump(ns, "host", path, iface) for path, iface in files]
            time.sleep(STEP_S)
            # 1. a UDP flow, then an INVALID datagram on it
            udp_exchange(client, echo, t.ctr_ip, t.remote_ip)
            bad = bytearray(emit(udp_packet(t.ctr_ip, 42000, t.remote_ip, ECHO_PORT, 5)))
            struct.pack_into("!HH", bad, 24, 200, 0)  # UDP length 200 of 13 bytes; no checksum
            _raw_send(ns, "ctr", [bytes(bad)])
            time.sleep(STEP_S)
            # 2. ctrb holds 198.51.100.1:40000 > remote:443
            holder.settimeout(5)
            holder.bind((CTRB_IP, 40000))
            holder.connect((t.remote_ip, TCP_PORT))
            held, _ = listener.accept()
            time.sleep(STEP_S)
            # 3. ctr from port 40000 (rewritten), then its FIN 2**30 past the window
            _leak(ns, t.ctr_ip, t.remote_ip, listener)
            held.close()
            time.sleep(NFLOG_FLUSH_S)
        finally:
            for sock in (echo, listener, client, holder):
                sock.close()
            for proc in dumps:
                _stop(proc)


if __name__ == "__main__":
    record(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
