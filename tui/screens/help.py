"""The help screen: the story in five lines, the colours, and every key."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from tui.terms import TERMS

HELP = """\
# nflab: the host that answers for its container

A container uploads through a Docker host that **MASQUERADE**s it. One reply segment from the
remote falls outside the window conntrack tracks (`tcp_in_window()`, four bounds). Conntrack
calls it **INVALID** and detaches it from the connection, so **NAT skips it**: its destination
stays the host's own address. Routing says **LOCAL**, the host finds **no socket** for the port,
and `tcp_v4_send_reset()` answers with a **RST**. Only the remote sees that RST (host capture);
the container never does (container capture), so it retransmits until it gives up.

Fixes: `iptables -A INPUT -m conntrack --ctstate INVALID -j DROP` (**drop-invalid**) or
`sysctl net.netfilter.nf_conntrack_tcp_be_liberal=1` (**be-liberal**). Since Linux **6.1** the
kernel ignores an overly delayed ACK instead of calling it INVALID, but a segment beyond the
window still is: the walkthrough then opens on that segment.

Why the remote believes that RST at all: its seq (the late ACK's ack) lies far behind what the
remote expects next, and an RFC 5961 stack (Linux since 3.6) would drop it. The seed scenario
assumes, as the incident showed, a remote behind a middlebox that accepts any RST; **r** re-runs
with an RFC 5961 remote.

## Words
{terms}

## Colours
ACCEPT-like verdicts green, IGNORE amber, INVALID (and NAT skipped) purple, DROP / no socket /
RST red.

## Keys
| key | action |
|---|---|
| right / left | next / previous step (backwards is instant) |
| down / up | next / previous packet, in the order the host saw them |
| click | a journey row: that step; a capture line: that packet |
| space | play: the packet to its end, then the RST it caused; stops there |
| i | jump to the next INVALID |
| c | follow: to the packet this one caused (the RST), or back to its cause |
| f | cycle the fix: none, drop-invalid, be-liberal (re-runs, says what changed) |
| k | cycle the kernel through every profile, oldest first (re-runs, names the release) |
| r | the remote's RST policy: any RST (the incident) or RFC 5961 (re-runs) |
| home | back to the decisive packet (the first INVALID at the host) |
| z | quiz: predict each decisive hook (1-4 to answer, enter for the next); z again stops |
| s | the screen as SVG: saved in the current directory; in a browser (nflab serve), downloaded |
| pgdn / pgup | scroll the why panel |
| o | open a built-in (late-ack ...), a scenario, case or capture file; served: built-ins, course folder |
| ctrl+p | command palette (kernels, fixes, built-in scenarios: back to the seed incident) |
| ? | this help |
| q | quit |
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="help.close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Markdown(HELP.replace("{terms}", "\n".join(f"- **{t}**: {d}" for t, d in TERMS.items())))
