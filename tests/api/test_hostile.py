"""Hostile input against every POST route the app has: a 4xx envelope, never a 500, never a hang.

Routes and their body fields are read from the app's OpenAPI schema, so routes added later are
covered without touching this file. Runs on `capped_server` (every generation capped at 4 tokens).
"""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import pytest

from tests.conftest import app_routes, fill_path



def _required_query(op: dict) -> str:
    """A valid value for each required query parameter (POST /slots/{id}?action=...), so bodies get read."""
    params = [p for p in op.get("parameters", []) if p.get("in") == "query" and p.get("required")]
    return "?" + "&".join(f"{p['name']}={p['schema']['enum'][0]}" for p in params) if params else ""


POSTS = [(path + _required_query(op), op) for method, path, op in app_routes() if method == "POST"]

# Bodies no route may accept: not JSON, not UTF-8, not an object.
MALFORMED = [
    b"", b"{", b"{bad json", b"[1, 2", b"}", b"\xff\xfe\xfd", b'{"prompt": "\xff\xfe"}', b'{"a": NaN}',
    b'{"a": Infinity}', b'{"a": 1e400}', b'{"a": -1e400}', b'{"prompt": "\\ud800"}', b"\x00",
    b"[" * 5000 + b"]" * 5000, b"\xef\xbb\xbf{}", b"null", b"123", b'"text"', b"[]", b"true",
]

# Values for each documented field: wrong types, out of range, huge, tiny, negative.
FIELD_VALUES = ["x", [None], {"a": 1}, True, 2**64 - 1, -(2**63), 2**31, 3.5e38, -1, 0.5]

# Targeted bodies for the deeper paths (they go to every distinct route; most ignore what is not theirs).
TARGETED = [
    {"prompt": [2**31]}, {"prompt": [2**64 - 1]}, {"prompt": [-1]}, {"prompt": [1.5]}, {"prompt": [True]},
    {"prompt": [[[]]]}, {"prompt": ["a", [1, [2]]]}, {"prompt": [[], []]}, {"prompt": ["", ""]}, {"prompt": {}},
    {"prompt": "hi", "id_slot": 99}, {"prompt": "hi", "id_slot": 2**31 - 1},
    {"prompt": "hi", "lora": [{"id": 99, "scale": 1.0}]}, {"prompt": "hi", "lora": "x"},
    {"prompt": "hi", "lora": [{"id": 0, "scale": 1e39}]}, {"prompt": "hi", "lora": [{"id": 2**63, "scale": 1}]},
    # array bodies (POST /lora-adapters takes one; every other route must refuse them)
    [{"id": 0, "scale": 1.0}], [{"id": -1, "scale": 1.0}], [{"id": 2**64, "scale": 1.0}], [{"id": 0, "scale": 3.5e38}],
    [{"id": 0, "scale": "1"}], [{"id": 0}], [None], [[]], [1], [{"id": 0, "scale": 1.0}] * 10000,
    {"prompt": "hi", "grammar": "root ::= ("}, {"prompt": "hi", "grammar": "root ::= root"},
    {"prompt": "hi", "grammar": 'x ::= "a"'}, {"prompt": "hi", "grammar": "root ::= [a-"},
    {"prompt": "hi", "grammar": "\x00"}, {"prompt": "hi", "grammar": 'root ::= "a"{1000000}'},
    # a grammar that allows no token at all, and one that is finished while EOS is banned: libllama
    # would throw through ctypes (process abort) if such a token were accepted
    {"prompt": "hi", "grammar": "root ::= [^\\x00-\\U0010FFFF]"},
    {"prompt": "hi", "grammar": 'root ::= "a"', "ignore_eos": True, "temperature": 0},
    {"prompt": "hi", "grammar": 'root ::= "a"', "ignore_eos": True, "n_probs": 2, "stream": True},
    # deep nesting: libllama parses grammars recursively
    {"prompt": "hi", "grammar": "root ::= " + "(" * 120000 + '"a"' + ")" * 120000},
    {"prompt": "hi", "grammar": "root ::= " + "(" * 200000 + '"a"' + ")" * 200000},
    {"prompt": "hi", "json_schema": {"type": "nope"}}, {"prompt": "hi", "json_schema": "x"},
    {"prompt": "hi", "logit_bias": [[1, 3.4e38]], "temperature": 1.0}, {"prompt": "hi", "logit_bias": [[2**64, 1]]},
    {"prompt": "hi", "logit_bias": {"99999999999999999999": 1}}, {"prompt": "hi", "logit_bias": [[1]]},
    {"prompt": "hi", "logit_bias": [[None, 1]]}, {"prompt": "hi", "logit_bias": {"hello": 1e39}},
    {"prompt": "hi", "logit_bias": [[i, False] for i in range(49152)], "n_probs": 2},
    {"prompt": "hi", "stop": [""]}, {"prompt": "hi", "stop": ["x" * 100000]},
    {"prompt": "hi", "dry_multiplier": 0.8, "dry_sequence_breakers": ["", "\x00", "a" * 1000]},
    {"prompt": "hi", "repeat_last_n": 2**31 - 1, "repeat_penalty": 1.1, "temperature": 1.0},
    {"prompt": "hi", "dry_penalty_last_n": 2**31 - 1, "dry_multiplier": 0.8},
    {"prompt": "hi", "repeat_penalty": 3e38, "frequency_penalty": 3e38, "presence_penalty": -3e38, "temperature": 1.0},
    {"prompt": "hi", "dynatemp_range": 3e38, "dynatemp_exponent": -3e38, "temperature": 1.0},
    {"prompt": "hi", "mirostat": 2, "mirostat_tau": -3e38, "mirostat_eta": 3e38},
    {"prompt": "hi", "typical_p": 3e38, "top_n_sigma": 1e-30, "min_keep": 2**31 - 1, "temperature": 1.0},
    {"prompt": "hi", "samplers": ""}, {"prompt": "hi", "samplers": [""]}, {"prompt": "hi", "samplers": "zz"},
    {"prompt": "hi", "n_probs": 2**31 - 1}, {"prompt": "hi", "n_probs": 101},
    {"prompt": "hi", "response_fields": ["", "/", "a/b/c"]}, {"prompt": "hi", "seed": 2**64},
    {"prompt": "hi", "stream": True, "id_slot": 99}, {"prompt": "hi", "stream": True, "grammar": "root ::= ("},
    {"prompt": "<|im_start|>" * 100, "n_keep": -1}, {"prompt": "hi", "n_predict": 0},
    {"content": "<|im_start|>" * 200, "with_pieces": True}, {"content": [2**64 - 1, -5, "x"], "with_pieces": True},
    {"content": [[1]]}, {"content": None}, {"tokens": [2**31]}, {"tokens": [2**64 - 1]}, {"tokens": [-(2**63)]},
    {"tokens": [[1]]}, {"tokens": "abc"}, {"tokens": [1.0]},
    # chat-shaped (OpenAI, Anthropic, Responses, Ollama)
    {"messages": "hi"}, {"messages": []}, {"messages": [{"role": "nobody", "content": "hi"}]},
    {"messages": [{"role": "user"}]}, {"messages": [{"role": "user", "content": 5}]},
    {"messages": [{"role": "user", "content": [{"type": "bogus"}]}]}, {"messages": [[[[]]]]},
    {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x"}}]}]},
    {"messages": [{"role": "user", "content": "hi"}], "n": 99}, {"messages": [{"role": "user", "content": "hi"}], "n": 0},
    {"messages": [{"role": "user", "content": "hi"}], "logprobs": True, "top_logprobs": 2**31},
    {"messages": [{"role": "user", "content": "hi"}], "tools": "x"},
    {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": 5}}]},
    {"messages": [{"role": "user", "content": "hi"}], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
    {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "nope"}}}},
    {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}, "max_tokens": 2},
    {"messages": [{"role": "user", "content": "hi"}], "chat_template_kwargs": "x"},
    {"messages": [{"role": "user", "content": "hi"}], "max_tokens": -5}, {"messages": [{"role": "user", "content": "hi"}], "stop": 5},
    {"messages": [{"role": "assistant", "content": "hi"}], "max_tokens": 2},
    {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "system": 5},
    {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "thinking": {"type": "enabled", "budget_tokens": -1}},
    {"messages": [{"role": "user", "content": "hi"}], "options": {"num_predict": "x", "temperature": 1e308}},
    {"messages": [{"role": "user", "content": "hi"}], "format": {"type": "nope"}},
    {"input": 5}, {"input": [{"type": "bogus"}]}, {"input": "hi", "max_output_tokens": -1}, {"input": "hi", "text": {"format": 5}},
]


def _body_fields(op: dict) -> list[str]:
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    return sorted(schema.get("properties", {}))


def _distinct_bodies() -> list[tuple[str, dict]]:
    # One route per handler and body schema (/completion and /completions share both): the same
    # handler twice would only double the time.
    out, seen = [], set()
    for path, op in POSTS:
        key = (op.get("summary"), json.dumps(op.get("requestBody"), sort_keys=True))
        if key not in seen:
            seen.add(key)
            out.append((path, op))
    return out


def _valid_base(fields: list[str]) -> dict:
    """A small valid body for a route with these fields, so that one bad field is all that is wrong."""
    base = {}
    for field, value in (("prompt", "Hi"), ("content", "Hi"), ("tokens", [1]), ("input", "Hi"),
                         ("messages", [{"role": "user", "content": "Hi"}]), ("n_predict", 1), ("max_tokens", 1),
                         ("max_output_tokens", 1), ("stream", False)):
        if field in fields:
            base[field] = value
    return base


def _field_bodies() -> list[tuple[str, bytes]]:
    out = []
    for path, op in _distinct_bodies():
        fields = _body_fields(op)
        base = _valid_base(fields)
        for field in fields:
            for value in FIELD_VALUES:
                out.append((path, json.dumps({**base, field: value}).encode()))
    return out


def _check(path: str, raw: bytes, r: httpx.Response, must_refuse: bool) -> str | None:
    """None if the answer is acceptable, else what is wrong with it."""
    what = f"POST {path} {raw[:80]!r} -> {r.status_code} {r.text[:200]}"
    # 501 is llama-server's "not supported", an answer; so is its 500 for media sent to a text-only
    # model (errors.MediaUnsupported), which its own suite asserts
    if r.status_code >= 500 and r.status_code != 501 and "image input is not supported" not in r.text:
        return what
    if must_refuse and r.status_code < 400:
        return what
    if r.status_code >= 400 and not _is_envelope(r):
        return "not an error envelope: " + what
    return None


def _is_envelope(r: httpx.Response) -> bool:
    """llama-server's and Anthropic's {"error": {"type", "message", ...}}, or Ollama's {"error": "message"}."""
    try:
        err = r.json()["error"]
    except Exception:  # noqa: BLE001
        return False
    if isinstance(err, str):
        return bool(err)
    return isinstance(err, dict) and isinstance(err.get("message"), str) and isinstance(err.get("type"), str)


def _send_all(server, cases: list[tuple[str, bytes, bool]]) -> list[str]:
    # one client (a pool of keep-alive connections) for all: a hang shows as a timeout, not a stuck suite
    with server.client(timeout=300, limits=httpx.Limits(max_connections=8)) as c:
        def one(case):
            path, raw, must_refuse = case
            try:
                r = c.post(fill_path(path), content=raw, headers={"Content-Type": "application/json"})
            except httpx.HTTPError as exc:
                return f"POST {path} {raw[:80]!r} -> {type(exc).__name__}: {exc}"
            return _check(path, raw, r, must_refuse)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            return [p for p in pool.map(one, cases) if p]


def test_routes_are_found():
    paths = {p for p, _ in POSTS}
    assert {"/completion", "/completions", "/tokenize", "/detokenize"} <= paths


def test_malformed_bodies_are_refused_everywhere(capped_server):
    cases = [(path, raw, True) for path, _ in POSTS for raw in MALFORMED]
    assert _send_all(capped_server, cases) == []


def test_wrong_and_extreme_field_values(capped_server):
    cases = [(path, raw, False) for path, raw in _field_bodies()]
    assert len(cases) > 400
    assert _send_all(capped_server, cases) == []


def test_targeted_bodies_on_every_route(capped_server):
    cases = [(path, json.dumps(body).encode(), False) for path, _ in _distinct_bodies() for body in TARGETED]
    assert _send_all(capped_server, cases) == []


@pytest.mark.parametrize("body, fragment", [
    ({"prompt": "hi", "grammar": "root ::= [^\\x00-\\U0010FFFF]"}, "allows no further token"),
    ({"prompt": "hi", "grammar": "root ::= " + "(" * 200000 + '"a"' + ")" * 200000}, "grammar too long"),
    ({"prompt": "hi", "temperature": 3.5e38}, "temperature"),
    ({"prompt": "hi", "top_k": 2**31}, "top_k"),
    ({"prompt": "hi", "top_p": 1.5}, "top_p"),
    ({"prompt": "hi", "n_predict": -2}, "n_predict"),
    ({"prompt": "hi", "logit_bias": [[1, 1e39]]}, "logit_bias"),
])
def test_refusals_say_why(capped_server, body, fragment):
    with capped_server.client() as c:
        r = c.post("/completion", json=body)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert fragment in r.json()["error"]["message"]


def test_a_finished_grammar_with_eos_banned_ends_cleanly(capped_server):
    with capped_server.client() as c:
        r = c.post("/completion", json={"prompt": "hi", "grammar": 'root ::= "a"', "ignore_eos": True, "temperature": 0})
    assert r.status_code == 400 and "allows no further token" in r.json()["error"]["message"]


def test_still_serving_afterwards(capped_server):
    # runs last in this module: the corpus left the server healthy, every slot free
    with capped_server.client() as c:
        # the corpus may have set server-wide defaults (POST /props): a stop string would end this early
        assert c.post("/props", json={"system_prompt": "", "stop": []}).json() == {"success": True}
        expected = c.post("/completion", json={"prompt": "The capital of France is", "n_predict": 4, "temperature": 0}).json()
        assert expected["tokens_predicted"] == 4 and expected["content"]
        slots = c.get("/slots").json()
        assert not any(s["is_processing"] for s in slots)
        assert c.get("/health").json() == {"status": "ok"}
    assert capped_server.proc.poll() is None
