"""Speculative-decoding workloads (python -m bench --workload grounded): generation speed with and without
drafts, and llama-server with the same drafting settings, in one run.

grounded: the kind of request n-gram drafts exist for. Each prompt holds a passage of about 300 tokens
(code or prose) and asks for it back with one small change, so most of the answer is already in the
prompt. Greedy, non-streaming /v1/chat/completions, max_tokens 400; C clients, R requests each, every
request on a different passage variant (no two prompts alike, so no server answers from a cached
prompt). Per run: generated tokens over wall time, drafted and accepted tokens (timings.draft_n,
timings.draft_n_accepted; both servers report them).

no-reuse: bench/load.py's standard workload (distinct prompts, ignore_eos, 128 tokens) on the same
servers: text drafts cannot predict, where drafting must back off and cost nothing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field

import httpx

# Passages written for this benchmark; {name} is replaced per request so that every prompt differs.
PASSAGES = [
    '''def {name}(path, limit=100):
    """Read a log file and count how often each level appears in its first lines."""
    counts = {{"debug": 0, "info": 0, "warning": 0, "error": 0}}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if number >= limit:
                break
            parts = line.split(" ", 2)
            if len(parts) < 3:
                continue
            level = parts[1].strip("[]").lower()
            if level in counts:
                counts[level] += 1
    total = sum(counts.values())
    if total == 0:
        return {{}}
    return {{level: count / total for level, count in counts.items()}}


def summarize(report):
    lines = []
    for level, share in sorted(report.items(), key=lambda item: -item[1]):
        lines.append(f"{{level:>8}}: {{share:6.1%}}")
    return "\\n".join(lines)
''',
    '''class {name}:
    """A small queue that keeps the most recent items and drops the oldest ones first."""

    def __init__(self, capacity):
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.items = []
        self.dropped = 0

    def push(self, item):
        self.items.append(item)
        if len(self.items) > self.capacity:
            self.items.pop(0)
            self.dropped += 1

    def pop(self):
        if not self.items:
            raise IndexError("pop from an empty queue")
        return self.items.pop()

    def peek(self):
        return self.items[-1] if self.items else None

    def __len__(self):
        return len(self.items)

    def __repr__(self):
        return f"{{type(self).__name__}}(capacity={{self.capacity}}, size={{len(self.items)}}, dropped={{self.dropped}})"
''',
    '''The harbor town of {name} lies at the mouth of a slow river, where the water turns from brown to green as it
meets the sea. Every morning the fishing boats leave before sunrise and return by noon, and the market on the
quay fills with baskets of silver fish, crabs and mussels. In the afternoon the town grows quiet: the shops close,
the old men play cards under the plane trees, and the children swim from the stone steps of the lighthouse.
In the evening the cafes open again, lanterns are hung along the promenade, and the smell of grilled fish drifts
over the water. Visitors who come for a day often stay for a week, and some of them never leave at all. The town
has one school, two churches, a small museum of maritime history and a library that opens on Tuesdays and
Fridays. Its only hotel has twelve rooms, each named after a ship that once sailed from the harbor.
''',
    '''def {name}(matrix):
    """Transpose a rectangular matrix given as a list of rows, checking that every row has the same length."""
    if not matrix:
        return []
    width = len(matrix[0])
    for index, row in enumerate(matrix):
        if len(row) != width:
            raise ValueError(f"row {{index}} has {{len(row)}} columns, expected {{width}}")
    result = []
    for column in range(width):
        new_row = []
        for row in matrix:
            new_row.append(row[column])
        result.append(new_row)
    return result


def identity(size):
    return [[1 if row == column else 0 for column in range(size)] for row in range(size)]


def multiply(left, right):
    columns = transpose_rows(right)
    return [[sum(a * b for a, b in zip(row, column)) for column in columns] for row in left]
''',
]

NAMES = ["parse_levels", "RecentQueue", None, "transpose_rows"]  # None: the prose passage, a town's name
RENAMES = ["amber", "cobalt", "juniper", "saffron", "indigo", "quartz", "fennel", "garnet"]


def grounded_prompt(k: int) -> str:
    """The k-th request's prompt: passage k mod 4 under a name unique to k, and the rename asked for."""
    p = k % len(PASSAGES)
    tag = f"{RENAMES[(k // len(PASSAGES)) % len(RENAMES)]}{k}"
    old, new = (f"{NAMES[p]}_{tag}", f"{NAMES[p]}_{tag}_v2") if NAMES[p] else (f"Porto {tag.title()}", f"Nova {tag.title()}")
    return (f"Here is a text:\n\n{PASSAGES[p].format(name=old)}\n"
            f"Write the same text again, unchanged, except that every '{old}' becomes '{new}'. "
            "Answer with the text only.")


@dataclass
class SpecRun:
    server: str
    workload: str
    concurrency: int
    requests: int
    tokens: int
    wall_s: float
    tok_s: float
    drafted: int
    accepted: int
    errors: int
    error_samples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


async def _ask(client: httpx.AsyncClient, prompt: str, max_tokens: int) -> dict:
    body = {"model": "m", "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, "stream": False}
    try:
        r = await client.post("/v1/chat/completions", json=body)
    except httpx.RemoteProtocolError:  # llama-server closes kept-alive connections under load
        r = await client.post("/v1/chat/completions", json=body)
    r.raise_for_status()
    return r.json()


async def grounded(url: str, server: str, concurrency: int, requests_per_client: int, seed: int = 0,
                   max_tokens: int = 400) -> SpecRun:
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    outcomes: list = []
    async with httpx.AsyncClient(base_url=url, timeout=900, limits=limits) as client:
        async def worker(w: int) -> None:
            for i in range(requests_per_client):
                k = seed + w * requests_per_client + i
                try:
                    outcomes.append(await _ask(client, grounded_prompt(k), max_tokens))
                except (httpx.HTTPError, ValueError) as exc:
                    outcomes.append(exc)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        wall = time.perf_counter() - t0
    ok = [o for o in outcomes if isinstance(o, dict)]
    timings = [o.get("timings", {}) for o in ok]
    tokens = sum(o.get("usage", {}).get("completion_tokens", 0) for o in ok)
    return SpecRun(
        server=server, workload="grounded", concurrency=concurrency, requests=len(outcomes), tokens=tokens,
        wall_s=wall, tok_s=tokens / wall if wall > 0 else 0.0,
        drafted=sum(t.get("draft_n", 0) for t in timings), accepted=sum(t.get("draft_n_accepted", 0) for t in timings),
        errors=len(outcomes) - len(ok),
        error_samples=sorted({f"{type(o).__name__}: {o}"[:200] for o in outcomes if not isinstance(o, dict)})[:3],
    )


def print_spec_table(runs: list[SpecRun]) -> None:
    """Best round per (workload, server, concurrency), then each llamaserve run's tok/s over every other
    server's at the same level."""
    best: dict[tuple[str, str, int], SpecRun] = {}
    for r in runs:
        k = (r.workload, r.server, r.concurrency)
        if k not in best or r.tok_s > best[k].tok_s:
            best[k] = r
    header = f"{'workload':<10}{'server':<22}{'conc':>5}{'tokens':>8}{'tok/s':>9}{'drafted':>9}{'accepted':>9}{'acc %':>7}{'err':>5}"
    print(header)
    print("-" * len(header))
    for (w, s, c), r in sorted(best.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])):
        rate = f"{100 * r.accepted / r.drafted:.0f}" if r.drafted else "-"
        print(f"{w:<10}{s:<22}{c:>5}{r.tokens:>8}{r.tok_s:>9.1f}{r.drafted:>9}{r.accepted:>9}{rate:>7}{r.errors:>5}")
    print("\nratios of tok/s (best round each)")
    for (w, s, c), r in sorted(best.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])):
        others = [(o, best[(w, o, c)]) for o in sorted({k[1] for k in best if k[0] == w and k[2] == c}) if o != s]
        if s.startswith("llamaserve") and others:
            print(f"  {w} c={c} {s}: " + ", ".join(f"/ {o} {r.tok_s / x.tok_s:.3f}" for o, x in others if x.tok_s > 0))
