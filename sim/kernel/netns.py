"""Network namespaces for the real-kernel harness (ip-netns(8), setns(2), network_namespaces(7)).

Every namespace this module creates is named ``nflab-<pid>-<random>-<role>`` so that:

- a run only ever touches namespaces it made itself (the root namespace is never changed:
  veth pairs are created inside a namespace with their peer moved straight into another);
- namespaces left behind by a run that was killed (its pid no longer exists) are removed at
  the next start by :func:`cleanup_stale`;
- :class:`NamespaceSet` removes its namespaces on exit, on exceptions and on SIGINT, SIGTERM
  and SIGHUP (the handlers turn the signal into an exception so ``finally`` blocks run).

Sockets are opened inside a namespace with :func:`in_netns`, which enters it with setns(2)
for the calling thread only and always switches back. Commands run through
``ip netns exec``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator, Sequence
from types import FrameType

PREFIX = "nflab-"
NETNS_RUN_DIR = "/run/netns"  # where `ip netns add` bind-mounts namespaces (ip/ipnetns.c)
CLONE_NEWNET = 0x40000000
_NAME_RE = re.compile(r"^nflab-(\d+)-([0-9a-f]+)-([a-z]+)$")
_COMMAND_TIMEOUT_S = 30.0


class NetnsError(RuntimeError):
    """A namespace operation failed; the message is one line."""


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[:3]) if lines else "(no output)"


def run(argv: Sequence[str], *, input_text: str | None = None, check: bool = True) -> str:
    """Run a command (never through a shell) and return its stdout; one-line error on failure."""
    try:
        proc = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise NetnsError(f"command not found: {argv[0]}") from None
    except subprocess.TimeoutExpired:
        raise NetnsError(f"timed out after {_COMMAND_TIMEOUT_S:.0f}s: {' '.join(argv)}") from None
    if check and proc.returncode != 0:
        raise NetnsError(
            f"`{' '.join(argv)}` failed ({proc.returncode}): {_one_line(proc.stderr or proc.stdout)}"
        )
    return proc.stdout


# ---------------------------------------------------------------- setns(2)

_libc: ctypes.CDLL | None = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(f"setns failed: {os.strerror(err)}")


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the body with the calling thread inside namespace ``name``, then switch back.

    Sockets created in the body stay in that namespace after the switch back
    (network_namespaces(7)); so do /proc/sys/net files opened in it.
    """
    if not name.startswith(PREFIX):
        raise NetnsError(f"refusing to enter a namespace nflab did not create: {name}")
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(os.path.join(NETNS_RUN_DIR, name), os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)


def sysctl_path(key: str) -> str:
    """``net.ipv4.ip_forward`` -> ``/proc/sys/net/ipv4/ip_forward`` (sysctl(8)'s mapping)."""
    return "/proc/sys/" + key.replace(".", "/")


def read_sysctl(ns: str, key: str) -> str:
    with in_netns(ns), open(sysctl_path(key)) as f:
        return f.read().strip()


def write_sysctl(ns: str, key: str, value: str) -> None:
    """Write a per-namespace sysctl; only ``net.*`` keys exist per namespace."""
    if not key.startswith("net."):
        raise NetnsError(f"refusing sysctl {key}: only net.* sysctls are per network namespace")
    try:
        with in_netns(ns), open(sysctl_path(key), "w") as f:
            f.write(value)
    except OSError as e:
        raise NetnsError(f"sysctl {key}={value} in {ns}: {e.strerror or e}") from None


# ---------------------------------------------------------------- names and lifetime


def list_namespaces() -> list[str]:
    """Names under /run/netns (what `ip netns list` shows)."""
    try:
        return sorted(os.listdir(NETNS_RUN_DIR))
    except FileNotFoundError:
        return []


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def delete_namespace(name: str) -> None:
    if not name.startswith(PREFIX):
        raise NetnsError(f"refusing to delete a namespace nflab did not create: {name}")
    run(["ip", "netns", "delete", name], check=False)


def cleanup_stale() -> list[str]:
    """Delete ``nflab-<pid>-…`` namespaces whose creating process no longer exists."""
    removed = []
    for name in list_namespaces():
        m = _NAME_RE.match(name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            delete_namespace(name)
            removed.append(name)
    return removed


_HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived; ``signum`` says which. A KeyboardInterrupt, so
    ``finally`` blocks run and hypothesis passes it through instead of calling it a failure."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


class NamespaceSet:
    """A group of namespaces ``nflab-<pid>-<token>-<role>``, removed together.

    Use as a context manager; :meth:`close` is idempotent and also runs at signals.
    """

    def __init__(self, roles: Sequence[str]) -> None:
        for role in roles:
            if not re.fullmatch(r"[a-z]+", role):
                raise NetnsError(f"bad namespace role {role!r}: use lowercase letters")
        self.token = secrets.token_hex(4)
        self.names = {role: f"{PREFIX}{os.getpid()}-{self.token}-{role}" for role in roles}
        self._created: list[str] = []
        self._old_handlers: dict[int, object] = {}

    def __getitem__(self, role: str) -> str:
        return self.names[role]

    def open(self) -> NamespaceSet:
        cleanup_stale()
        if threading.current_thread() is threading.main_thread():
            for sig in _HANDLED_SIGNALS:
                self._old_handlers[sig] = signal.signal(sig, _raise_on_signal)
        try:
            for name in self.names.values():
                run(["ip", "netns", "add", name])
                self._created.append(name)
                # lo up, IPv6 off: no router solicitations, ND or MLD chatter on the links.
                self.sysctl(name, "net.ipv6.conf.all.disable_ipv6", "1")
                self.sysctl(name, "net.ipv6.conf.default.disable_ipv6", "1")
                self.ip(name, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        while self._created:
            delete_namespace(self._created.pop())
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._old_handlers.clear()
        left = [n for n in self.names.values() if n in list_namespaces()]
        if left:
            raise NetnsError(f"could not delete namespaces {', '.join(left)}; run `ip netns delete` on them")

    def __enter__(self) -> NamespaceSet:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands inside one of our namespaces
    def _own(self, name: str) -> str:
        if name not in self._created:
            raise NetnsError(f"namespace {name} is not one this set created")
        return name

    def exec(self, name: str, argv: Sequence[str], *, input_text: str | None = None) -> str:
        """``ip netns exec NAME argv…`` -> stdout."""
        return run(["ip", "netns", "exec", self._own(name), *argv], input_text=input_text)

    def ip(self, name: str, *args: str) -> str:
        """``ip -n NAME args…`` (iproute2 enters the namespace itself)."""
        return run(["ip", "-n", self._own(name), *args])

    def sysctl(self, name: str, key: str, value: str) -> None:
        write_sysctl(self._own(name), key, value)


# ---------------------------------------------------------------- can we run at all?

REQUIRED_TOOLS = ("ip", "iptables", "iptables-save", "iptables-restore", "nft")


def skip_reason() -> str | None:
    """One line saying why the real-kernel harness cannot run here, or None when it can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "kernel harness needs root (network namespaces, AF_PACKET, netlink)"
    if not os.path.exists("/proc/thread-self/ns/net"):
        return "kernel harness needs network namespaces (/proc/thread-self/ns/net missing)"
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        return f"kernel harness needs {', '.join(missing)} (apt-get install iproute2 iptables nftables)"
    try:
        run(["ip", "netns", "list"])
    except NetnsError as e:
        return f"`ip netns` does not work here: {e}"
    return None
