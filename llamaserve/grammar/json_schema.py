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
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from llamaserve.grammar.gbnf import (
    EMPTY, NEVER, REPETITION_LIMIT, Chars, Expr, Grammar, Lit, Ref, alt, chars, complement_ranges, empty_loop,
    intersect_ranges, left_recursive_rule, normalize_ranges, opt, rep, seq, write_rules,
)
from llamaserve.grammar.integer_range import DIGIT, MAX_DIGITS, integer_range
from llamaserve.grammar.regex import JSON_RAW, PatternError, pattern_body


class SchemaError(ValueError):
    """The schema is invalid, unsupported, or cannot be satisfied; the message says which and where."""


class Unsatisfiable(SchemaError):
    """No value satisfies (this part of) the schema: an alternative holding it is dropped."""


TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")

# Keywords that never constrain a value (annotations, containers, vendor extensions).
ANNOTATIONS = frozenset({
    "title", "description", "examples", "default", "$schema", "$id", "$comment", "$anchor", "$vocabulary",
    "readOnly", "writeOnly", "deprecated", "contentMediaType", "contentEncoding", "contentSchema",
    "$defs", "definitions", "discriminator", "nullable", "example", "externalDocs", "xml", "strict",
})
SUPPORTED = frozenset({
    "type", "enum", "const", "properties", "required", "additionalProperties", "items", "prefixItems",
    "additionalItems", "minItems", "maxItems", "uniqueItems", "minLength", "maxLength", "pattern", "format",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "allOf", "anyOf", "oneOf", "$ref",
})
OBJECT_KEYS = ("properties", "required", "additionalProperties")
ARRAY_KEYS = ("items", "prefixItems", "minItems", "maxItems", "uniqueItems")
STRING_KEYS = ("minLength", "maxLength", "pattern", "format")
NUMBER_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
MAX_ALTERNATIVES = 64

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


@dataclass(frozen=True)
class _RefAlt:
    """An alternative that is exactly a $ref: kept by name (recursion, sharing) unless it must be merged."""
    ref: str
    path: str


def schema_to_gbnf(schema: dict | bool) -> str:
    """A GBNF grammar (rule `root`) for the JSON texts that validate against `schema`; SchemaError if it
    cannot be said exactly."""
    return _Converter(schema).convert()


class _Converter:
    def __init__(self, root: Any):
        self.root = root
        self.g = Grammar(reserved=list(_PRIMITIVES) + ["root"])
        self.g.rules["root"] = None
        self.ref_names: dict[str, str] = {"#": "root"}
        self.ref_errors: dict[str, SchemaError] = {}
        self._resolving: set[str] = set()

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
                options.append(self.ref(a.ref, a.path) if isinstance(a, _RefAlt) else self.visit_simple(a, path, name))
            except Unsatisfiable as exc:
                last = exc
        if not options:
            raise last or Unsatisfiable(f"no value satisfies the schema at {path}")
        return alt(*options)

    def clean(self, schema: Any, path: str) -> dict:
        """Check every keyword; drop annotations; normalise older drafts' spellings."""
        if not isinstance(schema, dict):
            raise SchemaError(f"the schema at {path} must be an object or a boolean, not {_kind(schema)}")
        out: dict[str, Any] = {}
        for k, v in schema.items():
            if k in ANNOTATIONS or k.startswith("x-"):
                continue
            if k not in SUPPORTED:
                raise SchemaError(f'unsupported JSON Schema keyword "{k}" at {path}')
            out[k] = _check_value(k, v, path)
        if "const" in out:
            value = out.pop("const")
            enum = out.get("enum", [value])
            out["enum"] = [x for x in enum if _json_equal(x, value)]
        if "enum" in out and not out["enum"]:
            raise Unsatisfiable(f'"enum" at {path} allows no value')
        if isinstance(out.get("items"), list):  # draft 4-2019: items as a tuple, then additionalItems
            out["prefixItems"] = out.pop("items")
            if "additionalItems" in out:
                out["items"] = out.pop("additionalItems")
        out.pop("additionalItems", None)  # without tuple items it has no effect
        for key, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if isinstance(out.get(key), bool):  # draft 4: a flag on minimum/maximum
                if out.pop(key) and bound in out:
                    out[key] = out.pop(bound)
        if out.get("uniqueItems") is False:
            del out["uniqueItems"]
        return out

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

    def lookup(self, ref: str, path: str) -> Any:
        if not ref.startswith("#"):
            raise SchemaError(f'$ref "{ref}" at {path}: only references within the schema ("#/...") are supported')
        fragment = unquote(ref[1:])
        if fragment and not fragment.startswith("/"):
            raise SchemaError(f'$ref "{ref}" at {path}: anchors are not supported; use a JSON pointer such as "#/$defs/Name"')
        node = self.root
        for part in fragment.split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise SchemaError(f'$ref "{ref}" not found (at {path})')
        return node

    # --- combinators: allOf merged, anyOf/oneOf as alternatives ---

    def expand(self, s: dict, path: str) -> list:
        """The schema as alternatives free of allOf/anyOf/oneOf (dicts, or _RefAlt kept by name)."""
        base = {k: v for k, v in s.items() if k not in ("allOf", "anyOf", "oneOf", "$ref")}
        combos: list = [base]
        if "$ref" in s:
            combos = self.product(combos, [_RefAlt(s["$ref"], path)], path)
        for i, sub in enumerate(s.get("allOf", ())):
            combos = self.product(combos, self.alternatives(sub, f"{path}/allOf/{i}"), path)
        if "anyOf" in s:
            options = [a for i, sub in enumerate(s["anyOf"]) for a in self.alternatives(sub, f"{path}/anyOf/{i}")]
            combos = self.product(combos, options, path)
        if "oneOf" in s:
            branches = [self.alternatives(sub, f"{path}/oneOf/{i}") for i, sub in enumerate(s["oneOf"])]
            out = []
            for c in combos:
                merged = [self.product([c], b, path) for b in branches]
                self.check_exclusive(merged, path)
                out += [m for group in merged for m in group]
            combos = out
        if not combos:
            raise Unsatisfiable(f"no value satisfies the schema at {path}: its parts contradict each other")
        return combos

    def alternatives(self, schema: Any, path: str) -> list:
        if schema is True:
            return [{}]
        if schema is False:
            return []
        s = self.clean(schema, path)
        if list(s) == ["$ref"]:
            return [_RefAlt(s["$ref"], path)]
        try:
            return self.expand(s, path)
        except Unsatisfiable:
            return []

    def resolve(self, a: _RefAlt) -> list:
        if a.ref in self._resolving:
            raise SchemaError(f'$ref "{a.ref}" at {a.path} is combined (allOf/anyOf/oneOf or sibling keywords) '
                              "with itself: not supported")
        self._resolving.add(a.ref)
        try:
            out = []
            for x in self.alternatives(self.lookup(a.ref, a.path), a.ref):
                out.extend(self.resolve(x) if isinstance(x, _RefAlt) else [x])
            return out
        finally:
            self._resolving.discard(a.ref)

    def product(self, left: list, right: list, path: str) -> list:
        out = [m for a in left for b in right for m in self.merge(a, b, path)]
        if len(out) > MAX_ALTERNATIVES:
            raise SchemaError(f"the combinators at {path} expand to more than {MAX_ALTERNATIVES} alternatives")
        return out

    def merge(self, a, b, path: str) -> list:
        if a == {}:
            return [b]
        if b == {}:
            return [a]
        if isinstance(a, _RefAlt):
            return [m for x in self.resolve(a) for m in self.merge(x, b, path)]
        if isinstance(b, _RefAlt):
            return [m for y in self.resolve(b) for m in self.merge(a, y, path)]
        m = _merge_dicts(a, b, path)
        return [] if m is None else [m]

    # --- oneOf: only when no value can match two branches ---

    def check_exclusive(self, groups: list[list], path: str) -> None:
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                for a in groups[i]:
                    for b in groups[j]:
                        if not (self.excludes(a, b, 0) and self.excludes(b, a, 0)):
                            raise SchemaError(
                                f'"oneOf" at {path}: branches {i} and {j} can match the same value, so "exactly one" '
                                'cannot be guaranteed; use "anyOf", or make the branches exclusive (different types, '
                                "different const/enum values, or a required property whose values differ)")

    def excludes(self, a, b, depth: int) -> bool:
        """True if no value generated for alternative `a` satisfies alternative `b`."""
        if depth > 8:
            return False
        if isinstance(a, _RefAlt):
            return all(self.excludes(x, b, depth + 1) for x in self.resolve(a))
        if isinstance(b, _RefAlt):
            return all(self.excludes(a, y, depth + 1) for y in self.resolve(b))
        if not _types_overlap(_generated_types(a), _accepted_types(b)):
            return True
        if "enum" in a:
            return all(not self.may_satisfy(v, b, depth + 1) for v in a["enum"])
        if "enum" in b:
            return all(not self.may_satisfy(v, a, depth + 1) for v in b["enum"])
        if _generated_types(a) <= {"object"}:
            for p in a.get("required", ()):
                sa = a.get("properties", {}).get(p, a.get("additionalProperties", True))
                sb = b.get("properties", {}).get(p, b.get("additionalProperties", True))
                if sb is False:
                    return True
                if sb is True or sa is True or sa is False:
                    continue
                xs = self.alternatives(sa, f"{p}")
                ys = self.alternatives(sb, f"{p}")
                if all(self.excludes(x, y, depth + 1) for x in xs for y in ys):
                    return True
        if _generated_types(a) <= {"integer"}:
            lo_a, hi_a = _int_bounds(a)
            lo_b, hi_b = _int_bounds(b)
            if lo_b is not None and hi_a is not None and hi_a < lo_b or hi_b is not None and lo_a is not None and lo_a > hi_b:
                return True
        return False

    def may_satisfy(self, v: Any, s, depth: int) -> bool:
        """False only if value `v` certainly fails alternative `s`."""
        if s is True or depth > 8:
            return True
        if s is False:
            return False
        if isinstance(s, _RefAlt):
            return any(self.may_satisfy(v, x, depth + 1) for x in self.resolve(s))
        if "enum" in s:
            return any(_json_equal(v, w) for w in s["enum"])
        try:
            if not _simple_checks(v, s, strict=False):
                return False
        except SchemaError:
            return True
        if isinstance(v, dict):
            props = s.get("properties", {})
            for key, item in v.items():
                sub = props.get(key, s.get("additionalProperties", True))
                if sub is False:
                    return False
                if sub is not True and not any(self.may_satisfy(item, x, depth + 1) for x in self.alternatives(sub, key)):
                    return False
        return True

    # --- simple (combinator-free) schemas ---

    def visit_simple(self, d: dict, path: str, name: str) -> Expr:
        if "enum" in d:
            return self.visit_enum(d, path)
        types = d.get("type") or _inferred_types(d)
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
        values = [v for v in d["enum"] if _simple_checks(v, d, strict=True, path=path)]
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
        lo, hi = _int_bounds(d)
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


# --- keyword values ---

def _check_value(k: str, v: Any, path: str) -> Any:
    where = f'"{k}" at {path}'
    if k == "type":
        names = [v] if isinstance(v, str) else v
        if not isinstance(names, list) or not names or not all(isinstance(t, str) for t in names):
            raise SchemaError(f"{where} must be a type name or a non-empty array of them")
        for t in names:
            if t not in TYPES:
                raise SchemaError(f'{where}: unknown type "{t}"')
        return [t for t in TYPES if t in names]
    if k == "enum":
        if not isinstance(v, list):
            raise SchemaError(f"{where} must be an array")
        return list(v)
    if k in ("properties",):
        if not isinstance(v, dict):
            raise SchemaError(f"{where} must be an object")
        return v
    if k == "required":
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise SchemaError(f"{where} must be an array of strings")
        return list(dict.fromkeys(v))
    if k in ("additionalProperties", "additionalItems"):
        if not isinstance(v, (dict, bool)):
            raise SchemaError(f"{where} must be a schema (object or boolean)")
        return v
    if k == "items":
        if not isinstance(v, (dict, bool, list)):
            raise SchemaError(f"{where} must be a schema (object or boolean)")
        return v
    if k in ("prefixItems", "allOf", "anyOf", "oneOf"):
        if not isinstance(v, list) or not v:
            raise SchemaError(f"{where} must be a non-empty array")
        return v
    if k in ("minItems", "maxItems", "minLength", "maxLength"):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or v != int(v):
            raise SchemaError(f"{where} must be a non-negative integer")
        return int(v)
    if k == "uniqueItems":
        if not isinstance(v, bool):
            raise SchemaError(f"{where} must be a boolean")
        return v
    if k in ("pattern", "format", "$ref"):
        if not isinstance(v, str):
            raise SchemaError(f"{where} must be a string")
        return v
    if k in NUMBER_KEYS:
        if k.startswith("exclusive") and isinstance(v, bool):
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SchemaError(f"{where} must be a number")
        return v
    return v


def _merge_dicts(a: dict, b: dict, path: str) -> dict | None:
    """Both schemas at once (allOf of two simple schemas); None if they contradict."""
    out = dict(a)
    for k, vb in b.items():
        if k not in out:
            out[k] = vb
            continue
        va = out[k]
        if k == "type":
            t = _intersect_types(va, vb)
            if not t:
                return None
            out[k] = t
        elif k == "enum":
            out[k] = [x for x in va if any(_json_equal(x, y) for y in vb)]
            if not out[k]:
                return None
        elif k == "required":
            out[k] = va + [x for x in vb if x not in va]
        elif k in ("minLength", "minItems", "minimum", "exclusiveMinimum"):
            out[k] = max(va, vb)
        elif k in ("maxLength", "maxItems", "maximum", "exclusiveMaximum"):
            out[k] = min(va, vb)
        elif k == "uniqueItems":
            out[k] = va or vb
        elif k in ("pattern", "format"):
            if va != vb:
                raise SchemaError(f'two different "{k}" values apply together at {path} ({va!r} and {vb!r}): not supported')
        elif k == "items":
            out[k] = _conj(va, vb)
    if any(k in a or k in b for k in ("properties", "additionalProperties")):
        pa, pb = a.get("properties", {}), b.get("properties", {})
        xa, xb = a.get("additionalProperties", True), b.get("additionalProperties", True)
        out["properties"] = {key: _conj(pa.get(key, xa), pb.get(key, xb)) for key in list(pa) + [k for k in pb if k not in pa]}
        x = _conj(xa, xb)
        if x is True:
            out.pop("additionalProperties", None)
        else:
            out["additionalProperties"] = x
    if "prefixItems" in a or "prefixItems" in b:
        pa, pb = a.get("prefixItems", []), b.get("prefixItems", [])
        ia, ib = a.get("items", True), b.get("items", True)
        out["prefixItems"] = [_conj(pa[i] if i < len(pa) else ia, pb[i] if i < len(pb) else ib)
                              for i in range(max(len(pa), len(pb)))]
    if "type" in out and "enum" in out:
        out["enum"] = [v for v in out["enum"] if _type_matches(v, out["type"])]
        if not out["enum"]:
            return None
    return out


def _conj(x: Any, y: Any) -> Any:
    if x is True or x == {}:
        return y
    if y is True or y == {}:
        return x
    if x is False or y is False:
        return False
    return {"allOf": [x, y]}


def _intersect_types(ta: list[str], tb: list[str]) -> list[str]:
    out = set(ta) & set(tb)
    if "number" in ta and "integer" in tb or "integer" in ta and "number" in tb:
        out.add("integer")
    return [t for t in TYPES if t in out]


def _inferred_types(d: dict) -> list[str] | None:
    """Types implied by type-specific keywords (their other types are valid too; generating only these narrows)."""
    out = []
    if any(k in d for k in OBJECT_KEYS):
        out.append("object")
    if any(k in d for k in ARRAY_KEYS):
        out.append("array")
    if any(k in d for k in STRING_KEYS):
        out.append("string")
    if any(k in d for k in NUMBER_KEYS):
        out.append("integer")
    return out or None


def _generated_types(d: dict) -> set[str]:
    if "enum" in d:
        return {_json_type(v) for v in d["enum"]}
    return set(d.get("type") or _inferred_types(d) or TYPES)


def _accepted_types(d: dict) -> set[str]:
    if "enum" in d:
        return {_json_type(v) for v in d["enum"]}
    return set(d.get("type") or TYPES)


def _types_overlap(ta: set[str], tb: set[str]) -> bool:
    return any(t in tb or t == "integer" and "number" in tb or t == "number" and "integer" in tb for t in ta)


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int) or isinstance(v, float) and v.is_integer():
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _type_matches(v: Any, types: list[str]) -> bool:
    t = _json_type(v)
    return t in types or t == "integer" and "number" in types


def _json_equal(x: Any, y: Any) -> bool:
    """Equality as JSON Schema means it: 1 == 1.0, but true != 1."""
    if isinstance(x, bool) or isinstance(y, bool):
        return isinstance(x, bool) and isinstance(y, bool) and x == y
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_json_equal(x[k], y[k]) for k in x)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_json_equal(a, b) for a, b in zip(x, y))
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        return x == y
    return type(x) is type(y) and x == y


def _int_bounds(d: dict) -> tuple[int | None, int | None]:
    lo = hi = None
    if "minimum" in d:
        lo = math.ceil(d["minimum"])
    if "exclusiveMinimum" in d:
        x = math.floor(d["exclusiveMinimum"]) + 1
        lo = x if lo is None else max(lo, x)
    if "maximum" in d:
        hi = math.floor(d["maximum"])
    if "exclusiveMaximum" in d:
        x = math.ceil(d["exclusiveMaximum"]) - 1
        hi = x if hi is None else min(hi, x)
    return lo, hi


_CHECKABLE = {"type", "enum", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
              "exclusiveMaximum", "minItems", "maxItems", "required", "uniqueItems"}


def _simple_checks(v: Any, d: dict, strict: bool, path: str = "") -> bool:
    """Whether value `v` passes the keywords of `d` that apply to it; SchemaError for one that cannot be checked."""
    for k in d:
        if k not in _CHECKABLE:
            if strict:
                raise SchemaError(f'"enum"/"const" together with "{k}" at {path} is not supported')
            continue
    if "type" in d and not _type_matches(v, d["type"]):
        return False
    if "enum" in d and not any(_json_equal(v, w) for w in d["enum"]):
        return False
    if isinstance(v, str):
        n = len(v)
        if n < d.get("minLength", 0) or "maxLength" in d and n > d["maxLength"]:
            return False
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if ("minimum" in d and v < d["minimum"] or "maximum" in d and v > d["maximum"]
                or "exclusiveMinimum" in d and v <= d["exclusiveMinimum"]
                or "exclusiveMaximum" in d and v >= d["exclusiveMaximum"]):
            return False
    if isinstance(v, list):
        if len(v) < d.get("minItems", 0) or "maxItems" in d and len(v) > d["maxItems"]:
            return False
        if d.get("uniqueItems") and any(_json_equal(v[i], v[j]) for i in range(len(v)) for j in range(i)):
            return False
    if isinstance(v, dict) and any(r not in v for r in d.get("required", ())):
        return False
    return True


def _kind(v: Any) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def _child(name: str, part: str) -> str:
    return part if name == "root" else f"{name}-{part}"


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


JSON_OBJECT_GBNF = schema_to_gbnf({"type": "object"})
"""Any JSON object: OpenAI's response_format {"type": "json_object"}."""
