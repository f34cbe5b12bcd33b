"""A story scenario's run told as a timeline (sim/scenario/story.py), read off its observations
and the trace: each packet with what conntrack said and where it ended, the decisive event
named, the host's conntrack -S at the end, and the captures on both sides of the host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.netfilter.conntrack import format_conntrack
from sim.report.capture import write_pcap
from sim.scenario.story import Moment, StoryRun, event_of

CAPTURE_POINTS = (("host", "eth0", "host-eth0.pcap"), ("host", "docker0", "host-docker0.pcap"))


def _packet_words(obs: dict[str, Any]) -> str:
    """One observation in plain words: conntrack's state and counters, the end, the host's answers."""
    parts = []
    if obs.get("ctstate"):
        parts.append(f"conntrack: {obs['ctstate']}" + (f" ({obs['reason']})" if obs.get("reason") else ""))
    stats = {k: v for k, v in (obs.get("ct_stats") or {}).items() if k not in ("found", "searched")}
    if stats:
        parts.append("counters " + " ".join(f"{k}+{v}" for k, v in sorted(stats.items())))
    fate = obs.get("fate") or "nowhere"
    where = obs.get("delivered_as")
    parts.append(
        fate.replace("delivered:", "reaches ")
        .replace("dropped:", "DROPPED at ")
        .replace("local:", "local delivery on ")
        + (f" as {where['src']} > {where['dst']}" if where and "src" in where else "")
    )
    for e in obs.get("emitted", []):
        parts.append(f"the host sends {e.get('flags') or e.get('icmp') or 'a datagram'} to {e['to']}")
    return "; ".join(parts)


def _moment(m: Moment, decisive: Moment | None) -> list[str]:
    lines = [f"{m.t:9.3f}s  {m.text}"]
    if m.obs is not None:
        lines.append(f"{'':12}{_packet_words(m.obs)}")
    lines.extend(f"{'':12}{line}" for line in m.output)
    if m.failed:
        mark = "<== DECISIVE" if m is decisive else "<== and then"
        lines.append(f"{'':12}{mark}: {event_of(m)}: {m.failed}")
    return lines


def render(run: StoryRun) -> str:
    st, table = run.story, run.table
    out = [f"scenario {st.name}: kernel {table.profile.name} ({table.profile.description}); fix {st.fix}"]
    out.extend(f"  {line}" for line in st.description.splitlines())
    log = list(table.log)
    for m in run.moments:
        out.extend(_moment(m, run.decisive))
    verdict = "SUCCEEDS" if run.succeeded else "FAILS"
    decisive = run.decisive
    out.append(f"outcome: the story {verdict}" + (f" -- {decisive.failed}" if decisive else ""))
    if log:
        out.append("kernel log: " + " | ".join(log))
    stats = table.stats.counters(table.profile)
    out.append("conntrack -S: " + " ".join(f"{k}={v}" for k, v in stats.items()))
    now = run.world.clock.now
    entries = [format_conntrack(ct, now) for ct in table.entries(now)]
    out.append(f"conntrack -L: {len(entries)} entries")
    out.extend(f"  {line}" for line in entries)
    return "\n".join(out)


def write_captures(run: StoryRun, out_dir: Path) -> list[tuple[Path, int]]:
    """The host's uplink and bridge captures (both sides of the host) as pcap files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for ns_name, dev_name, filename in CAPTURE_POINTS:
        ns = run.world.namespaces[ns_name]
        dev = ns.devices[dev_name]
        records = [
            (t, pkt, dev.mac, dev.mac) for t, _d, pkt, _pid in run.world.captures[(ns_name, dev_name)].records
        ]
        path = out_dir / filename
        write_pcap(path, records)
        written.append((path, len(records)))
    return written
