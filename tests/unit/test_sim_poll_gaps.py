"""The simulator's device-side record of polling gaps (what bench/restart.py reads across a restart)."""

from __future__ import annotations

from drivers.sim.polls import PollGaps


def test_longest_gap_per_device_with_when_it_began_and_ended() -> None:
    gaps = PollGaps()
    for t in (10.0, 10.5, 11.0, 13.2, 13.7):
        gaps.seen("hlt_controller", t)
    gaps.seen("cellar_probe", 12.0)
    report = gaps.take()
    assert report["hlt_controller"] == {"longest_s": 2.2, "from": 11.0, "to": 13.2, "polls": 5}
    assert report["cellar_probe"]["longest_s"] == 0.0 and report["cellar_probe"]["polls"] == 1


def test_take_starts_afresh_from_each_devices_last_poll() -> None:
    """A report taken just before a restart, then one after: the second holds the gap across it."""
    gaps = PollGaps()
    gaps.seen("pump1_vfd", 1.0)
    gaps.seen("pump1_vfd", 5.0)
    gaps.take()
    gaps.seen("pump1_vfd", 6.5)
    gaps.seen("pump1_vfd", 7.0)
    assert gaps.take() == {"pump1_vfd": {"longest_s": 1.5, "from": 5.0, "to": 6.5, "polls": 2}}
    assert gaps.take() == {}
