"""The one family of errors for input nflab refuses.

Every kind of bad input -- a scenario or case file (``ScenarioError``, ``CaseError``), an
iptables line (``RuleError``), packet bytes (``WireError``), a capture file (``CaptureError``),
``nflab pcap``'s arguments (``PcapError``), an exercise answer (``ExerciseError``) -- is an
:class:`InputError`, so a front end catches one type and prints its one line.
"""

from __future__ import annotations


class InputError(ValueError):
    """Input nflab refuses; the message is one line naming the file (or line) and the place."""
