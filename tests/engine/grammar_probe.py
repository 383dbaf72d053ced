"""Run as a script: feed texts through libllama's grammar samplers (strict or lazy) token by token.

libllama aborts the process when a grammar rejects an accepted token or a
trigger pattern is not a valid std::regex, so the checks run in a child
process; it prints "ok N" after each case it got through.
"""

from __future__ import annotations

import ctypes
import json
import sys

import llama_cpp.llama_cpp as ll


def main() -> None:
    model_path, cases = sys.argv[1], json.load(sys.stdin)
    ll.llama_backend_init()
    params = ll.llama_model_default_params()
    params.vocab_only = True
    model = ll.llama_model_load_from_file(model_path.encode(), params)
    vocab = ll.llama_model_get_vocab(model)
    for i, case in enumerate(cases):
        gbnf = case["gbnf"].encode()
        if case["lazy"]:
            patterns = [p.encode() for p in case["patterns"]]
            arr = (ctypes.c_char_p * len(patterns))(*patterns)
            sampler = ll.llama_sampler_init_grammar_lazy_patterns(vocab, gbnf, b"root", arr, len(patterns), None, 0)
        else:
            sampler = ll.llama_sampler_init_grammar(vocab, gbnf, b"root")
        if not sampler:
            print(f"bad grammar {i}", flush=True)
            continue
        data = case["text"].encode()
        buf = (ll.llama_token * (len(data) + 8))()
        n = ll.llama_tokenize(vocab, data, len(data), buf, len(buf), False, False)
        for t in buf[:n]:
            ll.llama_sampler_accept(sampler, t)
        ll.llama_sampler_free(sampler)
        print(f"ok {i}", flush=True)


if __name__ == "__main__":
    main()
