"""The run's report: a pass/fail table against the targets, in Markdown and JSON."""

from __future__ import annotations

import itertools
import math
from typing import Any

from .load import ENDPOINTS, PATHS


def _ms(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("**pass**" if ok else "**FAIL**")


def endpoint_table(result: dict[str, Any], *, targets: bool = True) -> list[str]:
    lines = [
        "| endpoint | share | req/s | P50 ms | P95 ms | P99 ms | errors | P95 target | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    total = max(result["requests"], 1)
    for name, stats in result["endpoints"].items():
        target = ENDPOINTS.get(name, (0, 200, None))[2]
        ok = None
        if targets and target is not None:
            ok = stats["p95_ms"] <= target[1] and stats["errors"] == 0
        lines.append(
            f"| `{PATHS.get(name, name)}` | {100 * stats['requests'] / total:.1f} % | {stats['rps']:,.1f} "
            f"| {_ms(stats['p50_ms'])} | {_ms(stats['p95_ms'])} | {_ms(stats['p99_ms'])} | {stats['errors']} "
            f"| {f'{target[1]:.0f}' if target else '-'} | {verdict(ok)} |"
        )
    lines.append(f"| **all** | 100 % | **{result['rps']:,.1f}** | | | | {result['errors']} | | |")
    return lines


def targets_table(report: dict[str, Any]) -> list[str]:
    rows = report["targets"]
    lines = ["| what | target | measured | result |", "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['what']} | {row['target']} | {row['measured']} | {verdict(row['ok'])} |")
    return lines


def markdown(report: dict[str, Any]) -> str:
    out: list[str] = []
    machine = report["machine"]
    out += [
        f"Run of {report['started']} ({report['duration_s']:.0f} s), `{report['command']}`.",
        "",
        f"Machine: {machine['cpu']} ({machine['cores']} cores), {machine['memory_gib']:.0f} GiB, "
        f"{machine['os']}; Python {machine['python']}, PostgreSQL {machine['postgresql']}, "
        f"Redis {machine['redis']}, wrk {machine['wrk']}. Load average {machine['load_before']} before, "
        f"{machine['load_after']} after. Server: gunicorn {report['server']['worker_class']}, "
        f"{report['server']['workers']} workers x {report['server']['threads']} threads; "
        f"{report['server']['databases']}.",
        "",
    ]
    if report.get("targets"):
        out += ["### Targets", "", *targets_table(report), ""]
    out += steady_and_ramp(report)
    out += cold_start(report)
    out += logins_beside_readers(report)
    mix = report.get("mix_paced")
    if mix:
        out += [
            f"### The mix at {mix['paced_at']:,.0f} req/s (paced, {mix['seconds']:.0f} s, "
            f"{mix['connections']} connections)",
            "",
            *endpoint_table(mix),
            "",
            _cpu_line(mix),
            "",
        ]
    sat = report.get("mix_saturation")
    if sat:
        out += [
            f"### The mix at saturation (closed loop, {sat['connections']} connections, "
            f"{sat['seconds']:.0f} s)",
            "",
            *endpoint_table(sat),
            "",
            _cpu_line(sat),
            "",
        ]
    during = report.get("during_mix")
    if during:
        out += ["### During the mix (saturation run)", ""]
        out += ["| view | requests | SQL queries / request | DB ms / request |", "|---|---|---|---|"]
        for row in during["queries_per_request"]:
            out.append(
                f"| `{row['method']} /{row['view']}` | {row['requests']:,} | {row['queries']:.2f} "
                f"| {row['db_ms']:.2f} |"
            )
        out += [
            "",
            "| cache kind | L1 hit ratio | L2 hit ratio (of L1 misses) | lookups | database loads |",
            "|---|---|---|---|---|",
        ]
        for row in during["cache"]:
            out.append(
                f"| {row['kind']} | {_pct(row['l1_hit'])} | {_pct(row['l2_hit'])} | {row['lookups']:,} "
                f"| {row['loads']:,} |"
            )
        db = during["database"]
        out += [
            "",
            f"Database: {db['primary_xact_per_s']:,.0f} transactions/s on the primary and "
            f"{db['replica_xact_per_s']:,.0f}/s on the replica (pg_stat_database deltas); the app ran "
            f"{db['statements_per_s']:,.0f} SQL statements/s ({db['statements_by_alias']}).",
            "",
            f"Replica share of SQL reads: {_pct(db.get('replica_read_share'))} by the app's counters "
            f'(`db_queries_total{{kind="read"}}`), {_pct(db.get("replica_xact_share"))} of transactions '
            f"by pg_stat_database; replay-position probes {db.get('position_probes_per_s', 0.0):,.1f}/s. "
            f"Routing decisions: {db.get('routed') or 'none'}.",
            "",
        ]
        answers = during.get("response_cache")
        if answers and answers["hit"] + answers["miss"]:
            share = answers["hit"] / (answers["hit"] + answers["miss"])
            out += [
                f"Response cache: {_pct(share)} of the API GETs it saw were answered from a kept answer "
                f"(without Django): {answers['hit']:,.0f}/s hits, {answers['miss']:,.0f}/s answered by "
                f"Django, of which {answers['stored']:,.0f}/s were kept.",
                "",
            ]
    floor = report.get("floor")
    if floor:
        out += [
            f"### Against the floor (bare WSGI app, same bytes, same gunicorn; {floor['rounds']} rounds of "
            f"{floor['seconds']:.0f} s each, floor and app back to back, {floor['connections']} connections)",
            "",
            "| endpoint | floor req/s | app req/s | app / floor (median) | spread of the ratio | app P99 ms "
            "| target |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in floor["endpoints"]:
            out.append(
                f"| `{PATHS.get(row['endpoint'], row['endpoint'])}` | {row['floor_rps']:,.0f} "
                f"| {row['app_rps']:,.0f} "
                f"| {100 * row['ratio']:.0f} % | {100 * row['ratio_min']:.0f}-{100 * row['ratio_max']:.0f} % "
                f"| {_ms(row['app_p99_ms'])} | ≥ {100 * row['target']:.0f} % {verdict(row['ok'])} |"
            )
        wrk = ", ".join(
            f"{row['endpoint']} {row.get('floor_wrk_cores', 0):.2f}" for row in floor["endpoints"]
        )
        out += [f"wrk's own CPU while driving the floor (cores): {wrk}.", ""]
    login = report.get("login")
    if login:
        out += [
            "### Login under concurrent logins (Argon2id "
            f"t={login['argon2']['time_cost']}, {login['argon2']['memory_kib'] // 1024} MiB, "
            f"p={login['argon2']['parallelism']})",
            "",
            "| concurrent logins | signed in/s | shed/s (503, burst) | P50 ms | P95 ms | P99 ms | errors "
            "| target P50 150 / P95 300 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in login["levels"]:
            out.append(
                f"| {row['concurrency']} | {row['rps']:.1f} | {row.get('shed_rps', 0.0):.1f} "
                f"| {_ms(row['p50_ms'])} | {_ms(row['p95_ms'])} "
                f"| {_ms(row['p99_ms'])} | {row['errors']} | {verdict(row['ok'])} |"
            )
        out.append("")
    ablations = report.get("ablations")
    if ablations:
        out += [
            "### Each optimisation, added one after the other (one run; each server measured against "
            "the same floor, back to back)",
            "",
            "| variant | differs from the shipped code | mix req/s | detail req/s | plans req/s | feed req/s "
            "| detail / floor | plans / floor | feed / floor |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in ablations:
            cells = [f"{row['mix_rps']:,.0f}"]
            cells += [f"{row['rps'].get(name, float('nan')):,.0f}" for name in ("detail", "plans", "feed")]
            cells += [
                f"{100 * row['ratio'].get(name, float('nan')):.0f} %" for name in ("detail", "plans", "feed")
            ]
            out.append(f"| {row['variant']} | {row['what']} | " + " | ".join(cells) + " |")
        chain = [row for row in ablations if not row.get("contrast")]
        out += ["", "| step (req/s after ÷ before) | mix | detail | plans | feed |", "|---|---|---|---|---|"]
        for before, after in itertools.pairwise(chain):
            steps = [_ratio(after["mix_rps"], before["mix_rps"])]
            steps += [_ratio(after["rps"].get(n), before["rps"].get(n)) for n in ("detail", "plans", "feed")]
            out.append(f"| {after['variant']} | " + " | ".join(steps) + " |")
        first, last = chain[0], chain[-1]
        total = [_ratio(last["mix_rps"], first["mix_rps"])]
        total += [_ratio(last["rps"].get(n), first["rps"].get(n)) for n in ("detail", "plans", "feed")]
        out.append("| **all together** | " + " | ".join(total) + " |")
        for row in ablations:
            if row.get("contrast"):
                cells = [_ratio(row["mix_rps"], last["mix_rps"])]
                cells += [_ratio(row["rps"].get(n), last["rps"].get(n)) for n in ("detail", "plans", "feed")]
                out.append(f"| {row['variant']} (vs after) | " + " | ".join(cells) + " |")
        out.append("")
    cpu = report.get("cpu_profile")
    if cpu and cpu.get("endpoints"):
        out += [
            f"### CPU per request (the mix replayed in one process, {cpu['requests']:,} requests, "
            f"{cpu['cpu_ms_per_request']:.2f} ms of CPU per request on average)",
            "",
            "| endpoint | CPU ms per request | share of the mix's CPU |",
            "|---|---|---|",
        ]
        out += [
            f"| `{PATHS.get(name, name)}` | {row['cpu_ms']:.2f} | {row['share_percent']:.1f} % |"
            for name, row in cpu["endpoints"].items()
        ]
        out += ["", "| area (cProfile self time, CPU clock) | share |", "|---|---|"]
        out += [f"| {row['area']} | {row['percent']:.1f} % |" for row in cpu["areas"][:12]]
        out += ["", "| function (self time) | share |", "|---|---|"]
        out += [f"| `{row['function']}` | {row['percent']:.1f} % |" for row in cpu["self"][:12]]
        out.append("")
    profile = report.get("profile")
    if profile and profile.get("samples"):
        out += [
            f"### Where the time goes (py-spy, {profile['samples']:,} samples of the workers during the mix)",
            "",
            "| area (innermost frame) | share of worker CPU |",
            "|---|---|",
        ]
        out += [f"| {row['area']} | {row['percent']:.1f} % |" for row in profile["areas"]]
        out += ["", "| on CPU itself (self time) | share |", "|---|---|"]
        out += [f"| `{row['function']}` | {row['percent']:.1f} % |" for row in profile["self"]]
        out.append("")
    cap = report.get("capacity")
    if cap:
        out += [
            "### Per core",
            "",
            f"The saturated mix served {cap['mix_rps']:,.0f} req/s with the server using "
            f"{cap['server_cores']:.2f} cores: **{cap['rps_per_server_core']:,.0f} req/s per core** of "
            f"gunicorn, so {cap['cpu_millicores_per_1000_rps']:,.0f} millicores per 1,000 req/s and "
            f"about {cap['pod_2_cores_rps']:,.0f} req/s for a pod with 2 cores to itself.",
            "",
        ]
    noise = report.get("noise")
    if noise:
        out += [f"Noise: {noise}", ""]
    return "\n".join(out)


def steady_and_ramp(report: dict[str, Any]) -> list[str]:
    """The steady state as a curve, and the new servers' ramps against it, each with the floor."""
    out: list[str] = []
    steady = report.get("steady")
    if steady:
        floor = steady.get("floor_rps")
        ratio = (
            f", {100 * steady['steady_rps'] / floor:.0f} % of the floor ({floor:,.0f} req/s)" if floor else ""
        )
        out += [
            f"### Steady state (the mix, closed loop, {steady['seconds']:.0f} s from the server's start)",
            "",
            f"Steady state (the last {len(steady['curve'][-3:]) * steady['bucket_s']:.0f} s): "
            f"**{steady['steady_rps']:,.0f} req/s**{ratio}; its first 15 s "
            f"{steady['first_15s_rps']:,.0f} req/s; {steady['errors']} errors. The floor is the bare WSGI "
            "app answering the same mix's bytes, right after.",
            "",
            "| seconds | " + " | ".join(f"{row['t']:.0f}" for row in steady["curve"]) + " |",
            "|---|" + "---|" * len(steady["curve"]),
            "| req/s | " + " | ".join(f"{row['rps']:,.0f}" for row in steady["curve"]) + " |",
            "",
        ]
    ramps = report.get("ramps")
    if ramps:
        floor = report.get("ramp_floor_rps")
        out += [
            "### A new server under load (its first 15 s against the steady state)",
            "",
            "A second server, the same configuration, is started while the first serves the mix "
            "(Redis warm); the first one's throughput alone over the 15 s before is the steady state. "
            "Once the new one answers `/ready` (polled every 0.3 s, 2 s timeout), the mix moves to it. "
            f"Each kind {ramps[0].get('rounds', 1)} times, alternating: medians of the rounds "
            "(each round's ratio in brackets), the per-second curve their mean."
            + (f" The floor under the same mix, right after: {floor:,.0f} req/s." if floor else ""),
            "",
            "| new server | ready after | steady state req/s | first 15 s req/s | first 15 s / steady "
            "| later req/s | first 15 s / floor | errors |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in ramps:
            to_floor = _pct(row["first_15s_rps"] / floor if floor else None)
            out.append(
                f"| {row['label']}: {row['what']} | {row['ready_after_s']:.1f} s "
                f"| {row['reference_rps']:,.0f} | {row['first_15s_rps']:,.0f} "
                f"| **{_pct(row['first_15s_ratio'])}** "
                f"({', '.join(f'{100 * r:.0f} %' for r in row.get('first_15s_ratios', []))}) "
                f"| {row['last_rps']:,.0f} | {to_floor} "
                f"| {row['errors']} |"
            )
        out += ["", "Its req/s in each of its first seconds:", ""]
        width = max(len(row["per_second"]) for row in ramps)
        out += [
            "| new server | " + " | ".join(str(i) for i in range(width)) + " |",
            "|---|" + "---|" * width,
        ]
        for row in ramps:
            cells = [f"{cell['rps']:,.0f}" for cell in row["per_second"]]
            out.append(f"| {row['label']} | " + " | ".join(cells + [""] * (width - len(cells))) + " |")
        out.append("")
    return out


def logins_beside_readers(report: dict[str, Any]) -> list[str]:
    rows = report.get("logins_beside_readers")
    if not rows:
        return []
    out = [
        "### Logins beside readers (a burst of 8 concurrent logins while 8 connections read)",
        "",
        "| server | readers alone req/s | readers beside the logins req/s | readers kept "
        "| reader P95 ms beside (detail / feed / stream / plans) | signed in/s | shed/s (503) "
        "| login P50 / P95 ms | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        p95 = row["readers_p95_beside_ms"]
        kept = row["readers_beside_rps"] / row["readers_alone_rps"] if row["readers_alone_rps"] else None
        out.append(
            f"| {row['label']} | {row['readers_alone_rps']:,.0f} | {row['readers_beside_rps']:,.0f} "
            f"| {_pct(kept)} | "
            + " / ".join(_ms(p95.get(name)) for name in ("detail", "feed", "stream", "plans"))
            + f" | {row['logins_rps']:.1f} | {row.get('logins_shed_rps', 0.0):.1f} "
            f"| {row['login_p50_ms']:.0f} / {row['login_p95_ms']:.0f} "
            f"| {row['errors']} |"
        )
    out.append("")
    return out


def cold_start(report: dict[str, Any]) -> list[str]:
    summary = report.get("cold_start")
    runs = (summary or {}).get("runs")
    if not runs:
        return []
    out = [
        "### A fresh process's first requests (CPU per request, one thread, thread CPU time)",
        "",
    ]
    if summary.get("steady_ms"):
        window = summary["window_s"]
        out += [
            f"Steady state: **{summary['steady_ms']:.2f} ms** of CPU per request (the last 3,000 requests "
            f"of both runs, which ran at the same time), so {window:.1f} s of CPU serve "
            f"{summary['steady_requests_in_window']:,} requests. In its first {window:.1f} s of CPU "
            "(15 s, or what the shorter run spent) a fresh process serves:",
            "",
            f"| process | import s CPU | warm-up before ready | requests in its first {window:.1f} s "
            "| of the steady state |",
            "|---|---|---|---|---|",
        ]
        for label in ("cold", "warmed"):
            run = runs.get(label)
            if not run or "first_window_requests" not in run:
                continue
            warm = (
                f"{run['warmup_cpu_s']:.2f} s CPU, {run['warmed_entries']:,} L1 entries"
                if run.get("warm")
                else "-"
            )
            out.append(
                f"| {label} | {run['import_cpu_s']:.2f} | {warm} | {run['first_window_requests']:,} "
                f"| **{_pct(run['first_window_ratio'])}** |"
            )
        out.append("")
    bucket = next(iter(runs.values()))["bucket"]
    shown = {label: run for label, run in runs.items() if len(run["cpu_ms_per_request"]) > 2}
    if shown:
        width = min(12, max(len(run["cpu_ms_per_request"]) for run in shown.values()))
        out += [
            f"CPU ms per request, per {bucket} requests (the first {width * bucket:,}):",
            "",
            "| process | " + " | ".join(f"{bucket * i + 1:,}-" for i in range(width)) + " |",
            "|---|" + "---|" * width,
        ]
        for label, run in shown.items():
            cells = [f"{value:.2f}" for value in run["cpu_ms_per_request"][:width]]
            out.append(f"| {label} | " + " | ".join(cells) + " |")
    profiled = next((run for run in runs.values() if run.get("areas")), None)
    if profiled:
        areas = ", ".join(f"{row['area']} {row['percent']:.0f} %" for row in profiled["areas"][:8])
        out += [
            "",
            f"Where a cold process's first {profiled['profile_requests']:,} requests go (cProfile, "
            f"{profiled['cpu_ms_per_request'][0]:.1f} ms per request under the profiler): {areas}.",
        ]
    out.append("")
    return out


def _ratio(after: float | None, before: float | None) -> str:
    """after / before as a factor (req/s: above 1.00x is faster)."""
    if not after or not before:
        return "-"
    return f"{after / before:.2f}x"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _cpu_line(result: dict[str, Any]) -> str:
    cpu = result["cpu"]
    return (
        f"CPU (cores busy on average): server {cpu['server_cores']}, load generator (wrk) "
        f"{cpu['load_generator_cores']}, whole machine {cpu['machine_busy_cores']} of 2."
    )
