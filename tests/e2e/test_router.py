"""Router mode end to end: a llamaserve without -m in front of child llamaserve processes, driven over
HTTP and with the openai SDK. Models: the bundled SmolLM2 and the MiniLM embedding model (via --models-dir)."""

from __future__ import annotations

import os
import pathlib
import signal
import threading
import time

import httpx
import openai
import pytest

from tests.conftest import MODEL, serve, start_server
from tests.helpers import CHILD, SMOL


def _shared_model(name: str) -> str:
    """A file of the project's shared/models (beside the checkout or above it, or $LLAMASERVE_TEST_MODELS)."""
    env = os.environ.get("LLAMASERVE_TEST_MODELS")
    roots = [pathlib.Path(env)] if env else [p / "shared" / "models" for p in pathlib.Path(__file__).resolve().parents]
    return next((str(r / name) for r in roots if (r / name).is_file()), "")


MINILM_FILE = _shared_model("all-MiniLM-L6-v2.f16.gguf")
MINILM = "minilm"


def models_dir(tmp_path) -> str:
    if not MINILM_FILE:
        pytest.skip("shared/models/all-MiniLM-L6-v2.f16.gguf not found (set LLAMASERVE_TEST_MODELS)")
    d = tmp_path / "models"
    d.mkdir()
    (d / f"{MINILM}.gguf").symlink_to(MINILM_FILE)
    (d / "notes.txt").write_text("not a model")
    return str(d)


def listing(srv) -> dict[str, dict]:
    r = httpx.get(srv.url + "/models", timeout=30)
    assert r.status_code == 200
    return {m["id"]: m for m in r.json()["data"]}


def status(srv, name: str) -> dict:
    return listing(srv)[name]["status"]


def wait_status(srv, name: str, *wanted: str, deadline: float = 90) -> dict:
    end = time.time() + deadline
    while True:
        st = status(srv, name)
        if st["value"] in wanted:
            return st
        if time.time() > end:
            raise AssertionError(f"{name} stayed {st} (wanted {wanted})\n{srv.log()[-3000:]}")
        time.sleep(0.05)


def tokenize(srv, model: str, text: str = "hello world", **params) -> httpx.Response:
    return httpx.post(srv.url + "/tokenize", params=params, json={"model": model, "content": text}, timeout=120)


def post(srv, path: str, body: dict) -> httpx.Response:
    return httpx.post(srv.url + path, json=body, timeout=120)


def child_pids(srv) -> dict[str, int]:
    """Children of the router process, by the --alias on their command line (Linux /proc)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().decode().split("\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == srv.proc.pid and "--alias" in argv:
            out[argv[argv.index("--alias") + 1]] = int(entry)
    return out


def sdk(srv) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def router(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("router")
    broken = tmp / "truncated.gguf"
    broken.write_bytes(open(MODEL, "rb").read(1 << 16))  # a valid header, then nothing: loading fails
    preset = tmp / "models.ini"
    preset.write_text(
        "version = 1\n"
        "[*]\n"
        "n-predict = 16\n"
        f"[{SMOL}]\n"
        "temp = 0\n"
        f"[{MINILM}]\n"
        "alias = mini\n"
        "[broken]\n"
        f"model = {broken}\n"
    )
    return serve(request, tmp, "--models-dir", models_dir(tmp), "--models-preset", str(preset), "--metrics", *CHILD,
                 router=True)


# --- catalog and listing ---

def test_lists_every_model_with_status_and_args(router):
    assert [m.id for m in sdk(router).models.list()] == [SMOL, MINILM, "broken"]
    models = listing(router)
    for m in models.values():
        assert m["object"] == "model"
        assert m["status"]["value"] in ("unloaded", "loading", "loaded", "failed")
        args = m["status"]["args"]
        assert args[args.index("--alias") + 1] == m["id"]
        assert args[args.index("--ctx-size") + 1] == "512"  # the router's own flags reach every child
        assert args[args.index("--predict") + 1] == "16"  # and the preset's [*] section too
    assert models[SMOL]["default"] is True and models[SMOL]["source"] == "bundled"
    assert models[SMOL]["aliases"] == [SMOL + ".gguf"]
    assert "--temp" in models[SMOL]["status"]["args"] and "--temp" not in models[MINILM]["status"]["args"]
    assert models[MINILM]["source"] == "models_dir" and models[MINILM]["aliases"] == ["mini"]
    assert models["broken"]["source"] == "preset" and models["broken"]["path"].endswith("truncated.gguf")


def test_health_and_router_props(router):
    assert httpx.get(router.url + "/health").json() == {"status": "ok"}
    props = httpx.get(router.url + "/props", timeout=120).json()
    assert props["role"] == "router" and props["max_instances"] == 4 and props["models_autoload"] is True
    # no model named: the default model's own props, as a single-model server would answer
    assert props["default_model"] == SMOL and props["model_alias"] == SMOL and props["total_slots"] == 1


# --- autoload and routing ---

def test_autoload_on_first_request_routes_by_model(router):
    if status(router, MINILM)["value"] != "unloaded":
        assert post(router, "/models/unload", {"model": MINILM}).json() == {"success": True}
    assert status(router, MINILM)["value"] == "unloaded"

    r = tokenize(router, "mini")  # an alias from the preset
    assert r.status_code == 200, r.text
    assert r.json()["tokens"] == [7592, 2088]  # BERT WordPiece ids: the MiniLM child answered
    smol_tokens = tokenize(router, SMOL).json()["tokens"]
    assert smol_tokens and smol_tokens != [7592, 2088]

    minilm = listing(router)[MINILM]
    assert minilm["status"]["value"] == "loaded"
    assert minilm["meta"]["n_vocab"] == 30522  # the child's own /v1/models entry is merged in


def test_get_requests_route_by_query(router):
    smol = httpx.get(router.url + "/props", params={"model": SMOL}, timeout=120).json()
    assert smol["model_alias"] == SMOL
    # preset: [*] n-predict = 16 for all, temp = 0 only in SmolLM2's section
    assert smol["default_generation_settings"]["params"]["n_predict"] == 16
    assert smol["default_generation_settings"]["params"]["temperature"] == 0.0
    mini = httpx.get(router.url + "/props", params={"model": "mini"}, timeout=120).json()
    assert mini["model_alias"] == MINILM
    assert mini["default_generation_settings"]["params"]["temperature"] == pytest.approx(0.8)


def test_metrics_of_a_model_through_router(router):
    # --metrics reaches the children; GET /metrics?model=... is answered by that model's child
    r = httpx.get(router.url + "/metrics", params={"model": SMOL}, timeout=120)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "# TYPE llamacpp:prompt_tokens_total counter" in r.text


def test_openai_sdk_chat_and_stream_through_router(router):
    client = sdk(router)
    messages = [{"role": "user", "content": "Say hello."}]
    reply = client.chat.completions.create(model=SMOL, messages=messages, max_tokens=8)
    assert reply.model == SMOL and reply.choices[0].message.content
    assert reply.usage.completion_tokens <= 8

    chunks = list(client.chat.completions.create(model=SMOL, messages=messages, max_tokens=8, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 2 and text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] in (["length"], ["stop"])

    stream = client.completions.create(model=SMOL, prompt="The sky is", max_tokens=6, stream=True)
    assert "".join(c.choices[0].text for c in stream)


def test_anthropic_and_ollama_sdks_through_router(router):
    import anthropic
    import ollama

    claude = anthropic.Anthropic(base_url=router.url, api_key="unused", max_retries=0)
    with claude.messages.stream(model=SMOL, max_tokens=8, messages=[{"role": "user", "content": "Hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.model == SMOL and final.usage.output_tokens <= 8
    with pytest.raises(anthropic.BadRequestError):  # a router error, in Anthropic's envelope
        claude.messages.create(model="nope", max_tokens=8, messages=[{"role": "user", "content": "Hi"}])

    client = ollama.Client(host=router.url)
    assert {m.model for m in client.list().models} == {SMOL, MINILM, "broken"}
    parts = list(client.chat(model=SMOL, messages=[{"role": "user", "content": "Hi"}], stream=True,
                             options={"num_predict": 6}))
    assert len(parts) > 2 and parts[-1].done and "".join(p.message.content for p in parts)
    assert SMOL in {m.model for m in client.ps().models}
    with pytest.raises(ollama.ResponseError) as exc:  # a router error, in Ollama's envelope
        client.chat(model="nope", messages=[{"role": "user", "content": "Hi"}])
    assert "nope" in str(exc.value)


def test_native_stream_without_model_goes_to_default(router):
    events = []
    with httpx.stream("POST", router.url + "/completion", timeout=120,
                      json={"prompt": "Once upon a time", "n_predict": 6, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert len(events) >= 2  # relayed event by event, ending with the final one
    assert '"stop":true' in events[-1] and f'"model":"{SMOL}"' in events[-1]


def test_child_errors_keep_their_status_and_envelope(router):
    r = post(router, "/completion", {"model": SMOL, "prompt": "x", "n_predict": "many"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.get(router.url + "/no/such/path", params={"model": SMOL})
    assert r.status_code == 404 and r.json()["error"]["code"] == 404


def test_unknown_model_is_a_400_naming_the_models(router):
    with pytest.raises(openai.BadRequestError) as exc:
        sdk(router).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert "gpt-4o" in str(exc.value) and SMOL in str(exc.value)
    r = post(router, "/completion", {"model": 7, "prompt": "x"})
    assert r.status_code == 400 and "string" in r.json()["error"]["message"]
    r = httpx.post(router.url + "/completion", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400


# --- explicit load / unload ---

def test_explicit_load_and_unload(router):
    if status(router, MINILM)["value"] == "unloaded":
        assert post(router, "/models/load", {"model": MINILM}).json() == {"success": True}
    wait_status(router, MINILM, "loaded")

    assert post(router, "/models/unload", {"model": "mini"}).json() == {"success": True}
    assert status(router, MINILM)["value"] == "unloaded"  # unload answers once the child is gone
    assert MINILM not in child_pids(router)
    r = post(router, "/models/unload", {"model": MINILM})
    assert r.status_code == 400 and "not running" in r.json()["error"]["message"]

    r = tokenize(router, MINILM, autoload="false")  # per request: no autoload
    assert r.status_code == 400 and "not loaded" in r.json()["error"]["message"]

    assert post(router, "/models/load", {"model": MINILM}).json() == {"success": True}
    wait_status(router, MINILM, "loaded")
    r = post(router, "/models/load", {"model": MINILM})
    assert r.status_code == 400 and "already running" in r.json()["error"]["message"]
    assert tokenize(router, MINILM, autoload="false").status_code == 200

    assert post(router, "/models/load", {"model": "nope"}).status_code == 404
    assert post(router, "/models/load", {}).status_code == 400


def test_model_that_fails_to_load_is_failed_with_its_reason(router):
    with pytest.raises(openai.InternalServerError) as exc:
        sdk(router).chat.completions.create(model="broken", messages=[{"role": "user", "content": "hi"}])
    assert "failed to load" in str(exc.value)
    st = status(router, "broken")
    assert st["value"] == "failed" and st["failed"] is True and st["exit_code"] not in (0, None)
    assert st["reason"] and st["reason"] in str(exc.value)  # the child's own error line
    # other models are unaffected
    assert tokenize(router, SMOL).status_code == 200


def test_concurrent_requests_for_an_unloaded_model_share_one_load(router):
    if status(router, SMOL)["value"] != "unloaded":
        post(router, "/models/unload", {"model": SMOL})
    loads_before = router.log().count(f"loading model {SMOL} ")
    results: list[httpx.Response] = []

    def one() -> None:
        results.append(post(router, "/completion", {"model": SMOL, "prompt": "Hi", "n_predict": 2}))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200] * 4
    assert router.log().count(f"loading model {SMOL} ") == loads_before + 1


def test_client_disconnect_stops_the_generation_in_the_child(router):
    body = {"model": SMOL, "prompt": "Once upon a time", "n_predict": 450, "ignore_eos": True, "stream": True}
    with httpx.stream("POST", router.url + "/completion", json=body, timeout=120) as r:
        assert r.status_code == 200
        seen = 0
        for line in r.iter_lines():
            seen += line.startswith("data: ")
            if seen == 3:
                break  # leaving the block closes the connection mid-stream
    end = time.time() + 60
    while True:
        slot = httpx.get(router.url + "/slots", params={"model": SMOL}, timeout=30).json()[0]
        if not slot["is_processing"]:
            break
        assert time.time() < end, "the child kept generating after the client left"
        time.sleep(0.05)
    # had the child generated all 450 tokens its cache would hold them; it stopped soon after the client left
    assert slot["n_cached_tokens"] < 200


# --- --models-max, --models-idle-ttl, --no-models-autoload ---

def test_models_max_evicts_the_least_recently_used_model(tmp_path):
    srv = start_server(tmp_path, "--models-dir", models_dir(tmp_path), "--models-max", "1", *CHILD, router=True)
    try:
        assert tokenize(srv, SMOL).status_code == 200
        assert status(srv, SMOL)["value"] == "loaded"
        assert tokenize(srv, MINILM).status_code == 200
        assert (status(srv, MINILM)["value"], status(srv, SMOL)["value"]) == ("loaded", "unloaded")
        assert list(child_pids(srv)) == [MINILM]
        assert post(srv, "/models/load", {"model": SMOL}).json() == {"success": True}
        wait_status(srv, SMOL, "loaded")
        assert status(srv, MINILM)["value"] == "unloaded"
    finally:
        srv.stop()


def test_idle_models_are_unloaded_after_the_ttl(tmp_path):
    srv = start_server(tmp_path, "--models-idle-ttl", "1", *CHILD, router=True)
    try:
        assert tokenize(srv, SMOL).status_code == 200  # loaded on demand
        wait_status(srv, SMOL, "unloaded")
        assert f"model {SMOL} idle for" in srv.log()
        assert not child_pids(srv)
        assert tokenize(srv, SMOL).status_code == 200  # and loaded again on the next request
    finally:
        srv.stop()


def test_no_models_autoload(tmp_path):
    srv = start_server(tmp_path, "--no-models-autoload", *CHILD, router=True)
    try:
        r = tokenize(srv, SMOL)
        assert r.status_code == 400 and "not loaded" in r.json()["error"]["message"]
        props = httpx.get(srv.url + "/props").json()  # the router's own: nothing is loaded
        assert (props["role"], props["models_autoload"], props["model_path"]) == ("router", False, "none")
        page = httpx.get(srv.url + "/")  # the chat page is the router's own
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert status(srv, SMOL)["value"] == "unloaded"
        assert tokenize(srv, SMOL, autoload="true").status_code == 200
        assert tokenize(srv, SMOL).status_code == 200
    finally:
        srv.stop()


# --- the bare start ---

@pytest.fixture(scope="module")
def bare(request):
    return serve(request, "bare", *CHILD, router=True)


def test_bare_start_serves_the_bundled_model(bare):
    client = sdk(bare)
    assert [m.id for m in client.models.list()] == [SMOL]
    for name in (SMOL, SMOL + ".gguf"):  # its router name, and the id a single-model server reports
        reply = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
        assert reply.choices[0].message.content
    r = post(bare, "/completion", {"prompt": "Hi", "n_predict": 2})  # no model: the default one
    assert r.status_code == 200 and r.json()["model"] == SMOL


def test_killed_child_is_noticed_and_restarted(bare):
    assert tokenize(bare, SMOL).status_code == 200
    pid = child_pids(bare)[SMOL]
    os.kill(pid, signal.SIGKILL)
    st = wait_status(bare, SMOL, "failed")
    assert st["exit_code"] == -signal.SIGKILL and "SIGKILL" in st["reason"]
    assert SMOL not in child_pids(bare)

    assert tokenize(bare, SMOL).status_code == 200  # the next request loads it again
    assert status(bare, SMOL)["value"] == "loaded"
    assert child_pids(bare)[SMOL] != pid


def test_a_child_killed_under_load_fails_only_the_requests_in_flight(bare):
    """SIGKILL while four requests are on the child (one generating, three queued there; two streamed): each
    gets a clean 5xx envelope (a stream whose status line went out: its error as the last event), nothing
    hangs, and the requests after it load the model again."""
    assert tokenize(bare, SMOL).status_code == 200
    pid = child_pids(bare)[SMOL]
    long = {"model": SMOL, "prompt": "Write a long story", "n_predict": 4000, "ignore_eos": True}
    outcomes: dict[int, object] = {}

    def run(i: int) -> None:
        if i % 2:
            with httpx.stream("POST", bare.url + "/completion", json={**long, "stream": True}, timeout=60) as r:
                lines = list(r.iter_lines())
                events = [line for line in lines if line.startswith("data: ")]
                outcomes[i] = (r.status_code, events[-1] if events else "\n".join(lines))
        else:
            r = httpx.post(bare.url + "/completion", json=long, timeout=60)
            outcomes[i] = (r.status_code, r.json())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while time.time() < deadline:  # the child's one slot generating, the other three queued there
        slots = httpx.get(bare.url + "/slots", params={"model": SMOL}, timeout=10).json()
        if any(s["is_processing"] and s["next_token"][0]["n_decoded"] > 0 for s in slots):
            break
        time.sleep(0.1)
    time.sleep(0.5)  # for the streamed ones to have their status line (a stream's comes with its first event)
    os.kill(pid, signal.SIGKILL)
    for t in threads:
        t.join(60)
        assert not t.is_alive()
    for i, (code, body) in sorted(outcomes.items()):
        if i % 2 and code == 200:  # the stream had started: its last event is the error
            assert '"error"' in body, body
        elif i % 2:  # still queued: no event yet, so the error is its status and envelope
            assert code >= 500 and '"error"' in body, body
        else:
            assert code >= 500 and body["error"]["code"] == code and body["error"]["message"], body
    # only those were lost: the next requests are answered, by a new child
    for _ in range(2):
        assert post(bare, "/completion", {"model": SMOL, "prompt": "Hi", "n_predict": 4}).status_code == 200
    assert child_pids(bare)[SMOL] != pid
