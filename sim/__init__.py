"""nflab: a userspace model of Linux netfilter (conntrack, tcp_in_window, NAT, iptables) around
one production incident: a late reply segment is INVALID in conntrack, skips NAT, and the host's
own stack answers it with a RST only the remote sees.

The layers, each importing only the ones above it (``tests/test_layers.py`` checks every
import, type-only and in-function ones included):

- ``sim.clock``, ``sim.packet``, ``sim.wire``, ``sim.skb``, ``sim.trace``, ``sim.include``,
  ``sim.errors``: virtual time, frozen IPv4/TCP packets and their bytes, the per-packet
  ``sk_buff`` envelope, the one trace channel, the data the kernel keeps in headers (``struct
  nf_conn``, the TCP conntrack structs) and the one family of input errors (``InputError``).
- ``sim.netfilter``: the kernel's netfilter code as data and pure functions -- the hook core
  (``core``: registration and ``nf_hook_slow``; ``hooks``: verdicts and priorities), conntrack
  and its TCP tracker (``conntrack``, ``proto_tcp``, ``tcp_states``, ``sysctl``, ``profiles``), NAT
  (``nat``), ``ipt_do_table`` with its matches and targets (``xtables``; what they are handed
  and answer: ``x_tables``), the REJECT and LOG targets (``reject``, ``log``), the iptables
  tools (``iptables/``) and the ops a namespace registers (``ops``). Netfilter sees the stack
  only through ``core.Stack``.
- ``sim.net``: namespaces, the device layer (``dev``), the IPv4 paths (``ipv4``) and TCP
  receive (``tcp_ipv4``) behind the protocols of ``stack``, sockets and TCP endpoints, and the
  world joining them by links.
- ``sim.topology``: the docker-bridge preset with Docker's ruleset.
- ``sim.scenario``: the one way in (``loader``), scenario files, crafted-packet cases and their
  replay, conversations as cases (``fuzzcase``), the host configuration (``host``) and the two
  fixes (``fixes``).
- ``sim.testing``: the TCP tracker on its own, hypothesis strategies, model-kernel diffs.
- ``sim.kernel``: the same cases against the real kernel in network namespaces.
- ``sim.report``: what is read off a run -- the trace's sentences (``sentences``), timeline,
  captures, walkthrough, exercises, figures.
- ``sim.pcap``: real captures read, tracked per kernel and explained (``nflab pcap``), beside
  ``sim.report`` (it imports no report module).
- ``sim.api``: the public API the front ends (``tui/``, ``nflab serve``, the course) stand on.
- ``sim.cli``, ``sim.bench`` (and the ``tui`` package): the ``nflab`` command; each subcommand
  registers itself from the module it drives.

The public API is :mod:`sim.api` (open a source, apply a kernel or a fix, run it, read the trace
and the captures); its names are also ``sim``'s own, imported on first use, so ``import
sim.packet`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sim import native

if TYPE_CHECKING:
    from sim.api import *  # noqa: F403

native.install()  # the compiled build (tools/compile.py) or the source files: see sim.native


def __getattr__(name: str) -> Any:
    api = importlib.import_module("sim.api")
    if name not in api.__all__:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    return getattr(api, name)
