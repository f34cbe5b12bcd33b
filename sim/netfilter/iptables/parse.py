"""libxtables' value parsers (``xtables_ipparse_any``, ``xtables_parse_port``, ...), its
``xtables_save_string`` and the
one error type of the iptables tools: each raises :class:`RuleError` naming the option and value."""

from __future__ import annotations

import re
import shlex

from sim.errors import InputError
from sim.packet import ip_to_int


class RuleError(InputError):
    """A rejected command or ruleset line; ``str()`` is one line naming where."""


# quoting, and the ASCII whitespace str.split() splits on but shlex does not
_SHLEX_SPECIAL = frozenset("'\"\\\x0b\x0c\x1c\x1d\x1e\x1f")


def _split(line: str) -> list[str]:
    """The line split as a shell would (iptables-restore's add_param_to_argv() quoting)."""
    if line.isascii() and _SHLEX_SPECIAL.isdisjoint(line):
        return line.split()  # the same words as shlex.split(), without its per-character loop
    try:
        return shlex.split(line)
    except ValueError as e:  # "No closing quotation", "No escaped character"
        raise RuleError(f"{line!r}: {e}") from None


# ---------------------------------------------------------------------------------------------
# Value parsers (each raises RuleError naming the option and the value).

_IPV4 = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$", re.ASCII)


def _ip(opt: str, text: str) -> int:
    m = _IPV4.match(text)
    if not m or any(int(part) > 255 for part in m.groups()):
        raise RuleError(f"{opt} {text!r}: host/network not found")
    return ip_to_int(text)


def _port(opt: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 0xFFFF:
        raise RuleError(f"{opt} {text!r}: invalid port/service specified")
    return int(text)


def _ports(opt: str, text: str) -> tuple[int, int]:
    """``parse_tcp_ports()`` (libxt_tcp.c): ``p``, ``a:b``, ``:b``, ``a:``."""
    if ":" not in text:
        port = _port(opt, text)
        return port, port
    lo, hi = text.split(":", 1)
    ports = (_port(opt, lo) if lo else 0, _port(opt, hi) if hi else 0xFFFF)
    if ports[0] > ports[1]:
        raise RuleError(f"{opt} {text!r}: invalid portrange (min > max)")
    return ports


PortMatch = tuple[tuple[int, int], bool, tuple[int, int], bool]  # spts, inv_src, dpts, inv_dst


def port_options(opts: Opts) -> dict[str, object]:
    """``--sport``/``--dport`` of ``tcp_parse()`` and ``udp_parse()`` (libxt_tcp.c, libxt_udp.c),
    each at most once, as the match's keyword arguments."""
    kw: dict[str, object] = {}
    for names, key, inv_key in (
        (("--sport", "--source-port"), "spts", "inv_src"),
        (("--dport", "--destination-port"), "dpts", "inv_dst"),
    ):
        given = [n for n in names if n in opts]
        if len(given) > 1:
            raise RuleError(f"{given[1]}: Only one `{names[1]}' allowed")
        if given:
            inv, (value,) = opts.pop(given[0])
            kw[key], kw[inv_key] = _ports(given[0], value), inv
    return kw


def print_ports(ports: PortMatch) -> str:
    """The ports of ``tcp_print()``/``udp_print()`` with numeric output."""
    spts, inv_src, dpts, inv_dst = ports
    out = ""
    for name, (lo, hi), inv in (("spt", spts, inv_src), ("dpt", dpts, inv_dst)):
        if (lo, hi) != (0, 0xFFFF) or inv:
            bang = "!" if inv else ""
            out += f" {name}:{bang}{lo}" if lo == hi else f" {name}s:{bang}{lo}:{hi}"
    return out


def save_ports(ports: PortMatch) -> str:
    """The ports of ``tcp_save()``/``udp_save()``."""
    spts, inv_src, dpts, inv_dst = ports
    out = ""
    for opt, (lo, hi), inv in (("--sport", spts, inv_src), ("--dport", dpts, inv_dst)):
        if (lo, hi) != (0, 0xFFFF) or inv:
            out += f"{' !' if inv else ''} {opt} {lo}" + (f":{hi}" if hi != lo else "")
    return out


def xtables_save_string(value: str) -> str:
    """``xtables_save_string()``: quote unless only ``[A-Za-z0-9_-]``; escape ``" \\ '``."""
    if value and all(c.isascii() and (c.isalnum() or c in "_-") for c in value):
        return f" {value}"
    escaped = "".join("\\" + c if c in "\"\\'" else c for c in value)
    return f' "{escaped}"'


# What an extension's builder gets: option -> (inverted, arguments); each builder consumes its own.
Opts = dict[str, tuple[bool, list[str]]]
