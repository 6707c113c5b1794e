"""Results: one record per (target, workload, variant), written as JSON, a Markdown table
and a PNG bar chart."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

TARGETS = ("ours", "ours-cached", "postgraphile", "postgraphile5", "limit-http", "limit")
TARGET_NAMES = {
    "ours": "Portfolio Graph",
    "ours-cached": "Portfolio Graph, response cache on",
    "postgraphile": "PostGraphile 4",
    "postgraphile5": "PostGraphile 5",
    "limit-http": "limit over HTTP",
    "limit": "limit (1 SQL, no HTTP)",
}


@dataclass
class Result:
    target: str  # one of TARGETS
    workload: str
    variant: str  # fixed | varied
    requests: int
    seconds: float
    rps: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    non_2xx: int = 0
    socket_errors: int = 0
    graphql_errors: int = 0
    error_sample: str = ""
    rss_peak_mib: float | None = None
    rss_after_mib: float | None = None
    # CPU used by other processes during the run, as a share of all CPUs (noise).
    other_cpu_percent: float | None = None
    statements_per_request: float | None = None
    # The statements one request runs: (SQL, executions per request), most frequent first.
    statements: list[tuple[str, float]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors + self.graphql_errors


def _find(results: list[Result], target: str, workload: str, variant: str) -> Result | None:
    return next(
        (r for r in results if (r.target, r.workload, r.variant) == (target, workload, variant)),
        None,
    )


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _ratio(a: Result | None, b: Result | None) -> str:
    if a is None or b is None or not b.rps:
        return "–"
    ratio = a.rps / b.rps
    return f"{ratio:.2f}×" if ratio >= 0.1 else f"{ratio:.2g}×"


def _errors(result: Result) -> str:
    parts = []
    if result.non_2xx:
        parts.append(f"{result.non_2xx} non-2xx")
    if result.graphql_errors:
        parts.append(f"{result.graphql_errors} GraphQL")
    if result.socket_errors:
        parts.append(f"{result.socket_errors} socket")
    return ", ".join(parts) or "0"


NOISY_PERCENT = 10.0


def _noise(results: list[Result]) -> str:
    shares = [(r.other_cpu_percent, r) for r in results if r.other_cpu_percent is not None]
    if not shares:
        return ""
    worst, _ = max(shares, key=lambda pair: pair[0])
    noisy = [r for share, r in shares if share > NOISY_PERCENT]
    if not noisy:
        return (
            f"Other processes used at most {worst:.0f} % of the CPUs during a timed run "
            "(last column of the details): the machine was quiet."
        )
    names = ", ".join(f"{TARGET_NAMES[r.target]} {r.workload}/{r.variant}" for r in noisy)
    return (
        f"**Noise:** other processes used over {NOISY_PERCENT:.0f} % of the CPUs during "
        f"{len(noisy)} of {len(shares)} timed runs ({names}; at most {worst:.0f} %): "
        "those numbers are low."
    )


def markdown(meta: dict[str, Any], results: list[Result], chart_path: str | None = None) -> str:
    pairs = list(dict.fromkeys((r.workload, r.variant) for r in results))
    lines = [
        f"# Portfolio Graph benchmark, {meta['started']}",
        "",
        f"{meta['products']} products (database `{meta['database']}`), {meta['connections']} "
        f"connections, {meta['duration']:g} s per run after {meta['warmup']:g} s of warm-up, "
        f"wrk with {meta['wrk_threads']} threads; one server process each, on the same "
        f"machine as the load generator: {meta['machine']}. PostgreSQL {meta['postgres']}, "
        f"Python {meta['python']}, strawberry {meta['strawberry']}, Node "
        f"{meta.get('node') or '–'}, PostGraphile {meta.get('postgraphile') or '–'}; "
        f"PostGraphile {meta.get('postgraphile5') or '–'} on Node {meta.get('node5') or '–'}. "
        f"Commit `{meta['commit']}`.",
        "",
        _noise(results),
        "",
        "## Requests per second",
        "",
        "Portfolio Graph with its response cache **off** (every request runs its SQL), "
        "production mode"
        + (", a bearer token on every request" if meta.get("token") else "")
        + "; the cache on in a column of its own. *Better peer*: the faster of "
        "PostGraphile 4 and 5 on that row; p99 is ours against that peer's.",
        "",
        "| workload | variant | Portfolio Graph (cache off) | cache on | PostGraphile 4 "
        "| PostGraphile 5 | limit over HTTP | limit (1 SQL, no HTTP) | ours / better peer "
        "| p99 ours / better peer ms | ours / limit over HTTP |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for workload, variant in pairs:
        ours = _find(results, "ours", workload, variant)
        cached = _find(results, "ours-cached", workload, variant)
        peer = _find(results, "postgraphile", workload, variant)
        peer5 = _find(results, "postgraphile5", workload, variant)
        limit_http = _find(results, "limit-http", workload, variant)
        limit = _find(results, "limit", workload, variant)
        peers = [r for r in (peer, peer5) if r is not None]
        better = max(peers, key=lambda r: r.rps) if peers else None
        unit = " calls" if workload == "ingest" else ""
        p99 = (
            f"{_num(ours.p99_ms)} / {_num(better.p99_ms)}"
            if ours is not None and better is not None
            else "–"
        )
        lines.append(
            f"| {workload} | {variant} | {_num(ours.rps if ours else None)}{unit if ours else ''} "
            f"| {_num(cached.rps if cached else None)} "
            f"| {_num(peer.rps if peer else None)} "
            f"| {_num(peer5.rps if peer5 else None)} "
            f"| {_num(limit_http.rps if limit_http else None)} "
            f"| {_num(limit.rps if limit else None)} "
            f"| {_ratio(ours, better)} | {p99} | {_ratio(ours, limit_http)} |"
        )
    if chart_path is not None:
        lines += ["", f"![Requests per second, log scale]({chart_path})"]
    lines += [
        "",
        "## Details",
        "",
        "Latencies from wrk's distribution (`--latency`; the no-HTTP limit's from its asyncpg "
        "client). "
        "SQL/req: statements on the wire per request, counted by a proxy in a separate pass "
        "(BEGIN, COMMIT and pool pings included). RSS: the server process tree, peak during "
        "the run and 1 s after it. Other CPU: what processes other than the benchmark, the "
        "server under test and PostgreSQL (its backends for the bench database and its "
        "background processes) used during the run, as a share of "
        "all CPUs (noise: above ~10 % the run was disturbed). PostgreSQL CPU: its processes' "
        "(those backends and background processes) per request. Idle: the CPUs' share left "
        "unused during the run; a target that leaves CPU idle waited on something else.",
        "",
        "| target | workload | variant | req/s | p50 ms | p90 ms | p99 ms | requests | errors "
        "| SQL/req | server CPU ms/req | PostgreSQL CPU ms/req | RSS peak MiB | RSS after MiB "
        "| other CPU % | idle CPU % |",
        "|---|---|---|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for target in TARGETS:
        for r in (x for x in results if x.target == target):
            lines.append(
                f"| {TARGET_NAMES[target]} | {r.workload} | {r.variant} | {_num(r.rps)} "
                f"| {_num(r.p50_ms)} | {_num(r.p90_ms)} | {_num(r.p99_ms)} | {r.requests:,} "
                f"| {_errors(r)} | {_num(r.statements_per_request)} "
                f"| {_num(r.extra.get('server_cpu_ms_per_request'), 2)} "
                f"| {_num(r.extra.get('database_cpu_ms_per_request'), 2)} | {_num(r.rss_peak_mib)} "
                f"| {_num(r.rss_after_mib)} | {_num(r.other_cpu_percent)} "
                f"| {_num(r.extra.get('idle_cpu_percent'))} |"
            )
    writes = [r for r in results if r.workload in ("mutation", "ingest")]
    if writes:
        lines += ["", "## Writes", ""]
        for r in writes:
            if r.workload == "mutation":
                lines.append(
                    f"- mutation/{r.variant}: {_num(r.rps)} req/s, of which "
                    f"{_num(r.extra.get('updated_per_second'))}/s updated and "
                    f"{r.extra.get('conflicts', 0):,} of {r.requests:,} requests "
                    f"({_num(r.extra.get('conflict_percent'))} %) refused with CONFLICT (a stale "
                    "`expectedVersion`; the client retries with the version the answer carries). "
                    "Counted as errors: conflicts; retried: the updated/s figure."
                )
            else:
                lines.append(
                    f"- ingest/{r.variant}: {_num(r.extra.get('measurements_per_second'))} "
                    f"measurements/s ({r.requests} calls of {r.extra.get('batch', 0):,}, "
                    f"{r.extra.get('concurrency')} at a time; inserted "
                    f"{r.extra.get('inserted', 0):,}, duplicates {r.extra.get('duplicates', 0):,}, "
                    f"rejected {r.extra.get('rejected', 0):,}); per call p50 {_num(r.p50_ms)} ms, "
                    f"p99 {_num(r.p99_ms)} ms."
                )
    checks = meta.get("checks") or []
    if checks:
        lines += ["", "## Checks", ""]
        lines += [f"- {c}" for c in checks]
    samples = [r for r in results if r.error_sample]
    if samples:
        lines += ["", "## Error samples", ""]
        for r in samples:
            text = r.error_sample.replace("`", "'").replace("\n", " ")[:300]
            lines.append(f"- {TARGET_NAMES[r.target]} {r.workload}/{r.variant}: `{text}`")
    ours_statements = [r for r in results if r.target == "ours" and r.statements]
    if ours_statements:
        lines += ["", "## What Portfolio Graph sends to PostgreSQL per request", ""]
        for r in ours_statements:
            lines.append(f"- {r.workload}/{r.variant}: " + _statement_list(r.statements))
    lines.append("")
    return "\n".join(lines)


def _statement_list(statements: list[tuple[str, float]], shown: int = 8) -> str:
    parts = [f"{n:g}× `{sql[:70].replace('`', '')}`" for sql, n in statements[:shown]]
    if len(statements) > shown:
        parts.append(f"and {len(statements) - shown} more")
    return "; ".join(parts)


def chart(results: list[Result], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in results if r.workload != "ingest"]
    groups = list(dict.fromkeys((r.workload, r.variant) for r in shown))
    if not groups:
        return
    colours = {
        "ours": "#1f77b4",
        "ours-cached": "#aec7e8",
        "postgraphile": "#ff7f0e",
        "postgraphile5": "#d62728",
        "limit-http": "#98df8a",
        "limit": "#2ca02c",
    }
    width = 0.8 / len(TARGETS)
    figure, axes = plt.subplots(figsize=(max(8, 1.4 * len(groups) + 2), 5))
    for offset, target in enumerate(TARGETS):
        xs, ys = [], []
        for index, (workload, variant) in enumerate(groups):
            found = _find(shown, target, workload, variant)
            if found is not None and found.rps > 0:
                xs.append(index + (offset - (len(TARGETS) - 1) / 2) * width)
                ys.append(found.rps)
        if not xs:
            continue
        bars = axes.bar(xs, ys, width, label=TARGET_NAMES[target], color=colours[target])
        axes.bar_label(bars, labels=[_num(y, 0) for y in ys], fontsize=7, padding=2)
    axes.set_xticks(range(len(groups)), [f"{w}\n{v}" for w, v in groups])
    axes.set_yscale("log")
    axes.set_ylabel("requests per second (log scale)")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8)
    axes.grid(axis="y", which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write(out: Path, meta: dict[str, Any], results: list[Result], latest: Path | None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "results": [dataclasses.asdict(r) for r in results]}
    (out / "results.json").write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    title = (
        f"{meta['products']} products, {meta['connections']} connections, "
        f"{meta['duration']:g} s, {meta['machine_short']}"
    )
    picture = out / "requests_per_second.png"
    try:
        chart(results, picture, title)
    except ImportError:
        print("matplotlib is not installed: no chart (pip install -e '.[bench]')")
    drawn = picture.exists()
    (out / "results.md").write_text(markdown(meta, results, picture.name if drawn else None))
    if latest is not None:
        # The same table, with the chart's path seen from where latest.md lies.
        relative = os.path.relpath(picture, latest.parent) if drawn else None
        latest.write_text(markdown(meta, results, relative))
    return out / "results.md"
