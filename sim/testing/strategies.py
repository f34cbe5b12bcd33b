"""Public hypothesis strategies for TCP conversations, and UDP and ICMP echo exchanges, as
conntrack sees them.

Style follows Hypothesis's API guide: plural names, keyword-only ``min_*``/``max_*``
arguments checked up front, the simplest choice first so failures shrink to short
sequences. A conversation is a list of :class:`Segment`: who sent it and the TCP header; the
client is conntrack's ORIGINAL direction.

* :func:`conversations` -- well-formed, in-order exchanges: handshake with negotiated
  options, data and ACKs in both directions that respect the peer's advertised window,
  ISNs anywhere in sequence space (including just below 2**32).
* :func:`closed_conversations` -- the same, ended by an orderly close (FINs) or a RST.
* :func:`perturbed_conversations` -- the same with delay, reordering, duplication, drops and
  one corrupted field, which between them produce every out-of-window class.
* :func:`late_ack_conversations` -- a bulk upload followed by the article's overly delayed
  ACK: an ACK below ``td_end - MAXACKWINDOW`` of the uploader's data.
* :func:`udp_conversations` and :func:`icmp_echo_conversations` -- datagrams between a
  container and a remote in any order, with gaps long enough to let entries expire
  (:class:`DatagramConversation`, which writes itself as a contract v2 case).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

from hypothesis import strategies as st

from sim.packet import NO_OPTIONS, SEQ_MASK, IcmpType, IpProto, TcpFlag, TcpOptions

MAXACKWINCONST = 66000  # nf_conntrack_proto_tcp.c


class Segment(NamedTuple):
    """One crafted segment: ``frm`` is "c" (client, ORIGINAL) or "s" (server, REPLY).

    A named tuple (immutable; ``seg._replace(seq=...)`` makes a changed copy): a conversation
    builds one per segment, and a tuple is the cheapest record Python makes."""

    frm: str
    flags: int
    seq: int
    ack: int
    win: int
    length: int = 0
    options: TcpOptions = NO_OPTIONS


@dataclass(frozen=True, slots=True)
class Conversation:
    """Segments plus what the generator knows (for expected values in properties)."""

    segments: tuple[Segment, ...]
    isn_c: int
    isn_s: int
    wscale_c: int | None
    wscale_s: int | None

    def shifted(self, offset: int) -> Conversation:
        """The same conversation with every sequence number moved by ``offset`` mod 2**32
        (SACK edges too; a zero ack without ACK flag stays zero)."""

        def move(seg: Segment) -> Segment:
            opts = seg.options
            if opts.sack:
                opts = replace(
                    opts,
                    sack=tuple(((lo + offset) & SEQ_MASK, (hi + offset) & SEQ_MASK) for lo, hi in opts.sack),
                )
            ack = (seg.ack + offset) & SEQ_MASK if seg.flags & TcpFlag.ACK else seg.ack
            return seg._replace(seq=(seg.seq + offset) & SEQ_MASK, ack=ack, options=opts)

        return replace(
            self,
            segments=tuple(move(s) for s in self.segments),
            isn_c=(self.isn_c + offset) & SEQ_MASK,
            isn_s=(self.isn_s + offset) & SEQ_MASK,
        )


def _check_bounds(name: str, lo: int, hi: int, floor: int) -> None:
    if lo < floor:
        raise ValueError(f"min_{name} must be >= {floor}, got {lo}")
    if hi < lo:
        raise ValueError(f"max_{name} ({hi}) must be >= min_{name} ({lo})")


# An ISN anywhere in sequence space; the negative part lands just below 2**32, so the
# conversation wraps. One draw, shrinking towards ISN 0.
_ISNS = st.integers(-200_000, SEQ_MASK).map(lambda v: v & SEQ_MASK)

# A conversation is built from compact parameters: one fixed-size byte string holds the ISNs,
# the number of step slots and every step. One draw instead of three per segment is what
# makes fuzzing fast (hypothesis's cost is per draw). Shrinking stays short because a zero
# byte decodes to the simplest choice and a slot whose first byte is zero is no step at all:
# the shrinker zeroes the steps a failure does not need, wherever they are.
_HEADER = 9  # wscale client, wscale server, SACK, windows: client SYN, server SYN, third ACK
_STEP = 5  # per step slot: kind (0: none), length (2 bytes), window (2 bytes)


def _wscale(byte: int) -> int | None:
    """0 -> no option; then the scales 0..14 and 15 (which the kernel caps at 14)."""
    kind = byte % 3
    if kind == 0:
        return None
    return (byte // 3) % 15 if kind == 1 else 15


def _window(kind: int, value: int) -> int:
    """A raw 16-bit window, never 0: small, any, or the largest (65535)."""
    if kind == 1:
        return 1 + value % 256
    if kind == 2:
        return 65535
    return 1 + value % 65535


class _Side:
    """A minimal in-order TCP sender/receiver for the generator."""

    __slots__ = ("nxt", "peer_acked", "rcv_nxt", "shift", "win_raw", "wscale")

    def __init__(self, isn: int, wscale: int | None) -> None:
        self.nxt = (isn + 1) & SEQ_MASK
        self.rcv_nxt = 0
        self.wscale = wscale
        self.shift = 0  # effective scale, set after the handshake
        self.win_raw = 0  # what this side last advertised
        self.peer_acked = 0  # highest ack received from the peer

    @property
    def window(self) -> int:
        return self.win_raw << self.shift


def build_conversation(
    isn_c: int, isn_s: int, params: bytes, *, max_segment: int = 1448, options: bool = True
) -> Conversation:
    """The well-formed conversation that :func:`conversations` draws, from its parameters:
    ``params`` holds a 9-byte header (missing bytes read as zero), then 5-byte step slots.

    Handshake with options (window scaling only when both offer it, RFC 7323), the third ACK,
    then one data or ACK segment per slot whose first byte is not zero, from either side,
    staying inside the window the peer advertised last and acknowledging exactly what was
    sent. Slot byte 0 = 1 is the simplest step: a pure ACK from the client.
    """
    b = params.ljust(_HEADER, b"\0")
    wc, ws = (_wscale(b[0]), _wscale(b[1])) if options else (None, None)
    sack = bool(b[2] & 1) and options
    win_c = 1 + int.from_bytes(b[3:5], "big") % 65535
    win_s = 1 + int.from_bytes(b[5:7], "big") % 65535
    c, s = _Side(isn_c, wc), _Side(isn_s, ws)
    opts_c = TcpOptions(mss=1460, wscale=wc, sack_perm=sack) if options else TcpOptions()
    opts_s = TcpOptions(mss=1460, wscale=ws, sack_perm=sack) if options else TcpOptions()
    A = int(TcpFlag.ACK)
    segs = [
        Segment("c", int(TcpFlag.SYN), isn_c, 0, win_c, 0, opts_c),
        Segment("s", int(TcpFlag.SYN | TcpFlag.ACK), isn_s, c.nxt, win_s, 0, opts_s),
    ]
    if wc is not None and ws is not None:  # RFC 7323: both must offer it
        c.shift, s.shift = min(wc, 14), min(ws, 14)
    c.rcv_nxt, s.rcv_nxt = s.nxt, c.nxt
    # A SYN's window is never scaled: that is what the peer may fill until the first ACK.
    c.peer_acked, s.peer_acked = c.nxt, s.nxt
    c.win_raw = 1 + int.from_bytes(b[7:9], "big") % 65535
    segs.append(Segment("c", A, c.nxt, c.rcv_nxt, c.win_raw))
    peer_win = {"c": win_s, "s": c.window}  # the window each side may fill
    for i in range(_HEADER, len(b) - _STEP + 1, _STEP):
        if not b[i]:
            continue
        head = b[i] - 1
        frm = "s" if head & 1 else "c"
        me, peer = (c, s) if frm == "c" else (s, c)
        room = (me.peer_acked + peer_win[frm] - me.nxt) & SEQ_MASK
        room = room if room < 0x80000000 else 0
        kind = (head >> 1) & 3  # 0: pure ACK, 1: a full segment, else any length
        wanted = 0 if kind == 0 else max_segment if kind == 1 else b[i + 1] << 8 | b[i + 2]
        length = min(wanted % (max_segment + 1), room)
        me.win_raw = _window((head >> 3) & 3, b[i + 3] << 8 | b[i + 4])
        segs.append(Segment(frm, A, me.nxt, me.rcv_nxt, me.win_raw, length))
        me.nxt = (me.nxt + length) & SEQ_MASK
        peer.rcv_nxt = me.nxt
        # The peer learns our ack and window.
        peer.peer_acked = me.rcv_nxt
        peer_win["s" if frm == "c" else "c"] = me.window
    return Conversation(tuple(segs), isn_c, isn_s, wc, ws)


def _isn(kind: int, value: int) -> int:
    """An ISN from a kind byte and 4 bytes: anywhere, just below 2**32 (the conversation
    wraps), or small; all-zero bytes give ISN 0."""
    k = kind % 3
    if k == 1:
        return SEQ_MASK - value % 200_000
    return value % 65536 if k == 2 else value


def conversations(
    *,
    min_steps: int = 0,
    max_steps: int = 30,
    max_segment: int = 1448,
    options: bool = True,
) -> st.SearchStrategy[Conversation]:
    """Well-formed conversations: handshake, then ``min_steps..max_steps`` data or ACK
    segments that stay inside the peer's advertised window and acknowledge only what was
    sent. Conntrack must never call any of them INVALID or IGNORE.

    ``options=False`` leaves the SYNs without options (no window scaling, no SACK).
    One draw of a fixed-size byte string: 11 bytes for the two ISNs and the number of step
    slots, then :func:`build_conversation`'s parameters (the first ``min_steps`` slots always
    hold a step). Shrinks towards fewer steps, ISN 0, client pure ACKs and small windows.
    """
    _check_bounds("steps", min_steps, max_steps, 0)
    if max_segment < 1:
        raise ValueError(f"max_segment must be >= 1, got {max_segment}")
    span = max_steps - min_steps + 1

    def decode(b: bytes) -> Conversation:
        isn_c = _isn(b[0], int.from_bytes(b[1:5], "big"))
        isn_s = _isn(b[5], int.from_bytes(b[6:10], "big"))
        params = bytearray(b[11 : 11 + _HEADER + _STEP * (min_steps + b[10] % span)])
        for i in range(_HEADER, _HEADER + _STEP * min_steps, _STEP):
            params[i] = params[i] or 1
        return build_conversation(isn_c, isn_s, bytes(params), max_segment=max_segment, options=options)

    size = 11 + _HEADER + _STEP * max_steps
    return st.binary(min_size=size, max_size=size).map(decode)


def closed_conversations(*, max_steps: int = 30, max_segment: int = 1448) -> st.SearchStrategy[Conversation]:
    """A well-formed conversation (:func:`conversations`) that then ends: an orderly close
    (one side's FIN, the peer's ACK, the peer's FIN, the last ACK: TIME_WAIT) or an abort
    (one side's RST at its next sequence number). Client first and FIN first shrink
    simplest."""
    return _closed(conversations(max_steps=max_steps, max_segment=max_segment))


def _next(conv: Conversation, frm: str) -> tuple[int, int]:
    """The next sequence number side ``frm`` sends and the window it advertised last."""
    last = [seg for seg in conv.segments if seg.frm == frm][-1]
    syn = 1 if last.flags & TcpFlag.SYN else 0
    return (last.seq + last.length + syn) & SEQ_MASK, last.win


@st.composite
def _closed(draw: st.DrawFn, base: st.SearchStrategy[Conversation]) -> Conversation:
    conv = draw(base)
    first = draw(st.sampled_from("cs"))
    other = "s" if first == "c" else "c"
    (seq1, win1), (seq2, win2) = _next(conv, first), _next(conv, other)
    A, FA, RA = int(TcpFlag.ACK), int(TcpFlag.FIN | TcpFlag.ACK), int(TcpFlag.RST | TcpFlag.ACK)
    if draw(st.booleans()):  # abort
        end: tuple[Segment, ...] = (Segment(first, RA, seq1, seq2, 0),)
    else:
        fin1 = (seq1 + 1) & SEQ_MASK
        end = (
            Segment(first, FA, seq1, seq2, win1),
            Segment(other, A, seq2, fin1, win2),
            Segment(other, FA, seq2, fin1, win2),
            Segment(first, A, fin1, (seq2 + 1) & SEQ_MASK, win1),
        )
    return replace(conv, segments=(*conv.segments, *end))


_PERTURBATIONS = ("drop", "duplicate", "swap", "delay", "seq", "ack", "flags", "window", "reset")


def perturbed_conversations(
    *,
    min_perturbations: int = 1,
    max_perturbations: int = 3,
    max_steps: int = 30,
    max_segment: int = 1448,
    closed: bool = False,
) -> st.SearchStrategy[tuple[Conversation, tuple[str, ...]]]:
    """A well-formed conversation (``closed``: one of :func:`closed_conversations`) after
    ``min..max_perturbations`` of: drop, duplicate, swap two neighbours, delay (move a segment
    later), corrupt seq/ack by a random offset, change the flags, change the window, answer a
    segment with the peer's RST (seq = its ack). Returns the perturbed conversation and what
    was done, for failure messages."""
    _check_bounds("perturbations", min_perturbations, max_perturbations, 0)
    make = closed_conversations if closed else conversations
    base = make(max_steps=max_steps, max_segment=max_segment)
    return _perturbed(base, min_perturbations, max_perturbations)


@st.composite
def _perturbed(
    draw: st.DrawFn, base: st.SearchStrategy[Conversation], lo: int, hi: int
) -> tuple[Conversation, tuple[str, ...]]:
    conv = draw(base)
    segs = list(conv.segments)
    done = []
    for _ in range(draw(st.integers(lo, hi))):
        kind = draw(st.sampled_from(_PERTURBATIONS))
        i = draw(st.integers(0, len(segs) - 1))
        seg = segs[i]
        if kind == "drop" and len(segs) > 1:
            del segs[i]
        elif kind == "duplicate":
            segs.insert(i, seg)
        elif kind == "swap" and i + 1 < len(segs):
            segs[i], segs[i + 1] = segs[i + 1], segs[i]
        elif kind == "delay":
            j = draw(st.integers(i, len(segs) - 1))
            segs.insert(j, segs.pop(i))
        elif kind in ("seq", "ack"):
            offset = draw(st.one_of(st.integers(-70000, 70000), st.integers(0, SEQ_MASK)))
            segs[i] = seg._replace(**{kind: (getattr(seg, kind) + offset) & SEQ_MASK})
        elif kind == "flags":
            segs[i] = seg._replace(flags=draw(st.integers(0, 0xFF)))
        elif kind == "window":
            segs[i] = seg._replace(win=draw(st.integers(0, 65535)))
        elif kind == "reset":  # the peer answers the segment with a RST (RFC 793 3.4)
            peer = "s" if seg.frm == "c" else "c"
            segs.insert(i + 1, Segment(peer, int(TcpFlag.RST), seg.ack, 0, 0))
        done.append(f"{kind}@{i}")
    return replace(conv, segments=tuple(segs)), tuple(done)


def late_ack_conversations(
    *, min_segments: int = 60, max_segments: int = 150
) -> st.SearchStrategy[tuple[Conversation, int]]:
    """The seed incident in miniature: the client uploads ``min..max_segments`` x 1448 bytes,
    the server acknowledges as it goes and its window stays small (no scaling, <= 65535),
    then an old ACK arrives from the server acknowledging less than
    ``client td_end - MAXACKWINDOW(server)``. Returns the conversation and that ACK's index."""
    _check_bounds("segments", min_segments, max_segments, 1)
    return _late_ack(min_segments, max_segments)


@st.composite
def _late_ack(draw: st.DrawFn, min_segments: int, max_segments: int) -> tuple[Conversation, int]:
    isn_c, isn_s = draw(_ISNS), draw(_ISNS)
    win = draw(st.integers(1448 * 2, 65535))
    A = int(TcpFlag.ACK)
    segs = [
        Segment("c", int(TcpFlag.SYN), isn_c, 0, 29200),
        Segment("s", int(TcpFlag.SYN | TcpFlag.ACK), isn_s, (isn_c + 1) & SEQ_MASK, win),
        Segment("c", A, (isn_c + 1) & SEQ_MASK, (isn_s + 1) & SEQ_MASK, 29200),
    ]
    seq = (isn_c + 1) & SEQ_MASK
    acks = []
    n = draw(st.integers(min_segments, max_segments))
    while (seq - isn_c - 1) & SEQ_MASK < max(n * 1448, MAXACKWINCONST + 2 * 1448):
        segs.append(Segment("c", A, seq, (isn_s + 1) & SEQ_MASK, 29200, 1448))
        seq = (seq + 1448) & SEQ_MASK
        segs.append(Segment("s", A, (isn_s + 1) & SEQ_MASK, seq, win))
        acks.append(seq)
    # MAXACKWINDOW(server) = max(server td_maxwin = win, 66000) = 66000; anything not after
    # td_end - 66000 - 1 fails bound IV.
    limit = (seq - MAXACKWINCONST) & SEQ_MASK
    old = [a for a in acks if (limit - a) & SEQ_MASK and (limit - a) & SEQ_MASK < 0x80000000]
    late = draw(st.sampled_from(old))
    segs.append(Segment("s", A, (isn_s + 1) & SEQ_MASK, late, 187))
    return Conversation(tuple(segs), isn_c, isn_s, None, None), len(segs) - 1


# -- UDP and ICMP echo --------------------------------------------------------------------------
CONTAINER, REMOTE, HOST = "192.0.2.2", "198.51.100.2", "198.51.100.1"  # the contract's defaults
MAX_UDP_PAYLOAD = 1472  # 1500 - 20 - 8


class Datagram(NamedTuple):
    """One datagram of a :class:`DatagramConversation`: who sends it ("c", the container;
    "s", the remote), its payload bytes and the seconds since the previous one."""

    frm: str
    length: int
    delay: float


@dataclass(frozen=True, slots=True)
class DatagramConversation:
    """UDP datagrams between ``CONTAINER:sport`` and ``REMOTE:dport``, or ICMP echo requests
    (the container's) and replies (the remote's) with identifier ``sport``; the remote
    answers the host's address, which MASQUERADE gave the container's flow."""

    proto: IpProto
    sport: int
    dport: int
    datagrams: tuple[Datagram, ...]

    def to_case(self, *, kernel: str = "6.18", name: str = "datagrams") -> dict[str, object]:
        """The conversation as a crafted-packet case (contract v2)."""
        packets: list[dict[str, object]] = []
        for seq, d in enumerate(self.datagrams):
            out = d.frm == "c"
            src, dst = (CONTAINER, REMOTE) if out else (REMOTE, HOST)
            p: dict[str, object] = {"from": "ctr" if out else "remote", "proto": self.proto.name.lower()}
            if self.proto is IpProto.UDP:
                sport, dport = (self.sport, self.dport) if out else (self.dport, self.sport)
                p.update(src=f"{src}:{sport}", dst=f"{dst}:{dport}")
            else:
                kind = IcmpType.ECHO if out else IcmpType.ECHOREPLY
                p.update(src=src, dst=dst, type=int(kind), id=self.sport, seq=seq & 0xFFFF)
            p.update(len=d.length, delay=d.delay)
            packets.append(p)
        return {"name": name, "kernel": kernel, "packets": packets}


def _datagrams(
    min_datagrams: int, max_datagrams: int, max_length: int, max_delay: float
) -> st.SearchStrategy:
    _check_bounds("datagrams", min_datagrams, max_datagrams, 1)
    if not 0 <= max_length <= MAX_UDP_PAYLOAD:
        raise ValueError(f"max_length must be in 0..{MAX_UDP_PAYLOAD}, got {max_length}")
    if not 0 <= max_delay <= 600:
        raise ValueError(f"max_delay must be in 0..600 seconds, got {max_delay}")
    one = st.builds(
        Datagram,
        st.sampled_from(("c", "s")),
        st.integers(0, max_length),
        # whole milliseconds: the same gaps in a case file, a replay and a live run
        st.integers(0, int(max_delay * 1000)).map(lambda ms: ms / 1000),
    )
    return st.lists(one, min_size=min_datagrams, max_size=max_datagrams).map(tuple)


def udp_conversations(
    *,
    min_datagrams: int = 1,
    max_datagrams: int = 12,
    max_length: int = MAX_UDP_PAYLOAD,
    max_delay: float = 40.0,
) -> st.SearchStrategy[DatagramConversation]:
    """UDP between the container and the remote in any order: queries, answers, unanswered
    probes, answers with no query, gaps up to ``max_delay`` seconds (past the 30 s unreplied
    timeout, so entries expire and come back). Shrinks to one datagram from the container to
    port 53, no payload, no delay."""
    ports = st.integers(1024, 65535)
    services = st.sampled_from((53, 123, 9, 5060)) | st.integers(1, 65535)
    return st.builds(
        DatagramConversation,
        st.just(IpProto.UDP),
        ports,
        services,
        _datagrams(min_datagrams, max_datagrams, max_length, max_delay),
    )


def icmp_echo_conversations(
    *,
    min_datagrams: int = 1,
    max_datagrams: int = 12,
    max_length: int = 1472,
    max_delay: float = 40.0,
) -> st.SearchStrategy[DatagramConversation]:
    """ICMP echo requests from the container and replies from the remote, in any order and
    with any gaps (a reply with no request, a request whose entry expired). Shrinks to one
    request with identifier 0."""
    return st.builds(
        DatagramConversation,
        st.just(IpProto.ICMP),
        st.integers(0, 65535),
        st.just(0),
        _datagrams(min_datagrams, max_datagrams, max_length, max_delay),
    )
