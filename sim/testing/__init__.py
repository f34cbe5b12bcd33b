"""nflab for people who fuzz the window logic with hypothesis.

* strategies (:mod:`sim.testing.strategies`): :func:`conversations`,
  :func:`closed_conversations`, :func:`perturbed_conversations`, :func:`late_ack_conversations`, and
  :func:`build_conversation`, which builds the well-formed conversation from its compact
  parameters; :func:`udp_conversations` and :func:`icmp_echo_conversations` for UDP and ICMP
  echo (a :class:`DatagramConversation` writes itself as a case: ``conv.to_case()``);
* the driver (:mod:`sim.testing.tracker`): :func:`track_conversation` runs a conversation
  through the connection tracker of a kernel profile with given sysctls and returns one
  :class:`SegmentResult` per segment (verdict, reason, TCP state, the window bounds with their
  numbers); :class:`Tracker` does the same one segment at a time;
* :func:`conversation_to_case`: a conversation as a crafted-packet case file, for
  ``nflab replay``, ``nflab kernel-check`` and the userspace kernel judges.

A property in a user's own test file::

    from hypothesis import given
    from sim.testing import TcpAction, conversations, track_conversation

    @given(conversations())
    def test_well_formed_is_accepted(conv):
        for r in track_conversation(conv, kernel="3.10"):
            assert r.window is TcpAction.ACCEPT, r.reason

Importing this package imports hypothesis (the ``fuzz`` extra); the rest of ``sim`` does not.
"""

from sim.netfilter.proto_tcp import TcpAction
from sim.scenario.fuzzcase import FIXES, conversation_to_case
from sim.testing.strategies import (
    Conversation,
    Datagram,
    DatagramConversation,
    Segment,
    build_conversation,
    closed_conversations,
    conversations,
    icmp_echo_conversations,
    late_ack_conversations,
    perturbed_conversations,
    udp_conversations,
)
from sim.testing.tracker import CLIENT, SERVER, SegmentResult, Tracker, track_conversation
from sim.trace import Bound, WindowCheck

__all__ = [
    "CLIENT",
    "FIXES",
    "SERVER",
    "Bound",
    "Conversation",
    "Datagram",
    "DatagramConversation",
    "Segment",
    "SegmentResult",
    "TcpAction",
    "Tracker",
    "WindowCheck",
    "build_conversation",
    "closed_conversations",
    "conversation_to_case",
    "conversations",
    "icmp_echo_conversations",
    "late_ack_conversations",
    "perturbed_conversations",
    "track_conversation",
    "udp_conversations",
]
