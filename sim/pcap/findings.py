"""``nflab pcap``'s findings: the host's own RSTs and what would have prevented each, the
container's untranslated packets, the peer's INVALID packets and where the kernels differ.

Two extra passes feed them, each over one file and bounded in memory: the connections with
host RSTs replayed under ``nf_conntrack_tcp_be_liberal=1`` and on every other kernel profile
(:func:`whatif`), and the container's capture searched for the INVALID packets and the RSTs
(:func:`container_check`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sim.include.netfilter import CtState
from sim.netfilter.profiles import PROFILES, KernelProfile
from sim.netfilter.proto_tcp import TcpAction
from sim.packet import TCPHDR_RST, Packet, format_flags
from sim.pcap.analyse import Analysis, Connection, Flagged, Tracker, Verdict, verdict_word
from sim.pcap.reader import Frame
from sim.pcap.render import bound_text, verdict_text

KEEP_INVALID = 4096  # INVALID packets remembered for the findings (the newest ones)
MAX_LISTED = 20  # frame numbers listed in one finding before "and N more"
DROP_RULE = "iptables -A INPUT -m conntrack --ctstate INVALID -j DROP"
LIBERAL = "net.netfilter.nf_conntrack_tcp_be_liberal=1"


@dataclass(slots=True)
class HostRst:
    rst: Flagged
    bad: Flagged | None
    # label -> None: plain ACCEPT; empty when the what-if pass did not track the packet
    whatif: dict[str, Verdict | None] = field(default_factory=dict)
    ctr_saw_bad: bool | None = None
    ctr_sent_rst: bool | None = None


@dataclass(slots=True)
class Findings:
    kernels: list[str]
    host_rsts: list[HostRst] = field(default_factory=list)
    untranslated: list[Flagged] = field(default_factory=list)
    untranslated_count: int = 0
    differ: list[int] = field(default_factory=list)
    differ_count: int = 0
    recent: OrderedDict[int, Flagged] = field(default_factory=OrderedDict)  # INVALID/IGNORE, first kernel

    def add(self, f: Flagged) -> None:
        if f.host_rst_for is not None:
            self.host_rsts.append(HostRst(f, self.recent.get(f.host_rst_for)))
            return
        if f.untranslated:
            self.untranslated_count += 1
            if len(self.untranslated) < MAX_LISTED:
                self.untranslated.append(f)
            if f.copy_of is not None:  # its verdicts were counted at the frame conntrack saw
                return
        first = f.verdicts[0] if f.verdicts else None
        if first is not None and (first.ctstate is CtState.INVALID or first.window is TcpAction.IGNORE):
            self.recent[f.frame] = f
            if len(self.recent) > KEEP_INVALID:
                self.recent.popitem(last=False)
        if len({verdict_word(v) for v in f.verdicts}) > 1:
            self.differ_count += 1
            if len(self.differ) < MAX_LISTED:
                self.differ.append(f.frame)


def _listed(frames: list[int], total: int) -> str:
    text = ", ".join(str(n) for n in frames)
    return text + (f" and {total - len(frames)} more" if total > len(frames) else "")


def _unexplained_rst(h: HostRst, k0: str) -> str:
    """A RST that looks like the host's answer to a packet this kernel does not mark INVALID."""
    assert h.bad is not None
    r, b, v = h.rst.pkt, h.bad.pkt, h.bad.verdicts[0]
    invalid_on = [k for k, w in h.whatif.items() if w is not None and w.ctstate is CtState.INVALID]
    cause = (
        f"the capture comes from a kernel that marks it INVALID ({', '.join(invalid_on)} does)."
        if invalid_on
        else "no kernel profile marks it INVALID; look for another cause (a rule, a missing socket)."
    )
    return (
        f"- frame {h.rst.frame}: a RST from {r.src}:{r.sport} with seq {r.seq} = the ack of frame "
        f"{h.bad.frame} ({b.src}:{b.sport} [{format_flags(b.flags)}]) and TTL {r.ttl}, unlike the "
        "connection's own forwarded packets: it looks like the host's own answer (tcp_v4_send_reset). "
        f"But on {k0} frame {h.bad.frame} is {verdict_word(v)} ({v.reason}), still NATed, "
        f"and a {k0} host would not answer it: {cause}"
    )


def findings_lines(fd: Findings, have_ctr: bool) -> list[str]:
    """The findings in words, with frame numbers."""
    out: list[str] = []
    k0 = fd.kernels[0]
    for h in fd.host_rsts:
        r = h.rst.pkt
        if h.bad is None:
            out.append(
                f"- frame {h.rst.frame}: the host itself sent a RST (seq {r.seq}) answering frame "
                f"{h.rst.host_rst_for}, which conntrack marked INVALID."
            )
            continue
        b, v = h.bad.pkt, h.bad.verdicts[0]
        if v.ctstate is not CtState.INVALID:
            out.append(_unexplained_rst(h, k0))
            continue
        field_ = (
            f"the ack of frame {h.bad.frame}"
            if r.seq == b.ack and r.seq
            else f"the end of frame {h.bad.frame}"
        )
        out.append(
            f"- frame {h.rst.frame}: the host itself sent RST seq {r.seq} to {r.dst}:{r.dport}; it equals "
            f"{field_} ({b.src}:{b.sport} [{format_flags(b.flags)}] ack {b.ack}), which conntrack on {k0} "
            f"marked INVALID: {v.reason or 'no reason logged'}{bound_text(v)}. Without a conntrack entry "
            f"NAT did not translate it, the host's stack found no socket for {b.dst}:{b.dport} and "
            "answered it (tcp_v4_send_reset). This is the incident's signature."
        )
        if have_ctr:
            saw = "saw" if h.ctr_saw_bad else "never saw"
            rst = (
                "has the RST too" if h.ctr_sent_rst else "has no such RST: the container never saw it either"
            )
            out.append(
                f"  The container's capture: the container {saw} frame {h.bad.frame}'s packet; it {rst}."
            )
        fixes = [f"{DROP_RULE} (drops frame {h.bad.frame} in INPUT before the stack can answer it)"]
        others = {v.kernel: None if v.plain_accept else v for v in h.bad.verdicts[1:]}
        for label, w in {**others, **h.whatif}.items():
            ok = w is None or w.ctstate is not CtState.INVALID
            what = (
                "ACCEPT" if w is None else f"{verdict_word(w)} ({w.reason})" if w.reason else verdict_word(w)
            )
            if label.endswith("+be_liberal"):
                if ok:
                    fixes.append(f"{LIBERAL} (frame {h.bad.frame} would be {what})")
                else:
                    out.append(f"  {LIBERAL} would not help: frame {h.bad.frame} stays {what}.")
            elif ok:
                fixes.append(f"kernel {label} (frame {h.bad.frame} would be {what}: still NATed, no RST)")
            else:
                out.append(f"  kernel {label} would not help: frame {h.bad.frame} is {what}.")
        if not h.whatif:
            out.append(
                f"  Other kernels and {LIBERAL}: not known (frame {h.bad.frame} was not tracked again)."
            )
        out.append(f"  Prevented by: {'; '.join(fixes)}.")
    answered = {h.rst.host_rst_for for h in fd.host_rsts}
    quiet = [
        f
        for n, f in fd.recent.items()
        if n not in answered and f.direction == "REPLY" and f.verdicts[0].ctstate is CtState.INVALID
    ]
    if quiet:
        frames = _listed([f.frame for f in quiet[:MAX_LISTED]], len(quiet))
        liberal = all(f.verdicts[0].bound is not None for f in quiet)
        out.append(
            f"- frames {frames}: the peer's packets INVALID on {k0} with no RST from the host after them "
            f"in this capture. On a host running {k0} that NATs this connection each would skip NAT and "
            "reach the host's own stack, which answers with a RST (seq = the packet's ack) that only the "
            "peer sees. "
            f"Prevented by {DROP_RULE}" + (f" or {LIBERAL} (each failed a window bound)." if liberal else ".")
        )
    if fd.untranslated_count:
        for f in fd.untranslated:
            v = f.verdicts[0]
            out.append(
                f"- frame {f.frame}: a packet of the container left untranslated ({f.pkt.src}:{f.pkt.sport}"
                f" > {f.pkt.dst}:{f.pkt.dport}, its private source on the uplink): conntrack on {k0} says "
                f"{verdict_text(v)}, and NAT skips packets without an entry."
            )
        if fd.untranslated_count > len(fd.untranslated):
            out.append(f"  ... and {fd.untranslated_count - len(fd.untranslated)} more untranslated packets.")
    if len(fd.kernels) > 1:
        if fd.differ_count:
            frames = _listed(fd.differ, fd.differ_count)
            out.append(f"- the kernels disagree on {fd.differ_count} packet(s): frames {frames}.")
        else:
            out.append(f"- the kernels {', '.join(fd.kernels)} agree on every flagged packet.")
    if not out:
        out.append("- no host RST answering an INVALID packet, no untranslated packet.")
    return out


def whatif(
    frames: Iterable[Frame],
    fd: Findings,
    conns: dict[int, Connection],
    profiles: list[KernelProfile],
    sysctls: dict[str, int],
    inner: Iterable[str] = (),
) -> None:
    """Re-run the connections with host RSTs under be_liberal and on every other kernel
    (``frames``: the capture again, read only when there is a host RST)."""
    if not fd.host_rsts:
        return
    trackers = [Tracker(profiles[0], {**sysctls, "tcp_be_liberal": 1}, f"{profiles[0].name}+be_liberal")]
    for prof in PROFILES.values():
        if prof not in profiles:
            try:
                trackers.append(Tracker(prof, sysctls))
            except ValueError:
                continue  # a sysctl this kernel does not have
    wanted = {h.bad.frame: h for h in fd.host_rsts if h.bad is not None}
    seen: dict[int, Flagged] = {}
    tracked: set[int] = set()

    def keep(f: Flagged) -> None:
        if f.frame in wanted:
            seen[f.frame] = f

    def mark(fr: Frame, _c: Connection, _d: int, _p: Packet) -> None:
        if fr.number in wanted:
            tracked.add(fr.number)

    # the same grouping as the main pass (NAT join, copies, untranslated packets), so the
    # connection's frames before and after NAT are all replayed; only its packets are tracked
    only = {conns[h.rst.conn].orig for h in fd.host_rsts}
    a = Analysis(trackers, keep, inner, {h.rst.frame for h in fd.host_rsts}, mark, only)
    for fr in frames:
        a.feed(fr)
    for frame, h in wanted.items():
        if frame not in tracked:
            continue  # no result is not a verdict: the finding says so
        got = seen.get(frame)
        for i, t in enumerate(trackers):
            v = None if got is None else got.verdicts[i]
            h.whatif[t.name] = None if v is None or v.plain_accept else v


def container_check(frames2: Iterable[Frame], fd: Findings) -> None:
    """Did the container's capture see each INVALID packet and each host RST?"""
    bad_keys = {}
    rst_keys = {}
    for h in fd.host_rsts:
        if h.bad is not None:
            b = h.bad.pkt
            bad_keys[(b.sport, b.seq, b.ack, b.flags, b.payload_len)] = h
            h.ctr_saw_bad = False
        r = h.rst.pkt
        rst_keys[(r.dport, r.seq, r.flags)] = h
        h.ctr_sent_rst = False
    for fr in frames2:
        p = fr.pkt
        if p is None:
            continue
        saw = bad_keys.get((p.sport, p.seq, p.ack, p.flags, p.payload_len))
        if saw is not None:
            saw.ctr_saw_bad = True
        sent = rst_keys.get((p.dport, p.seq, p.flags)) if p.flags & TCPHDR_RST else None
        if sent is not None:
            sent.ctr_sent_rst = True
