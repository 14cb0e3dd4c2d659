"""Benchmarks print their extra_info (objects/s, ratio to the bare parse) at the end."""

from __future__ import annotations

from typing import Any


def pytest_benchmark_update_json(config: Any, benchmarks: Any, output_json: dict) -> None:
    for bench in output_json.get("benchmarks", []):
        bench.setdefault("extra_info", {})


def pytest_terminal_summary(terminalreporter: Any) -> None:
    session = terminalreporter.config._benchmarksession
    lines = []
    for bench in getattr(session, "benchmarks", []):
        info = ", ".join(f"{k}={v:,.2f}" for k, v in sorted(bench.extra_info.items()))
        lines.append(f"{bench.fullname.split('::')[-1]}: {info}")
    if lines:
        terminalreporter.write_sep("-", "objects per second and ratios")
        for line in lines:
            terminalreporter.write_line(line)
