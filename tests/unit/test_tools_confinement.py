"""The file tools never leave their root: '..', absolute paths, symlinked files and symlinked parent
directories that point out of it are refused, reading, writing, editing, listing and searching alike."""

import os

import pytest

from llamaserve.errors import InvalidRequest, PermissionDenied
from llamaserve.tools import files, search
from llamaserve.tools.confine import Confinement
from llamaserve.tools.host_io import HostIO
from llamaserve.tools.process import Processes


@pytest.fixture()
def layout(tmp_path):
    """root/ (the tools' directory) with work/ inside, and outside/ beside it holding a secret."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "work").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    (root / "work" / "notes.txt").write_text("notes\n")
    (root / "link-to-secret.txt").symlink_to(outside / "secret.txt")
    (root / "linked-dir").symlink_to(outside, target_is_directory=True)
    (root / "inner-link.txt").symlink_to(root / "work" / "notes.txt")
    return root, outside


def io_for(root, cwd=None) -> HostIO:
    confinement = Confinement(str(root))
    return HostIO(confinement, confinement.working_directory(str(cwd) if cwd else ""), Processes())


HOSTILE = ["../outside/secret.txt", "work/../../outside/secret.txt", "link-to-secret.txt", "linked-dir/secret.txt",
           "linked-dir/../outside/secret.txt", "~/../../../../../../etc/passwd"]


@pytest.mark.parametrize("path", HOSTILE + ["ABSOLUTE"])
def test_reading_out_of_the_root_is_refused(layout, path):
    root, outside = layout
    path = str(outside / "secret.txt") if path == "ABSOLUTE" else path
    with pytest.raises(PermissionDenied, match="outside the directory"):
        files.read_file({"path": path}, io_for(root))


@pytest.mark.parametrize("path", ["../outside/new.txt", "linked-dir/new.txt", "linked-dir/sub/new.txt", "link-to-secret.txt"])
def test_writing_out_of_the_root_is_refused_and_writes_nothing(layout, path):
    root, outside = layout
    with pytest.raises(PermissionDenied):
        files.write_file({"path": path, "content": "x"}, io_for(root))
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "secret\n"


def test_editing_through_a_symlink_out_of_the_root_is_refused(layout):
    root, outside = layout
    with pytest.raises(PermissionDenied):
        files.edit_file({"path": "link-to-secret.txt", "edits": [{"old_text": "secret", "new_text": "leaked"}]}, io_for(root))
    assert (outside / "secret.txt").read_text() == "secret\n"


def test_paths_inside_the_root_work_whatever_their_spelling(layout):
    root, _ = layout
    io = io_for(root, root / "work")
    assert files.read_file({"path": "notes.txt"}, io)["plain_text_response"] == "notes\n"
    assert files.read_file({"path": "../work/./notes.txt"}, io)["plain_text_response"] == "notes\n"
    assert files.read_file({"path": str(root / "work" / "notes.txt")}, io)["plain_text_response"] == "notes\n"
    assert files.read_file({"path": "../inner-link.txt"}, io)["plain_text_response"] == "notes\n"  # a link that stays in
    # '..' is taken after the link it follows, as the system takes it: out through linked-dir, back into root
    assert files.read_file({"path": "../linked-dir/../root/work/notes.txt"}, io)["plain_text_response"] == "notes\n"


def test_a_working_directory_out_of_the_root_is_refused(layout):
    root, outside = layout
    confinement = Confinement(str(root))
    for cwd in (str(outside), "../outside", "linked-dir"):
        with pytest.raises(PermissionDenied):
            confinement.working_directory(cwd)
    with pytest.raises(InvalidRequest, match="not a directory"):
        confinement.working_directory("work/notes.txt")
    assert confinement.working_directory("work") == os.path.realpath(root / "work")


def test_the_root_itself_through_a_symlink_is_its_real_path(layout, tmp_path):
    root, outside = layout
    alias = tmp_path / "alias"
    alias.symlink_to(root, target_is_directory=True)
    io = io_for(alias)
    assert files.read_file({"path": "work/notes.txt"}, io)["plain_text_response"] == "notes\n"
    with pytest.raises(PermissionDenied):
        files.read_file({"path": "../outside/secret.txt"}, io)


def test_a_nul_in_a_path_is_a_bad_request(layout):
    root, _ = layout
    with pytest.raises(InvalidRequest):
        files.read_file({"path": "work/notes.txt\0.png"}, io_for(root))


def test_search_never_reads_or_walks_out_of_the_root(layout):
    root, _ = layout
    io = io_for(root)
    found = search.grep_search({"path": ".", "pattern": "secret|notes"}, io)["plain_text_response"]
    assert "notes" in found and "secret" not in found.replace("link-to-secret.txt", "")
    listed = [e["path"] for e in search.file_glob_search({"path": ".", "type": "all"}, io)["entries"]]
    assert "linked-dir" in listed and not any(p.startswith("linked-dir/") for p in listed)
    with pytest.raises(PermissionDenied):
        search.file_glob_search({"path": "linked-dir"}, io)
    with pytest.raises(PermissionDenied):
        search.grep_search({"path": "..", "pattern": "secret"}, io)
