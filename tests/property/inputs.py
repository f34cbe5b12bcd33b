"""Hypothesis strategies for fuzzing nflab's parsers: well-formed documents with a few
mutations (a key set to a value of any type, a key removed, an unknown key added), the same
documents with bytes damaged, iptables command lines and iptables-save text.

Speed matters (10,000 examples per parser in ci): each strategy makes a handful of draws and
reads the shape of the input off one drawn byte string, which hypothesis still shrinks.
A TOML writer is here too, since the standard library only reads TOML.
"""

from __future__ import annotations

import copy
import json
import math
import re
from typing import Any

from hypothesis import strategies as st

POOL: list[Any] = [
    *(-1, 0, 1, 7, 14, 15, 255, 256, 1400, 1448, 1460, 1461, 65535, 65536, 2**31, 2**32 - 1, 2**32, 2**64),
    *(-0.0, 0.05, 1e-9, 600.0, 600.5, 1e300, math.inf, -math.inf, math.nan),
    *(
        "",
        "ctr",
        "remote",
        "6.1",
        "3.10",
        "6.18.44-1",
        "SA",
        "SEC",
        "W",
        "x:y",
        "192.0.2.2:40000",
        "\x00",
        "é",
    ),
    *(True, False, None, [], {}, [1, 2], [[1, 2]], [1, 2, 3], ["a"], {"a": 1}, {"_c": "x"}, [{"mss": 1}]),
]
values = st.one_of(st.sampled_from(POOL), st.integers(), st.floats(), st.text(max_size=8))


def _children(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return list(node)
    return list(range(len(node))) if isinstance(node, list) else []


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any], keys: list[str], max_mutations: int = 3) -> Any:
    """``base`` with up to ``max_mutations`` changes, each at a random place in the tree:
    set (to any value), delete, or add a key (one of ``keys``, or any text)."""
    doc = copy.deepcopy(base)
    program = draw(st.binary(max_size=4 * max_mutations))
    for at in range(0, len(program) - 3, 4):
        depth, pick, action, key_pick = program[at : at + 4]
        node: Any = doc
        for level in range(depth % 4):
            children = _children(node)
            if not children:
                break
            child = children[(pick >> level) % len(children)]
            if not isinstance(node[child], dict | list):
                break
            node = node[child]
        children = _children(node)
        if isinstance(node, dict):
            key = (
                children[key_pick % len(children)] if children and action % 3 else keys[key_pick % len(keys)]
            )
            if action % 3 == 2 and key in node:
                del node[key]
            else:
                node[key] = copy.deepcopy(draw(values))  # POOL's lists and dicts stay as they are
        elif children:
            i = children[key_pick % len(children)]
            if action % 2:
                del node[i]
            else:
                node[i] = copy.deepcopy(draw(values))
    return doc


_CHUNKS = [b'"', b"'", b"[", b"]", b"{", b"}", b"=", b"\n", b",", b":", b"\\", b"\xff", b"\xc3", b"\x00"]


@st.composite
def damaged(draw: st.DrawFn, text: str, encoding: str = "utf-8") -> bytes:
    """``text`` encoded, then (sometimes) up to three bytes replaced, inserted or cut."""
    data = bytearray(text.encode(encoding, "surrogatepass" if encoding == "utf-8" else "strict"))
    program = draw(st.binary(max_size=12))
    for at in range(0, len(program) - 3, 4):
        hi, lo, action, chunk_pick = program[at : at + 4]
        where = ((hi << 8) | lo) % (len(data) + 1)
        chunk = _CHUNKS[chunk_pick % len(_CHUNKS)] if chunk_pick < 128 else bytes([chunk_pick])
        if action % 3 == 0:
            data[where:where] = chunk
        elif action % 3 == 1:
            data[where : where + 1] = chunk
        else:
            del data[where : where + 1 + action % 4]
    return bytes(data)


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: object) -> str:
    text = str(key)
    return text if _BARE_KEY.match(text) else json.dumps(text)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".e") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value)  # TOML basic strings take JSON's escapes (\uXXXX)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        items = (f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(items) + "}"
    raise TypeError(type(value))


def to_toml(doc: dict[str, Any]) -> str:
    """A TOML document whose tables are inline tables (TOML has no null: None values are left out)."""
    return "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in doc.items() if v is not None)


# iptables command lines from the words iptables knows, and some it does not.
IPTABLES_WORDS = [
    *"""-A -I -D -N -P -F -X -t nat filter raw mangle bogus INPUT FORWARD OUTPUT PREROUTING POSTROUTING
    DOCKER DOCKER-USER X -p tcp udp all icmp 6 ! -s -d 192.0.2.0/24 198.51.100.2 10.0.0.0/33 -i -o eth0
    docker0 + -m conntrack --ctstate INVALID NEW,ESTABLISHED DNAT,SNAT tcp --dport --sport 443 1:1023 0x
    --tcp-flags SYN,ACK SYN ALL NONE --syn -j -g ACCEPT DROP REJECT LOG RETURN --log-prefix --log-level 7
    debug --log-tcp-sequence --reject-with tcp-reset icmp-port-unreachable MASQUERADE SNAT DNAT --to-source
    --to-destination 198.51.100.1 198.51.100.1:1024-2048 --to-ports 1024-65535 --random --persistent limit
    --limit 1/sec 3/hour --limit-burst 5 state --state addrtype --src-type --dst-type LOCAL 1 2
    --append --jump --source --match""".split(),  # noqa: SIM905 (a word list reads better as text)
    "'unclosed",
    '"two words"',
    "\\",
    "-A\tINPUT",
]
# whole options with a fitting value, so that a fair share of the lines are valid
IPTABLES_PHRASES = [
    "-p tcp",
    "! -p udp",
    "-s 192.0.2.0/24",
    "! -d 198.51.100.2",
    "-i eth0",
    "-o docker0",
    "-m conntrack --ctstate INVALID",
    "-m conntrack ! --ctstate NEW,ESTABLISHED",
    "--dport 443",
    "--sport 1:1023",
    "--syn",
    "--tcp-flags SYN,ACK SYN",
    "-m tcp --tcp-flags ALL NONE",
    "-m limit --limit 1/sec --limit-burst 3",
    "-m state --state NEW",
    "-m addrtype --dst-type LOCAL",
    "-j ACCEPT",
    "-j DROP",
    "-j RETURN",
    "-j REJECT --reject-with tcp-reset",
    "-j REJECT",
    "-j LOG --log-prefix 'invalid: ' --log-level 7",
    "-j MASQUERADE",
    "-j MASQUERADE --to-ports 1024-2048 --random",
    "-j SNAT --to-source 198.51.100.1",
    "-j DNAT --to-destination 192.0.2.2:80",
    "-g DOCKER",
]
_PREFIXES = ("", "", "", "iptables", "iptables", "iptables", "", "sudo")
_HEADS = (
    "",
    "-A INPUT",
    "-A FORWARD",
    "-I OUTPUT",
    "-A DOCKER-USER",
    "-t nat -A POSTROUTING",
    "-t nat -I PREROUTING",
    "-t raw -A PREROUTING",
    "-t mangle -A INPUT",
    "-P INPUT",
)


def line_from_bytes(data: bytes, *, prefix: bool = True) -> str:
    """The first byte picks the leading words, each further byte an option with its value, a
    word, or an odd character."""
    if not data:
        return ""
    head = [_PREFIXES[data[0] % 8]] if prefix else []
    head.append(_HEADS[data[0] // 8 % len(_HEADS)])
    words = [w for w in head if w]
    for b in data[1:]:
        if b < 128:
            words.append(IPTABLES_PHRASES[b % len(IPTABLES_PHRASES)])
        elif b < 240:
            words.append(IPTABLES_WORDS[(b - 128) % len(IPTABLES_WORDS)])
        else:
            words.append(chr(b))
    return " ".join(words)


iptables_lines = st.binary(max_size=8).map(line_from_bytes)

_TABLES = ("filter", "nat", "raw", "mangle", "bogus", "")
_CHAINS = ("INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING", "MINE")
_POLICIES = ("ACCEPT", "DROP", "-", "RETURN")
_COUNTERS = ("", " [0:0]", " [5:300]", " [x:1]", " [1:2] extra")


def save_text_from_bytes(data: bytes) -> str:
    """``iptables-save`` text read off bytes: each byte starts a table, a chain line, a rule
    (its words from the bytes after it), COMMIT, a comment or a stray line."""
    lines: list[str] = []
    i = 0
    while i < len(data):
        op, arg = data[i] % 8, data[i] // 8
        i += 1
        if op == 0:
            lines.append(f"*{_TABLES[arg % len(_TABLES)]}")
        elif op == 1:
            chain, policy, counters = _CHAINS[arg % 6], _POLICIES[arg // 6 % 4], _COUNTERS[arg // 24 % 5]
            lines.append(f":{chain} {policy}{counters}")
        elif op in (2, 3, 4):
            n = 1 + arg % 8
            counters = ("", "[0:0] ", "[3:120] ", "[1:] ")[arg // 8 % 4]
            lines.append(counters + line_from_bytes(data[i : i + n], prefix=False))
            i += n
        elif op == 5:
            lines.append("COMMIT")
        elif op == 6:
            lines.append(("", "# a comment", "   ")[arg % 3])
        else:
            lines.append(chr(arg + 32))
    return "\n".join(lines) + "\n"


iptables_save_texts = st.binary(max_size=40).map(save_text_from_bytes)
