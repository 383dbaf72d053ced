"""Property: for many generated JSON Schemas, what the real model writes under `json_schema` parses and
validates with `jsonschema` (formats checked too).

Schemas come from a seeded generator over the supported keywords, bounded (maxLength, maxItems, small
nesting) so every output ends well within n_predict: an output cut by the limit fails the test.
"""

from __future__ import annotations

import concurrent.futures
import json
import random

import jsonschema

N_SCHEMAS = 24
N_PREDICT = 400
NAMES = ["id", "name", "tags", "kind", "size", "ok", "when", "note", "score", "items"]
PATTERNS = ["^[A-Z]{2}[0-9]{2}$", "^(yes|no|maybe)$", "^[a-z]{1,4}(-[a-z]{1,4})?$", r"^\d{3}-\d{2}$", "^#[0-9a-f]{6}$"]
WORDS = ["red", "green", "blue", "cat", "dog", "x y", 'q"uote']


def leaf(rng: random.Random) -> dict:
    kind = rng.choice(["string", "string", "integer", "integer", "number", "boolean", "null", "enum", "const",
                       "format", "pattern", "nullable"])
    if kind == "string":
        hi = rng.randint(0, 8)
        s = {"type": "string", "maxLength": hi}
        if rng.random() < 0.4:
            s["minLength"] = rng.randint(0, hi)
        return s
    if kind == "integer":
        lo = rng.randint(-60, 60)
        s = {"type": "integer"}
        r = rng.random()
        if r < 0.4:
            s.update(minimum=lo, maximum=lo + rng.randint(0, 300))
        elif r < 0.6:
            s["exclusiveMinimum"] = lo
        elif r < 0.8:
            s["maximum"] = lo
        return s
    if kind == "number":
        return {"type": "number"}
    if kind in ("boolean", "null"):
        return {"type": kind}
    if kind == "enum":
        return {"enum": rng.sample(WORDS + [1, 2.5, None, True], rng.randint(1, 4))}
    if kind == "const":
        return {"const": rng.choice(WORDS + [7, False])}
    if kind == "format":
        return {"type": "string", "format": rng.choice(["date", "time", "date-time", "uuid"])}
    if kind == "pattern":
        return {"type": "string", "pattern": rng.choice(PATTERNS)}
    return {"type": ["string", "null"], "maxLength": rng.randint(1, 5)}


def schema(rng: random.Random, depth: int = 0) -> dict:
    if depth >= 2 or rng.random() < 0.25:
        return leaf(rng)
    kind = rng.choice(["object", "object", "object", "array", "tuple", "anyOf", "oneOf", "allOf", "ref"])
    if kind == "object":
        names = rng.sample(NAMES, rng.randint(1, 4))
        s = {"type": "object", "properties": {n: schema(rng, depth + 1) for n in names},
             "required": [n for n in names if rng.random() < 0.6]}
        if rng.random() < 0.5:
            s["additionalProperties"] = False
        return s
    if kind == "array":
        hi = rng.randint(1, 3)
        return {"type": "array", "items": schema(rng, depth + 1), "minItems": rng.randint(0, hi), "maxItems": hi}
    if kind == "tuple":
        return {"type": "array", "prefixItems": [leaf(rng) for _ in range(rng.randint(1, 3))], "items": False}
    if kind == "anyOf":
        return {"anyOf": [schema(rng, depth + 1), leaf(rng)]}
    if kind == "oneOf":  # exclusive by construction: one branch per type, or a discriminating const
        if rng.random() < 0.5:
            return {"oneOf": [{"type": "string", "maxLength": 4}, {"type": "integer", "minimum": 0, "maximum": 99},
                              {"type": "null"}]}
        return {"oneOf": [{"type": "object", "properties": {"kind": {"const": k}, "v": leaf(rng)}, "required": ["kind", "v"],
                           "additionalProperties": False} for k in ("a", "b")]}
    if kind == "allOf":
        return {"allOf": [{"type": "object", "properties": {"a": leaf(rng)}, "required": ["a"]},
                          {"properties": {"b": leaf(rng)}, "required": ["b"]}]}
    return {"$defs": {"Inner": schema(rng, depth + 1)}, "type": "object",
            "properties": {"first": {"$ref": "#/$defs/Inner"}, "second": {"$ref": "#/$defs/Inner"}},
            "required": ["first"]}


def generate(client, i: int, s: dict) -> dict:
    body = {"prompt": f"JSON for record {i}:\n", "json_schema": s, "n_predict": N_PREDICT, "seed": 1000 + i,
            "temperature": 0.7, "cache_prompt": False}
    r = client.post("/completion", json=body)
    assert r.status_code == 200, (s, r.text)
    return r.json()


def test_generated_outputs_validate(server):
    rng = random.Random(20240607)
    schemas = [schema(rng) for _ in range(N_SCHEMAS)]
    # no timing in this test: a loaded machine may be slow, only validity counts
    with server.client(timeout=900) as client, concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda a: generate(client, *a), enumerate(schemas)))
    for s, d in zip(schemas, results):
        where = f"schema {json.dumps(s)}\noutput {d['content']!r}"
        assert d["stop_type"] == "eos" and not d["truncated"], "did not finish: " + where
        value = json.loads(d["content"])
        cls = jsonschema.Draft202012Validator
        errors = [e.message for e in cls(s, format_checker=cls.FORMAT_CHECKER).iter_errors(value)]
        assert not errors, f"{errors}\n{where}"
