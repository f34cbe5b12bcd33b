"""libxt_LOG.c: ``-j LOG`` with ``--log-prefix``, ``--log-level``, ``--log-tcp-sequence``, and its
text (``LOG_print()``, ``LOG_save()``)."""

from __future__ import annotations

from sim.netfilter.iptables.parse import Opts, RuleError, xtables_save_string
from sim.netfilter.log import LogTarget

_SYSLOG_LEVELS = {
    "emerg": 0,
    "panic": 0,
    "alert": 1,
    "crit": 2,
    "err": 3,
    "error": 3,
    "warning": 4,
    "warn": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}


def _log_level(opt: str, text: str) -> int:
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text.lower() in _SYSLOG_LEVELS:
        return _SYSLOG_LEVELS[text.lower()]
    raise RuleError(f"{opt} {text!r}: log level is not a number from 0 to 7 or a syslog level name")


def _build_log(opts: Opts) -> LogTarget:
    prefix = opts.pop("--log-prefix", (False, [""]))[1][0]
    if len(prefix) > 29:
        raise RuleError(f"--log-prefix {prefix!r}: Maximum prefix length 29 for --log-prefix")
    if "\n" in prefix:
        raise RuleError("--log-prefix: Newlines not allowed in --log-prefix")
    level = _log_level("--log-level", opts.pop("--log-level")[1][0]) if "--log-level" in opts else 4
    return LogTarget(prefix, level, opts.pop("--log-tcp-sequence", None) is not None)


def log_print(t: LogTarget) -> str:
    """``LOG_print()`` with numeric output."""
    prefix = f' prefix "{t.prefix}"' if t.prefix else ""
    return f" LOG flags {int(t.tcp_sequence)} level {t.level}{prefix}"


def log_save(t: LogTarget) -> str:
    """``LOG_save()``: the level only when not the default (4, warning)."""
    out = f" --log-prefix{xtables_save_string(t.prefix)}" if t.prefix else ""
    out += f" --log-level {t.level}" if t.level != 4 else ""
    return out + (" --log-tcp-sequence" if t.tcp_sequence else "")
