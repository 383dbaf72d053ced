"""read_file, write_file and edit_file, with llama-server's limits and edit rules: each old_text must be
found (exactly, or after the whitespace and typographic-quote folding below) once in the original text,
and no two edits may overlap."""

from __future__ import annotations

import base64
import re

from llamaserve.tools.params import param

READ_MAX = 16 * 1024  # what read_file returns at most as text (the model's context is the limit)
READ_MAX_BASE64 = 32 << 20  # x-resp-type: base64 (the web UI fetching a file)


def read_file(params: dict, io) -> dict:
    path = param(params, "path", str)
    start_line = param(params, "start_line", int, 1)
    end_line = param(params, "end_line", int, -1)
    append_loc = param(params, "append_loc", bool, False)
    size = io.size(path)
    if size is None or not io.is_file(path):
        return {"error": f"cannot stat file: {path}"}
    if params.get("resp_type") == "base64":
        if size > READ_MAX_BASE64:
            return {"error": f"file too large ({size} bytes, max {READ_MAX_BASE64})"}
        data = io.read(path)
        if data is None:
            return {"error": f"failed to open file: {path}"}
        return {"base64": base64.b64encode(data).decode("ascii"), "size_bytes": len(data)}
    if size > READ_MAX and end_line == -1:
        return {"error": f"file too large ({size} bytes, max {READ_MAX}). Use start_line/end_line to read a portion."}
    data = io.read(path)
    if data is None:
        return {"error": f"failed to open file: {path}"}
    out: list[str] = []
    used = 0
    lines = data.decode("utf-8", "replace").split("\n")
    if lines[-1] == "":
        lines.pop()  # what follows the last newline is no line
    for lineno, line in enumerate(lines, start=1):
        if lineno < start_line:
            continue
        if end_line != -1 and lineno > end_line:
            break
        piece = (f"{lineno}\u2192{line}\n" if append_loc else f"{line}\n")
        if used + len(piece.encode()) > READ_MAX:
            out.append("[output truncated]")
            break
        out.append(piece)
        used += len(piece.encode())
    return {"plain_text_response": "".join(out)}


def write_file(params: dict, io) -> dict:
    path = param(params, "path", str)
    content = param(params, "content", str)
    data = content.encode("utf-8")
    if not io.write(path, data):
        return {"error": f"failed to write file: {path}"}
    return {"result": "file written successfully", "path": path, "bytes": len(data)}


def edit_file(params: dict, io) -> dict:
    path = param(params, "path", str)
    edits = param(params, "edits", list)
    if not edits:
        return {"error": '"edits" must be a non-empty array'}
    pairs: list[tuple[str, str]] = []
    for i, edit in enumerate(edits):
        if not isinstance(edit, dict):
            return {"error": f"edits[{i}] must be an object with old_text and new_text"}
        old, new = param(edit, "old_text", str), param(edit, "new_text", str)
        if not old:
            return {"error": f"edits[{i}].old_text must not be empty"}
        pairs.append((old, new))
    data = io.read(path)
    if data is None:
        return {"error": f"failed to open file: {path}"}
    original = data.decode("utf-8", "replace")
    folded_original = fold(original)
    fuzzy = False
    for i, (old, _) in enumerate(pairs):
        if old in original:
            continue
        if fold(old) not in folded_original:
            return {"error": f"could not find edits[{i}].old_text in {path}, it must match the file's current content exactly"}
        fuzzy = True
    base = folded_original if fuzzy else original
    matches: list[tuple[int, int, str, int]] = []  # (start, length, new_text, edit index) in `base`
    for i, (old, new) in enumerate(pairs):
        # uniqueness is judged on the folded text, so copies that differ only in spacing count too
        count = _count(folded_original, fold(old))
        if count > 1:
            return {"error": f"found {count} occurrences of edits[{i}].old_text in {path}, it must be unique"}
        needle = fold(old) if fuzzy else old
        matches.append((base.find(needle), len(needle), new, i))
    matches.sort()
    for (s1, n1, _, i1), (s2, _, _, i2) in zip(matches, matches[1:]):
        if s1 + n1 > s2:
            return {"error": f"edits[{i1}] and edits[{i2}] overlap in {path}; merge them into one edit or target disjoint regions"}
    updated = _apply_keeping_lines(original, base, matches) if fuzzy else _apply(base, matches)
    if updated == original:
        return {"error": "no changes made: the replacement(s) produced identical content"}
    if not io.write(path, updated.encode("utf-8")):
        return {"error": f"failed to write file: {path}"}
    return {"result": "file edited successfully", "path": path, "edits_applied": len(matches)}


_FOLD = str.maketrans({
    **dict.fromkeys("\u2018\u2019\u201a\u201b", "'"), **dict.fromkeys("\u201c\u201d\u201e\u201f", '"'),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
    **dict.fromkeys("\u00a0\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000", " "),
})
_TRAILING = re.compile(r"[ \t\r]+$", re.MULTILINE)


def fold(text: str) -> str:
    """Models retype text with typographic quotes, dashes and spaces, and lose trailing whitespace: fold
    those to ASCII, line by line (the line count stays, so positions map back to lines)."""
    return _TRAILING.sub("", text.translate(_FOLD))


def _count(text: str, needle: str) -> int:
    return text.count(needle) if needle else 0


def _apply(text: str, matches) -> str:
    for start, length, new, _ in reversed(matches):
        text = text[:start] + new + text[start + length:]
    return text


def _apply_keeping_lines(original: str, base: str, matches) -> str:
    """Replace in the folded text, but keep every line no edit touches as it was in the original."""
    orig_lines = original.splitlines(keepends=True)
    spans, offset = [], 0
    for line in base.splitlines(keepends=True):
        spans.append((offset, offset + len(line)))
        offset += len(line)
    groups: list[list] = []  # [first line, end line (exclusive), matches]
    for m in matches:
        start, end = m[0], m[0] + m[1]
        first = next(i for i, (a, b) in enumerate(spans) if a <= start < b)
        last = first
        while last < len(spans) - 1 and spans[last][1] < end:
            last += 1
        if groups and first < groups[-1][1]:
            groups[-1][1] = max(groups[-1][1], last + 1)
            groups[-1][2].append(m)
        else:
            groups.append([first, last + 1, [m]])
    out, line = [], 0
    for first, end, group in groups:
        out.extend(orig_lines[line:first])
        lo, hi = spans[first][0], spans[end - 1][1]
        out.append(_apply(base[lo:hi], [(s - lo, n, new, i) for s, n, new, i in group]))
        line = end
    out.extend(orig_lines[line:])
    return "".join(out)
