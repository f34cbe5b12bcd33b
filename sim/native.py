"""The optional compiled build: the modules of a capture's per-packet path, compiled by mypyc.

``python tools/compile.py`` compiles :data:`MODULES` -- the same source files, nothing
rewritten -- into extension modules beside them (``*.so``, one shared ``sim/_native__mypyc``
library); where mypyc or a C compiler is missing it says so and nflab stays pure Python.
Python imports an extension module before the source file of the same name, so once built
they are used, all together or not at all:

- with ``NFLAB_PURE=1`` in the environment, the source files are imported (the fallback,
  tested as such);
- when a source file is newer than its extension module (edited or checked out since the
  build), every one of them is imported from source, so a stale build is never run; the
  compiled classes cannot be mixed with interpreted ones.

:func:`install` puts the finder that decides this first on ``sys.meta_path``; ``sim``'s
``__init__`` calls it, before any of :data:`MODULES` can be imported. :func:`compiled` names
the modules that were loaded compiled (``nflab doctor`` and the bench say which build ran).
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

# The kernel profile and sysctls, the tracker's data and code, the reader and the analysis: the
# path every packet of a capture takes, compiled together (one mypyc group: native calls between
# them). Not sim.packet: an interpreted class cannot subclass a compiled one, and
# sim.pcap.datagram.Datagram is a Packet (the capture path builds no Packet per segment).
MODULES = (
    "sim.netfilter.hooks",
    "sim.netfilter.profiles",
    "sim.netfilter.sysctl",
    "sim.include.nf_conntrack_tcp",
    "sim.include.nf_conntrack",
    "sim.netfilter.tcp_states",
    "sim.netfilter.proto_tcp",
    "sim.netfilter.conntrack",
    "sim.pcap.link",
    "sim.pcap.reader",
    "sim.pcap.analyse",
)
GROUP = "sim._native"  # the shared library: sim/_native__mypyc.*.so
PURE_ENV = "NFLAB_PURE"
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # os.path: a cheap import


def source_path(module: str) -> str:
    return os.path.join(_ROOT, *module.split(".")) + ".py"


def extension_path(module: str) -> str | None:
    """The module's built extension beside its source, if there is one."""
    stem = source_path(module).removesuffix(".py")
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if os.path.exists(stem + suffix):
            return stem + suffix
    return None


def use_compiled() -> bool:
    """Whether the compiled build is used: built for every module, none of them older than
    its source, and ``NFLAB_PURE`` unset."""
    if os.environ.get(PURE_ENV):
        return False
    for module in MODULES:
        ext = extension_path(module)
        if ext is None or os.path.getmtime(ext) < os.path.getmtime(source_path(module)):
            return False
    return True


class _SourceFinder:
    """Imports :data:`MODULES` from their source files when the compiled build is not used."""

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name not in MODULES:
            return None
        import importlib.util

        return importlib.util.spec_from_file_location(name, source_path(name))


def install() -> None:
    """Decide once, at start-up, for the whole process: unless the compiled build is used, put
    the source finder first on ``sys.meta_path`` (so a build that appears later, half-way
    through a run, is never mixed in)."""
    if any(isinstance(f, _SourceFinder) for f in sys.meta_path):
        return
    if not use_compiled():
        sys.meta_path.insert(0, _SourceFinder())


def compiled() -> list[str]:
    """The modules of :data:`MODULES` imported so far from an extension module."""
    extension = importlib.machinery.ExtensionFileLoader
    return [m for m in MODULES if isinstance(getattr(sys.modules.get(m), "__loader__", None), extension)]
