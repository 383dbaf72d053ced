"""/health, /props, /slots, /models, /tokenize, /detokenize, disconnects and small-context behaviour."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ONE_THREAD, serve
from tests.helpers import assert_error, wait_idle


def test_health(client):
    for path in ("/health", "/v1/health"):
        r = client.get(path)
        assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_props(client):
    p = client.get("/props").json()
    assert p["total_slots"] == 4
    assert p["default_generation_settings"]["n_ctx"] == 2048
    params = p["default_generation_settings"]["params"]
    assert params["top_k"] == 40 and "samplers" in params
    assert "<|im_start|>" in p["chat_template"]
    assert p["model_path"].endswith(".gguf")
    assert_error(client.post("/props", json={}), 501, "not_supported_error")


def test_models(client):
    for path in ("/models", "/v1/models"):
        d = client.get(path).json()
        assert d["object"] == "list"
        entry = d["data"][0]
        assert entry["id"] == "SmolLM2-135M-Instruct.Q4_1.gguf" and entry["object"] == "model"
        assert entry["meta"]["n_vocab"] == 49152 and entry["meta"]["n_ctx_train"] == 8192
        assert d["models"][0]["name"] == entry["id"]


def test_tokenize_detokenize(client):
    toks = client.post("/tokenize", json={"content": "Hello world"}).json()["tokens"]
    assert toks == [19556, 905]
    assert client.post("/detokenize", json={"tokens": toks}).json()["content"] == "Hello world"
    pieces = client.post("/tokenize", json={"content": "Hello world", "with_pieces": True}).json()["tokens"]
    assert pieces == [{"id": 19556, "piece": "Hello"}, {"id": 905, "piece": " world"}]
    special = client.post("/tokenize", json={"content": "<|im_start|>hi"}).json()["tokens"]
    assert special[0] == 1
    literal = client.post("/tokenize", json={"content": "<|im_start|>hi", "parse_special": False}).json()["tokens"]
    assert 1 not in literal
    # a piece that is not valid UTF-8 on its own comes back as bytes
    emoji = client.post("/tokenize", json={"content": "🦙", "with_pieces": True}).json()["tokens"]
    assert any(isinstance(t["piece"], list) for t in emoji) or len(emoji) == 1
    assert client.post("/detokenize", json={"tokens": [t["id"] for t in emoji]}).json()["content"] == "🦙"


def test_slots(client):
    slots = client.get("/slots").json()
    assert [s["id"] for s in slots] == [0, 1, 2, 3]
    assert all(s["n_ctx"] == 2048 for s in slots)


def test_stream_disconnect_frees_slot(server, client):
    wait_idle(client)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        with c.stream("POST", "/completion", json={"prompt": "Tell a long story", "n_predict": 2000, "ignore_eos": True, "stream": True}) as r:
            # held: dropping the line iterator closes the connection (httpcore), and the server
            # rightly cancels the request of a client that left
            lines = r.iter_lines()
            for i, _ in enumerate(lines):
                if i > 4:
                    break
            assert any(s["is_processing"] for s in client.get("/slots").json())
    slots = wait_idle(client, timeout=10)
    assert not any(s["is_processing"] for s in slots)


def test_non_stream_disconnect_frees_slot(server, client):
    wait_idle(client)
    try:
        httpx.post(server.url + "/completion", json={"prompt": "Tell a long story", "n_predict": 2000, "ignore_eos": True}, timeout=0.5)
    except httpx.ReadTimeout:
        pass
    wait_idle(client, timeout=10)
    r = client.post("/completion", json={"prompt": "Hi", "n_predict": 2})
    assert r.status_code == 200


def test_more_requests_than_slots_all_complete(server):
    import concurrent.futures

    def one(i):
        with httpx.Client(base_url=server.url, timeout=120) as c:
            return c.post("/completion", json={"prompt": f"Item {i}:", "n_predict": 8, "temperature": 0}).json()

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(one, range(10)))
    assert all(r["tokens_predicted"] == 8 for r in results)


def test_context_limit_stops_generation(small_server):
    with small_server.client() as c:
        d = c.post("/completion", json={"prompt": "Count forever: 1, 2, 3,", "n_predict": -1, "ignore_eos": True, "temperature": 0}).json()
        assert d["stop_type"] == "limit" and d["truncated"] is True
        assert d["tokens_evaluated"] + d["tokens_predicted"] == 256
        assert d["model"] == "tiny"


@pytest.fixture(scope="module")
def shift_server(request):
    """One slot of 256 tokens with --context-shift, keeping 4 prompt tokens by default."""
    return serve(request, "shift", "-np", "1", "-c", "256", "--context-shift", "--keep", "4", *ONE_THREAD)


def test_context_shift_generates_past_the_context(shift_server):
    with shift_server.client() as c:
        d = c.post("/completion", json={"prompt": "Count forever: 1, 2, 3,", "n_predict": 600, "ignore_eos": True, "temperature": 0}).json()
        assert d["tokens_predicted"] == 600 and d["stop_type"] == "limit" and d["truncated"] is True
        assert d["generation_settings"]["n_keep"] == 4 and d["generation_settings"]["n_discard"] == 0
        # per request: keep the whole prompt, drop 16 tokens per shift
        d = c.post("/completion", json={"prompt": "Count forever: 1, 2, 3,", "n_predict": 300, "ignore_eos": True,
                                        "temperature": 0, "n_keep": -1, "n_discard": 16}).json()
        assert d["tokens_predicted"] == 300 and d["truncated"] is True
        assert d["generation_settings"]["n_keep"] == -1 and d["generation_settings"]["n_discard"] == 16
        assert_error(c.post("/completion", json={"prompt": "x", "n_discard": -1}), 400, "invalid_request_error")


def test_a_long_prompt_kept_whole_still_shifts(shift_server):
    # n_keep is capped at the slot's context less 4, so there is always something to drop
    with shift_server.client() as c:
        prompt = "one two three four five six seven eight nine ten " * 20
        n = len(c.post("/tokenize", json={"content": prompt}).json()["tokens"])
        d = c.post("/completion", json={"prompt": prompt, "n_predict": 200, "ignore_eos": True, "temperature": 0, "n_keep": -1}).json()
        assert n > 180 and n + d["tokens_predicted"] > 256
        assert d["tokens_predicted"] == 200 and d["truncated"] is True


def test_slots_disabled(small_server):
    with small_server.client() as c:
        assert_error(c.get("/slots"), 501, "not_supported_error", "slots")


def test_cache_reuse_shifts_cached_chunks(small_server):
    # The cached prompt had a passage that the new prompt drops: the text after it is
    # shifted into place in the KV cache instead of being evaluated again.
    head = "Notes: "
    middle = "the quick brown fox jumps over the lazy dog near the river bank today. " * 2
    with small_server.client() as c:
        n_middle = len(c.post("/tokenize", json={"content": middle}).json()["tokens"])
        c.post("/completion", json={"prompt": head + "Some words to drop. " + middle, "n_predict": 1, "temperature": 0})
        d = c.post("/completion", json={"prompt": head + middle, "n_predict": 8, "temperature": 0}).json()
        assert d["timings"]["cache_n"] >= n_middle - 2
        # the middle's KV was computed after the dropped words, so the text may differ from a fresh run
        # (as in llama-server); generation must still go on from the shifted cache
        assert d["tokens_predicted"] == 8 and d["tokens_cached"] == d["tokens_evaluated"] + 7
        # a passage no cache holds yet without the dropped words (head + middle now is, in host memory)
        other = "a slow green turtle walks under the tall oak tree by the quiet pond. " * 2
        c.post("/completion", json={"prompt": head + "Other words to drop. " + other, "n_predict": 1, "temperature": 0})
        off = c.post("/completion", json={"prompt": head + other, "n_predict": 1, "temperature": 0, "n_cache_reuse": 0}).json()
        assert off["timings"]["cache_n"] < 8
