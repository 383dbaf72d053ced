"""JSON Schema -> GBNF, failing closed.

`schema_to_gbnf(schema)` returns a grammar whose every string is a JSON text that
validates against `schema`. Where a keyword cannot be honoured exactly it raises
SchemaError saying which and where; it never drops a constraint. It may narrow:
only declared properties are generated when `additionalProperties` is absent or
true, open numeric ranges stop at 16 digits, repetitions at libllama's limit of
2000, and whitespace between tokens is bounded, so small models do not loop.

Behaviour follows llama.cpp's common/json-schema-to-grammar.cpp where that is
exact (rule shapes, whitespace, formats); where it approximates (oneOf as anyOf,
unsupported patterns as any string, ignored keywords) this one refuses instead.

The schema side (keywords checked and normalised, allOf merged, oneOf proved exclusive) is schema_algebra.py;
this module writes the grammar for the alternatives it yields.
"""

from __future__ import annotations

import json
from typing import Any

from llamaserve.grammar.analysis import empty_loop, left_recursive_rule
from llamaserve.grammar.expr import (
    EMPTY, NEVER, REPETITION_LIMIT, Chars, Expr, Lit, Ref, alt, chars, complement_ranges, intersect_ranges,
    normalize_ranges, opt, rep, seq,
)
from llamaserve.grammar.gbnf import Grammar, write_rules
from llamaserve.grammar.integer_range import DIGIT, MAX_DIGITS, integer_range
from llamaserve.grammar.regex import JSON_RAW, PatternError, pattern_body
from llamaserve.grammar.schema_algebra import (
    NUMBER_KEYS, RefAlt, SchemaAlgebra, SchemaError, Unsatisfiable, inferred_types, int_bounds, simple_checks,
)

_DATE = ("(?:(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])-"
         "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
         "|02-(?:0[1-9]|1[0-9]|2[0-8]))"
         "|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)-02-29)")
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
# Exact: real calendar days (leap years included), RFC 3339 times, 8-4-4-4-12 hex UUIDs.
FORMATS = {
    "date": f"^{_DATE}$",
    "time": f"^{_TIME}$",
    "date-time": f"^{_DATE}T{_TIME}$",
    "uuid": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
}

# --- the fixed rules every grammar draws on ---

HEX = chars((0x30, 0x39), (0x41, 0x46), (0x61, 0x66))
# \uXXXX other than surrogates: a lone surrogate is not a character, and a pair would count as two
_HEX_NOT_SURROGATE = alt(
    seq(chars((0x30, 0x39), (0x41, 0x43), (0x61, 0x63), (0x45, 0x46), (0x65, 0x66)), rep(HEX, 3, 3)),
    seq(chars("dD"), chars((0x30, 0x37)), rep(HEX, 2, 2)),
)
SPACE = alt(EMPTY, Lit(" "), seq(rep(Lit("\n"), 1, 2), rep(chars(" \t"), 0, 20)))
# One character of a JSON string: raw (DEL left out, as llama.cpp does) or escaped.
CHAR = alt(
    Chars(intersect_ranges(JSON_RAW, ((0, 0x7E), (0x80, 0x10FFFF)))),
    seq(Lit("\\"), alt(chars('"\\/bfnrt'), seq(Lit("u"), _HEX_NOT_SURROGATE))),
)
_INT_PART = alt(Lit("0"), seq(chars((0x31, 0x39)), rep(DIGIT, 0, MAX_DIGITS - 1)))
NUMBER = seq(
    opt(Lit("-")), _INT_PART,
    opt(seq(Lit("."), rep(DIGIT, 1, MAX_DIGITS))),
    opt(seq(chars("eE"), opt(chars("+-")), rep(DIGIT, 1, 2))),  # up to e99: no overflow to infinity
)
SP = Ref("space")
_PRIMITIVES = {
    "space": SPACE,
    "char": CHAR,
    "string": seq(Lit('"'), rep(Ref("char"), 0, None), Lit('"')),
    "integer": integer_range(None, None),
    "number": NUMBER,
    "boolean": alt(Lit("true"), Lit("false")),
    "null": Lit("null"),
    "value": alt(Ref("object"), Ref("array"), Ref("string"), Ref("number"), Ref("boolean"), Ref("null")),
    "object": seq(Lit("{"), SP, opt(seq(Ref("string"), Lit(":"), SP, Ref("value"),
                                        rep(seq(Lit(","), SP, Ref("string"), Lit(":"), SP, Ref("value")), 0, None),
                                        SP)), Lit("}")),
    "array": seq(Lit("["), SP, opt(seq(Ref("value"), rep(seq(Lit(","), SP, Ref("value")), 0, None), SP)), Lit("]")),
}
_DEPENDS = {"string": ("char",), "value": ("object", "array", "string", "number", "boolean", "null"),
            "object": ("space", "string", "value"), "array": ("space", "value")}


def schema_to_gbnf(schema: dict | bool) -> str:
    """A GBNF grammar (rule `root`) for the JSON texts that validate against `schema`; SchemaError if it
    cannot be said exactly."""
    return _Converter(schema).convert()



class _Converter(SchemaAlgebra):
    def __init__(self, root: Any):
        super().__init__(root)
        self.g = Grammar(reserved=list(_PRIMITIVES) + ["root"])
        self.g.rules["root"] = None
        self.ref_names: dict[str, str] = {"#": "root"}
        self.ref_errors: dict[str, SchemaError] = {}

    # --- driver ---

    def convert(self) -> str:
        e = self.visit(self.root, "#", "root")
        if e == Ref("root"):
            raise SchemaError('the schema is only a $ref to itself ("#")')
        self.g.rules["root"] = e
        try:
            rules = self.g.finish("root")
        except ValueError:
            raise SchemaError("no finite JSON value satisfies the schema: a recursive $ref has no way to end "
                              "(every path through it requires another level)") from None
        bad = left_recursive_rule(rules)
        if bad is not None:
            raise SchemaError(f"$ref cycle through rule '{bad}' that never reaches an object or array: "
                              "a schema cannot be defined only in terms of itself")
        loop = empty_loop(rules)
        if loop is not None:  # the converters never build these; refuse rather than hand libllama a loop
            raise SchemaError(f"internal error: rule '{loop}' repeats something that can be empty")
        return write_rules(rules)

    def prim(self, name: str) -> Ref:
        if self.g.rules.get(name) is None:
            self.g.fixed(name, _PRIMITIVES[name])
            for dep in _DEPENDS.get(name, ()):
                self.prim(dep)
        return Ref(name)

    def named(self, hint: str, e: Expr) -> Expr:
        """`e` itself if it is a single token of grammar text, else a rule for it."""
        if isinstance(e, (Ref, Lit, Chars)):
            return e
        return self.g.add(hint, e)

    # --- schemas ---

    def visit(self, schema: Any, path: str, name: str) -> Expr:
        if schema is True:
            return self.prim("value")
        if schema is False:
            raise Unsatisfiable(f"the schema at {path} is false: no value satisfies it")
        s = self.clean(schema, path)
        if not s:
            return self.prim("value")
        if list(s) == ["$ref"]:
            return self.ref(s["$ref"], path)
        options = []
        last: SchemaError | None = None
        for a in self.expand(s, path):
            try:
                options.append(self.ref(a.ref, a.path) if isinstance(a, RefAlt) else self.visit_simple(a, path, name))
            except Unsatisfiable as exc:
                last = exc
        if not options:
            raise last or Unsatisfiable(f"no value satisfies the schema at {path}")
        return alt(*options)

    def ref(self, ref: str, path: str) -> Ref:
        if ref in self.ref_errors:
            raise self.ref_errors[ref]
        if ref in self.ref_names:
            return Ref(self.ref_names[ref])
        target = self.lookup(ref, path)
        name = self.g.fresh(ref.rsplit("/", 1)[-1] or "ref")
        self.ref_names[ref] = name
        try:
            e = self.visit(target, ref, name)
        except SchemaError as exc:
            self.ref_errors[ref] = exc
            raise
        if e == Ref(name):
            raise SchemaError(f'$ref "{ref}" refers only to itself')
        self.g.define(name, e)
        return Ref(name)

    # --- simple (combinator-free) schemas ---

    def visit_simple(self, d: dict, path: str, name: str) -> Expr:
        if "enum" in d:
            return self.visit_enum(d, path)
        types = d.get("type") or inferred_types(d)
        if types is None:
            return self.prim("value")
        if "number" in types and "integer" in types and not any(k in d for k in NUMBER_KEYS):
            types = [t for t in types if t != "integer"]  # every integer is a number already
        options = []
        last: SchemaError | None = None
        for t in types:
            try:
                options.append(self.visit_type(t, d, path, name))
            except Unsatisfiable as exc:
                last = exc
        if not options:
            raise last  # type: ignore[misc]
        return alt(*options)

    def visit_type(self, t: str, d: dict, path: str, name: str) -> Expr:
        if t in ("null", "boolean"):
            return self.prim(t)
        return getattr(self, "visit_" + t)(d, path, name)

    def visit_enum(self, d: dict, path: str) -> Expr:
        values = [v for v in d["enum"] if simple_checks(v, d, strict=True, path=path)]
        if not values:
            raise Unsatisfiable(f'no value of "enum"/"const" at {path} satisfies the other keywords there')
        return alt(*[Lit(json.dumps(v, ensure_ascii=False, separators=(",", ":"))) for v in values])

    def visit_string(self, d: dict, path: str, name: str) -> Expr:
        lo = d.get("minLength", 0)
        hi = d.get("maxLength")
        if hi is not None and hi < lo:
            raise Unsatisfiable(f"minLength {lo} > maxLength {hi} at {path}")
        pattern, fmt = d.get("pattern"), d.get("format")
        if pattern is not None and fmt is not None:
            raise SchemaError(f'"pattern" together with "format" at {path} is not supported')
        if fmt is not None and fmt not in FORMATS:
            raise SchemaError(f'unsupported "format": "{fmt}" at {path} (supported: {", ".join(FORMATS)})')
        if pattern is not None or fmt is not None:
            source = pattern if fmt is None else FORMATS[fmt]
            what = f'"pattern" {pattern!r}' if fmt is None else f'"format": "{fmt}"'
            try:
                body = pattern_body(source, self.prim("char"), lo, hi)
            except PatternError as exc:
                raise SchemaError(f"{what} at {path}: {exc}") from None
            if body == NEVER:
                raise Unsatisfiable(f"no string satisfies {what} at {path} within minLength/maxLength")
            if fmt is not None:
                return self.g.add(fmt + "-string", seq(Lit('"'), self.g.add(fmt, body), Lit('"')))
            return self.g.add(name, seq(Lit('"'), body, Lit('"')))
        if lo == 0 and hi is None:
            return self.prim("string")
        if lo > REPETITION_LIMIT:
            raise SchemaError(f"minLength {lo} at {path} is above the supported {REPETITION_LIMIT}")
        hi = None if hi is None else min(hi, REPETITION_LIMIT)
        return self.g.add(name, seq(Lit('"'), rep(self.prim("char"), lo, hi), Lit('"')))

    def visit_integer(self, d: dict, path: str, name: str) -> Expr:
        lo, hi = int_bounds(d)
        if lo is None and hi is None:
            return self.prim("integer")
        if lo is not None and hi is not None and lo > hi:
            raise Unsatisfiable(f"no integer lies within the bounds at {path}")
        return self.g.add(name, integer_range(lo, hi))

    def visit_number(self, d: dict, path: str, name: str) -> Expr:
        given = [k for k in NUMBER_KEYS if k in d]
        if given:
            raise SchemaError(f'"{given[0]}" on a "number" at {path} is not supported (it is for "integer")')
        return self.prim("number")

    def visit_array(self, d: dict, path: str, name: str) -> Expr:
        prefix = d.get("prefixItems", [])
        items = d.get("items")
        lo = d.get("minItems", 0)
        hi = d.get("maxItems")
        if hi is not None and hi < lo:
            raise Unsatisfiable(f"minItems {lo} > maxItems {hi} at {path}")
        if d.get("uniqueItems") and (hi is None or hi > 1):
            raise SchemaError(f'"uniqueItems": true at {path} is not supported (unless maxItems <= 1)')
        if not prefix and items is None:
            if lo == 0 and hi is None:
                return self.prim("array")
            items = True
        n_fixed = len(prefix) if hi is None else min(len(prefix), hi)
        elems = [self.named(_child(name, str(i)), self.visit(prefix[i], f"{path}/prefixItems/{i}", _child(name, str(i))))
                 for i in range(n_fixed)]
        extra_lo = max(0, lo - n_fixed)
        if items is None:  # after a tuple, only as many (any) values as minItems asks for
            items, extra_hi = True, extra_lo
        elif items is False:
            if extra_lo:
                raise Unsatisfiable(f"minItems {lo} at {path} needs more items than prefixItems allows")
            extra_hi = 0
        else:
            extra_hi = None if hi is None else hi - n_fixed
        if extra_lo > REPETITION_LIMIT:
            raise SchemaError(f"minItems {lo} at {path} is above the supported {REPETITION_LIMIT}")
        if extra_hi is not None:
            extra_hi = min(extra_hi, REPETITION_LIMIT)
        item = None
        if extra_hi != 0:
            try:
                item = self.named(_child(name, "item"), self.visit(items, f"{path}/items", _child(name, "item")))
            except Unsatisfiable:
                if extra_lo:
                    raise
                extra_hi = 0
        body, may_be_empty = _comma_list(elems, item, extra_lo, extra_hi)
        inner = seq(body, SP)
        self.prim("space")
        return self.g.add(name, seq(Lit("["), SP, opt(inner) if may_be_empty else inner, Lit("]")))

    def visit_object(self, d: dict, path: str, name: str) -> Expr:
        props = d.get("properties", {})
        required = d.get("required", [])
        extra = d.get("additionalProperties")
        if extra == {}:
            extra = True
        self.prim("space")
        if not props and not required:
            if extra is None or extra is True:
                return self.prim("object")
            if extra is False:
                return seq(Lit("{"), SP, Lit("}"))
        members: list[tuple[Expr, int, int | None]] = []
        for key, sub in props.items():
            sub_name = _child(name, key)
            try:
                value = self.named(sub_name, self.visit(sub, f"{path}/properties/{_pointer(key)}", sub_name))
            except Unsatisfiable:
                if key in required:
                    raise
                continue  # a property no value satisfies can only be left out
            members.append((self._member(key, value), 1 if key in required else 0, 1))
        for key in required:
            if key in props:
                continue
            if extra is False:
                raise Unsatisfiable(f'required property "{key}" at {path} is not allowed by "additionalProperties": false')
            sub_name = _child(name, key)
            value = self.named(sub_name, self.visit(extra if isinstance(extra, dict) else True,
                                                    f"{path}/additionalProperties", sub_name))
            members.append((self._member(key, value), 1, 1))
        if isinstance(extra, dict):
            sub_name = _child(name, "additional")
            try:
                value = self.named(sub_name, self.visit(extra, f"{path}/additionalProperties", sub_name))
                key_rule = self.g.add(sub_name + "-key", _other_key(list(props) + list(required)))
                members.append((seq(key_rule, Lit(":"), SP, value), 0, None))
            except Unsatisfiable:
                pass
        body, may_be_empty = self._members(members, name)
        inner = seq(body, SP)
        return self.g.add(name, seq(Lit("{"), SP, opt(inner) if may_be_empty else inner, Lit("}")))

    def _member(self, key: str, value: Expr) -> Expr:
        return seq(Lit(json.dumps(key, ensure_ascii=False) + ":"), SP, value)

    def _members(self, members: list[tuple[Expr, int, int | None]], name: str) -> tuple[Expr, bool]:
        """Members in order, comma-separated; optional ones may be left out, the last one may repeat."""
        if not members:
            return EMPTY, True

        def more(m):
            kv, lo, hi = m
            return rep(seq(Lit(","), SP, kv), lo, hi)

        # tails[i]: members i.. after at least one member has been written
        tails: list[Expr] = [EMPTY] * (len(members) + 1)
        n_leading = next((i for i, m in enumerate(members) if m[1] > 0), len(members))
        for i in range(len(members) - 1, -1, -1):
            t = seq(more(members[i]), tails[i + 1])
            tails[i] = self.g.add(f"{name}-rest", t) if 0 < i <= n_leading and n_leading > 1 and t != EMPTY else t
        options = []
        for i, (kv, lo, hi) in enumerate(members):
            first = seq(kv, rep(seq(Lit(","), SP, kv), 0, None if hi is None else hi - 1), tails[i + 1])
            options.append(first)
            if lo > 0:
                return alt(*options), False
        return alt(*options), True


def _comma_list(elems: list[Expr], item: Expr | None, lo: int, hi: int | None) -> tuple[Expr, bool]:
    more = (lambda n_lo, n_hi: rep(seq(Lit(","), SP, item), n_lo, n_hi)) if item is not None else (lambda a, b: EMPTY)
    if elems:
        return seq(elems[0], *[seq(Lit(","), SP, e) for e in elems[1:]], more(lo, hi)), False
    if item is None or hi == 0:
        return EMPTY, True
    body = seq(item, more(max(lo - 1, 0), None if hi is None else hi - 1))
    return body, lo == 0


def _other_key(names: list[str]) -> Expr:
    """A JSON string (raw characters only, so its text is its value) equal to none of `names`."""
    trie: dict = {}
    for n in names:
        node = trie
        for c in n:
            node = node.setdefault(c, {})
        node[None] = True
    any_chars = rep(Chars(JSON_RAW), 0, None)

    def follow(node: dict) -> Expr:
        options = []
        taken = []
        for c, child in node.items():
            if c is None or not intersect_ranges(JSON_RAW, ((ord(c), ord(c)),)):
                continue
            taken.append((ord(c), ord(c)))
            options.append(seq(Lit(c), follow(child)))
        others = intersect_ranges(JSON_RAW, _complement(taken))
        options.append(seq(Chars(others), any_chars))
        if None not in node:
            options.append(EMPTY)
        return alt(*options)

    return seq(Lit('"'), follow(trie), Lit('"'))


def _complement(points: list[tuple[int, int]]):
    return complement_ranges(normalize_ranges(points))


def _child(name: str, part: str) -> str:
    return part if name == "root" else f"{name}-{part}"


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


JSON_OBJECT_GBNF = schema_to_gbnf({"type": "object"})
"""Any JSON object: OpenAI's response_format {"type": "json_object"}."""
