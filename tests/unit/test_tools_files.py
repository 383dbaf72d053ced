"""The built-in file and search tools' rules, as llama-server's: line ranges, edit uniqueness and overlap,
typographic folding, glob anchoring, junk directories, result limits."""

import pytest

from llamaserve.errors import InvalidRequest
from llamaserve.tools import files, search
from llamaserve.tools.confine import Confinement
from llamaserve.tools.host_io import HostIO
from llamaserve.tools.process import Processes


@pytest.fixture()
def io(tmp_path):
    return HostIO(Confinement(str(tmp_path)), str(tmp_path), Processes())


def test_read_file_lines_and_numbers(io, tmp_path):
    (tmp_path / "f.txt").write_text("a\nb\nc\n")
    assert files.read_file({"path": "f.txt"}, io)["plain_text_response"] == "a\nb\nc\n"
    assert files.read_file({"path": "f.txt", "start_line": 2, "end_line": 2}, io)["plain_text_response"] == "b\n"
    assert files.read_file({"path": "f.txt", "append_loc": True, "start_line": 3}, io)["plain_text_response"] == "3\u2192c\n"
    assert "cannot stat" in files.read_file({"path": "missing.txt"}, io)["error"]


def test_read_file_refuses_a_large_file_without_a_range(io, tmp_path):
    (tmp_path / "big.txt").write_text("x" * 100 + "\n" + "y" * 20000)
    assert "too large" in files.read_file({"path": "big.txt"}, io)["error"]
    assert files.read_file({"path": "big.txt", "end_line": 1}, io)["plain_text_response"] == "x" * 100 + "\n"


def test_wrongly_typed_parameters_are_bad_requests(io):
    with pytest.raises(InvalidRequest, match="path"):
        files.read_file({}, io)
    with pytest.raises(InvalidRequest, match="start_line"):
        files.read_file({"path": "f", "start_line": "2"}, io)
    with pytest.raises(InvalidRequest, match="edits"):
        files.edit_file({"path": "f", "edits": "nope"}, io)


def test_write_then_edit(io, tmp_path):
    assert files.write_file({"path": "d/e/f.txt", "content": "one\ntwo\nthree\n"}, io)["result"] == "file written successfully"
    res = files.edit_file({"path": "d/e/f.txt", "edits": [{"old_text": "one", "new_text": "1"},
                                                         {"old_text": "three\n", "new_text": "3\n4\n"}]}, io)
    assert res["edits_applied"] == 2
    assert (tmp_path / "d/e/f.txt").read_text() == "1\ntwo\n3\n4\n"


@pytest.mark.parametrize("content, edits, message", [
    ("dup\ndup\n", [{"old_text": "dup", "new_text": "x"}], "unique"),
    ("dup  \ndup\n", [{"old_text": "dup\n", "new_text": "x"}], "unique"),  # a copy that differs only in spacing counts
    ("line1\nline2\n", [{"old_text": "line1\nline2", "new_text": "a"}, {"old_text": "line2", "new_text": "b"}], "overlap"),
    ("abc\n", [{"old_text": "zzz", "new_text": "x"}], "could not find"),
    ("abc\n", [{"old_text": "", "new_text": "x"}], "must not be empty"),
    ("abc\n", [{"old_text": "abc", "new_text": "abc"}], "no changes"),
])
def test_edit_file_refusals_leave_the_file_alone(io, tmp_path, content, edits, message):
    (tmp_path / "f.txt").write_text(content)
    assert message in files.edit_file({"path": "f.txt", "edits": edits}, io)["error"]
    assert (tmp_path / "f.txt").read_text() == content


def test_edit_file_matches_typographic_quotes_and_keeps_untouched_lines(io, tmp_path):
    (tmp_path / "f.txt").write_text("keep \u201cthis\u201d   \nsay \u201chello\u201d\nend\n")
    res = files.edit_file({"path": "f.txt", "edits": [{"old_text": 'say "hello"', "new_text": 'say "bye"'}]}, io)
    assert res["result"] == "file edited successfully"
    assert (tmp_path / "f.txt").read_text() == "keep \u201cthis\u201d   \nsay \"bye\"\nend\n"


@pytest.mark.parametrize("pattern, path, expected", [
    ("*.py", "a/b/c.py", True), ("*.py", "c.txt", False), ("src/*.c", "x/src/a.c", True),
    ("src/*.c", "src/sub/a.c", False), ("src/**/*.c", "src/sub/a.c", True), ("src/**/*.c", "src/a.c", True), ("/top.txt", "/top.txt", True),
    ("[ab].txt", "b.txt", True), ("[!ab].txt", "b.txt", False), ("?.md", "x.md", True), ("**", "any/thing", True),
])
def test_glob_rules(pattern, path, expected):
    assert search.path_glob_match(pattern, path) is expected


def test_glob_search_depth_limit_junk_dirs_and_types(io, tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "node_modules" / "pkg").mkdir(parents=True)
    (tmp_path / "node_modules" / "pkg" / "index.js").write_text("")
    for rel in ("top.txt", "a/mid.txt", "a/b/deep.txt"):
        (tmp_path / rel).write_text(rel)
    paths = lambda **kw: [e["path"] for e in search.file_glob_search({"path": ".", **kw}, io)["entries"]]  # noqa: E731
    assert sorted(paths()) == ["a/b/deep.txt", "a/mid.txt", "top.txt"]
    assert paths(max_depth=1) == ["top.txt"]
    assert sorted(paths(type="dir")) == ["a", "a/b", "node_modules"]
    res = search.file_glob_search({"path": ".", "limit": 1}, io)
    assert len(res["entries"]) == 1 and "Total matches: 3" in res["plain_text_response"]
    assert "invalid type" in search.file_glob_search({"path": ".", "type": "bogus"}, io)["error"]
    assert "invalid limit" in search.file_glob_search({"path": ".", "limit": 0}, io)["error"]


def test_grep_search_context_limits_and_bad_patterns(io, tmp_path):
    (tmp_path / "f.txt").write_text("".join(f"line {i}\n" for i in range(150)))
    text = search.grep_search({"path": "f.txt", "pattern": "line 7$", "context_lines": 1}, io)["plain_text_response"]
    assert "f.txt-7-line 6\nf.txt:8:line 7\nf.txt-9-line 8\n--\n" in text and "Total matches: 1" in text
    text = search.grep_search({"path": ".", "pattern": "LINE", "ignore_case": True}, io)["plain_text_response"]
    assert "Total matches: 100" in text and "limit reached" in text
    assert search.grep_search({"path": ".", "pattern": "(", "literal": True}, io)["plain_text_response"].endswith("Total matches: 0\n")
    assert "invalid regex" in search.grep_search({"path": ".", "pattern": "("}, io)["error"]
