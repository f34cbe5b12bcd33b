"""Kernel profiles: how ``nf_conntrack_proto_tcp.c`` behaves in the kernels nflab models.

Each profile is data. Every switch names the source it comes from; the code that reads a
switch (``proto_tcp``) keeps both branches next to each other, so a reader sees the old and
the new kernel side by side.

Sources read for this model:

* ``3.10``: the upstream 3.x tracker (v3.3 .. v3.10 layout: ``tcp_in_window`` returning
  ``bool``, one combined bounds test, the ``nf_ct_tcp: %s`` messages), as in the CentOS 7
  era the seed article ran. RHEL's 3.10.0-1160 carries backports this profile does not model.
* ``6.1``: Linux 6.1 up to the newest (6.18 on the machines here), modelled from the newest
  ``net/netfilter/nf_conntrack_proto_tcp.c``, which includes Florian Westphal's series
  "netfilter: conntrack: ignore overly delayed tcp packets" (net-next, September 2022,
  first released in 6.1) that turned bounds II and IV into IGNORE.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KernelProfile:
    """How one kernel line tracks TCP. Field docs say old (3.10) vs new (6.1) behaviour."""

    name: str
    description: str
    # tcp_in_window() returns IGNORE for bound II/IV failures and for a small overshoot of
    # bound I, and checks the bounds one by one (I, III, II, IV). 3.10: one combined test,
    # every failure is INVALID, message order I, II, III, IV.
    window_ignore: bool
    # 3.10: "if (seq == end && (!tcph->rst || (seq == 0 && state == SYN_SENT)))
    #        seq = end = sender->td_end;" -- a segment without data is judged by its ACK only.
    # 6.1: only the "RST sent answering SYN" half survives.
    empty_segment_seq_shortcut: bool
    # tcp_options() keeps IP_CT_TCP_FLAG_BE_LIBERAL ("state->flags &= BE_LIBERAL");
    # 3.10 clears every flag ("state->td_scale = state->flags = 0").
    options_keep_be_liberal: bool
    # tcp_init_sender(): window scaling is switched off for both sides only when the SYN/ACK
    # (reply direction) shows one side did not offer it. 3.10 tests it in either direction.
    wscale_check_reply_only: bool
    # Re-initialise the sender on a newer SYN in SYN_SENT/SYN_RECV (6.1: "tcph->syn &&
    # after(end, td_end) && state in {SYN_SENT, SYN_RECV}", SYN/ACK-less reply returns ACCEPT).
    # 3.10: "(SYN_SENT && ORIGINAL || SYN_RECV && REPLY) && after(end, td_end)", any flags.
    reinit_requires_syn: bool
    # Mid-stream pickup: "else if (sack == receiver->td_end + 1) receiver->td_end++"
    # (reply to a keep-alive). Absent in 3.10.
    keepalive_td_end_bump: bool
    # Retransmission counting compares the raw window (win_raw); 3.10 compares the window
    # after scaling.
    retrans_raw_window: bool
    # nf_conntrack_tcp_packet() CLOSE case: a RST whose seq is in window but is not exactly
    # td_maxack keeps the state (challenge ACK, RFC 5961); 3.10 moves to CLOSE.
    rst_exact_seq: bool
    # sysctl nf_conntrack_tcp_ignore_invalid_rst exists (5.14+).
    has_ignore_invalid_rst: bool
    # RFC 5961 challenge-ACK detection in LAST_ACK, simultaneous-open flag, SYN_SENT
    # challenge-ACK RST, SYN retransmit not refreshing the timeout, the RST/zero-window
    # timeouts and nf_tcp_handle_invalid(): all in the newest source, absent in 3.10.
    challenge_ack_handling: bool
    # Log text style: "nf_ct_tcp: " prefixed 3.x strings or "nf_ct_proto_6: " 6.x strings.
    log_prefix: str

    @property
    def modern_log(self) -> bool:
        """6.x wording ("invalid rst", "packet (index 0) in dir 1 ...") vs 3.x's."""
        return self.log_prefix == "nf_ct_proto_6: "


PROFILES: dict[str, KernelProfile] = {
    "3.10": KernelProfile(
        name="3.10",
        description="Linux 3.10 (CentOS 7 era): every out-of-window segment is INVALID",
        window_ignore=False,
        empty_segment_seq_shortcut=True,
        options_keep_be_liberal=False,
        wscale_check_reply_only=False,
        reinit_requires_syn=False,
        keepalive_td_end_bump=False,
        retrans_raw_window=False,
        rst_exact_seq=False,
        has_ignore_invalid_rst=False,
        challenge_ack_handling=False,
        log_prefix="nf_ct_tcp: ",
    ),
    "6.1": KernelProfile(
        name="6.1",
        description="Linux 6.1 .. 6.18: overly delayed ACKs and old retransmissions are IGNOREd",
        window_ignore=True,
        empty_segment_seq_shortcut=False,
        options_keep_be_liberal=True,
        wscale_check_reply_only=True,
        reinit_requires_syn=True,
        keepalive_td_end_bump=True,
        retrans_raw_window=True,
        rst_exact_seq=True,
        has_ignore_invalid_rst=True,
        challenge_ack_handling=True,
        log_prefix="nf_ct_proto_6: ",
    ),
}
DEFAULT_PROFILE = "6.1"


def get_profile(name: str) -> KernelProfile:
    """The profile called ``name``; ValueError lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise ValueError(f"unknown kernel profile {name!r} (known: {known})") from None
