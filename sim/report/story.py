"""A story scenario's run told as a timeline (sim/scenario/story.py), read off its observations
and the trace: each packet with what conntrack said and where it ended, the decisive event
named, the host's conntrack -S at the end, and the captures on both sides of the host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.include.netfilter import CtState, Hook
from sim.net.rtt import TCP_TIMEOUT_INIT
from sim.netfilter.conntrack import NF_CT_EVICTION_RANGE, format_conntrack
from sim.netfilter.sysctl import UdpCt
from sim.packet import TCPHDR_SYN, IpProto, Packet
from sim.report.capture import write_pcap
from sim.scenario.moment import Moment
from sim.scenario.story import StoryRun, event_of
from sim.topology.roles import NsRole
from sim.trace import ConfirmOutcome, Step, TraceEvent, Why

CAPTURE_POINTS = (("host", "eth0", "host-eth0.pcap"), ("host", "docker0", "host-docker0.pcap"))


def _packet_words(obs: dict[str, Any]) -> str:
    """One observation in plain words: conntrack's state and counters, the end, the host's answers."""
    parts = []
    if obs.get("ctstate"):
        parts.append(f"conntrack: {obs['ctstate']}" + (f" ({obs['reason']})" if obs.get("reason") else ""))
    stats = {k: v for k, v in (obs.get("ct_stats") or {}).items() if k not in ("found", "searched")}
    if stats:
        parts.append("counters " + " ".join(f"{k}+{v}" for k, v in sorted(stats.items())))
    fate = obs.get("fate") or "nowhere"
    where = obs.get("delivered_as")
    parts.append(
        fate.replace("delivered:", "reaches ")
        .replace("dropped:", "DROPPED at ")
        .replace("local:", "local delivery on ")
        + (f" as {where['src']} > {where['dst']}" if where and "src" in where else "")
    )
    for e in obs.get("emitted", []):
        parts.append(f"the host sends {e.get('flags') or e.get('icmp') or 'a datagram'} to {e['to']}")
    return "; ".join(parts)


def _moment(m: Moment, decisive: Moment | None) -> list[str]:
    lines = [f"{m.t:9.3f}s  {m.text}"]
    if m.obs is not None:
        lines.append(f"{'':12}{_packet_words(m.obs)}")
    lines.extend(f"{'':12}{line}" for line in m.output)
    if m.failed:
        mark = "<== DECISIVE" if m is decisive else "<== and then"
        lines.append(f"{'':12}{mark}: {event_of(m)}: {m.failed}")
    return lines


def render(run: StoryRun) -> str:
    st, table = run.story, run.table
    out = [f"scenario {st.name}: kernel {table.profile.name} ({table.profile.description}); fix {st.fix}"]
    out.extend(f"  {line}" for line in st.description.splitlines())
    log = list(table.log)
    for m in run.moments:
        out.extend(_moment(m, run.decisive))
    verdict = "SUCCEEDS" if run.succeeded else "FAILS"
    decisive = run.decisive
    out.append(f"outcome: the story {verdict}" + (f" -- {decisive.failed}" if decisive else ""))
    if log:
        out.append("kernel log: " + " | ".join(log))
    stats = table.stats.counters(table.profile)
    out.append("conntrack -S: " + " ".join(f"{k}={v}" for k, v in stats.items()))
    now = run.world.clock.now
    entries = [format_conntrack(ct, now) for ct in table.entries(now)]
    out.append(f"conntrack -L: {len(entries)} entries")
    out.extend(f"  {line}" for line in entries)
    return "\n".join(out)


def write_captures(run: StoryRun, out_dir: Path) -> list[tuple[Path, int]]:
    """The host's uplink and bridge captures (both sides of the host) as pcap files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for ns_name, dev_name, filename in CAPTURE_POINTS:
        ns = run.world.namespaces[ns_name]
        dev = ns.devices[dev_name]
        records = [
            (t, pkt, dev.mac, dev.mac) for t, _d, pkt, _pid in run.world.captures[(ns_name, dev_name)].records
        ]
        path = out_dir / filename
        write_pcap(path, records)
        written.append((path, len(records)))
    return written


# -- the story's why in plain words (the walkthrough's why panel at the decisive packet) --------


def _events(run: StoryRun, pid: int) -> list[TraceEvent]:
    return [e for e in run.world.trace.for_packet(pid) if e.ns == NsRole.HOST]


def _sent(run: StoryRun, pid: int) -> Packet:
    first = run.world.trace.for_packet(pid)[0].before
    assert first is not None
    return first


def _is_answer(m: Moment) -> bool:
    return " answers: " in m.text


def _turns(run: StoryRun, m: Moment) -> bool:
    """Whether the host's handling of packet moment ``m`` is one of the stories' mechanisms: a
    clash at confirmation, an eviction or a full table, a failed window bound, INVALID."""
    if m.pid is None or m.obs is None:
        return False
    for e in _events(run, m.pid):
        if e.confirm is not None and e.confirm.outcome is not ConfirmOutcome.INSERTED:
            return True
        if e.why in (Why.EARLY_DROP, Why.TABLE_FULL):
            return True
        info = e.ct if e.step is Step.CONNTRACK else None
        if info is not None and (info.ctstate is CtState.INVALID or (info.check and info.check.failed)):
            return True
    return False


def key_moment(run: StoryRun) -> Moment | None:
    """The moment the story turns on: its decisive moment when it fails (a packet, or the
    resolver's timeout: then the dropped query before it); when it succeeds, the first packet
    the host handled by the story's mechanism (a clash resolved, an eviction, an ignored
    segment), else the first packet after the story's last host action (the one that shows
    the fix at work), else the last packet that opened a connection (a SYN, not the ACK after
    it), else its last packet."""
    packets = [m for m in run.moments if m.pid is not None and m.obs is not None]
    d = run.decisive
    if d is not None:
        if d.pid is not None:
            return d
        return next((m for m in packets if m.t <= d.t and m.failed), packets[-1] if packets else None)
    turned = next((m for m in packets if _turns(run, m)), None)
    if turned is not None:
        return turned
    actions = [i for i, m in enumerate(run.moments) if m.pid is None]
    for i in reversed(actions):
        after = [m for m in run.moments[i + 1 :] if m in packets and not _is_answer(m)]
        if after:
            return after[0]
    senders = [m for m in packets if not _is_answer(m)]
    opened = [m for m in senders if m.obs is not None and m.obs.get("ctstate") == CtState.NEW.name]
    return (opened or senders)[-1] if senders else None


def key_event(run: StoryRun, m: Moment) -> TraceEvent | None:
    """The host's step that decided the packet of moment ``m``: the confirmation that clashed,
    the eviction or the full table, else conntrack's verdict where the packet entered the host."""
    if m.pid is None:
        return None
    events = _events(run, m.pid)
    decided = next(
        (
            e
            for e in events
            if (e.confirm is not None and e.confirm.outcome is not ConfirmOutcome.INSERTED)
            or e.why in (Why.EARLY_DROP, Why.TABLE_FULL)
        ),
        None,
    )
    if decided is not None:
        return decided
    return next((e for e in events if e.step is Step.CONNTRACK and e.hook is Hook.PRE_ROUTING), None)


def _nat_of(run: StoryRun, pid: int) -> str:
    """Where the host's NAT sent the packet: its address after the last host NAT step."""
    after = [e.after for e in _events(run, pid) if e.step is Step.NAT and e.after is not None]
    p = after[-1] if after else _sent(run, pid)
    return f"{p.src}:{p.sport} > {p.dst}:{p.dport}"


def _race_words(run: StoryRun, m: Moment, confirm: TraceEvent) -> list[str]:
    """A clash at ``__nf_conntrack_confirm()``: the two packets, their NAT, this kernel's rule."""
    assert m.pid is not None and confirm.confirm is not None
    p, profile = _sent(run, m.pid), run.table.profile
    winner = confirm.confirm.winner
    other = next(
        (
            e.pid
            for e in run.world.trace.events
            if e.ns == NsRole.HOST and e.ct is not None and e.ct.created and e.ct.ct_id == winner
        ),
        None,
    )
    udp = p.proto is IpProto.UDP
    outcome = confirm.confirm.outcome
    counters = ", ".join(confirm.confirm.counters) or "none"
    mine = _nat_of(run, m.pid)
    them = (
        f"packet {other} ({_sent(run, other).src}:{_sent(run, other).sport})"
        if other is not None
        else "another packet"
    )
    out = [
        f"What happened: packet {m.pid} (from {p.src}:{p.sport}, {p.proto.name}) raced {them}. Neither "
        "found an entry, so each got its own unconfirmed one; the other reached "
        "__nf_conntrack_confirm(), at the very end of POSTROUTING, first, and its entry went into "
        "the table. When this packet got there, the same tuple was already taken.",
    ]
    if other is not None:
        theirs = _nat_of(run, other)
        same = " (the same NAT)." if theirs == mine else " (different NAT)."
        out.append(f"NAT: this packet left as {mine}, the other as {theirs}{same}")
    if outcome is ConfirmOutcome.CLASH_DROP:
        if not udp:
            out.append(
                f"TCP has no allow_clash: on every kernel the loser of this race is dropped ({counters}). "
                "MASQUERADE kept the source port for both because get_unique_tuple() only asks "
                "nf_nat_used_tuple(), which sees confirmed entries, and neither was confirmed yet."
            )
            out.append(_retransmission_words(run, m))
        elif not profile.clash_resolve:
            out.append(
                f"Linux {profile.name} has no clash resolution (nf_ct_resolve_clash() came with 4.8): the "
                f"losing UDP packet is dropped ({counters}), even though both want the same NAT."
            )
        else:
            out.append(
                f"{profile.name} merges a losing UDP packet into the winner's entry only when the NAT "
                "results match (nf_ct_resolve_clash()); here they differ, so it is dropped "
                f"({counters}). From 5.10, nf_ct_resolve_clash_harder() would insert it for the reply "
                "direction only."
            )
        if udp:
            out.append(
                "The resolver now has one answer of two: it waits its 5 s timeout (options timeout:5) "
                "and asks again one query at a time on the same socket."
            )
    elif outcome is ConfirmOutcome.CLASH_MERGED:
        out.append(
            f"UDP may clash (allow_clash), and the two entries match, so {profile.name} re-points this "
            "packet to the winner's entry (nf_ct_resolve_clash()) and it goes on, NATed like the "
            f"other: no drop. Counted: {counters}."
        )
    elif outcome is ConfirmOutcome.CLASH_REPLY_ONLY:
        out.append(
            "The two entries want different NAT, so they cannot merge; from 5.10 "
            "nf_ct_resolve_clash_harder() inserts this packet's entry for the reply direction only "
            "(IPS_NAT_CLASH, a 1 s timeout, hidden from conntrack -L), so its answer finds the way "
            f"back: no drop. Counted: {counters}."
        )
    return out


def _retransmission_words(run: StoryRun, m: Moment) -> str:
    """What the client of a dropped SYN does next: ``tcp_connect()`` armed the retransmission
    timer with ``TCP_TIMEOUT_INIT``; ``tcp_retransmit_timer()`` sends the SYN again, which finds
    no entry and gets a fresh one (``resolve_normal_ct()`` -> ``init_conntrack()``), NATed
    afresh. Told from the run's own retransmission, when the story has one."""
    assert m.pid is not None
    p = _sent(run, m.pid)
    later = [o for o in run.moments if o.pid is not None and o.obs is not None and o.t > m.t]
    again = next(
        (
            o
            for o in later
            if not _is_answer(o)
            and (q := _sent(run, o.pid)).flags == TCPHDR_SYN  # type: ignore[arg-type]
            and (q.src, q.sport, q.dst, q.dport, q.seq) == (p.src, p.sport, p.dst, p.dport, p.seq)
        ),
        None,
    )
    if again is None or again.pid is None:
        return (
            f"The client hears nothing: its retransmission timer sends the SYN again after "
            f"TCP_TIMEOUT_INIT ({TCP_TIMEOUT_INIT:g} s, tcp_retransmit_timer())."
        )
    mine, now = _nat_of(run, m.pid), _nat_of(run, again.pid)
    port = mine.split(" > ")[0].rsplit(":", 1)[1]
    nat = (
        f"port {port} is taken now, by the other connection's confirmed entry (nf_nat_used_tuple()), "
        f"so NAT chose another: it left as {now}"
        if now.split(" > ")[0] != mine.split(" > ")[0]
        else f"it left as {now}, as before"
    )
    words = (
        f"The client hears nothing. tcp_connect() armed its retransmission timer with "
        f"TCP_TIMEOUT_INIT ({TCP_TIMEOUT_INIT:g} s, RFC 6298 §2.1); when it fired, "
        f"tcp_retransmit_timer() sent the SYN again, packet {again.pid}, {again.t - m.t:.3f} s later "
        f"with the same sequence number {p.seq}. The dropped SYN's unconfirmed entry died with it, "
        "so the retransmission found no entry and got a fresh one (resolve_normal_ct(), "
        f"init_conntrack()); {nat}."
    )
    back = next(
        (o for o in later if _is_answer(o) and o.t >= again.t and o.obs is not None and _reaches(o, p)),
        None,
    )
    if back is not None:
        words += (
            f" Its SYN/ACK is back {back.t - m.t:.3f} s after the first SYN: the connect took a "
            "second longer, the symptom users see."
        )
    return words


def _reaches(answer: Moment, p: Packet) -> bool:
    """Whether ``answer`` reached the sender of ``p`` at its own address and port."""
    assert answer.obs is not None
    return (answer.obs.get("delivered_as") or {}).get("dst") == f"{p.src}:{p.sport}"


def _table_words(run: StoryRun, m: Moment, e: TraceEvent) -> list[str]:
    """``__nf_conntrack_alloc()`` met ``nf_conntrack_max``: the eviction, or the table-full line."""
    table, profile = run.table, run.table.profile
    limit = table.sysctl.max
    entries = table.entries(e.t)
    unassured = [ct for ct in entries if not ct.assured]
    if e.why is Why.EARLY_DROP:
        return [
            f"What happened: nf_conntrack_max is {limit} and the table was full, so __nf_conntrack_alloc() "
            f"called early_drop() for this packet's new entry. early_drop() may evict only entries that "
            f"are not ASSURED (no reply, or a handshake not completed); it found {e.detail} and "
            "evicted it (early_drop+1), and this packet goes on with its own new entry."
        ]
    line = (e.detail or "table full, dropping packet").strip()
    scan = (
        "it takes the first unassured entry of the chains from the new tuple's bucket on, stopping "
        f"after {NF_CT_EVICTION_RANGE} entries"
        if not profile.early_drop_buckets
        else f"it looks in {NF_CT_EVICTION_RANGE} buckets from the new tuple's"
        + (
            ""
            if profile.early_drop_next_bucket
            else " (reciprocal_scale(hash + 1) on 4.19 lands on nearly always the same bucket, so in "
            "practice one bucket)"
        )
    )
    where = (
        f"{len(unassured)} entr{'y is' if len(unassured) == 1 else 'ies are'} not ASSURED, but not where "
        "it looked"
        if unassured
        else f"every one of the {len(entries)} entries is ASSURED"
    )
    prefix = (
        "4.19 and later print it through nf_conntrack_core.c's pr_fmt, so the module name comes twice"
        if profile.core_pr_fmt
        else f"{profile.name} has no pr_fmt in nf_conntrack_core.c, so the module name comes once"
    )
    return [
        f"What happened: nf_conntrack_max is {limit} and the table is full, so __nf_conntrack_alloc() "
        f"called early_drop() to make room for this packet's new entry. It may evict only entries "
        f"that are not ASSURED; {scan}. Here {where}: nothing is evicted.",
        f'So the kernel prints "{line}" ({prefix}) and the packet is dropped before any rule sees it '
        "(drop+1). The client never gets an answer and retransmits its SYN.",
    ]


def _stale_words(run: StoryRun, m: Moment) -> list[str]:
    assert m.pid is not None and m.obs is not None
    first = next(
        (o for o in run.moments if o.pid is not None and o.obs and o.obs.get("ctstate") == "NEW"), None
    )
    change = next((o for o in reversed(run.moments) if o.pid is None and o.t <= m.t), None)
    got = (m.obs.get("delivered_as") or {}).get("dst", "?")
    timeouts = run.table.sysctl.udp_timeouts
    out = [
        "What happened: this datagram belongs to the entry the client's first datagram created"
        + (f" at {first.t:.3f} s" if first else "")
        + ". nf_nat_inet_fn() reads the nat table only for a connection's first packet; every later "
        "packet is translated by the binding stored in the entry. So the rule change"
        + (f" at {change.t:.3f} s" if change else "")
        + f" is never consulted, and the datagram goes to {got}, the old container.",
        f"Each datagram also refreshes the entry's timeout ({timeouts[UdpCt.UNREPLIED]} s unreplied, "
        f"{timeouts[UdpCt.REPLIED]} s once it is a stream), so the entry never expires while the "
        "client keeps sending. Only deleting it (conntrack -D) makes the next datagram NEW again.",
    ]
    return out


def _window_words(run: StoryRun, m: Moment, ct_event: TraceEvent) -> list[str]:
    """An out-of-window TCP segment in a story: what losing (or keeping) its entry did here."""
    assert m.pid is not None and m.obs is not None
    info = ct_event.ct
    assert info is not None
    p, profile = _sent(run, m.pid), run.table.profile
    out: list[str] = []
    obs = m.obs
    rst = [e for e in obs.get("emitted", []) if "R" in (e.get("flags") or "")]
    where = obs.get("delivered_as") or {}
    if info.ctstate is CtState.INVALID:
        if rst:
            out.append(
                f"What happened: INVALID, so the packet has no entry and the NAT hooks skip it: it stays "
                f"addressed to the host, {p.dst}:{p.dport}, is routed to the host itself, finds no socket "
                f"there, and tcp_v4_send_reset() answers the sender, {p.src}:{p.sport}, with a RST that "
                "ends its real connection."
            )
        elif (obs.get("fate") or "").startswith("dropped"):
            out.append(
                "What happened: INVALID, so the packet has no entry and the NAT hooks skip it; a rule "
                "drops it (--ctstate INVALID -j DROP), so it goes no further: nobody answers it with a "
                "RST and no untranslated copy leaves the host."
            )
        elif where.get("src") and (obs.get("fate") or "").startswith("delivered:ctr"):
            out.append(
                "What happened: INVALID, so the packet has no entry and the NAT hooks cannot undo the "
                f"DNAT: it reaches the client container as {where['src']} > {where.get('dst', '?')}, from "
                "the backend's own address instead of the Service address the client talked to. The "
                "client's kernel knows no such connection and answers with a RST that kills the "
                "backend's side (k8s#74839)."
            )
        elif where.get("src"):
            out.append(
                "What happened: INVALID, so the packet has no entry and nat POSTROUTING (MASQUERADE) "
                f"skips it: it leaves the host as {where['src']} > {where.get('dst', '?')}, with the "
                "container's private address as its source (the pod IP leak). The server cannot answer "
                "it, and the provider's network sees an address it should never see."
            )
        else:
            out.append("What happened: INVALID, so the packet has no entry and the NAT hooks skip it.")
        if info.check is not None and not any(
            b.name in ("I", "III") for b in info.check.bounds if not b.passed
        ):
            out.append(
                f"On {profile.name} a segment below the lower bounds is INVALID; from 6.1 "
                "(tcp_in_window() returns NFCT_TCP_IGNORE, commit 6e250dcbff1d) it is ignored instead: "
                "it keeps its entry, is translated, and nothing goes wrong."
            )
        elif info.check is not None:
            out.append(
                "Over the upper bound is INVALID on every kernel: 6.1's NFCT_TCP_IGNORE covers only the "
                "two lower bounds (and a small overshoot within the receive window)."
            )
    elif info.window == "IGNORE":
        out.append(
            f"What happened: on {profile.name} tcp_in_window() ignores a segment below the lower bounds "
            "(NFCT_TCP_IGNORE, since 6.1): the packet keeps its entry and NAT translates it"
            + (f" (it arrives as {where['src']} > {where['dst']})" if where.get("src") else "")
            + ": nothing goes wrong. Up to 5.15 the same segment is INVALID and skips NAT."
        )
    elif info.window == "ACCEPT" and info.check is not None and info.check.failed:
        out.append(
            "What happened: a bound fails, but "
            + (
                "nf_conntrack_tcp_be_liberal=1"
                if info.sysctls.tcp_be_liberal
                else "the entry carries IP_CT_TCP_FLAG_BE_LIBERAL"
            )
            + ", so tcp_in_window() accepts the segment anyway: it keeps its entry and NAT translates "
            "it. Only a RST outside the window stays INVALID with be_liberal."
        )
    scales = [
        q.options.wscale if q.options is not None else None
        for q in (_sent(run, o.pid) for o in run.moments if o.pid is not None and o.obs is not None)
        if q.flags & TCPHDR_SYN and (q.sport, q.dport) in ((p.sport, p.dport), (p.dport, p.sport))
    ]
    if len(scales) >= 2 and (None in scales) and any(x is not None for x in scales):
        out.append(
            "Window scaling: one SYN of this connection offered a window scale and the other, as the "
            "host saw it, did not, so tcp_in_window() set td_scale to 0 in both directions (every "
            "kernel). The peer that saw both options scales its window; conntrack, unscaled, "
            "allows far less, and the peer's data runs over the upper bound."
        )
    picked = [
        o for o in run.moments if o.output is not None and o.pid is None and o.text.startswith("conntrack -F")
    ]
    if picked:
        out.append(
            "Compare the second upload: after conntrack -F its next segment was picked up mid-stream "
            "(tcp_new() with nf_conntrack_tcp_loose=1) and both directions got "
            'IP_CT_TCP_FLAG_BE_LIBERAL ("we assume SACK and liberal window checking to handle window '
            'scaling"), so the same late ACK passes there, NATed.'
        )
    return out


def why_words(run: StoryRun, m: Moment) -> list[str]:
    """What happened to the packet of moment ``m`` in this story, in plain words with the
    trace's numbers and this kernel's rule: a clash at confirmation, an eviction or a full
    table, a stale translation, an INVALID segment that skipped NAT (RST or leaked address),
    an ignored or liberal one."""
    if m.pid is None or m.obs is None:
        return []
    events = _events(run, m.pid)
    confirm = next(
        (e for e in events if e.confirm is not None and e.confirm.outcome is not ConfirmOutcome.INSERTED),
        None,
    )
    if confirm is not None:
        return _race_words(run, m, confirm)
    limit = next((e for e in events if e.why in (Why.EARLY_DROP, Why.TABLE_FULL)), None)
    if limit is not None:
        return _table_words(run, m, limit)
    ct_event = next(
        (e for e in events if e.step is Step.CONNTRACK and e.ct is not None and e.hook is Hook.PRE_ROUTING),
        None,
    )
    if (
        ct_event is not None
        and ct_event.ct is not None
        and ct_event.ct.check is not None
        and (ct_event.ct.check.failed or ct_event.ct.ctstate is CtState.INVALID)
    ):
        return _window_words(run, m, ct_event)
    if m.failed and "should reach" in m.failed:
        return _stale_words(run, m)
    return _fix_words(run, m, events)


def _fix_words(run: StoryRun, m: Moment, events: list[TraceEvent]) -> list[str]:
    """A packet that went through unharmed where the story, unfixed, goes wrong: what the fix did."""
    st = run.story
    assert m.pid is not None and m.obs is not None
    where = m.obs.get("delivered_as") or {}
    out = [
        f"What happened: nothing went wrong with this packet on {run.table.profile.name}"
        + (f" with the fix {st.fix}" if st.fix != "none" else "")
        + (f"; it reached its host as {where['src']} > {where['dst']}." if where.get("src") else ".")
    ]
    if st.fix == "random-fully":
        out.append(
            f"MASQUERADE --random-fully (NF_NAT_RANGE_PROTO_RANDOM_FULLY) never keeps the source port: it "
            f"chose {_nat_of(run, m.pid)} for this one, so the racing SYNs no longer share a tuple."
        )
    elif st.fix == "bigger-table":
        out.append(f"nf_conntrack_max is {run.table.sysctl.max}: the table has room, nothing is evicted.")
    elif st.fix == "notrack":
        out.append(
            "The raw table's NOTRACK rule runs before conntrack (priority -300): the stateless DNS "
            "gets no entry at all (IP_CT_UNTRACKED), so the table keeps room for this flow."
        )
    elif st.fix == "conntrack-delete":
        out.append(
            "conntrack -D removed the old entry after the rule change, so this datagram was NEW again: "
            "the nat table was consulted and its new first rule sent it to the new container."
        )
    elif st.fix == "single-request-reopen":
        out.append(
            "With options single-request-reopen the queries leave one after the other and the second "
            "from a reopened socket (a new source port): they never share a tuple, so nothing clashes."
        )
    return out
