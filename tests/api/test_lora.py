"""LoRA adapters through HTTP with the real model and the test adapter (shared/models): --lora,
--lora-init-without-apply, GET/POST /lora-adapters, the per-request "lora" field on the native,
OpenAI and Anthropic routes, refusals, and start-up failures."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import time

import pytest

from tests.conftest import MODEL, ONE_THREAD, serve, shared_model, start_server

PROMPT = "The capital of France is"
CHAT = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def lora_path():
    return shared_model("smollm2-135m-test-lora.f32.gguf")


@pytest.fixture(scope="module")
def lora_server(request, lora_path):
    return serve(request, "lora", "-np", "2", "-c", "1024", "--lora", lora_path, *ONE_THREAD, "--metrics",
                 "--context-shift")  # so that an endless request runs until its client leaves


@pytest.fixture(scope="module")
def client(lora_server):
    with lora_server.client() as c:
        yield c


def complete(client, **body):
    r = client.post("/completion", json={"prompt": PROMPT, "n_predict": 8, "temperature": 0, **body})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def outputs(client):
    """The greedy completion of PROMPT at scale 1 and at scale 0 (each request alone)."""
    on = complete(client, lora=[{"id": 0, "scale": 1.0}], cache_prompt=False)["content"]
    off = complete(client, lora=[{"id": 0, "scale": 0.0}], cache_prompt=False)["content"]
    assert on != off
    return {1.0: on, 0.0: off}


def test_adapters_are_listed(client, lora_path):
    r = client.get("/lora-adapters")
    assert r.status_code == 200
    assert r.json() == [{"id": 0, "path": lora_path, "scale": 1.0, "task_name": "", "prompt_prefix": ""}]


def test_lora_info_metric_for_the_inference_gateway(client):
    """vllm:lora_requests_info, the LoRA gauge of the Gateway API Inference Extension's model server
    protocol: every adapter stays loaded, so all run and none waits; the value is a timestamp."""
    text = client.get("/metrics").text
    assert "# TYPE vllm:lora_requests_info gauge" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("vllm:lora_requests_info{"))
    labels, value = line.rsplit(" ", 1)
    assert labels == ('vllm:lora_requests_info{max_lora="1",running_lora_adapters="smollm2-135m-test-lora.f32",'
                      'waiting_lora_adapters=""}')
    assert abs(float(value) - time.time()) < 60


def test_per_request_lora_overrides_only_that_request(client, outputs):
    off = complete(client, lora=[{"id": 0, "scale": 0.0}])
    assert off["content"] == outputs[0.0]
    assert off["generation_settings"]["lora"] == [{"id": 0, "scale": 0.0}]
    plain = complete(client)  # the server's scale (1) again
    assert plain["content"] == outputs[1.0]
    assert plain["generation_settings"]["lora"] == [{"id": 0, "scale": 1.0}]
    assert complete(client, lora=[])["content"] == outputs[1.0]  # an empty list also means the server's scales


def test_post_sets_the_scales_of_later_requests(client, outputs):
    try:
        r = client.post("/lora-adapters", json=[{"id": 0, "scale": 0.0}])
        assert r.status_code == 200 and r.json() == {"success": True}
        assert client.get("/lora-adapters").json()[0]["scale"] == 0.0
        assert client.get("/props").json()["default_generation_settings"]["params"]["lora"] == [{"id": 0, "scale": 0.0}]
        assert complete(client)["content"] == outputs[0.0]
        assert complete(client, lora=[{"id": 0, "scale": 1.0}])["content"] == outputs[1.0]
        assert client.post("/lora-adapters", json=[{"id": 0, "scale": 0.5}]).status_code == 200
        assert client.get("/lora-adapters").json()[0]["scale"] == 0.5
        assert client.post("/lora-adapters", json=[]).status_code == 200  # adapters not listed: scale 0
        assert client.get("/lora-adapters").json()[0]["scale"] == 0.0
    finally:
        assert client.post("/lora-adapters", json=[{"id": 0, "scale": 1.0}]).status_code == 200
    assert client.get("/props").json()["default_generation_settings"]["params"]["lora"] == [{"id": 0, "scale": 1.0}]
    assert complete(client)["content"] == outputs[1.0]


def test_concurrent_requests_with_different_scales_get_their_own_outputs(client, outputs):
    bodies = [{"lora": [{"id": 0, "scale": s}], "cache_prompt": False} for s in (1.0, 0.0, 1.0, 0.0)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda b: complete(client, **b)["content"], bodies))
    assert got == [outputs[1.0], outputs[0.0], outputs[1.0], outputs[0.0]]


def test_slots_show_the_scales_of_a_running_request(lora_server):
    # endless (context shift, no n_predict): still running whenever /slots is asked, however slow the machine
    body = {"prompt": PROMPT, "n_predict": -1, "ignore_eos": True, "temperature": 0, "stream": True,
            "lora": [{"id": 0, "scale": 0.5}]}
    with lora_server.client() as streamer, lora_server.client() as c, streamer.stream("POST", "/completion", json=body) as r:
        assert r.status_code == 200
        # held: dropping the line iterator closes the connection (httpcore), and the server
        # rightly cancels the request of a client that left
        lines = r.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))  # it runs
        assert '"content"' in first, first
        busy = [s for s in c.get("/slots").json() if s["is_processing"]]
        # leaving the stream cancels the request
        assert [s["params"]["lora"] for s in busy] == [[{"id": 0, "scale": 0.5}]], lora_server.log()[-3000:]


def test_the_cache_is_not_reused_under_other_scales(client):
    prompt = PROMPT + " And once more:"  # in no other test: no other slot or cache entry holds it
    off, on = (complete(client, prompt=prompt, lora=[{"id": 0, "scale": s}], cache_prompt=False, id_slot=0)["content"]
               for s in (0.0, 1.0))
    first = complete(client, prompt=prompt, lora=[{"id": 0, "scale": 0.0}], id_slot=1)
    again = complete(client, prompt=prompt, lora=[{"id": 0, "scale": 0.0}], id_slot=1)
    assert again["timings"]["cache_n"] == again["tokens_evaluated"] - 1  # same scales: the cache serves
    # slot 1 holds the prompt under 0.0: a 1.0 request there never reads those cells (it may take
    # cells computed under 1.0, from slot 0 or the host cache)
    other = complete(client, prompt=prompt, lora=[{"id": 0, "scale": 1.0}], id_slot=1)
    # (their texts are not compared with off/on: with this adapter a prompt read from a cache and one
    # evaluated whole differ in the last bits of their logits, enough to flip a greedy pick)
    assert off != on and first["tokens_predicted"] == other["tokens_predicted"] == 8
    # with scales nobody computed it under, nothing is reused (0.37: other tests here run 0.5 on a
    # prompt that shares its opening tokens, whose cells a 0.5 request may rightly take)
    half = complete(client, prompt=prompt, lora=[{"id": 0, "scale": 0.37}], id_slot=1)
    assert half["timings"]["cache_n"] == 0 and half["timings"]["prompt_n"] == half["tokens_evaluated"]


def test_chat_routes_take_the_lora_field(client):
    # cache_prompt off: a prompt evaluated whole and one read from the cache but for its last token
    # differ in the last bits of their logits, enough to flip a greedy pick with this adapter
    def openai_chat(scale):
        r = client.post("/v1/chat/completions", json={"messages": CHAT, "max_tokens": 8, "temperature": 0,
                                                      "cache_prompt": False, "lora": [{"id": 0, "scale": scale}]})
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["message"]["content"]

    def anthropic(scale):
        r = client.post("/v1/messages", json={"model": "m", "messages": CHAT, "max_tokens": 8, "temperature": 0,
                                              "cache_prompt": False, "lora": [{"id": 0, "scale": scale}]})
        assert r.status_code == 200, r.text
        return r.json()["content"][0]["text"]

    on, off = openai_chat(1.0), openai_chat(0.0)
    assert on != off
    assert (anthropic(1.0), anthropic(0.0)) == (on, off)


@pytest.mark.parametrize("path, body, fragment", [
    ("/completion", {"prompt": "hi", "lora": [{"id": 1, "scale": 1.0}]}, "unknown adapter id 1"),
    ("/completion", {"prompt": "hi", "lora": [{"id": -1, "scale": 1.0}]}, "lora.0.id"),
    ("/completion", {"prompt": "hi", "lora": [{"id": 0}]}, "lora.0.scale"),
    ("/completion", {"prompt": "hi", "lora": [{"id": 0, "scale": "big"}]}, "lora.0.scale"),
    ("/completion", {"prompt": "hi", "lora": [{"id": 0, "scale": 1e39}]}, "lora.0.scale"),
    ("/completion", {"prompt": "hi", "lora": {"id": 0, "scale": 1}}, "lora"),
    ("/completion", {"prompt": "hi", "stream": True, "lora": [{"id": 7, "scale": 1.0}]}, "unknown adapter id 7"),
    ("/v1/chat/completions", {"messages": CHAT, "lora": [{"id": 2, "scale": 1.0}]}, "unknown adapter id 2"),
    ("/v1/chat/completions", {"messages": CHAT, "stream": True, "lora": [{"id": 2, "scale": 1.0}]}, "unknown adapter id 2"),
    ("/lora-adapters", {"id": 0, "scale": 1.0}, "must be an array"),
    ("/lora-adapters", [{"id": 1, "scale": 1.0}], "unknown adapter id 1"),
    ("/lora-adapters", [{"id": 0}], "0.scale"),
    ("/lora-adapters", [{"id": "0", "scale": 1}], "0.id"),
    ("/lora-adapters", [1], "Invalid request"),
    ("/lora-adapters", [{"id": 0, "scale": 1}, {"id": 9, "scale": 1}], "unknown adapter id 9"),
])
def test_bad_ids_and_shapes_are_400(client, path, body, fragment):
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and fragment in err["message"]
    assert client.get("/lora-adapters").json()[0]["scale"] == 1.0  # a refused POST changes nothing


def test_init_without_apply_starts_at_scale_zero(tmp_path, lora_path, outputs):
    srv = start_server(tmp_path, "-np", "1", "-c", "512", "--lora", lora_path, "--lora-init-without-apply", *ONE_THREAD)
    try:
        with srv.client() as c:
            assert c.get("/lora-adapters").json()[0]["scale"] == 0.0
            assert complete(c)["content"] == outputs[0.0]
            assert c.post("/lora-adapters", json=[{"id": 0, "scale": 1.0}]).status_code == 200
            assert complete(c)["content"] == outputs[1.0]
    finally:
        srv.stop()


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "llamaserve", "-m", MODEL, "--port", "0", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_an_adapter_that_does_not_load_stops_the_server(tmp_path):
    not_lora = shared_model("all-MiniLM-L6-v2.f16.gguf")  # a GGUF model, not an adapter
    r = run_cli("--lora", not_lora, *ONE_THREAD)
    assert r.returncode != 0
    assert f"failed to load LoRA adapter {not_lora}" in r.stderr and "Traceback" not in r.stderr
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    for args, fragment in ((("--lora", str(text)), "not a GGUF LoRA adapter file"),
                           (("--lora-scaled", "/nonexistent/a.gguf:0.5"), "LoRA adapter file not found"),
                           (("--lora-scaled", f"{not_lora}"), "FNAME:SCALE")):
        r = run_cli(*args)
        assert r.returncode == 2 and fragment in r.stderr, r.stderr
