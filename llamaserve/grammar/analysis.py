"""Properties of a set of grammar rules: which can match the empty string, which can finish at all,
which reach themselves before matching a character (libllama refuses those), which loop without advancing.
"""

from __future__ import annotations

from llamaserve.grammar.expr import Alt, Expr, Lit, Ref, Rep, Seq, children


def _least_fixed_point(rules: dict[str, Expr], holds) -> set[str]:
    """The smallest set of rule names closed under `holds(expr, names so far)`."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, e in rules.items():
            if name not in found and holds(e, found):
                found.add(name)
                changed = True
    return found


def nullable_rules(rules: dict[str, Expr]) -> set[str]:
    """Rules that can match the empty string."""
    return _least_fixed_point(rules, expr_nullable)


def expr_nullable(e: Expr, nullable: set[str]) -> bool:
    if isinstance(e, Ref):
        return e.name in nullable
    if isinstance(e, Seq):
        return all(expr_nullable(x, nullable) for x in e.items)
    if isinstance(e, Alt):
        return any(expr_nullable(x, nullable) for x in e.items)
    if isinstance(e, Rep):
        return e.min == 0 or expr_nullable(e.item, nullable)
    return isinstance(e, Lit) and e.text == ""


def productive_rules(rules: dict[str, Expr]) -> set[str]:
    """Rules that can match at least one finite string."""

    def finite(e: Expr, productive: set[str]) -> bool:
        if isinstance(e, Ref):
            return e.name in productive
        if isinstance(e, Seq):
            return all(finite(x, productive) for x in e.items)
        if isinstance(e, Alt):
            return any(finite(x, productive) for x in e.items)
        if isinstance(e, Rep):
            return e.min == 0 or finite(e.item, productive)
        return True

    return _least_fixed_point(rules, finite)


def left_edge_refs(e: Expr, nullable: set[str]) -> set[str]:
    """Rules that may be entered before any character of `e` is matched."""
    out: set[str] = set()
    if isinstance(e, Ref):
        out.add(e.name)
    elif isinstance(e, Seq):
        for x in e.items:
            out |= left_edge_refs(x, nullable)
            if not expr_nullable(x, nullable):
                break
    elif isinstance(e, Alt):
        for x in e.items:
            out |= left_edge_refs(x, nullable)
    elif isinstance(e, Rep):
        out |= left_edge_refs(e.item, nullable)
    return out


def left_recursive_rule(rules: dict[str, Expr]) -> str | None:
    """A rule that can reach itself without matching a character (libllama rejects those)."""
    nullable = nullable_rules(rules)
    edges = {name: left_edge_refs(e, nullable) & rules.keys() for name, e in rules.items()}
    for start in rules:
        seen: set[str] = set()
        stack = list(edges[start])
        while stack:
            n = stack.pop()
            if n == start:
                return start
            if n not in seen:
                seen.add(n)
                stack.extend(edges.get(n, ()))
    return None


def empty_loop(rules: dict[str, Expr]) -> str | None:
    """A rule holding an unbounded repetition of something that can be empty (it would never advance)."""
    nullable = nullable_rules(rules)

    def find(e: Expr) -> bool:
        if isinstance(e, Rep) and e.max is None and expr_nullable(e.item, nullable):
            return True
        return any(find(c) for c in children(e))

    for name, e in rules.items():
        if find(e):
            return name
    return None
