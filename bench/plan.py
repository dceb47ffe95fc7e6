"""Which points run in quick and full mode, with request counts and time caps sized to the time budget.

A point is (scenario, concurrency); each runs against the mock directly and through ccm-tui. Request counts
are bounded so that a point lasts a few seconds at most even when the proxy is slow (the time cap stops new
requests; those in flight finish). Full: every scenario at 1, 16, 64, 256, three repetitions, headless and
TUI. Quick: the points the targets need, one repetition, the TUI only where its targets are measured.
"""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = (1, 16, 64, 256)

# Requests per point, by scenario and concurrency (full mode). Streams of (b) last 0.25 s and of (c) 1 s, so
# their counts are a few rounds of the concurrency; at concurrency 1 p99 is then close to the maximum.
FULL_REQUESTS: dict[str, dict[int, int]] = {
    "a": {1: 300, 16: 1000, 64: 1280, 256: 1280},
    "b": {1: 16, 16: 48, 64: 192, 256: 512},
    "c": {1: 3, 16: 16, 64: 64, 256: 512},
    "d": {1: 100, 16: 320, 64: 512, 256: 512},
    "e": {1: 100, 16: 320, 64: 512, 256: 512},
    "f": {1: 150, 16: 480, 64: 640, 256: 768},
    "g": {1: 150, 16: 480},
}
QUICK_POINTS: dict[str, dict[int, int]] = {
    "a": {1: 200, 64: 800},
    "b": {1: 12, 64: 128},
    "c": {256: 256},
    "d": {1: 60, 64: 256},
    "e": {1: 60, 64: 256},
    "f": {1: 100},
    "g": {1: 100},
}
QUICK_TUI_POINTS = (("a", 1), ("b", 64), ("d", 64))
KEY_PROBE_POINT = ("b", 64)


@dataclass(frozen=True)
class Point:
    scenario: str
    concurrency: int
    requests: int
    time_cap_s: float


def _cap(requests: int, concurrency: int, duration_s: float, quick: bool) -> float:
    rounds = -(-requests // concurrency)
    expected = rounds * max(duration_s, 0.001)
    return max(2.0 if quick else 3.0, 2.0 * expected)


def plan_points(
    quick: bool, mode: str, durations: dict[str, float], scenarios: str = "abcdefg", levels: tuple[int, ...] = LEVELS
) -> list[Point]:
    """The points for one mode; `durations` = each scenario's upstream response time in seconds."""
    table = QUICK_POINTS if quick else FULL_REQUESTS
    points = []
    for scenario in scenarios:
        for concurrency, requests in table.get(scenario, {}).items():
            if concurrency not in levels:
                continue
            if quick and mode == "tui" and (scenario, concurrency) not in QUICK_TUI_POINTS:
                continue
            cap = _cap(requests, concurrency, durations[scenario], quick)
            points.append(Point(scenario, concurrency, requests, cap))
    return points


def key_probe_point(quick: bool, durations: dict[str, float]) -> Point:
    """An extra proxied run of the key-probe point in TUI mode, long enough for several key presses. It is
    kept apart from the measured point because an open modal screen makes Textual redraw the screen under it,
    which would inflate the TUI's CPU per request."""
    scenario, concurrency = KEY_PROBE_POINT
    requests = concurrency * (6 if quick else 8)
    return Point(scenario, concurrency, requests, _cap(requests, concurrency, durations[scenario], quick))
