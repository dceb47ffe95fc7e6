"""The peer report: paired added TTFB, medians, ccm-tui's ratio to each peer, n/a for what a target cannot do,
and the configs each peer is given."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench import peer_report, report
from bench.peer_targets import UPSTREAMS, Target, ccr_config, litellm_config, supports
from bench.scenarios import SCENARIOS, request_for


def _record(rep: int, scenario: str, target: str, ttfb: float, cpu_ms: float = 0.0, errors: int = 0) -> dict[str, Any]:
    raw = {
        "completed": 10 - errors, "errors": errors, "error_samples": ["boom"] * errors,
        "ttfb_ms": [ttfb] * (10 - errors), "total_ms": [ttfb + 250] * (10 - errors), "wall_s": 1.0,
        "watch_cpu_ms": cpu_ms, "watch_peak_rss_kb": int(cpu_ms * 10240), "rss_method": "VmHWM",
        "mock_cpu_ms": 1.0, "loadgen_cpu_ms": 1.0,
    }  # fmt: skip
    return {"rep": rep, "scenario": scenario, "target": target, **report.summarize(raw)}


def _records() -> list[dict[str, Any]]:
    records = []
    # Direct drifts between repetitions; ccm-tui adds 2, 3, 40 ms (median 3), CCR 6, 6, 6.
    for rep, direct in enumerate([1.0, 10.0, 2.0]):
        records.append(_record(rep, "tr-burst", "direct", direct))
        records.append(_record(rep, "tr-burst", "ccm-tui", direct + [2.0, 3.0, 40.0][rep], cpu_ms=40.0))
        records.append(_record(rep, "tr-burst", "CCR", direct + 6.0, cpu_ms=80.0))
        records.append(_record(rep, "tr-5ms", "direct", 5.0))
        records.append(_record(rep, "tr-5ms", "ccm-tui", 100.0, cpu_ms=50.0, errors=1 if rep == 0 else 0))
        records.append(_record(rep, "tr-5ms", "CCR", 400.0, cpu_ms=60.0))
    return records


def test_added_ttfb_is_paired_with_the_same_repetitions_direct_run() -> None:
    aggregated = peer_report.aggregate(_records())
    assert aggregated[("tr-burst", "ccm-tui")]["added_ttfb_p50"] == pytest.approx(3.0)
    assert aggregated[("tr-burst", "CCR")]["added_ttfb_p50"] == pytest.approx(6.0)


def test_rows_give_each_targets_value_and_ccm_tuis_ratio_to_each_peer() -> None:
    rows = {r["metric"]: r for r in peer_report.path_rows(peer_report.aggregate(_records()), "tr", ["ccm-tui", "CCR"])}
    ttfb = rows["+TTFB p50, c=1 burst (ms)"]
    assert ttfb["values"] == {"ccm-tui": pytest.approx(3.0), "CCR": pytest.approx(6.0)}
    assert ttfb["ratios"]["CCR"] == pytest.approx(0.5)
    assert rows["TTFB p99, 64 streams @5 ms (ms)"]["ratios"]["CCR"] == pytest.approx(0.25)
    # 50 ms of CPU over 10 requests against 60 ms over 10.
    assert rows["CPU per streamed response, 64 streams (ms)"]["values"]["ccm-tui"] == pytest.approx(5.0)
    assert rows["CPU per streamed response, 64 streams (ms)"]["ratios"]["CCR"] == pytest.approx(5 / 6)
    # Peak RSS is the larger of the path's two points: 50 ms of CPU -> 500 MB in this fixture.
    assert rows["peak RSS (MB)"]["values"]["ccm-tui"] == pytest.approx(500.0)
    assert rows["errors"]["values"] == {"ccm-tui": 1.0, "CCR": 0.0}
    assert rows["errors"]["ratios"]["CCR"] is None


def test_a_target_that_did_not_run_on_a_path_is_not_applicable() -> None:
    aggregated = peer_report.aggregate(_records())
    rows = peer_report.path_rows(aggregated, "pt", ["ccm-tui", "CCR"])
    assert all(value is None for row in rows for value in row["values"].values())
    text = peer_report._table(rows, ["ccm-tui", "CCR"], "ccm-tui")
    assert "| +TTFB p50, c=1 burst (ms) | n/a | n/a | n/a |" in text


@pytest.mark.parametrize(("ours", "theirs", "expected"), [(1.0, 2.0, 0.5), (None, 2.0, None), (1.0, 0.0, None)])
def test_ratio(ours: float | None, theirs: float | None, expected: float | None) -> None:
    assert peer_report.ratio(ours, theirs) == expected


def test_startup_rows_are_medians_in_ms_with_ratios() -> None:
    rows = peer_report.startup_rows(
        {"ccm-tui": {"version": [0.2, 0.3, 0.4], "ready": [0.5]}, "CCR": {"version": [0.6], "ready": [1.0, 2.0]}}
    )
    version, ready = rows
    assert version["values"]["ccm-tui"] == pytest.approx(300.0)
    assert version["ratios"]["CCR"] == pytest.approx(0.5)
    assert version["spread"]["ccm-tui"] == "200–400, n=3"
    assert ready["ratios"]["CCR"] == pytest.approx(500 / 1500)


def test_markdown_has_a_table_per_path_and_the_machine() -> None:
    result = {
        "meta": {
            "reps": 3, "started": "2026-12-01 21:00 UTC", "duration_s": 120.0, "targets": ["ccm-tui", "CCR"],
            "machine": {"cpus": 2, "cpu": "AMD EPYC", "memory_gb": 23.5}, "versions": {"CCR": "2.0.0"},
            "loadavg_start": [0.5], "loadavg_end": [1.0], "proxy_cpus": "0", "harness_cpus": "1",
        },
        "aggregated": peer_report.aggregate(_records()),
        "startup": {"ccm-tui": {"version": [0.3], "ready": [0.5]}, "CCR": {"version": [0.6], "ready": [1.0]}},
    }  # fmt: skip
    text = peer_report.markdown(result)
    assert "2 CPUs (AMD EPYC)" in text and "CCR 2.0.0" in text
    assert "## Translated: Anthropic client -> OpenAI-compatible upstream" in text
    assert "| metric | ccm-tui | CCR | ccm-tui / CCR |" in text
    assert "| +TTFB p50, c=1 burst (ms) | 3.00 | 6.00 | 0.50x |" in text
    assert "| `--version` wall time (ms) | 300 (300–300, n=1) | 600 (600–600, n=1) | 0.50x |" in text
    assert "tr-5ms ccm-tui: ['boom']" in text


def test_readme_section_is_replaced_between_the_peer_markers() -> None:
    readme = f"intro\n{peer_report.README_START}\nold\n{peer_report.README_END}\nrest\n"
    out = peer_report.replace_readme(readme, "# ccm-tui vs peers\nnew\n")
    assert out == f"intro\n{peer_report.README_START}\n## ccm-tui vs peers\nnew\n{peer_report.README_END}\nrest\n"


@pytest.mark.parametrize("key", ["tr-burst", "tr-5ms", "pt-burst", "pt-5ms"])
def test_peer_configs_point_at_the_scenarios_mock_profile(key: str) -> None:
    scenario = SCENARIOS[key]
    origin = "http://127.0.0.1:9999"
    base = origin + scenario.profile.base_path()
    ccr = json.loads(json.dumps(ccr_config(origin, 4321, scenario)))
    (provider,) = ccr["Providers"]
    assert ccr["PORT"] == 4321 and ccr["HOST"] == "127.0.0.1" and "APIKEY" not in ccr
    assert set(ccr["Router"].values()) == {f"mock,{scenario.model}"}
    yaml = litellm_config(origin, scenario)
    assert f"model_name: {scenario.model}" in yaml
    if scenario.upstream == "openai":
        assert provider["api_base_url"] == base + "/v1/chat/completions" and "transformer" not in provider
        assert f"model: openai/{scenario.model}" in yaml and f"api_base: {base}/v1\n" in yaml
    else:
        assert provider["api_base_url"] == base + "/v1/messages"
        assert provider["transformer"] == {"use": ["Anthropic"]}
        assert f"model: anthropic/{scenario.model}" in yaml and f"api_base: {base}\n" in yaml


def test_peer_scenarios_check_every_proxy_by_the_same_rules() -> None:
    for key in ("tr-burst", "pt-5ms"):
        scenario = SCENARIOS[key]
        assert scenario.profile.deltas == 50 and scenario.stream
        expect = request_for(scenario, "proxy").expect
        assert expect.events is None and expect.max_text_deltas == 50
    assert SCENARIOS["tr-5ms"].profile.gap_ms == 5 and SCENARIOS["pt-burst"].profile.gap_ms == 0
    assert all(supports(target, SCENARIOS["pt-5ms"]) for target in Target)
    assert set(UPSTREAMS) == set(Target)
