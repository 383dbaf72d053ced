"""JSON Schema as an algebra of schemas, before any grammar is written: keywords checked and normalised,
$refs looked up, allOf merged (two schemas intersected into one), anyOf/oneOf expanded into alternatives,
and oneOf branches proved exclusive.

json_schema.py's converter builds on `SchemaAlgebra` and turns the alternatives it yields into GBNF.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote


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


@dataclass(frozen=True)
class RefAlt:
    """An alternative that is exactly a $ref: kept by name (recursion, sharing) unless it must be merged."""
    ref: str
    path: str


class SchemaAlgebra:
    """A root schema and what is done to its parts: keywords checked (`clean`), $refs looked up, schemas
    expanded into combinator-free alternatives (`expand`, allOf merged), oneOf branches checked exclusive."""

    def __init__(self, root: Any):
        self.root = root
        self._resolving: set[str] = set()

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
        """The schema as alternatives free of allOf/anyOf/oneOf (dicts, or RefAlt kept by name)."""
        base = {k: v for k, v in s.items() if k not in ("allOf", "anyOf", "oneOf", "$ref")}
        combos: list = [base]
        if "$ref" in s:
            combos = self.product(combos, [RefAlt(s["$ref"], path)], path)
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
            return [RefAlt(s["$ref"], path)]
        try:
            return self.expand(s, path)
        except Unsatisfiable:
            return []

    def resolve(self, a: RefAlt) -> list:
        if a.ref in self._resolving:
            raise SchemaError(f'$ref "{a.ref}" at {a.path} is combined (allOf/anyOf/oneOf or sibling keywords) '
                              "with itself: not supported")
        self._resolving.add(a.ref)
        try:
            out = []
            for x in self.alternatives(self.lookup(a.ref, a.path), a.ref):
                out.extend(self.resolve(x) if isinstance(x, RefAlt) else [x])
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
        if isinstance(a, RefAlt):
            return [m for x in self.resolve(a) for m in self.merge(x, b, path)]
        if isinstance(b, RefAlt):
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
        if isinstance(a, RefAlt):
            return all(self.excludes(x, b, depth + 1) for x in self.resolve(a))
        if isinstance(b, RefAlt):
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
            lo_a, hi_a = int_bounds(a)
            lo_b, hi_b = int_bounds(b)
            if lo_b is not None and hi_a is not None and hi_a < lo_b or hi_b is not None and lo_a is not None and lo_a > hi_b:
                return True
        return False

    def may_satisfy(self, v: Any, s, depth: int) -> bool:
        """False only if value `v` certainly fails alternative `s`."""
        if s is True or depth > 8:
            return True
        if s is False:
            return False
        if isinstance(s, RefAlt):
            return any(self.may_satisfy(v, x, depth + 1) for x in self.resolve(s))
        if "enum" in s:
            return any(_json_equal(v, w) for w in s["enum"])
        try:
            if not simple_checks(v, s, strict=False):
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


def inferred_types(d: dict) -> list[str] | None:
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
    return set(d.get("type") or inferred_types(d) or TYPES)


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


def int_bounds(d: dict) -> tuple[int | None, int | None]:
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


def simple_checks(v: Any, d: dict, strict: bool, path: str = "") -> bool:
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
