"""The changelog's NAT and conntrack-core entries whose commit or release was confirmed from
primary sources (each entry's note names them). Expected values are typed in from those
sources: the pull and patch mails for the commit ids, and for the releases the kernel trees
read on both sides of each change (3.13.11/3.14.1, 4.20.0/5.0.0; the 5.15-rc1 pull of
2021-09-07, after 5.14 was out)."""

import pytest

from sim.netfilter.changes import CHANGES_BY_KEY
from sim.netfilter.profiles import build


@pytest.mark.parametrize(
    ("key", "commit", "release"),
    [
        # Fixes: tag of 07998281c268; check absent in 4.20.0, present in 5.0.0.
        ("same-origin", "4e35c1cb9460", "5.0"),
        # "commit a504b703bb1d... upstream" (4.14 stable, 2022-02-07); max_attempts in 5.0.0.
        ("nat-random-offset", "a504b703bb1d", "5.0"),
        # secure_port() for --random in 4.20.0, prandom_u32() in 5.0.0; no commit named.
        ("nat-random-any", "", "5.0"),
        # "[GIT PULL] Networking for 5.15-rc1" (2021-09-07) lists both.
        ("chaintoolong", "d7e7747ac5c2", "5.15"),
        ("buckets-eq-max", "d532bcd0b269", "5.15"),
    ],
)
def test_confirmed_commit_and_release(key, commit, release):
    c = CHANGES_BY_KEY[key]
    assert (c.commit, c.release) == (commit, release)


def test_random_fully_release_from_the_trees_and_its_commit_marked_unconfirmed():
    # NF_NAT_RANGE_PROTO_RANDOM_FULLY: not in 3.13.11's nf_nat.h, in 3.14.1's.
    c = CHANGES_BY_KEY["random-fully"]
    assert c.release == "3.14"
    assert "not confirmed" in c.note


@pytest.mark.parametrize(
    ("base", "has", "lacks"),
    [
        ("3.13", set(), {"random-fully"}),
        ("3.14", {"random-fully"}, {"same-origin"}),
        ("4.20", {"random-fully"}, {"same-origin", "nat-random-offset", "nat-random-any"}),
        ("5.0", {"same-origin", "nat-random-offset", "nat-random-any"}, {"chaintoolong"}),
        ("5.14", {"nat-random-offset"}, {"chaintoolong", "buckets-eq-max"}),
        ("5.15", {"chaintoolong", "buckets-eq-max"}, set()),
    ],
)
def test_an_upstream_release_between_profiles_has_what_its_tree_has(base, has, lacks):
    changes = set(build("x", base, "test", base, "tree").changes)
    assert has <= changes and not lacks & changes
