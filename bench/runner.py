"""`make bench`: every figure in one run, against one local broker of its own, then a table and a JSON file."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import machine, report
from bench.environment import MINISTRIES, REPO, SENDER, BenchHome, Item, bench_broker, prefill, sign_documents
from bench.latency import WARMUP, run_latency
from bench.processes import py_spy
from bench.profiling import summary
from bench.stages import stage_profile
from bench.throughput import PipeRun, RawPipe, RouterRun, run_router

TUNED_BATCH = 1_048_576  # producer batch.size for the raw pipe's best figure: 1 MiB
WARMUP_DOCS = 20  # routed (or piped) before the measured documents are published


class Progress:
    """One line per step, with the time since the start."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()

    def __call__(self, text: str) -> None:
        self.console.print(f"[dim]{time.monotonic() - self.started:6.1f} s[/dim]  {text}", highlight=False)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--docs", type=int, default=5000, help="documents per single-recipient run and raw pipe run")
    parser.add_argument("--fanout10-docs", type=int, default=1000, help="documents per fan-out-to-10 run")
    parser.add_argument("--fanout60-docs", type=int, default=200, help="documents per fan-out-to-60 run")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of raw pipe and single-recipient runs")
    parser.add_argument("--fanout-reps", type=int, default=2, help="repetitions of each fan-out run")
    parser.add_argument("--loads", default="100,500,2000", help="offered loads for latency, documents/s")
    parser.add_argument("--latency-seconds", type=float, default=10.0, help="seconds of paced sending per load")
    parser.add_argument("--stage-docs", type=int, default=1000, help="messages timed in the stage profile")
    parser.add_argument("--profile", action="store_true",
                        help="also run the router once more per workload under py-spy; summaries in bench/results/")
    parser.add_argument("--what-if", default="",
                        help="also run the single-recipient router with these prototype patch sets (bench.whatif), "
                             "interleaved with unpatched runs; sets separated by ';', patches by ',', "
                             "e.g. 'certificates;schemas;certificates,schemas'")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "latest.json")
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition: checks that it works")
    args = parser.parse_args(argv)
    if args.quick:
        args.docs, args.fanout10_docs, args.fanout60_docs = 1000, 200, 50
        args.reps, args.fanout_reps, args.latency_seconds, args.stage_docs = 1, 1, 3.0, 300
    return args


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    say = Progress(console)
    loads = [int(v) for v in args.loads.split(",") if v]
    run_id = dt.datetime.now().strftime("%H%M%S") + uuid.uuid4().hex[:4]
    results: dict[str, Any] = {"generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                               "machine": machine.describe()}
    results["machine"]["code"] = machine.code_state()
    var = REPO / "var"
    home_dir, log_dir = var / "bench-home", var / "bench-home" / "logs"
    broker = bench_broker(var / "bench-broker")
    say(f"starting a Kafka broker of our own under {broker.folder.relative_to(REPO)}")
    broker.up()
    try:
        broker_pid = broker.status().pid
        say(f"broker answering on {broker.bootstrap} (pid {broker_pid})")
        shutil.rmtree(home_dir, ignore_errors=True)
        home = BenchHome(home_dir, broker.bootstrap, run_id)
        home.provision()
        say("61 agencies (000.00.00.G22 and 60 ministries 000.00.NN.G01) with keys and certificates")

        pair = (SENDER, MINISTRIES[0])  # the single-recipient phases need only these two in their directory
        phases: dict[str, tuple[str, ...] | None] = {
            "signing": pair, **{f"single{rep}": pair for rep in range(1, args.reps + 1)},
            **{f"fanout{k}r{rep}": None for rep in range(1, args.fanout_reps + 1) for k in ("10", "60")},
            **{f"latency{load}": pair for load in loads}, "stages": pair, "stages60": None,
            **({"profilesingle": pair, "profilefanout60": None} if args.profile else {}),
            **{f"whatif{n}r{rep}": pair for n in range(len(_patch_sets(args)) + 1) for rep in (1, 2)
               if _patch_sets(args)},
        }
        home.prepare(phases)
        say(f"topics of {len(phases)} phases created, each under its own prefix with its directory and inboxes")
        signing = home.bus("signing")
        single_count = max(WARMUP_DOCS + args.docs, WARMUP + int(max(loads, default=0) * args.latency_seconds),
                           args.stage_docs)
        corpora: dict[str, list[Item]] = {}
        for name, count, recipients in (("1", single_count, (MINISTRIES[0],)),
                                        ("10", WARMUP_DOCS + args.fanout10_docs, MINISTRIES[:10]),
                                        ("60", WARMUP_DOCS + max(args.fanout60_docs, 100), ("group:ministries",))):
            started = time.perf_counter()
            corpora[name] = sign_documents(signing, count, tuple(recipients), f"{run_id}r{name}n")
            each = (time.perf_counter() - started) / count * 1e6
            say(f"signed {count:,} documents to {name} recipient(s) ({each:.0f} µs each, the gateway's cost)")
        record_bytes = len(corpora["1"][0].value)
        results["settings"] = {
            "record_bytes": record_bytes, "attachment_bytes": 1024, "docs": args.docs, "reps": args.reps,
            "fanout10_docs": args.fanout10_docs, "fanout60_docs": args.fanout60_docs,
            "fanout_reps": args.fanout_reps, "latency_seconds": args.latency_seconds,
            "ingress_partitions": signing.settings.ingress_partitions,
            "router_batch_size": signing.settings.router_batch_size, "signature": "ECDSA P-256 / SHA-256",
        }

        warm, single = corpora["1"][:WARMUP_DOCS], corpora["1"][WARMUP_DOCS:WARMUP_DOCS + args.docs]
        raw = RawPipe(home, signing.settings.ingress_partitions)
        pipes: dict[str, list[PipeRun]] = {"transactional_1MiB": [], "transactional_default_batch": [],
                                           "plain_1MiB": []}
        routers: list[RouterRun] = []
        ratios: list[float] = []
        for rep in range(1, args.reps + 1):
            # Interleaved, so that whatever else the machine does weighs on the pipe and the router alike.
            best = raw.run(warm, single, transactional=True, batch_size=TUNED_BATCH, broker_pid=broker_pid,
                           log_dir=log_dir)
            pipes["transactional_1MiB"].append(best)
            say(f"raw pipe, transactional, 1 MiB batches, {rep}/{args.reps}: {best.msgs_per_s:,.0f} msgs/s "
                f"(cores {best.cpu_cores})")
            routed = run_router(home, f"single{rep}", warm, single, [MINISTRIES[0]], broker_pid=broker_pid,
                                log_dir=log_dir)
            _check(routed)
            routers.append(routed)
            ratios.append(routed.docs_per_s / best.msgs_per_s)
            say(f"router, 1 recipient, {rep}/{args.reps}: {routed.docs_per_s:,.0f} docs/s, ratio "
                f"{ratios[-1]:.2f}, RSS {routed.rss_mb} MiB (cores {routed.cpu_cores})")
            for key, tx, batch in (("transactional_default_batch", True, None), ("plain_1MiB", False, TUNED_BATCH)):
                other = raw.run(warm, single, transactional=tx, batch_size=batch, broker_pid=broker_pid,
                                log_dir=log_dir)
                pipes[key].append(other)
                say(f"raw pipe, {key.replace('_', ' ')}, {rep}/{args.reps}: {other.msgs_per_s:,.0f} msgs/s")

        fanouts: dict[str, list[RouterRun]] = {"10": [], "60": []}
        fan_pipes: dict[str, list[PipeRun]] = {"10": [], "60": []}
        for rep in range(1, args.fanout_reps + 1):
            for k, docs in (("10", args.fanout10_docs), ("60", args.fanout60_docs)):
                warm_k, items_k = corpora[k][:WARMUP_DOCS], corpora[k][WARMUP_DOCS:WARMUP_DOCS + docs]
                piped = raw.run(warm_k, items_k, transactional=True, batch_size=TUNED_BATCH, fanout=int(k),
                                broker_pid=broker_pid, log_dir=log_dir)
                fan_pipes[k].append(piped)
                say(f"raw pipe copying to {k} topics, {rep}/{args.fanout_reps}: {piped.msgs_per_s:,.0f} msgs/s")
                routed = run_router(home, f"fanout{k}r{rep}", warm_k, items_k, list(MINISTRIES[:int(k)]),
                                    broker_pid=broker_pid, log_dir=log_dir)
                _check(routed)
                fanouts[k].append(routed)
                say(f"router, {k} recipients, {rep}/{args.fanout_reps}: {routed.deliveries_per_s:,.0f} "
                    f"deliveries/s ({routed.docs_per_s:,.0f} docs/s), RSS {routed.rss_mb} MiB "
                    f"(cores {routed.cpu_cores})")

        latency: dict[str, Any] = {}
        for load in loads:
            measured = run_latency(home, f"latency{load}", corpora["1"], MINISTRIES[0], load, args.latency_seconds,
                                   log_dir=log_dir)
            latency[str(load)] = measured.as_json()
            say(f"latency at {load:,} docs/s offered ({measured.achieved_per_s:,.0f} sent/s): p50 {measured.p50} "
                f"p95 {measured.p95} p99 {measured.p99} ms, {measured.received:,}/{measured.sent:,} received")

        stages_bus = home.bus("stages")
        stage_items = corpora["1"][:args.stage_docs]
        prefill(home.bootstrap, stages_bus.topics.ingress, stage_items)
        stages = stage_profile(stages_bus, stage_items, partitions=stages_bus.settings.ingress_partitions)
        say(f"stage profile, 1 recipient, {stages['messages']:,} messages: route {stages['route']} µs/message")
        fan_bus = home.bus("stages60")
        fan_items = corpora["60"][WARMUP_DOCS:WARMUP_DOCS + 100]
        prefill(home.bootstrap, fan_bus.topics.ingress, fan_items)
        stages60 = stage_profile(fan_bus, fan_items, partitions=fan_bus.settings.ingress_partitions)
        say(f"stage profile, 60 recipients, {stages60['messages']:,} messages: route {stages60['route']} µs/message")

        profiles: dict[str, str] = {}
        if args.profile:
            profiles = _profiles(home, corpora, args, broker_pid, log_dir, say)

        results.update(_figures(pipes, routers, ratios, fanouts, latency, stages, stages60))
        results["raw_fanout_msgs_per_s"] = {k: _median([p.msgs_per_s for p in v]) for k, v in fan_pipes.items()}
        results["fanout_to_raw_ratio"] = {
            k: round(statistics.median(r.deliveries_per_s / p.msgs_per_s for r, p in zip(fanouts[k], v, strict=True)),
                     3) if v else None for k, v in fan_pipes.items()}
        results["runs"]["raw_fanout"] = {k: [asdict(p) for p in v] for k, v in fan_pipes.items()}
        results["start_stalls"] = (sum(r.start_stalls for r in routers + fanouts["10"] + fanouts["60"])
                                   + sum(int(v.get("start_stalls", 0)) for v in latency.values()))
        results["profiles"] = profiles
        if _patch_sets(args):
            results["what_if"] = _what_if(home, warm, single, _patch_sets(args), broker_pid, log_dir, say)
    finally:
        broker.down()
        say("broker stopped")
    results["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    results["duration_s"] = round(time.monotonic() - say.started, 1)
    return results


def _patch_sets(args: argparse.Namespace) -> list[tuple[str, ...]]:
    return [tuple(p.strip() for p in group.split(",") if p.strip()) for group in args.what_if.split(";")
            if group.strip()]


def _what_if(home: BenchHome, warm: list[Item], single: list[Item], sets: list[tuple[str, ...]],
             broker_pid: int | None, log_dir: Path, say: Progress) -> dict[str, Any]:
    """The single-recipient router with each set of prototype patches, twice, interleaved with unpatched runs."""
    runs: dict[tuple[str, ...], list[float]] = {(): []}
    for rep in (1, 2):
        for n, patches in enumerate([(), *sets]):
            routed = run_router(home, f"whatif{n}r{rep}", warm, single, [MINISTRIES[0]], broker_pid=broker_pid,
                                log_dir=log_dir, patches=patches)
            _check(routed)
            runs.setdefault(patches, []).append(routed.docs_per_s)
            say(f"what if {'+'.join(patches) or 'unpatched'}, {rep}/2: {routed.docs_per_s:,.0f} docs/s "
                f"(cores {routed.cpu_cores})")
    base = _median(runs[()]) or 0.0
    return {"+".join(p) or "unpatched": {"docs_per_s": _median(v), "runs": v,
                                          "vs_unpatched": round((_median(v) or 0) / base, 2) if base else None}
            for p, v in runs.items()}


def _check(run: RouterRun) -> None:
    if not run.complete:
        raise RuntimeError(f"{run.phase}: {run.deliveries} deliveries for {run.docs} × {run.recipients} expected, "
                           f"{run.duplicates} duplicates")


def _profiles(home: BenchHome, corpora: dict[str, list[Item]], args: argparse.Namespace, broker_pid: int | None,
              log_dir: Path, say: Progress) -> dict[str, str]:
    if py_spy() is None:
        say("[yellow]--profile needs py-spy: .venv/bin/pip install py-spy[/yellow]")
        return {}
    out: dict[str, str] = {}
    folder = args.out.parent
    for name, k, docs in (("single", "1", args.docs), ("fanout60", "60", args.fanout60_docs)):
        raw_path = folder / f"profile-router-{name}.collapsed"
        items = corpora[k]
        routed = run_router(home, f"profile{name}", items[:WARMUP_DOCS], items[WARMUP_DOCS:WARMUP_DOCS + docs],
                            list(MINISTRIES[:int(k)]), broker_pid=broker_pid, log_dir=log_dir, profile_to=raw_path)
        text_path = folder / f"profile-router-{name}.txt"
        text_path.write_text(summary(raw_path) + "\n")
        out[name] = _shown(text_path)
        say(f"profiled the router, {name}: {routed.docs_per_s:,.0f} docs/s under py-spy; {out[name]}")
    return out


def _figures(pipes: dict[str, list[PipeRun]], routers: list[RouterRun], ratios: list[float],
             fanouts: dict[str, list[RouterRun]], latency: dict[str, Any], stages: dict[str, float | None],
             stages60: dict[str, float | None]) -> dict[str, Any]:
    router_runs = routers + fanouts["10"] + fanouts["60"]
    rss = {"single": _median([r.rss_mb for r in routers if r.rss_mb is not None]),
           "fanout10": _median([r.rss_mb for r in fanouts["10"] if r.rss_mb is not None]),
           "fanout60": _median([r.rss_mb for r in fanouts["60"] if r.rss_mb is not None])}
    variants = {key: _median([p.msgs_per_s for p in runs]) for key, runs in pipes.items()}
    router_median = _median([r.docs_per_s for r in routers])
    return {
        "raw_pipe_msgs_per_s": variants["transactional_1MiB"],
        "raw_pipe_basis": "transactional (one transaction per polled batch with the offsets, as the router), "
                          "producer batch.size 1 MiB: the best this client does with the router's guarantees",
        "raw_pipe_variants_msgs_per_s": variants,
        "router_docs_per_s": router_median,
        "router_to_raw_ratio": round(statistics.median(ratios), 3) if ratios else None,
        "router_to_raw_ratio_by_variant": {key: round(router_median / value, 3) if router_median and value else None
                                           for key, value in variants.items()},
        "fanout_deliveries_per_s": {k: _median([r.deliveries_per_s for r in runs]) for k, runs in fanouts.items()},
        "fanout_docs_per_s": {k: _median([r.docs_per_s for r in runs]) for k, runs in fanouts.items()},
        "latency_ms": latency,
        "stages_us": stages,
        "stages_fanout60_us": stages60,
        "router_rss_mb": max((r.rss_mb for r in router_runs if r.rss_mb is not None), default=None),
        "router_rss_mb_by_phase": rss,
        "cpu_cores": {
            "router_single": _median_cores([r.cpu_cores for r in routers]),
            "router_fanout10": _median_cores([r.cpu_cores for r in fanouts["10"]]),
            "router_fanout60": _median_cores([r.cpu_cores for r in fanouts["60"]]),
            "raw_pipe_transactional_1MiB": _median_cores([p.cpu_cores for p in pipes["transactional_1MiB"]]),
        },
        "runs": {"raw_pipe": {k: [asdict(p) for p in v] for k, v in pipes.items()},
                 "router_single": [asdict(r) for r in routers], "router_to_raw_ratios": [round(r, 3) for r in ratios],
                 "router_fanout": {k: [asdict(r) for r in v] for k, v in fanouts.items()}},
    }


def _median_cores(samples: list[dict[str, float]]) -> dict[str, float | None]:
    keys = sorted({k for sample in samples for k in sample})
    return {k: _median([s[k] for s in samples if k in s]) for k in keys}


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(width=None if Console().is_terminal else 120)
    args.out.parent.mkdir(parents=True, exist_ok=True)  # the profiles are written beside it during the run
    results = run(args, console)
    results["targets"] = report.targets(results)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    markdown = args.out.with_suffix(".md")
    markdown.write_text(report.markdown(results), encoding="utf-8")
    report.print_table(results, console)
    console.print(f"\nwritten: {_shown(args.out)} and {_shown(markdown)}")
    return 0
