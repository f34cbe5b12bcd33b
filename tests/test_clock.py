"""The event engine: order, ties, run(until=)."""

import pytest

from sim.clock import Clock


def test_events_run_in_time_order_and_ties_in_scheduling_order():
    c, seen = Clock(), []
    c.schedule(2.0, seen.append, "late")
    c.schedule(1.0, seen.append, "a")
    c.schedule(1.0, seen.append, "b")
    assert c.peek() == 1.0
    c.run()
    assert seen == ["a", "b", "late"] and c.now == 2.0


def test_run_until_stops_and_advances_time():
    c, seen = Clock(), []
    c.schedule(1.0, seen.append, 1)
    c.schedule(3.0, seen.append, 3)
    c.run(until=2.0)
    assert seen == [1] and c.now == 2.0 and c.peek() == 3.0
    assert c.step() and seen == [1, 3]
    assert not c.step()


def test_no_scheduling_into_the_past():
    with pytest.raises(ValueError, match="past"):
        Clock().schedule(-1, print)
