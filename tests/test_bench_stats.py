"""bench/_stats.py: the one way the benches alternate their sides and summarise samples (pure: no clock,
no load is asserted on)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench._stats import Samples, alternate, loadavg, parse_loadavg


def test_alternate_turns_the_order_round_at_every_round() -> None:
    assert list(alternate(("a", "b"), 4)) == [
        (0, "a"), (0, "b"), (1, "b"), (1, "a"), (2, "a"), (2, "b"), (3, "b"), (3, "a")]


def test_alternate_gives_every_side_one_sample_per_round_and_each_goes_first_half_the_time() -> None:
    order = list(alternate(("x", "y", "z"), 6))
    for r in range(6):
        assert sorted(side for i, side in order if i == r) == ["x", "y", "z"]
    firsts = [side for i, side in order[::3]]
    assert firsts.count("x") == 3 and firsts.count("z") == 3


def test_alternate_of_no_rounds_is_empty() -> None:
    assert list(alternate(("a", "b"), 0)) == []


def test_parse_loadavg() -> None:
    assert parse_loadavg("1.75 0.80 0.99 3/512 12345\n") == (1.75, 0.80, 0.99)


def test_loadavg_reads_the_one_minute_figure(tmp_path: Path) -> None:
    path = tmp_path / "loadavg"
    path.write_text("4.44 2.10 1.00 2/300 999\n")
    assert loadavg(path) == 4.44


def test_samples_medians_ratio_and_loads() -> None:
    samples = Samples()
    for side, value, load in (("corral", 0.004, 1.0), ("peer", 0.010, 2.0), ("peer", 0.012, 3.0),
                              ("corral", 0.006, 1.5), ("corral", 0.100, 5.0), ("peer", 0.008, 0.5)):
        samples.add(side, value, load=load)
    assert samples.of("corral") == [0.004, 0.006, 0.100]
    assert samples.median("corral") == 0.006
    assert samples.median("peer") == 0.010
    assert samples.ratio("corral", "peer") == pytest.approx(0.6)
    assert samples.loads() == (0.5, 5.0)
    report = samples.report("corral", "peer")
    assert "median     6.00 ms" in report[0]
    assert "n=3" in report[1]
    assert "medians 0.60x" in report[2] and "load average 0.50-5.00" in report[2]


def test_a_sample_line_names_its_side_value_and_load() -> None:
    samples = Samples(unit="s", scale=1.0)
    line = samples.line(samples.add("compose", 1.25, load=3.5), label="N=10")
    assert line.split() == ["N=10", "compose", "1.25", "s", "load", "3.50"]
