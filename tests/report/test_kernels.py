"""nflab kernels: the profile list and the packet-class matrix.

Expected cells are typed in from the kernel sources (net/netfilter/nf_conntrack_proto_tcp.c of
3.10 and 6.1, net/ipv4/tcp_ipv4.c's tcp_v4_send_reset) and shared/KERNEL-NOTES.md's table;
the matrix computes them by replaying sim/scenario/cases.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

from sim.netfilter.profiles import PROFILES
from sim.report.kernels import (
    MATRIX_FIXES,
    PACKET_CLASSES,
    Cell,
    changelog,
    compute_matrix,
    matrix_json,
    render_list,
    render_matrix,
    render_topics,
    story_events,
)

OLD_NEW = [PROFILES["3.10"], PROFILES["6.1"]]
CLASSES = {label: (label, case, extra) for label, case, extra in PACKET_CLASSES}


def cells_of(label: str) -> dict[tuple[str, str], str]:
    cells = compute_matrix(OLD_NEW, [CLASSES[label]])
    assert all(c.setup_accepted for c in cells)
    return {(c.profile, c.fix): c.text for c in cells}


def test_the_incident_late_ack_by_version_and_fix() -> None:
    # 3.10: bound IV fails -> INVALID, no NAT, no socket -> tcp_v4_send_reset. 6.1: IGNORE
    # (accepted, entry kept, de-NATed). DROP rule: no RST. be_liberal: accepted.
    assert cells_of("late ACK (the incident)") == {
        ("3.10", "none"): "INVALID*",
        ("6.1", "none"): "IGNORE",
        ("3.10", "drop-invalid"): "INVALID",
        ("6.1", "drop-invalid"): "IGNORE",
        ("3.10", "be-liberal"): "ACCEPT",
        ("6.1", "be-liberal"): "ACCEPT",
    }


def test_ack_of_unseen_data_is_invalid_everywhere_and_be_liberal_accepts_it() -> None:
    cells = cells_of("ACK over upper bound")
    assert cells[("3.10", "none")] == cells[("6.1", "none")] == "INVALID*"
    assert cells[("3.10", "be-liberal")] == cells[("6.1", "be-liberal")] == "ACCEPT"
    assert cells[("3.10", "drop-invalid")] == cells[("6.1", "drop-invalid")] == "INVALID"


def test_state_table_and_rst_checks_are_beyond_be_liberal() -> None:
    # REPLY syn in ESTABLISHED is sIV in both tables: INVALID, the host answers RST+ACK.
    syn = cells_of("SYN in ESTABLISHED")
    assert syn[("3.10", "be-liberal")] == syn[("6.1", "be-liberal")] == "INVALID*"
    # An old RST from the container: INVALID ("invalid rst"), forwarded untranslated by
    # Docker's FORWARD rules, so the host sends nothing; be_liberal does not help.
    rst = cells_of("old RST (container)")
    assert set(rst.values()) == {"INVALID"}


def test_server_syn_in_time_wait_reopens_only_where_the_table_says_sss() -> None:
    # REPLY syn row, TIME_WAIT column: sIV in upstream 3.10 (INVALID, the host answers RST+ACK);
    # sSS in 6.1: nf_conntrack_tcp_packet() kills the closed entry and returns -NF_REPEAT, the
    # SYN starts a new entry (NEW, ACCEPT) towards the host, which has no socket: RST again.
    cells = cells_of("server SYN in TIME_WAIT")
    assert (cells[("3.10", "none")], cells[("6.1", "none")]) == ("INVALID*", "ACCEPT*")


def test_list_names_every_profile_oldest_first_with_its_entries() -> None:
    text = render_list(PROFILES.values())
    starts = [text.index(f"{name} ") for name in PROFILES]
    assert starts == sorted(starts)
    for p in PROFILES.values():
        for entry in changelog(p):
            assert entry.switch in text
    assert all(len(line) <= 100 for line in text.splitlines())


def test_list_shows_each_profile_as_a_diff_against_the_one_before() -> None:
    base = PROFILES["6.1"]
    lacking = replace(
        base,
        name="x.y",
        description="a vendor kernel without window_ignore",
        window_ignore=False,
        changes=tuple(k for k in base.changes if k != "overly-delayed"),
    )
    lines = render_list([base, lacking]).splitlines()
    x = lines.index("x.y     a vendor kernel without window_ignore")
    # Florian Westphal's 2022 commit, first released in 6.1 (KERNEL-NOTES, net-next mails)
    assert lines[x + 1 :] == [
        "        - 6.1    6e250dcbff1d  window_ignore",
        "            netfilter: conntrack: ignore overly delayed tcp packets",
    ]
    assert render_list([base, base]).splitlines()[-1].strip() == "(the same changes as the profile above)"


def _cell(label: str, profile: str, fix: str) -> Cell:
    return Cell(label, "case", profile, fix, "INVALID", None, None, None, True, False)


def test_matrix_fits_100_columns_however_many_profiles() -> None:
    names = [f"9.{i}" for i in range(14)]
    labels = [label for label, _, _ in PACKET_CLASSES]
    cells = [_cell(lb, p, f) for lb in labels for f in MATRIX_FIXES for p in names]
    text = render_matrix(cells)
    assert max(len(line) for line in text.splitlines()) <= 100
    headers = [line.split()[2:] for line in text.splitlines() if line.startswith("no fix")]
    assert len(headers) > 1 and [n for h in headers for n in h] == names  # split, in order
    assert "INVALID*?" in text and "? a packet before" in text


def test_cli_matrix_json_covers_every_class_profile_and_fix() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sim.cli", "kernels", "--matrix", "--json"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["profiles"] == list(PROFILES) and data["fixes"] == list(MATRIX_FIXES)
    seen = {(c["case"], c["profile"], c["fix"]) for c in data["cells"]}
    assert seen == {(case, p, f) for _, case, _ in PACKET_CLASSES for p in PROFILES for f in MATRIX_FIXES}
    cells = compute_matrix(list(PROFILES.values()))
    assert data == {**matrix_json(cells), "stories": story_events(list(PROFILES.values()))}


def test_cli_text_matrix_is_readable_at_100_columns() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sim.cli", "kernels", "--matrix"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert (
        lines[0].split()[:2] == ["no", "fix"]
        and lines[0].split()[2:] == list(PROFILES)[: len(lines[0].split()) - 2]
    )


def test_topic_rows_come_from_the_changes_each_profile_carries() -> None:
    rows = {
        line.split()[1]: line.split()[2:]
        for line in render_topics(list(PROFILES.values())).splitlines()
        if line.startswith("  ")
    }
    order = list(PROFILES)

    def has(key: str) -> set[str]:
        return {p for p, mark in zip(order, rows[key], strict=True) if mark == "+"}

    # el7 3.10.0-1160 backports the 4.19-era nf_ct_resolve_clash (SCENARIOS.md [src]); 3.10.99 has none
    assert "el7" in has("clash-resolve") and "3.10" not in has("clash-resolve")
    # nf_ct_resolve_clash_harder: 5.10+ trees, not el7/4.19 [src]
    assert has("clash-harder") == {"5.10", "5.15", "6.1", "6.12", "6.18"}
    # pr_fmt in nf_conntrack_core.c: 4.19 .. 6.18, not el7 [src]
    assert has("core-pr-fmt") == {"4.19", "5.10", "5.15", "6.1", "6.12", "6.18"}
    # "table full in netns %u": 6.18.y, not 6.12.y [src]
    assert has("table-full-netns") == {"6.18"}
    # nf_nat_used_tuple_harder (TIME_WAIT eviction): 6.12.y, not 6.1.y [src]
    assert has("nat-evict-time-wait") == {"6.12", "6.18"}


def test_cli_text_matrix_has_the_story_rows() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sim.cli", "kernels", "--matrix"], capture_output=True, text=True
    )
    text = proc.stdout
    assert "clash handling at confirmation" in text and "NAT port search" in text
    assert "table full and early_drop" in text
    dns = next(line for line in text.splitlines() if line.startswith("  dns-race"))
    # 3.10 drops both races, el7/4.19 the different-DNAT one, 5.10+ resolve both
    assert dns.split()[1:5] == ["insert_failed", "insert_failed", "insert_failed", "ok"]
