"""POST /slots/{id}?action=save|restore|erase (--slot-save-path): a slot's prompt cache to files and back.

One server, started with --no-slots (the actions work without GET /slots, as in llama-server).
"""

from __future__ import annotations

import concurrent.futures
import os
import struct

import httpx
import pytest

from tests.conftest import ONE_THREAD, serve
from tests.helpers import assert_error

PROMPT = "The quick brown fox jumps over the lazy dog. A stitch in time saves nine."
GREEDY = {"temperature": 0, "n_predict": 4, "cache_prompt": True}

# libllama's sequence state file: magic, version, token count, tokens, then the KV cells
HEADER = 12


@pytest.fixture(scope="module")
def save_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("slot-files")


@pytest.fixture(scope="module")
def slots_server(request, save_dir):
    return serve(request, "slotsrv", "-np", "2", "-c", "1024", "--no-slots",
                 "--slot-save-path", str(save_dir), *ONE_THREAD)


@pytest.fixture()
def c(slots_server):
    with slots_server.client() as client:
        yield client


def complete(c, id_slot: int, prompt: str = PROMPT) -> dict:
    r = c.post("/completion", json={"prompt": prompt, "id_slot": id_slot, **GREEDY})
    assert r.status_code == 200, r.text
    return r.json()


def test_save_erase_restore_reuses_the_cache(c, save_dir):
    first = complete(c, 1, PROMPT + " Once")  # what the slot held before is not this prompt
    first = complete(c, 1)
    n_prompt = first["tokens_evaluated"]
    assert first["timings"]["prompt_n"] + first["timings"]["cache_n"] == n_prompt

    saved = c.post("/slots/1?action=save", json={"filename": "slot1.bin"}).json()
    assert saved["id_slot"] == 1 and saved["filename"] == "slot1.bin"
    assert saved["n_saved"] == first["tokens_cached"]  # prompt + generated tokens, as decoded into the slot
    assert saved["n_written"] == os.path.getsize(save_dir / "slot1.bin") and saved["timings"]["save_ms"] >= 0

    assert c.post("/slots/1?action=erase").json() == {"id_slot": 1, "n_erased": saved["n_saved"]}
    again = complete(c, 1)
    assert again["timings"]["cache_n"] == 0 and again["timings"]["prompt_n"] == n_prompt  # nothing left to reuse

    restored = c.post("/slots/0?action=restore", json={"filename": "slot1.bin"}).json()
    assert restored["id_slot"] == 0 and restored["n_restored"] == saved["n_saved"]
    assert restored["n_read"] == saved["n_written"] and restored["timings"]["restore_ms"] >= 0
    hit = complete(c, 0)
    # every prompt token comes from the restored cache but the last (evaluated again for its logits)
    assert (hit["timings"]["cache_n"], hit["timings"]["prompt_n"]) == (n_prompt - 1, 1)
    assert hit["content"] == first["content"]

    # a longer prompt sharing the prefix reuses it too
    longer = complete(c, 0, PROMPT + " And then")
    assert longer["timings"]["cache_n"] >= n_prompt - 1

    assert_error(c.get("/slots"), 501, "not_supported_error", "--slots")  # --no-slots hides only the listing


def test_restore_replaces_what_the_slot_held(c):
    complete(c, 1)
    c.post("/slots/1?action=save", json={"filename": "fox.bin"}).raise_for_status()
    complete(c, 1, "Completely different words about the weather today")
    c.post("/slots/1?action=restore", json={"filename": "fox.bin"}).raise_for_status()
    hit = complete(c, 1)
    assert hit["timings"]["prompt_n"] == 1


def test_restore_reads_llama_server_wrapped_token_list(c, save_dir):
    complete(c, 1)
    saved = c.post("/slots/1?action=save", json={"filename": "plain.bin"}).json()
    data = (save_dir / "plain.bin").read_bytes()
    n = struct.unpack_from("=I", data, HEADER - 4)[0]
    tokens = data[HEADER:HEADER + 4 * n]
    # llama-server's wrapper: LLAMA_TOKEN_NULL, version 1, the count, the tokens, no media
    wrapped = struct.pack("=iII", -1, 1, n) + tokens + struct.pack("=I", 0)
    out = data[:HEADER - 4] + struct.pack("=I", n + 4) + wrapped + data[HEADER + 4 * n:]
    (save_dir / "wrapped.bin").write_bytes(out)
    restored = c.post("/slots/0?action=restore", json={"filename": "wrapped.bin"}).json()
    assert restored["n_restored"] == saved["n_saved"]
    assert complete(c, 0)["timings"]["prompt_n"] == 1


@pytest.mark.parametrize("filename", ["", "../escape.bin", "sub/dir.bin", "/tmp/abs.bin", "..", ".", "a\\b", "x:y", "trail."])
@pytest.mark.parametrize("action", ["save", "restore"])
def test_filenames_are_validated(c, save_dir, action, filename):
    assert_error(c.post(f"/slots/0?action={action}", json={"filename": filename}), 400, "invalid_request_error", "Invalid filename")
    assert not (save_dir.parent / "escape.bin").exists()


@pytest.mark.parametrize("body, fragment", [({}, "filename"), ({"filename": 5}, "filename"), ([], "object")])
def test_filename_is_required(c, body, fragment):
    assert_error(c.post("/slots/0?action=save", json=body), 400, "invalid_request_error", fragment)


def test_restore_of_a_missing_file(c):
    assert_error(c.post("/slots/0?action=restore", json={"filename": "never-saved.bin"}), 404, "not_found_error", "never-saved.bin")


def test_restore_of_a_file_that_is_no_slot_file(c, save_dir):
    complete(c, 0)
    (save_dir / "junk.bin").write_bytes(b"not a state file at all")
    assert_error(c.post("/slots/0?action=restore", json={"filename": "junk.bin"}), 400, "invalid_request_error", "Unable to restore slot")
    # the failed restore left the slot empty and usable (its next prompt may come back from the host
    # prompt cache, which kept the conversation the slot held before)
    again = complete(c, 0)
    assert again["tokens_predicted"] > 0 and again["timings"]["prompt_n"] >= 1


@pytest.mark.parametrize("url, fragment", [
    ("/slots/0?action=bogus", "Invalid action"), ("/slots/0", "Invalid action"),
    ("/slots/2?action=erase", "Invalid slot ID"), ("/slots/-1?action=erase", "Invalid slot ID"),
    ("/slots/x?action=erase", "Invalid slot ID"), ("/slots/99999999999999999999?action=erase", "Invalid slot ID"),
])
def test_bad_action_or_slot(c, url, fragment):
    assert_error(c.post(url, json={"filename": "x.bin"}), 400, "invalid_request_error", fragment)


def test_action_on_a_busy_slot_waits_for_it(slots_server, c):
    body = {"prompt": PROMPT, "id_slot": 0, "temperature": 0, "n_predict": 48, "ignore_eos": True, "stream": True}
    with httpx.Client(base_url=slots_server.url, timeout=120) as streamer, \
            concurrent.futures.ThreadPoolExecutor(1) as pool:
        with streamer.stream("POST", "/completion", json=body) as r:
            lines = r.iter_lines()
            next(line for line in lines if line.startswith("data: "))  # generating: the slot is busy
            save = pool.submit(c.post, "/slots/0?action=save", json={"filename": "busy.bin"})
            last = [line for line in lines if line.startswith("data: ")][-1]
        saved = save.result(timeout=120).json()
    final = httpx.Response(200, content=last[len("data: "):]).json()
    assert final["stop"] is True and final["tokens_predicted"] == 48
    # saved after the generation, not in the middle of it: the whole sequence is in the file
    assert saved["n_saved"] == final["tokens_cached"]


def test_without_slot_save_path(client):
    assert_error(client.post("/slots/0?action=save", json={"filename": "x.bin"}), 501, "not_supported_error", "--slot-save-path")
    assert_error(client.post("/slots/0?action=erase"), 501, "not_supported_error", "--slot-save-path")
