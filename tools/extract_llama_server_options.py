"""Write llama-server's option table (tests/unit/llama_server_options.json) from llama.cpp's common/arg.cpp.

The table is what `llama-server --help` lists: every option whose examples include the server (or
the common set, which every example inherits) and that does not exclude it. For each option it keeps
the spellings, the negative spellings, the value hints, the LLAMA_ARG_* variable, the kind of value
(none, bool, int, string, two strings) and whether it is a sampling or speculative option (the help
texts are llama.cpp's own prose and are not copied). Run it on the arg.cpp of a new llama.cpp to see at once which options are new:

    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/lcp
    tar xzf /tmp/lcp/*.tar.gz -C /tmp/lcp
    python tools/extract_llama_server_options.py /tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp/common/arg.cpp
"""

from __future__ import annotations

import json
import pathlib
import re
import sys

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "unit" / "llama_server_options.json"


def _skip_string(src: str, i: int) -> int:
    """Index just past the string or char literal that starts at src[i]."""
    quote = src[i]
    i += 1
    while src[i] != quote:
        i += 2 if src[i] == "\\" else 1
    return i + 1


def _closing(src: str, i: int) -> int:
    """Index of the bracket closing the one at src[i] (strings, chars and comments skipped)."""
    pairs = {"(": ")", "{": "}", "[": "]"}
    stack = [pairs[src[i]]]
    i += 1
    while stack:
        c = src[i]
        if c in "\"'":
            i = _skip_string(src, i)
            continue
        if src.startswith("//", i):
            i = src.index("\n", i)
            continue
        if src.startswith("/*", i):
            i = src.index("*/", i) + 2
            continue
        if c in pairs:
            stack.append(pairs[c])
        elif c in ")}]":
            if c != stack.pop():
                raise ValueError(f"unbalanced bracket at {i}")
        i += 1
    return i - 1


def _split_top(src: str) -> list[str]:
    """Split on the commas that are not inside brackets or strings."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(src):
        c = src[i]
        if c in "\"'":
            i = _skip_string(src, i)
            continue
        if src.startswith("//", i):
            i = src.index("\n", i)
            continue
        if c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(src[start:i].strip())
            start = i + 1
        i += 1
    parts.append(src[start:].strip())
    return [p for p in (re.sub(r"^(\s*//[^\n]*\n)+", "", part).strip() for part in parts) if p]


def _literals(expr: str) -> str:
    """The concatenated string literals of an expression (a literal, adjacent literals, string_format's format)."""
    if expr.startswith("string_format("):
        expr = _split_top(expr[len("string_format(") : _closing(expr, len("string_format"))])[0]
    return "".join(_c_string(m.group(0)) for m in re.finditer(r'"(?:[^"\\]|\\.)*"', expr))


def _c_string(literal: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), literal[1:-1])


def _kind(handler: str) -> str:
    head = handler[: handler.index(")") + 1]
    params = _split_top(head[head.index("(") + 1 : -1])
    if len(params) == 1:
        return "none"
    types = [" ".join(p.split()[:-1]) for p in params[1:]]
    if types == ["bool"]:
        return "bool"
    if types == ["int"]:
        return "int"
    if len(types) == 1:
        return "string"
    return "string_string"


def _macros(header: str) -> dict[str, str]:
    return dict(re.findall(r'#define\s+(\w+)\s+"([^"]*)"', header))


def extract(arg_cpp: str, macros: dict[str, str]) -> list[dict]:
    options: list[dict] = []
    seen: set[str] = set()
    for m in re.finditer(r"\badd_opt\(common_arg\(", arg_cpp):
        open_arg = m.end() - 1
        close_arg = _closing(arg_cpp, open_arg)
        close_add = _closing(arg_cpp, m.end() - len("common_arg(") - 1)
        parts = _split_top(arg_cpp[open_arg + 1 : close_arg])
        names = json.loads("[" + parts[0].strip()[1:-1] + "]")
        rest = parts[1:]
        negatives: list[str] = []
        if rest[0].startswith("{"):
            negatives = json.loads("[" + rest[0].strip()[1:-1] + "]")
            rest = rest[1:]
        handler = rest[-1]
        texts = rest[:-1]
        hints = [_literals(t) for t in texts[:-1]]
        chain = arg_cpp[close_arg + 1 : close_add]
        examples = re.search(r"\.set_examples\(\{([^}]*)\}\)", chain)
        excludes = re.search(r"\.set_excludes\(\{([^}]*)\}\)", chain)
        env = re.search(r"\.set_env\(([^)]*)\)", chain)
        example_set = {e.strip() for e in examples.group(1).split(",")} if examples else {"LLAMA_EXAMPLE_COMMON"}
        exclude_set = {e.strip() for e in excludes.group(1).split(",")} if excludes else set()
        if not ({"LLAMA_EXAMPLE_SERVER", "LLAMA_EXAMPLE_COMMON"} & example_set) or "LLAMA_EXAMPLE_SERVER" in exclude_set:
            continue
        if any(name in seen for name in names):
            continue  # defined twice under `if (ex == ...)`: the first definition is the server's
        seen.update(names)
        env_name = None
        if env:
            raw = env.group(1).strip()
            env_name = json.loads(raw) if raw.startswith('"') else macros[raw]
        options.append({
            "names": names,
            "negatives": negatives,
            "value": hints[0] if hints else None,
            "value2": hints[1] if len(hints) > 1 else None,
            "kind": _kind(handler),
            "env": env_name,
            "sampling": ".set_sampling()" in chain,
            "speculative": ".set_spec()" in chain,
        })
    return options


def main() -> None:
    arg_cpp = pathlib.Path(sys.argv[1])
    options = extract(arg_cpp.read_text(), _macros((arg_cpp.parent / "arg.h").read_text()))
    spellings = sum(len(o["names"]) + len(o["negatives"]) for o in options)
    OUT.write_text(json.dumps({"source": "llama.cpp common/arg.cpp (vendored by llama-cpp-python 0.3.36)",
                               "options": options}, indent=1) + "\n")
    print(f"{len(options)} options, {spellings} spellings -> {OUT}")


if __name__ == "__main__":
    main()
