"""file_glob_search and grep_search, with llama-server's result limits and glob rules: a pattern without
'/' matches the basename at any depth; one with '/' matches the whole relative path, anchored with "**/"
unless it already starts with "**" or "/"."""

from __future__ import annotations

import functools
import posixpath
import re

from llamaserve.tools.params import param

GLOB_MAX_RESULTS = 100
GREP_MAX_RESULTS = 100
_KINDS = ("file", "dir", "all")


@functools.lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern:
    """'*' and '?' stay within one path segment, '**' crosses them, '[...]' is a class ('!' or '^' negates)."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            # zero or more whole directories: "**/x" matches a top-level "x" too (llama-server's needs a '/')
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("]", "-") else i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end]
                negate = body[:1] in ("!", "^")
                body = body[1:] if negate else body
                out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def glob_match(pattern: str, text: str) -> bool:
    try:
        return _glob_regex(pattern).fullmatch(text) is not None
    except re.error:
        return False


def path_glob_match(pattern: str, rel_path: str) -> bool:
    if "/" not in pattern:
        return glob_match(pattern, rel_path.rsplit("/", 1)[-1])
    if pattern == "**" or pattern.startswith(("**/", "/")):
        return glob_match(pattern, rel_path)
    return glob_match("**/" + pattern, rel_path)


def file_glob_search(params: dict, io) -> dict:
    path = param(params, "path", str)
    include = param(params, "include", str, "**")
    exclude = param(params, "exclude", str, "")
    kind = param(params, "type", str, "file")
    max_depth = max(0, param(params, "max_depth", int, 0))
    limit = param(params, "limit", int, GLOB_MAX_RESULTS)
    if limit < 1:
        return {"error": f"invalid limit: {limit} (expected 1 or more)"}
    limit = min(limit, GLOB_MAX_RESULTS)
    if kind not in _KINDS:
        return {"error": f'invalid type: {kind} (expected "file", "dir" or "all")'}
    base = io.resolve(path)
    if not io.is_dir(base):
        return {"error": f"path does not exist or is not a directory: {path}"}
    listing = io.list_entries(base, max_depth, kind)
    matches = [e for e in listing.entries
               if path_glob_match(include, e.rel) and not (exclude and path_glob_match(exclude, e.rel))]
    shown = matches[:limit]
    lines = [e.rel + ("/" if e.is_dir else "") for e in shown]
    text = "\n".join(lines) + ("\n" if lines else "") + f"\n---\nTotal matches: {len(matches)}\n"
    if len(matches) > len(shown):
        text += (f"[{len(shown)} results limit reached ({len(matches)} total matches). "
                 "Refine the glob pattern to narrow the search.]\n")
    if listing.truncated:
        text += "[results truncated: time budget or unreadable directory]\n"
    # `entries` and `base` are for the web UI's file picker, which joins them instead of parsing the text
    return {"plain_text_response": text, "base": base,
            "entries": [{"path": e.rel, "type": "dir" if e.is_dir else "file"} for e in shown]}


def grep_search(params: dict, io) -> dict:
    path = param(params, "path", str)
    pattern_text = param(params, "pattern", str)
    include = param(params, "include", str, "**")
    exclude = param(params, "exclude", str, "")
    show_lineno = param(params, "return_line_numbers", bool, False)
    literal = param(params, "literal", bool, False)
    ignore_case = param(params, "ignore_case", bool, False)
    context = max(0, param(params, "context_lines", int, 0))
    try:
        pattern = re.compile(re.escape(pattern_text) if literal else pattern_text, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        return {"error": f"invalid regex: {exc}"}
    target = io.resolve(path)
    if io.is_file(target):
        files = [(target, path)]
    elif io.is_dir(target):
        listing = io.list_entries(target, 0, "file")
        files = [(posixpath.join(target, e.rel), e.rel) for e in listing.entries
                 if path_glob_match(include, e.rel) and not (exclude and path_glob_match(exclude, e.rel))]
    else:
        return {"error": f"path does not exist: {path}"}
    out: list[str] = []
    total = 0
    limit_reached = False
    numbered = show_lineno or context > 0
    for real, shown in files:
        if limit_reached:
            break
        if not io.readable_inside(real):
            continue  # a symlink in the tree that points out of the root
        data = io.read(real)
        if data is None:
            continue
        lines = data.decode("utf-8", "replace").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for i, line in enumerate(lines):
            if total >= GREP_MAX_RESULTS:
                limit_reached = True
                break
            if not pattern.search(line):
                continue
            for j in range(max(0, i - context), min(len(lines), i + context + 1)):
                mark = ":" if j == i else "-"
                out.append(f"{shown}{mark}{f'{j + 1}{mark}' if numbered else ''}{lines[j]}\n")
            if context:
                out.append("--\n")
            total += 1
    text = "".join(out) + f"\n---\nTotal matches: {total}\n"
    if limit_reached:
        text += f"[{GREP_MAX_RESULTS} matches limit reached. Narrow the path/pattern/include to see more.]\n"
    return {"plain_text_response": text}
