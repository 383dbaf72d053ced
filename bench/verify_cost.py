"""python -m bench.verify_cost [-m MODEL] [-t THREADS]: what verifying k drafted tokens costs on this machine.

Speculative decoding pays when one llama_decode of k+1 positions (the pending token and k drafts, each
with logits) costs much less than k+1 single steps: a memory-bound decode, where reading the weights
once serves many positions. On a small model on a few CPU cores the decode is compute-bound and k
positions cost nearly k steps; this measures that ratio after a 256-token context, with the KV cells of
each trial removed before the next.
"""

from __future__ import annotations

import argparse
import statistics
import time

import llama_cpp.llama_cpp as ll


def measure(model_path: str, threads: int, ks: list[int], trials: int = 15, n_past: int = 256) -> list[tuple[int, float]]:
    ll.llama_backend_init()
    mp = ll.llama_model_default_params()
    mp.use_extra_bufts = False  # --no-repack, as the servers are benchmarked (AMX repacking crashes in some VMs)
    model = ll.llama_model_load_from_file(model_path.encode(), mp)
    cp = ll.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch = 2048, 512, 512
    cp.n_threads = cp.n_threads_batch = threads
    ctx = ll.llama_init_from_model(model, cp)
    mem = ll.llama_get_memory(ctx)
    n_vocab = ll.llama_vocab_n_tokens(ll.llama_model_get_vocab(model))
    batch = ll.llama_batch_init(max(max(ks), n_past), 0, 1)

    def decode(tokens: list[int], pos0: int, logits_all: bool) -> None:
        for i, t in enumerate(tokens):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = t, pos0 + i, 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = logits_all or i == len(tokens) - 1
        batch.n_tokens = len(tokens)
        assert ll.llama_decode(ctx, batch) == 0

    decode([(i * 37) % n_vocab for i in range(n_past)], 0, False)
    out = []
    for k in ks:
        times = []
        for trial in range(trials + 2):
            t0 = time.perf_counter()
            decode([(trial * 11 + j) % n_vocab for j in range(k)], n_past, True)
            ll.llama_synchronize(ctx)
            times.append(time.perf_counter() - t0)
            ll.llama_memory_seq_rm(mem, 0, n_past, -1)
        out.append((k, statistics.median(times[2:]) * 1e3))
    ll.llama_batch_free(batch)
    ll.llama_free(ctx)
    ll.llama_model_free(model)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.verify_cost", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", default=None, help="GGUF model (default: the bundled SmolLM2)")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--k", default="1,2,3,5,9,17", help="positions per decode (the pending token plus k-1 drafts)")
    args = ap.parse_args()
    if args.model is None:
        from llamaserve.config import bundled_model_path

        args.model = str(bundled_model_path())
    rows = measure(args.model, args.threads, [int(x) for x in args.k.split(",")])
    one = rows[0][1]
    print(f"{'positions':>9} {'ms/decode':>10} {'x one step':>11} {'break-even acceptance':>22}")
    for k, ms in rows:
        # k positions yield (accepted + 1) tokens: drafting breaks even when that many tokens cost what k steps of one would
        print(f"{k:>9} {ms:>10.2f} {ms / one:>11.2f} {max(0.0, (ms / one - 1) / max(1, k - 1)):>22.0%}")


if __name__ == "__main__":
    main()
