# ruff: noqa: RUF001  (typographic multiplication sign and dashes are wanted in the Markdown)
"""BENCHMARKS.md and bench/results.json from one run of the suite (bench/run.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.run import TARGETS, fmt

# "Quickly", for the overload figure: a refused request learns it within a second.
OVERLOAD_REJECTION_P99_MS = 1000.0


def plus(s: dict[str, float] | None, unit: str = "", digits: int = 2) -> str:
    """An added figure with its sign ("n/a" when not measured)."""
    if not s:
        return "n/a"
    text = fmt(s, unit, digits)
    return text if text.startswith("-") else "+" + text


def _get(data: dict[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _median(data: Any) -> float | None:
    return data.get("median") if isinstance(data, dict) else None


def _verdict(ok: bool | None, short: str = "") -> str:
    if ok is None:
        return "not measured"
    return "**met**" if ok else f"**not met**{': ' + short if short else ''}"


def _short_by(value: float, target: float, *, higher_is_better: bool, unit: str) -> str:
    if higher_is_better:
        return f"{target - value:,.1f}{unit} ({100 * (target - value) / target:.0f} %) short"
    return f"{value - target:,.2f}{unit} over"


def target_rows(r: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(figure, target, gateway, direct path, verdict) for the targets table."""
    rows: list[tuple[str, str, str, str, str]] = []
    t = TARGETS

    rps = _get(r, "throughput", "gateway_rps")
    rps_m = _median(rps)
    ok = None if rps_m is None else rps_m >= t["chat_rps"]
    verdict = _verdict(
        ok,
        _short_by(rps_m, t["chat_rps"], higher_is_better=True, unit=" req/s")
        if rps_m is not None and not ok
        else "",
    )
    if ok and rps_m is not None:
        verdict += (
            " (stretch 1,000 " + ("met" if rps_m >= t["chat_rps_stretch"] else "not met") + ")"
        )
    rows.append(
        (
            "non-streamed chat, full gateway (auth + limit + usage), 50 connections",
            "≥ 800 req/s; stretch 1,000",
            f"{fmt(rps, ' req/s', 0)}; "
            f"{fmt(_get(r, 'throughput', 'gateway_cpu_ms'), ' ms', 2)} CPU/req",
            f"{fmt(_get(r, 'throughput', 'direct_rps'), ' req/s', 0)}; "
            f"gateway/direct {fmt(_get(r, 'throughput', 'ratio'), '', 3)}",
            verdict,
        )
    )

    ceiling = _get(r, "unpinned", "ratios", "unpinned_of_ceiling")
    ceiling_m = _median(ceiling)
    rows.append(
        (
            "non-streamed chat, 50 connections, unpinned (as `make run` serves it), "
            "share of the mandated stack's ceiling (bare adrf proxy, same run)",
            f"≥ {t['unpinned_of_ceiling']:g}",
            f"{fmt(_get(r, 'unpinned', 'unpinned', 'rps'), ' req/s', 0)}; "
            f"{fmt(ceiling, '', 2)} of the ceiling",
            f"ceiling {fmt(_get(r, 'unpinned', 'ceiling', 'rps'), ' req/s', 0)}",
            _verdict(
                None if ceiling_m is None else ceiling_m >= t["unpinned_of_ceiling"],
                f"{ceiling_m:.2f}" if ceiling_m is not None else "",
            ),
        )
    )

    for endpoint, title in (
        ("models", "models list"),
        ("chat", "chat"),
        ("embeddings", "embeddings"),
    ):
        lat = _get(r, "latency", endpoint) or {}
        p50, p99 = _median(lat.get("added_p50")), _median(lat.get("added_p99"))
        ok = (
            None
            if p50 is None or p99 is None
            else (p50 <= t["added_p50_ms"] and p99 <= t["added_p99_ms"])
        )
        short = []
        if p50 is not None and p50 > t["added_p50_ms"]:
            short.append(f"p50 {p50 - t['added_p50_ms']:.2f} ms over")
        if p99 is not None and p99 > t["added_p99_ms"]:
            short.append(f"p99 {p99 - t['added_p99_ms']:.2f} ms over")
        rows.append(
            (
                f"added latency, concurrency 1, {title}",
                "p50 ≤ 1.5 ms, p99 ≤ 5 ms",
                f"p50 {plus(lat.get('added_p50'), ' ms')}, p99 {plus(lat.get('added_p99'), ' ms')}",
                f"p50 {fmt(lat.get('direct_p50'), ' ms')}, p99 {fmt(lat.get('direct_p99'), ' ms')}",
                _verdict(ok, ", ".join(short)),
            )
        )

    ttft = _get(r, "latency", "chat-stream") or {}
    added = _median(ttft.get("added_p50"))
    ok = None if added is None else added <= t["added_ttft_c1_ms"]
    rows.append(
        (
            "added time to first token, concurrency 1 (median)",
            "≤ 2 ms",
            f"{plus(ttft.get('added_p50'), ' ms')} (p99 {plus(ttft.get('added_p99'), ' ms')})",
            f"{fmt(ttft.get('direct_p50'), ' ms')} (p99 {fmt(ttft.get('direct_p99'), ' ms')})",
            _verdict(
                ok,
                _short_by(added, t["added_ttft_c1_ms"], higher_is_better=False, unit=" ms")
                if added is not None and not ok
                else "",
            ),
        )
    )
    st = r.get("streaming") or {}
    # The verdict is the user-facing case: a backend producing tokens at a
    # realistic pace (10 ms each). The zero-delay backend saturates the worker.
    added = _median(st.get("ttft_c16_paced_added_p99"))
    ok = None if added is None else added <= t["added_ttft_c16_p99_ms"]
    rows.append(
        (
            "added time to first token, 16 concurrent streams (p99, backend at 10 ms per token, "
            "users arriving spread out)",
            "≤ 15 ms",
            f"{plus(st.get('ttft_c16_paced_added_p99'), ' ms')} (gateway p99 "
            f"{fmt(st.get('ttft_c16_paced_gateway_p99'), ' ms')})",
            f"p99 {fmt(st.get('ttft_c16_paced_direct_p99'), ' ms')}",
            _verdict(
                ok,
                _short_by(added, t["added_ttft_c16_p99_ms"], higher_is_better=False, unit=" ms")
                if added is not None and not ok
                else "",
            ),
        )
    )
    rows.append(
        (
            "the same against a zero-delay backend: the worker saturated, pure overhead "
            "(16 streams queue for one core; not the user-facing figure)",
            "— (no target)",
            f"{plus(st.get('ttft_c16_added_p99'), ' ms')} (gateway p99 "
            f"{fmt(st.get('ttft_c16_gateway_p99'), ' ms')})",
            f"p99 {fmt(st.get('ttft_c16_direct_p99'), ' ms')}",
            "informational",
        )
    )
    added = _median(st.get("gap_added_p99"))
    ok = None if added is None else added <= t["added_gap_p99_ms"]
    rows.append(
        (
            "chunks relayed, never buffered: added gap between chunks (p99, 10 ms token pace, "
            "16 streams)",
            "≤ 1 ms",
            f"{plus(st.get('gap_added_p99'), ' ms')} (gateway gap p50 "
            f"{fmt(st.get('gap_gateway_p50'), ' ms')}, "
            f"p99 {fmt(st.get('gap_gateway_p99'), ' ms')})",
            f"gap p50 {fmt(st.get('gap_direct_p50'), ' ms')}, "
            f"p99 {fmt(st.get('gap_direct_p99'), ' ms')}",
            _verdict(
                ok,
                _short_by(added, t["added_gap_p99_ms"], higher_is_better=False, unit=" ms")
                if added is not None and not ok
                else "",
            ),
        )
    )

    for kind, title, count_t, kb_t in (
        ("streams", "concurrent open streams", "streams", "stream_kb"),
        ("websockets", "idle WebSockets", "websockets", "websocket_kb"),
    ):
        held = _get(r, "held", kind)
        if not held:
            rows.append(
                (title, f"≥ {t[count_t]:,} at ≤ {t[kb_t]:.0f} KB each", "n/a", "—", _verdict(None))
            )
            continue
        ok = held["open"] >= t[count_t] and held["kb_each"] <= t[kb_t]
        short = []
        if held["open"] < t[count_t]:
            short.append(f"{t[count_t] - held['open']:,} connections short")
        if held["kb_each"] > t[kb_t]:
            short.append(f"{held['kb_each'] - t[kb_t]:.1f} KB each over")
        rows.append(
            (
                title,
                f"≥ {t[count_t]:,} at ≤ {t[kb_t]:.0f} KB each",
                f"{held['open']:,} of {held['requested']:,} open, {held['kb_each']:.1f} KB each "
                f"(RSS {held['rss_before_kb'] / 1024:.0f} → {held['rss_held_kb'] / 1024:.0f} MB)",
                "—",
                _verdict(ok, ", ".join(short)),
            )
        )

    idle = r.get("idle_rss_kb") or {}
    main_server = r.get("server", "uvicorn")
    if idle:
        value = idle.get(main_server, next(iter(idle.values()))) / 1024
        ok = value <= t["idle_mb"]
        others = ", ".join(f"{name} {kb / 1024:.0f} MB" for name, kb in idle.items())
        rows.append(
            (
                "idle memory per worker (RSS after warm-up)",
                "≤ 120 MB",
                f"{value:.0f} MB ({main_server}); {others}",
                "—",
                _verdict(
                    ok,
                    _short_by(value, t["idle_mb"], higher_is_better=False, unit=" MB")
                    if not ok
                    else "",
                ),
            )
        )

    rej = r.get("rejections") or {}
    for code, title in (
        ("401", "rejections: 401 (revoked key)"),
        ("429", "rejections: 429 (limit spent)"),
    ):
        row = rej.get(code)
        if not row:
            continue
        ratio = _median(row["ratio"])
        ok = None if ratio is None else ratio >= t["rejection_ratio"]
        rows.append(
            (
                title,
                "≥ 2 × the proxied rate",
                f"{fmt(row['rps'], ' req/s', 0)} = {fmt(row['ratio'], '×', 2)} the proxied rate",
                "—",
                _verdict(
                    ok,
                    f"{t['rejection_ratio'] - ratio:.2f}× short"
                    if ratio is not None and not ok
                    else "",
                ),
            )
        )

    disc = r.get("disconnect") or {}
    if disc:
        gw, direct = disc["gateway"], disc["direct"]
        ok = gw["max_ms"] <= t["disconnect_ms"]
        rows.append(
            (
                "backend request closed after the client disconnects",
                "≤ 100 ms",
                f"median {gw['median_ms']:.1f} ms, p95 {gw['p95_ms']:.1f} ms, "
                f"max {gw['max_ms']:.1f} ms "
                f"({gw['n']} streams)",
                f"median {direct['median_ms']:.1f} ms, max {direct['max_ms']:.1f} ms",
                _verdict(
                    ok,
                    _short_by(gw["max_ms"], t["disconnect_ms"], higher_is_better=False, unit=" ms")
                    if not ok
                    else "",
                ),
            )
        )

    over = r.get("overload") or {}
    if over:
        verdicts = []
        texts = []
        for name, case in over["cases"].items():
            if name.startswith("direct"):
                continue
            codes = case["codes"]
            bad = {c: n for c, n in codes.items() if c not in ("200", "429", "503")}
            fast = (case["rejected_p99_ms"] or 0) <= OVERLOAD_REJECTION_P99_MS
            ok_case = not bad and not case["errors"] and fast
            verdicts.append((name, ok_case))
            texts.append(
                f"{name}: {', '.join(f'{c}×{n}' for c, n in codes.items())}"
                + (f", errors {case['errors']}" if case["errors"] else "")
                + f"; rejections p99 {case['rejected_p99_ms'] or 0:.0f} ms"
                + ("" if ok_case else " (not met)")
            )
        defaults_ok = all(ok for name, ok in verdicts if "SHED" not in name)
        shed_ok = [ok for name, ok in verdicts if "SHED" in name]
        if defaults_ok:
            verdict = _verdict(True)
        elif shed_ok and all(shed_ok):
            verdict = _verdict(False, "with the defaults; **met** with GATEWAY_SHED_LAG_MS=250")
        else:
            verdict = _verdict(False)
        rows.append(
            (
                f"overload: {over['offered_rps']:.0f} req/s offered (2 × sustained), open loop, "
                f"{over['seconds']:g} s",
                "every request answered; only 200/429/503; rejections p99 ≤ 1 s",
                "; ".join(texts),
                "; ".join(
                    f"{', '.join(f'{c}×{n}' for c, n in case['codes'].items())}"
                    for name, case in over["cases"].items()
                    if name.startswith("direct")
                ),
                verdict,
            )
        )
    rows += _engine_rows(r.get("engine") or {}, t)
    rows += _flood_rows(r.get("flood") or {}, t)
    routing = r.get("routing") or {}
    if routing:
        added = routing["added_us"]
        rows.append(
            (
                "routing cost per request, 3 backends against 1",
                f"≤ {t['routing_added_us']:g} µs",
                f"{added:+.1f} µs ({routing['three_us']:.1f} µs)",
                f"{routing['one_us']:.1f} µs (1 backend)",
                _verdict(added <= t["routing_added_us"]),
            )
        )
    return rows


FLOOD_SCHEDULED = "with the scheduler"
FLOOD_FIFO = "without the scheduler (backend FIFO)"


def _engine_rows(engine: dict[str, Any], t: dict[str, float]) -> list[tuple[str, ...]]:
    if "direct" not in engine:
        return []
    ratio, added = engine["tokens_per_s_ratio"], engine["ttft_added_ms"]
    direct, gateway = engine["direct"], engine["gateway"]
    if "ttft_pairs" in engine:  # paired short answers (bench/engine.py)
        low, high = engine["ttft_added_p10_p90_ms"]
        ttft = (
            f"{added:+.1f} ms, median of {engine['ttft_pairs']} paired "
            f"{engine['ttft_pair_tokens']}-token answers (p10 {low:+.1f}, p90 {high:+.1f}); "
            f"the long rounds: paired {engine['ttft_rounds_paired_ms']:+.1f} ms, medians "
            f"{gateway['ttft_ms']:.1f} against {direct['ttft_ms']:.1f} ms"
        )
    else:
        ttft = f"{added:+.1f} ms ({gateway['ttft_ms']:.1f} ms)"
    return [
        (
            "embedded engine, decode speed through the gateway (streamed, greedy)",
            f"≥ {t['engine_tokens_ratio']:g} of direct",
            f"{gateway['tokens_per_s']:.1f} tokens/s; {ratio:.3f} of direct",
            f"{direct['tokens_per_s']:.1f} tokens/s (llama.cpp called in-process)",
            _verdict(ratio >= t["engine_tokens_ratio"]),
        ),
        (
            "embedded engine, added time to first token",
            f"≤ {t['engine_ttft_added_ms']:g} ms",
            ttft,
            f"{direct['ttft_ms']:.1f} ms",
            _verdict(added <= t["engine_ttft_added_ms"]),
        ),
    ]


def _flood_rows(flood: dict[str, Any], t: dict[str, float]) -> list[tuple[str, ...]]:
    fair, fifo = flood.get(FLOOD_SCHEDULED), flood.get(FLOOD_FIFO)
    if not fair or not fifo:
        return []
    goal_ms = t["flood_b_p95_service_times"] * flood["service_ms"]
    return [
        (
            "fair scheduler: B's p95 while A floods one slot (200 requests at concurrency 50)",
            f"≤ {goal_ms:g} ms ({t['flood_b_p95_service_times']:g} service times)",
            f"{fair['b_p95_ms']:,.0f} ms",
            f"{fifo['b_p95_ms']:,.0f} ms without the scheduler (backend FIFO)",
            _verdict(fair["b_p95_ms"] <= goal_ms),
        ),
        (
            "fair scheduler: the slot's busy share while work is queued; throughput",
            f"≥ {t['flood_slot_busy']:.0%}; not lower than FIFO",
            f"{fair['slot_busy']:.0%}; {fair['requests_per_s']} req/s",
            f"{fifo['slot_busy']:.0%}; {fifo['requests_per_s']} req/s",
            _verdict(
                fair["slot_busy"] >= t["flood_slot_busy"]
                and fair["requests_per_s"] >= fifo["requests_per_s"]
            ),
        ),
    ]


def _table(header: list[str], rows: list[list[str]] | list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render(results: dict[str, Any], meta: dict[str, Any], analysis: str) -> str:
    r = results
    out = [
        "# Benchmarks",
        "",
        f"Written by `{meta['command']}` on {meta['date']} (git {meta['commit']}). "
        "Do not edit by hand: run it again.",
        "",
        "What the gateway adds on top of Ollama, measured against the project's fake Ollama "
        "(`tests/fake_ollama.py`, a separate process; zero delay between tokens unless a "
        "figure says otherwise) **side by side with the direct path** (the same load sent "
        "straight to the fake's `/api/...`). Gateway and direct runs alternate (ABAB); "
        f"each figure is the median of {meta['repeats']} repeats with min–max in brackets.",
        "",
        "## Setup",
        "",
        f"- Machine: {meta['nproc']} cores ({meta['cpu']}), {meta['memory']} memory, {meta['os']}.",
        f"- Pinning: {meta['pinning']}",
        f"- Gateway: one `{r.get('server')}` worker process (what `make run` serves; uvicorn "
        "with uvloop and httptools, no access log; daphne with `-v 0`), SQLite "
        "database in a temporary folder, a key from `manage.py create_api_key` with a limit "
        "of 1,000,000,000 requests/minute (never throttles), all features on "
        "(`GATEWAY_AUTH_ENABLED`, `GATEWAY_RATE_LIMITS_ENABLED`, `GATEWAY_USAGE_ENABLED`), "
        "`RATE_LIMIT_UNAUTHENTICATED` raised so that 401s stay 401s, `DEBUG=false`.",
        "- Load generators: `wrk` (Debian, one thread, `bench/wrk.lua` for POST bodies and "
        "status counts) for throughput; the project's `bench.loadtest` tool (asyncio + "
        "aiohttp, a steady pool of workers, or an open loop at a fixed rate) for latency, "
        "time to first token, gaps between chunks, overload; aiohttp clients for held "
        "streams and WebSockets.",
        f"- Python {meta['python']}; "
        + ", ".join(f"{name} {version}" for name, version in meta["packages"].items())
        + ".",
        "",
        "## Targets",
        "",
        "Per worker process, one core, zero-delay backend unless the row names a pace. "
        "The issue's rule: zero delay for pure overhead, realistic profiles for user-facing "
        "numbers. Time to first token at 16 streams is user-facing, so its verdict is taken "
        "against a backend making a token every 10 ms (100 tokens/s, faster than a 14B model "
        "here: more chunks for the gateway to relay than real users cause); against the "
        "zero-delay backend 16 streams keep the one core at 100 % and a new stream waits its "
        "turn behind the others' chunks, which measures saturation, not what a user waits.",
        "",
        _table(["figure", "target", "gateway", "direct path", "verdict"], target_rows(r)),
        "",
    ]
    feats = r.get("features") or {}
    if feats:
        rows = []
        previous = None
        for name, row in feats.items():
            cpu = _median(row["cpu_ms"])
            delta = "" if previous is None or cpu is None else f"{cpu - previous:+.2f} ms"
            rows.append([name, fmt(row["rps"], "", 0), fmt(row["cpu_ms"], " ms", 2), delta])
            previous = cpu
        out += [
            "## The cost of each feature",
            "",
            "Non-streamed chat, 50 connections, wrk; each step adds one feature to the one "
            "above (`+ usage records` is the full gateway; `+ Redis store` moves the rate-limit "
            "counters and the cache to Redis). CPU per request is the gateway process's CPU "
            "time over the run divided by the requests it answered.",
            "",
            _table(["gateway", "req/s", "CPU per request", "Δ CPU vs the step above"], rows),
            "",
            f"Direct path over the same runs: {fmt(r.get('features_direct_rps'), ' req/s', 0)}."
            + (f" {r['features_note']}" if r.get("features_note") else ""),
            "",
        ]
    unpinned = r.get("unpinned") or {}
    if unpinned:
        rows = [
            [
                label,
                fmt(_get(unpinned, name, "rps"), "", 0),
                fmt(_get(unpinned, name, "cpu_ms"), " ms", 2),
                fmt(_get(unpinned, name, "c1_mean_ms"), " ms"),
                plus(_get(unpinned, name, "added_c1_mean_ms"), " ms"),
            ]
            for name, label in (
                ("pinned", "gateway, pinned to core 0 (the other sections)"),
                ("unpinned", "gateway, unpinned (`make run`)"),
                ("ceiling", "ceiling: bare adrf proxy, unpinned (bench/ceiling)"),
                ("direct", "direct path (the fake Ollama)"),
            )
        ]
        out += [
            "## As `make run` serves it: unpinned, against the stack's ceiling",
            "",
            "Non-streamed chat: wrk at 50 connections (rate, CPU per request) and one "
            "client at a time (mean latency, and what it adds to the direct path), the four "
            "in turn in every repeat. `make run` pins nothing, so the gateway's event loop "
            "and the threads it hands sync work to may run on different cores. The ceiling "
            "is the mandated stack alone (Django's stock ASGI handler, an adrf viewset, "
            "the same `ollama` client over httpx-aiohttp, no middleware, keys, limits or "
            "usage records) under the same uvicorn; the wrk client and the fake stay on "
            "core 1.",
            "",
            _table(["server", "req/s", "CPU per request", "c=1 mean", "c=1 added"], rows),
            "",
            "Unpinned gateway / ceiling: "
            f"{fmt(_get(unpinned, 'ratios', 'unpinned_of_ceiling'), '', 2)} "
            f"(goal ≥ {TARGETS['unpinned_of_ceiling']:g}); unpinned / pinned: "
            f"{fmt(_get(unpinned, 'ratios', 'unpinned_of_pinned'), '', 2)}.",
            "",
        ]
    speedups = r.get("speedups") or {}
    if speedups:
        rows = [
            [
                f"{row['where']} ({row['private_api']})",
                "streamed chat" if row["load"] == "stream" else "chat",
                f"{fmt(row.get('shipped_rps'), '', 0)} / {fmt(row.get('undone_rps'), '', 0)}",
                plus(
                    {k: 100 * v for k, v in row["gain"].items()} if row.get("gain") else None,
                    " %",
                    1,
                ),
                f"{fmt(row.get('shipped_cpu_ms'), ' ms')} / {fmt(row.get('undone_cpu_ms'), ' ms')}",
                fmt(row.get("cpu_saved_ms"), " ms"),
                f"{fmt(row.get('held_kb_shipped'), ' KB', 1)} / "
                f"{fmt(row.get('held_kb_undone'), ' KB', 1)}"
                if row.get("held_kb_shipped")
                else "—",
            ]
            for row in speedups.values()
        ]
        out += [
            "## Speed-ups on private APIs",
            "",
            "Each speed-up that relies on a library's private API is kept only with a pinned "
            "version and a guard test (`tests/test_private_api_guards.py`). Its gain, A/B in "
            "this run: the gateway as shipped against the same gateway with that one "
            "speed-up undone (`bench/undone.py`), both unpinned, wrk at 50 connections "
            "(streamed chat: a 64-token answer, zero delay); for the stream speed-ups also "
            "the memory per held stream (one fresh gateway each, streams held open behind a "
            "slow backend, a fifth of the held-streams count, one round). On a machine "
            "busy with other work, read the CPU per request: the rates then follow how the "
            "kernel shares the cores, and a variant with more threads gets a larger share.",
            "",
            _table(
                [
                    "speed-up (private API)",
                    "load",
                    "req/s shipped / undone",
                    "gain (req/s)",
                    "CPU per request shipped / undone",
                    "CPU saved per request",
                    "RSS per held stream shipped / undone",
                ],
                rows,
            ),
            "",
        ]
    servers = r.get("servers") or {}
    if servers:
        idle = r.get("idle_rss_kb") or {}
        rows = [
            [
                name,
                fmt(row.get("rps"), "", 0),
                fmt(row.get("cpu_ms"), " ms", 2),
                fmt(row.get("c1_p50_ms"), " ms"),
                fmt(row.get("c1_p99_ms"), " ms"),
                f"{idle.get(name, 0) / 1024:.0f} MB" if idle.get(name) else "n/a",
            ]
            for name, row in servers.items()
        ]
        out += [
            "## Servers",
            "",
            "The full gateway under each ASGI server (one worker, core 0): chat at 50 "
            "connections (wrk), chat latency at concurrency 1 (loadtest), idle memory. "
            "uvicorn runs with uvloop and httptools. All three serve WebSockets.",
            "",
            _table(["server", "req/s", "CPU per request", "c=1 p50", "c=1 p99", "idle RSS"], rows),
            "",
        ]
    lat = r.get("latency") or {}
    if lat:
        rows = []
        for endpoint, row in lat.items():
            what = "time to first token" if endpoint == "chat-stream" else "latency"
            rows.append(
                [
                    f"{endpoint} ({what})",
                    fmt(row.get("gateway_p50"), " ms"),
                    fmt(row.get("gateway_p99"), " ms"),
                    fmt(row.get("direct_p50"), " ms"),
                    fmt(row.get("direct_p99"), " ms"),
                    plus(row.get("added_p50"), " ms"),
                    plus(row.get("added_p99"), " ms"),
                ]
            )
        out += [
            "## Latency at concurrency 1",
            "",
            "One client, one request at a time (loadtest tool, "
            f"{meta['latency_requests']} requests per run). Added = gateway − direct, "
            "computed per repeat.",
            "",
            _table(
                [
                    "endpoint",
                    "gateway p50",
                    "gateway p99",
                    "direct p50",
                    "direct p99",
                    "added p50",
                    "added p99",
                ],
                rows,
            ),
            "",
        ]
    over = r.get("overload") or {}
    if over:
        rows = [
            [
                name,
                str(case["total"]),
                ", ".join(f"{c}×{n}" for c, n in case["codes"].items())
                + (f", errors {case['errors']}" if case["errors"] else ""),
                f"{case['answered_rps']:.0f}",
                f"{case['p50_ms']:.1f} ms" if case["p50_ms"] else "-",
                f"{case['p99_ms']:.1f} ms" if case["p99_ms"] else "-",
                f"{case['rejected_p99_ms']:.1f} ms" if case["rejected_p99_ms"] else "-",
            ]
            for name, case in over["cases"].items()
        ]
        out += [
            "## Overload",
            "",
            f"An open loop offers {over['offered_rps']:.0f} requests/s (twice the sustained "
            f"chat rate) for {over['seconds']:g} s, whatever the answers' pace (at most 4,000 "
            "in flight). Rate limit: a key admitting a quarter of them. Backend queue full: "
            "the fake answers 4 at a time, 50 ms each, and queues 16 (then answers 503, as "
            "Ollama does). The gateway's own cap (`GATEWAY_MAX_PENDING_REQUESTS`, 256) "
            "refuses what it cannot start with 503 `backend_busy` at once; with "
            "`GATEWAY_SHED_LAG_MS=250` (off by default) it also refuses while its event loop "
            "runs more than 250 ms late. "
            f"Afterwards the models list answered with p99 {over['after_models_p99_ms']:.1f} ms "
            f"({over['after_failed']} failed).",
            "",
            _table(
                ["case", "requests", "answers", "answered/s", "p50", "p99", "rejections p99"], rows
            ),
            "",
        ]
    held = r.get("held") or {}
    if held:
        out += ["## Held connections", ""]
        streams = held.get("streams")
        if streams:
            out.append(
                f"- Streams: {streams['open']:,} of {streams['requested']:,} chat streams open "
                f"at once (each read up to its first event, then kept; the fake sends a token "
                f"every 2 s), opened in {streams['seconds_to_open']:.0f} s; failures "
                f"{streams['failures'] or 'none'}; {streams['sample_still_streaming']} of a "
                f"sample of {streams['sample_size']} were still streaming afterwards. Gateway "
                f"RSS {streams['rss_before_kb'] / 1024:.0f} → "
                f"{streams['rss_held_kb'] / 1024:.0f} MB: {streams['kb_each']:.1f} KB per "
                "stream (client and backend connection included)."
            )
        sockets = held.get("websockets")
        if sockets:
            out.append(
                f"- WebSockets: {sockets['open']:,} of {sockets['requested']:,} idle chat "
                f"connections open at once (key in the Authorization header, each its own "
                f"session), opened in {sockets['seconds_to_open']:.0f} s; failures "
                f"{sockets['failures'] or 'none'}. Gateway RSS "
                f"{sockets['rss_before_kb'] / 1024:.0f} → {sockets['rss_held_kb'] / 1024:.0f} "
                f"MB: {sockets['kb_each']:.1f} KB per connection."
            )
        out.append("")
    engine = r.get("engine") or {}
    if engine:
        out += ["## Embedded engine", ""]
        if "direct" in engine:
            mib = 1024 * 1024
            out += [
                f"`python -m bench.engine`: SmolLM2-135M, {engine['rounds']} rounds of a "
                f"{engine['max_tokens']}-token streamed answer, greedy, {engine['threads']} "
                "threads, alternating llama.cpp called in this process (direct) and "
                "`POST /v1/chat/completions` through a `make run`-style gateway (unpinned, "
                "no Ollama); medians."
                + (
                    " The added time to first token: the median of "
                    f"{engine['ttft_pairs']} paired differences of "
                    f"{engine['ttft_pair_tokens']}-token answers, direct then gateway, after "
                    "those rounds (the direct path's own first token moves by several ms "
                    "between rounds, which two medians of a few rounds do not cancel)."
                    if "ttft_pairs" in engine
                    else ""
                ),
                "",
                _table(
                    ["path", "time to first token", "tokens/s", "tokens"],
                    [
                        [
                            name,
                            f"{engine[name]['ttft_ms']:.1f} ms",
                            f"{engine[name]['tokens_per_s']:.1f}",
                            f"{engine[name]['tokens']:.0f}",
                        ]
                        for name in ("direct", "gateway")
                    ],
                ),
                "",
                f"Gateway server RSS: {engine['server_rss_idle_bytes'] / mib:.0f} MiB idle, "
                f"{engine['server_rss_loaded_bytes'] / mib:.0f} MiB with both models loaded "
                "(after one chat and one embedding).",
                "",
            ]
        else:
            out += [engine.get("note", ""), ""]
    flood = r.get("flood") or {}
    if flood:
        from bench.flood import table as flood_table

        out += [
            "## Fair scheduler: the flood",
            "",
            "`python -m bench.flood`: one backend slot (the fake Ollama with "
            f"`--max-concurrent 1`, {flood['service_ms']:g} ms a request). Key A sends "
            f"{flood['a_requests']} non-streamed chats at concurrency {flood['a_concurrency']}; "
            "key B sends one every 0.5 s meanwhile. Gateways unpinned, as `make run` serves. "
            "Slot busy: the backend's service time over the run's wall time.",
            "",
            flood_table(flood),
            "",
        ]
    coalesce = r.get("coalesce") or {}
    if coalesce:
        from bench.coalesce import table as coalesce_table

        out += [
            "## Embedding coalescing",
            "",
            "`python -m bench.coalesce`: a gateway as `make run` serves it (unpinned) in "
            "front of one slot of the fake Ollama whose embed call costs more per call than "
            "per input, as a GPU's does; coalescing on and off in the same run.",
            "",
            coalesce_table(coalesce),
            "",
        ]
    prof = r.get("profile") or {}
    if prof.get("inclusive"):
        out += [
            "## Profile",
            "",
            f"py-spy, {prof['samples']} samples of the {r.get('server')} worker during the "
            "chat run at 50 connections (all threads; share of samples).",
            "",
            _table(
                ["inclusive (where the time goes, with callees)", "%"],
                [[f"`{frame}`", f"{share}"] for frame, share in prof["inclusive"]],
            ),
            "",
            _table(
                ["self (the frame on top)", "%"],
                [[f"`{frame}`", f"{share}"] for frame, share in prof["self"]],
            ),
            "",
        ]
    elif prof.get("note"):
        out += ["## Profile", "", prof["note"], ""]
    out += ["## What limits the rest, and what was tried", "", analysis.strip(), ""]
    if meta.get("errors"):
        out += ["## Sections that failed in this run", ""]
        for section, error in meta["errors"].items():
            out += [f"### {section}", "", "```", error.strip(), "```", ""]
    return "\n".join(out)


def results_json(results: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The machine-readable file the API docs read (apis/schema.py), plus every figure."""
    rows: list[dict[str, Any]] = []

    def row(endpoint: str, concurrency: int, model: str = "qwen2.5:14b", **figures: Any) -> None:
        rows.append({"model": model, "endpoint": endpoint, "concurrency": concurrency, **figures})

    lat = results.get("latency") or {}
    thr = results.get("throughput") or {}
    st = results.get("streaming") or {}
    if lat.get("chat"):
        row(
            "chat",
            1,
            latency_p50_ms=_median(lat["chat"].get("gateway_p50")),
            latency_p99_ms=_median(lat["chat"].get("gateway_p99")),
        )
    if thr:
        row(
            "chat",
            50,
            requests_per_second=_median(thr.get("gateway_rps")),
            latency_p50_ms=_median(thr.get("gateway_p50_ms")),
            latency_p99_ms=_median(thr.get("gateway_p99_ms")),
        )
    if lat.get("chat-stream"):
        row("chat-stream", 1, ttft_p50_ms=_median(lat["chat-stream"].get("gateway_p50")))
    if st:
        row("chat-stream", 16, ttft_p99_ms=_median(st.get("ttft_c16_gateway_p99")))
        if st.get("ttft_c16_paced_gateway_p99"):
            # The docs table has no backend column: the endpoint cell says it.
            row(
                "chat-stream (backend at 10 ms per token)",
                16,
                ttft_p99_ms=_median(st.get("ttft_c16_paced_gateway_p99")),
            )
    if lat.get("embeddings"):
        row(
            "embeddings",
            1,
            model="mxbai-embed-large",
            latency_p50_ms=_median(lat["embeddings"].get("gateway_p50")),
        )
    return {
        "backend": "fake Ollama, zero delay unless the row says",
        "date": meta["date"][:10],
        "results": rows,
        "meta": meta,
        "figures": results,
    }


def write(
    results: dict[str, Any], meta: dict[str, Any], analysis: str, markdown: Path, json_path: Path
) -> None:
    markdown.write_text(render(results, meta, analysis))
    json_path.write_text(json.dumps(results_json(results, meta), indent=1, default=str) + "\n")
