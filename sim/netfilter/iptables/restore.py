"""iptables-restore.c: ``*table`` / ``:chain policy [p:b]`` / rule lines / ``COMMIT`` text into the
rules, all or nothing, with the line number in every error."""

from __future__ import annotations

import re

from sim.include.netfilter import TableName
from sim.netfilter.iptables.cmd import _new_chain, _run
from sim.netfilter.iptables.parse import RuleError, _split
from sim.netfilter.xtables import Ruleset, StdVerdict, Table

# ---------------------------------------------------------------------------------------------
# iptables-restore.

_COUNTERS = re.compile(r"^\[(\d+):(\d+)\]$", re.ASCII)


def iptables_restore(ruleset: Ruleset, text: str) -> None:
    """Load ``iptables-save`` text (``[pkts:bytes]`` counters optional), as ``iptables-restore -c``.

    Each ``*table`` ... ``COMMIT`` block replaces that table (no ``--noflush``). Errors name the
    line. The tables are changed only when the whole text is valid.
    """
    staged = Ruleset()
    table: Table | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        try:
            table = _restore_line(staged, table, line.strip())
        except RuleError as exc:
            raise RuleError(f"line {lineno}: {exc}") from None
    if table is not None:
        raise RuleError(f"line {len(text.splitlines())}: table {table.name.value} has no COMMIT")
    for name in staged.loaded:
        ruleset.table(name)  # record the load
        ruleset.tables[name] = staged.tables[name]


def _restore_line(staged: Ruleset, table: Table | None, line: str) -> Table | None:
    if not line or line.startswith("#"):
        return table
    if line.startswith("*"):
        if table is not None:
            raise RuleError(f"{line}: table {table.name.value} has no COMMIT")
        try:
            name = TableName(line[1:])
        except ValueError:
            raise RuleError(f"{line}: table does not exist") from None
        staged.tables.pop(name, None)
        if name in staged.loaded:
            staged.loaded.remove(name)
        return staged.table(name)
    if table is None:
        raise RuleError(f"{line.split()[0]}: no table specified (missing *table line)")
    if line == "COMMIT":
        return None
    if line.startswith(":"):
        _restore_chain(table, line)
        return table
    argv = _split(line)
    counters = _COUNTERS.match(argv[0]) if argv else None
    if counters:
        argv = argv[1:]
    _run(table, argv)
    if counters:
        chain = table.chains[argv[1]]
        rule = chain.rules[-1] if argv[0] in ("-A", "--append") else chain.rules[0]
        rule.pkts, rule.bytes = int(counters[1]), int(counters[2])
    return table


def _restore_chain(table: Table, line: str) -> None:
    """``:CHAIN POLICY [pkts:bytes]``; user chains have policy ``-``."""
    parts = line[1:].split()
    if len(parts) not in (2, 3):
        raise RuleError(f"{line}: bad chain line (expected ':CHAIN POLICY [pkts:bytes]')")
    name, policy = parts[0], parts[1]
    counters = _COUNTERS.match(parts[2]) if len(parts) == 3 else None
    if len(parts) == 3 and not counters:
        raise RuleError(f"{parts[2]}: bad counters (expected [pkts:bytes])")
    if policy == "-":
        if name in table.chains and table.chains[name].builtin:
            raise RuleError(f"{line}: built-in chain {name} needs a policy")
        _new_chain(table, name)
        return
    chain = table.chains.get(name)
    if chain is None or not chain.builtin:
        raise RuleError(f"{line}: {name} is not a built-in chain of table {table.name.value}")
    if policy not in ("ACCEPT", "DROP"):
        raise RuleError(f"{line}: Bad policy name {policy!r}")
    chain.policy = StdVerdict[policy]
    if counters:
        chain.pkts, chain.bytes = int(counters[1]), int(counters[2])
