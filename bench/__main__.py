"""python -m bench: measure servers side by side (llamaserve, llama-server, llama-cpp-python) and print ratios.

Examples:
  # an already running server
  python -m bench --url ours=http://127.0.0.1:8080
  # start llamaserve and llama.cpp's llama-server with identical settings, interleave, print ours/theirs
  python -m bench --llama-server /path/to/llama-server --python-peer --plot bench/results/plot.png
  # the prompt-cache workloads (bench/cache.py), each run on freshly started servers at their defaults
  python -m bench --llama-server /path/to/llama-server --workload multiturn,shared-prefix --rounds 2
  # speculative decoding (bench/speculative.py): plain, with n-gram drafts, llama-server with the same drafts
  python -m bench --llama-server /path/to/llama-server --workload grounded,no-reuse --concurrency 1,4 --rounds 3
  # the bundled model local and with its layers on two rpc-servers on loopback (ggml RPC)
  python -m bench --rpc 2 --concurrency 1,4 -np 4 --rounds 2
  # the soak (bench/soak.py): every kind of request for a long time, the process watched, every answer checked
  python -m bench --soak 20000 --concurrency 16 -np 4 [--llama-server /path/to/llama-server]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import time

import httpx

from bench.cache import WORKLOADS, CacheRun, print_cache_table
from bench.load import LevelResult, run_level, warm_up
from bench.soak import plot_soak, print_soak, soak
from bench.speculative import SpecRun, grounded, print_spec_table


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Launched:
    def __init__(self, name: str, cmd: list[str], api: str, health: str, log_dir: pathlib.Path):
        self.name, self.api = name, api
        self.port = _free_port()
        cmd = [c.replace("{port}", str(self.port)) for c in cmd]
        self.log_path = log_dir / f"{name}.log"
        print(f"starting {name}: {shlex.join(cmd)}", file=sys.stderr)
        self.proc = subprocess.Popen(cmd, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} exited ({self.proc.returncode}); see {self.log_path}")
            try:
                if httpx.get(self.url + health, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{name} did not become ready; see {self.log_path}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class RpcServer:
    """A `llamaserve rpc-server` started for --rpc N: stopped with the servers, never measured itself."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.name = proc, "rpc-server"

    stop = Launched.stop


def _cpu_seconds(pid: int) -> float:
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def settle(launched: list["Launched"], limit: float = 30.0) -> float:
    """Wait until no started server uses the CPU (under 5% over 0.5 s): one still generating for
    requests its clients gave up on would slow whichever server is measured next. Returns the wait."""
    t0 = time.time()
    while time.time() - t0 < limit:
        before = sum(_cpu_seconds(s.proc.pid) for s in launched)
        time.sleep(0.5)
        if sum(_cpu_seconds(s.proc.pid) for s in launched) - before < 0.025:
            break
    return time.time() - t0


def _results_dir() -> pathlib.Path:
    path = pathlib.Path("bench/results")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _server_flags(args, model: str, parallel: int | None = None) -> list[str]:
    """The flags llamaserve and llama-server both start with (-np only where given: else each one's default).
    --no-repack on both: native ggml builds crash in AMX kernels on CPUs that advertise AMX in some VMs."""
    flags = ["-m", model, "--host", "127.0.0.1", "--port", "{port}", "-c", str(args.ctx), "-t", str(args.threads),
             "-b", str(args.batch), "--no-repack"]
    return flags + (["-np", str(parallel)] if parallel is not None else [])


def _default_model() -> str:
    from llamaserve.config import bundled_model_path

    return str(bundled_model_path())


def engine_ceiling(batched_bench: str, model: str, args) -> dict[int, dict[str, float]]:
    """llama-batched-bench: the engine alone (no server) at the same settings. Per level, "tg": tok/s of
    its generation phase alone; "end_to_end": generated tokens over the whole run, prompts included,
    which is what a server's generation tok/s is measured against (it reads prompts too)."""
    levels = ",".join(str(c) for c in args.concurrency)
    cmd = [batched_bench, "-m", model, "-c", str(args.ctx), "-b", str(args.batch), "-ub", str(min(512, args.batch)),
           "-t", str(args.threads), "-npp", str(args.prompt_words), "-ntg", str(args.n_predict), "-npl", levels, "--no-repack",
           "--output-format", "jsonl"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    ceiling = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            ceiling[int(row["pl"])] = {"tg": float(row["speed_tg"]), "end_to_end": row["pl"] * row["tg"] / float(row["t"])}
    return ceiling


def print_table(results: list[LevelResult], ceiling: dict[int, dict[str, float]], ours: str, theirs: str | None) -> None:
    header = f"{'server':<20}{'conc':>5}{'tok/s':>9}{'req/s':>8}{'TTFT p50':>10}{'TTFT p90':>10}{'ITL p50':>9}{'ITL p99':>9}{'err':>5}"
    print(header)
    print("-" * len(header))
    for r in sorted(results, key=lambda r: (r.concurrency, r.server)):
        print(f"{r.server:<20}{r.concurrency:>5}{r.gen_tok_s:>9.1f}{r.req_s:>8.2f}{r.ttft_p50_ms:>10.1f}"
              f"{r.ttft_p90_ms:>10.1f}{r.itl_p50_ms:>9.2f}{r.itl_p99_ms:>9.2f}{r.errors:>5}")
    if ceiling:
        print("\nengine ceiling (llama-batched-bench, generated tok/s with prompts / generation phase alone): "
              + ", ".join(f"c={c}: {v['end_to_end']:.1f} / {v['tg']:.1f}" for c, v in sorted(ceiling.items())))
    if theirs:
        print(f"\nratios {ours} / {theirs} (tok/s: higher is better; TTFT, ITL: lower is better)")
        by = {(r.server, r.concurrency): r for r in results}
        for c in sorted({r.concurrency for r in results}):
            a, b = by.get((ours, c)), by.get((theirs, c))
            if not a or not b:
                continue
            line = (f"  c={c}: tok/s {a.gen_tok_s / b.gen_tok_s:.3f}  TTFT p50 {a.ttft_p50_ms / b.ttft_p50_ms:.3f}  "
                    f"ITL p50 {a.itl_p50_ms / b.itl_p50_ms:.3f}")
            if c in ceiling:
                line += f"  ours/ceiling {a.gen_tok_s / ceiling[c]['end_to_end']:.3f}"
            print(line)


def plot(results: list[LevelResult], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name in sorted({r.server for r in results}):
        rs = sorted((r for r in results if r.server == name), key=lambda r: r.concurrency)
        xs = [r.concurrency for r in rs]
        ax1.plot(xs, [r.gen_tok_s for r in rs], marker="o", label=name)
        ax2.plot(xs, [r.ttft_p50_ms for r in rs], marker="o", label=name)
    ax1.set(xlabel="concurrent clients", ylabel="generation tok/s", title="throughput")
    ax2.set(xlabel="concurrent clients", ylabel="TTFT p50 (ms)", title="time to first token", yscale="log")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", action="append", default=[], metavar="NAME=URL[,api]", help="an already running server (api: native|openai)")
    ap.add_argument("--llama-server", metavar="PATH", help="start llama.cpp's llama-server from PATH beside llamaserve")
    ap.add_argument("--batched-bench", metavar="PATH", help="llama-batched-bench, for the engine ceiling")
    ap.add_argument("--python-peer", action="store_true", help="also start llama-cpp-python's server (OpenAI API)")
    ap.add_argument("--no-ours", action="store_true", help="do not start llamaserve")
    ap.add_argument("--rpc", type=int, default=0, metavar="N",
                    help="also start llamaserve with the model's layers on N `llamaserve rpc-server` processes on loopback")
    ap.add_argument("-m", "--model", default=None, help="GGUF model (default: the bundled SmolLM2)")
    ap.add_argument("-np", "--parallel", type=int, default=8)
    ap.add_argument("-c", "--ctx", type=int, default=8192)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-b", "--batch", type=int, default=512)
    ap.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8])
    ap.add_argument("--prompt-words", type=int, default=60, help="prompt length (about this many tokens)")
    ap.add_argument("-n", "--n-predict", type=int, default=128)
    ap.add_argument("--requests", type=int, default=3, help="requests per client at each level")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the interleaved sweep this many times")
    ap.add_argument("--json", default="bench/results/latest.json", help="where to write the JSON results")
    ap.add_argument("--plot", default=None, metavar="PNG")
    ap.add_argument("--workload", default="levels", help="levels (the concurrency sweep), prompt-cache workloads: "
                    + ", ".join(WORKLOADS) + ", or speculative-decoding workloads: " + ", ".join(SPEC_WORKLOADS)
                    + " (comma-separated)")
    ap.add_argument("--spec-args", default=SPEC_ARGS, help=f"drafting flags for the speculative workloads (default: {SPEC_ARGS})")
    ap.add_argument("--soak", type=int, default=0, metavar="REQUESTS", help="run the soak benchmark with this many requests")
    args = ap.parse_args()
    if args.soak:
        run_soak(args)
        return
    workloads = [w for w in args.workload.split(",") if w]
    if workloads and all(w in SPEC_WORKLOADS for w in workloads):
        run_spec_workloads(args, workloads)
        return
    if args.workload != "levels":
        run_cache_workloads(args, [w for w in args.workload.split(",") if w])
        return

    model = args.model or _default_model()
    log_dir = _results_dir()
    common = _server_flags(args, model, args.parallel)
    servers: list[tuple[str, str, str]] = []  # (name, url, api)
    launched: list[Launched] = []
    try:
        if not args.no_ours:
            ours = Launched("llamaserve", [sys.executable, "-m", "llamaserve", *common], "native", "/health", log_dir)
            launched.append(ours)
            servers.append(("llamaserve", ours.url, "native"))
        if args.rpc:
            # the same model with its layers on N `llamaserve rpc-server` processes on loopback (ggml RPC)
            endpoints = []
            for i in range(args.rpc):
                port = _free_port()
                rpc_log = open(log_dir / f"rpc-server-{i}.log", "w")
                launched.append(RpcServer(subprocess.Popen([sys.executable, "-m", "llamaserve", "rpc-server", "-p", str(port),
                                                            "-t", str(args.threads)], stdout=rpc_log, stderr=subprocess.STDOUT)))
                endpoints.append(f"127.0.0.1:{port}")
            time.sleep(2)
            remote = Launched("llamaserve-rpc", [sys.executable, "-m", "llamaserve", *common, "--rpc", ",".join(endpoints)],
                              "native", "/health", log_dir)
            launched.append(remote)
            servers.append(("llamaserve-rpc", remote.url, "native"))
        if args.llama_server:
            theirs = Launched("llama-server", [args.llama_server, *common, "--no-webui"], "native", "/health", log_dir)
            launched.append(theirs)
            servers.append(("llama-server", theirs.url, "native"))
        if args.python_peer:
            peer = Launched("llama-cpp-python", [sys.executable, "-m", "bench.llama_cpp_python_peer", "--model", model, "--host", "127.0.0.1",
                                                 "--port", "{port}", "--n_ctx", str(args.ctx), "--n_threads", str(args.threads),
                                                 "--n_batch", str(args.batch)], "openai", "/v1/models", log_dir)
            launched.append(peer)
            servers.append(("llama-cpp-python", peer.url, "openai"))
        for spec in args.url:
            name, _, rest = spec.partition("=")
            url, _, api = rest.partition(",")
            servers.append((name, url, api or "native"))
        if not servers:
            ap.error("nothing to measure: give --url, or let it start llamaserve")

        for name, url, api in servers:
            asyncio.run(warm_up(url, api, model))
        results: list[LevelResult] = []
        for k in range(args.rounds):
            for c in args.concurrency:
                # interleaved: every server at this level before the next level; the order turns each
                # round so that a machine slowing down or speeding up favours no server in the medians
                for name, url, api in servers[k % len(servers):] + servers[: k % len(servers)]:
                    waited = settle(launched)
                    if waited > 1.0:
                        print(f"  (waited {waited:.1f} s for the servers to go idle)", file=sys.stderr)
                    r = asyncio.run(run_level(url, name, api, c, args.requests, args.prompt_words, args.n_predict, os.path.basename(model)))
                    print(f"  {name} c={c}: {r.gen_tok_s:.1f} tok/s, TTFT p50 {r.ttft_p50_ms:.1f} ms, ITL p50 {r.itl_p50_ms:.2f} ms, errors {r.errors}"
                          + (f" ({'; '.join(r.error_samples)})" if r.error_samples else "")
                          + (f", {r.retries} sent again after a closed connection" if r.retries else ""), file=sys.stderr)
                    results.append(r)
    finally:
        for s in launched:
            s.stop()

    paired = paired_ratios(results, "llamaserve", "llama-server") if args.rounds > 1 else {}
    if args.rounds > 1:  # keep the best round of each (server, level): the least disturbed by the machine
        best: dict[tuple[str, int], LevelResult] = {}
        for r in results:
            k = (r.server, r.concurrency)
            if k not in best or r.gen_tok_s > best[k].gen_tok_s:
                best[k] = r
        results = list(best.values())
    ceiling = engine_ceiling(args.batched_bench, model, args) if args.batched_bench else {}
    names = [s[0] for s in servers]
    print_table(results, ceiling, names[0], "llama-server" if "llama-server" in names and names[0] != "llama-server" else None)
    for c, rs in paired.items():
        print(f"  c={c}: paired by round (ours/theirs), median of {len(rs['tok_s'])}: " + ", ".join(
            f"{label} {rs['median_' + key]:.3f} [{', '.join(f'{x:.2f}' for x in rs[key])}]"
            for key, label in (("tok_s", "tok/s"), ("itl", "ITL p50"), ("ttft", "TTFT p50"))))
    if "llama-cpp-python" in names and "llamaserve" in names:
        by = {(r.server, r.concurrency): r for r in results}
        for c in args.concurrency:
            a, b = by.get(("llamaserve", c)), by.get(("llama-cpp-python", c))
            if a and b and b.gen_tok_s > 0:
                print(f"  c={c}: llamaserve / llama-cpp-python tok/s {a.gen_tok_s / b.gen_tok_s:.2f}")
    out = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "settings": {k: getattr(args, k) for k in ("parallel", "ctx", "threads", "batch", "concurrency", "prompt_words", "n_predict", "requests", "rounds")},
        "model": model,
        "engine_ceiling_tok_s": ceiling,
        "results": [r.as_dict() for r in results],
        "paired_ratios": paired,
    }
    pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.json).write_text(json.dumps(out, indent=2))
    print(f"results written to {args.json}", file=sys.stderr)
    if args.plot:
        plot(results, args.plot)


def run_cache_workloads(args, workloads: list[str]) -> None:
    """Each workload on a freshly started server per round, llamaserve and llama-server in turn (the
    order rotating), both at their defaults but for -m/-c/-t/-b: 4 slots sharing a unified KV cache, and
    llama-server's --cache-ram 8192 beside ours."""
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workload(s) {', '.join(unknown)}: choose from levels, {', '.join(WORKLOADS)}")
    model = args.model or _default_model()
    log_dir = _results_dir()
    common = _server_flags(args, model)
    servers = [("llamaserve", [sys.executable, "-m", "llamaserve", *common])]
    if args.llama_server:
        servers.append(("llama-server", [args.llama_server, *common, "--no-webui"]))
    runs: list[CacheRun] = []
    for workload in workloads:
        for k in range(args.rounds):
            for name, cmd in servers[k % len(servers):] + servers[: k % len(servers)]:
                launched = Launched(name, cmd, "native", "/health", log_dir)
                try:
                    r = asyncio.run(WORKLOADS[workload](launched.url, name))
                finally:
                    launched.stop()
                print(f"  {workload} {name}: evaluated {r.evaluated} of {r.prompt_tokens} prompt tokens, TTFT p50 "
                      f"{r.ttft_p50_ms:.0f} ms, wall {r.wall_s:.1f} s, errors {r.errors}"
                      + (f" ({'; '.join(r.error_samples)})" if r.error_samples else ""), file=sys.stderr)
                runs.append(r)
    print_cache_table(runs, "llamaserve", "llama-server" if args.llama_server else None)
    out = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "model": model,
           "settings": {"ctx": args.ctx, "threads": args.threads, "batch": args.batch, "rounds": args.rounds},
           "results": [r.as_dict() for r in runs]}
    pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.json).write_text(json.dumps(out, indent=2))
    print(f"results written to {args.json}", file=sys.stderr)


SPEC_WORKLOADS = ("grounded", "no-reuse")
SPEC_ARGS = "--spec-type ngram-simple --spec-ngram-simple-size-n 4 --spec-ngram-simple-size-m 16"


def run_spec_workloads(args, workloads: list[str]) -> None:
    """llamaserve without drafts, llamaserve with --spec-args, and (with --llama-server) llama-server with
    and without the same flags, all started once with identical settings; at each level every server
    in turn (the order rotating per round), waiting for all of them to be idle before each."""
    model = args.model or _default_model()
    log_dir = _results_dir()
    common = _server_flags(args, model, max(args.concurrency))
    spec = shlex.split(args.spec_args)
    configs = [("llamaserve", [sys.executable, "-m", "llamaserve", *common]),
               ("llamaserve+drafts", [sys.executable, "-m", "llamaserve", *common, *spec])]
    if args.llama_server:
        configs += [("llama-server", [args.llama_server, *common, "--no-webui"]),
                    ("llama-server+drafts", [args.llama_server, *common, "--no-webui", *spec])]
    launched: list[Launched] = []
    runs: list[SpecRun] = []
    try:
        for name, cmd in configs:
            launched.append(Launched(name, cmd, "native", "/health", log_dir))
        for s in launched:
            asyncio.run(warm_up(s.url, "native", model))
        for k in range(args.rounds):
            for workload in workloads:
                for c in args.concurrency:
                    for s in launched[k % len(launched):] + launched[: k % len(launched)]:
                        settle(launched)
                        if workload == "grounded":
                            # the same prompts for every server within a round, new ones each round
                            r = asyncio.run(grounded(s.url, s.name, c, args.requests, seed=1000 * k + 100 * c))
                        else:
                            lv = asyncio.run(run_level(s.url, s.name, "native", c, args.requests, args.prompt_words,
                                                       args.n_predict, os.path.basename(model)))
                            r = SpecRun(server=s.name, workload=workload, concurrency=c, requests=lv.requests,
                                        tokens=lv.tokens, wall_s=lv.wall_s, tok_s=lv.gen_tok_s, drafted=0, accepted=0,
                                        errors=lv.errors, error_samples=lv.error_samples)
                        print(f"  round {k + 1} {workload} {s.name} c={c}: {r.tok_s:.1f} tok/s, {r.tokens} tokens, drafted "
                              f"{r.drafted}, accepted {r.accepted}, errors {r.errors}"
                              + (f" ({'; '.join(r.error_samples)})" if r.error_samples else ""), file=sys.stderr)
                        runs.append(r)
    finally:
        for s in launched:
            s.stop()
    print(f"drafting flags: {args.spec_args}")
    print_spec_table(runs)
    out = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "model": model,
           "settings": {"ctx": args.ctx, "threads": args.threads, "batch": args.batch, "rounds": args.rounds,
                        "concurrency": args.concurrency, "requests": args.requests, "spec_args": args.spec_args},
           "results": [r.as_dict() for r in runs]}
    pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.json).write_text(json.dumps(out, indent=2))
    print(f"results written to {args.json}", file=sys.stderr)


def run_soak(args) -> None:
    """The soak on llamaserve, then (with --llama-server) on llama-server with the same settings, each
    freshly started, at the first --concurrency level."""
    model = args.model or _default_model()
    log_dir = _results_dir()
    common = _server_flags(args, model, args.parallel)
    configs = [("llamaserve", [sys.executable, "-m", "llamaserve", *common])]
    if args.llama_server:
        configs.append(("llama-server", [args.llama_server, *common, "--no-webui"]))
    reports = []
    for name, cmd in configs:
        launched = Launched(name, cmd, "native", "/health", log_dir)
        try:
            asyncio.run(warm_up(launched.url, "native", model))
            r = asyncio.run(soak(launched.url, launched.proc.pid, name, args.soak, args.concurrency[0], args.ctx // args.parallel,
                                 progress=lambda line: print(line, file=sys.stderr)))
        finally:
            launched.stop()
        print_soak(r)
        if plot_soak(r, str(log_dir / f"soak-{name}.png")):
            print(f"  plot: {log_dir / f'soak-{name}.png'}")
        reports.append(r.as_dict())
    pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.json).write_text(json.dumps({"model": model, "settings": vars(args), "soak": reports}, indent=2, default=str))
    print(f"results written to {args.json}", file=sys.stderr)


def paired_ratios(results: list[LevelResult], ours: str, theirs: str) -> dict[int, dict]:
    """Per level, ours/theirs of each round (the two ran back to back, so the machine's drift between
    rounds cancels out) and the median of those: a steadier figure than any single round on a noisy host."""
    by_level: dict[int, dict[str, list[LevelResult]]] = {}
    for r in results:
        by_level.setdefault(r.concurrency, {}).setdefault(r.server, []).append(r)
    out = {}
    for c, servers in by_level.items():
        pairs = list(zip(servers.get(ours, []), servers.get(theirs, [])))
        # theirs must have measured each figure (it divides); ours only its ITL (no tokens: tok/s 0 counts)
        pairs = [(a, b) for a, b in pairs if a.itl_p50_ms > 0 and all(getattr(b, f) > 0 for f in _PAIRED.values())]
        if pairs:
            out[c] = {}
            for key, field in _PAIRED.items():
                ratios = [getattr(a, field) / getattr(b, field) for a, b in pairs]
                out[c][key] = ratios
                out[c]["median_" + key] = statistics.median(ratios)
    return out


# paired_ratios' keys and the LevelResult field each compares
_PAIRED = {"tok_s": "gen_tok_s", "itl": "itl_p50_ms", "ttft": "ttft_p50_ms"}


if __name__ == "__main__":
    main()
