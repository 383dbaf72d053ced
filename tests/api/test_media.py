"""Images through HTTP with a projector (--mmproj, the synthetic one of shared/models: its embeddings mean
nothing, so these tests assert the plumbing): media tokens counted in every family, different images
give different logits, the same image reuses its encoding and the cached prefix, and every bad input is
a 400 in its family's envelope while the server goes on."""

from __future__ import annotations

import concurrent.futures
import os

import pytest

from tests.conftest import serve, shared_model
from tests.helpers import assert_error
from tests.media_files import b64, data_uri, png

N_IMAGE = 16  # tokens the synthetic projector gives an image (32x32 input, 8x8 patches)


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    (d / "inside.png").write_bytes(png(7))
    (d / "sub").mkdir()
    (d / "sub" / "nested.png").write_bytes(png(8))
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.png").write_bytes(png(9))
    os.symlink(outside / "secret.png", d / "link.png")  # a link that leads out of --media-path
    os.symlink(outside, d / "linkdir")
    return d


@pytest.fixture(scope="module")
def mm_server(request, media_dir):
    return serve(request, "mm", "-np", "2", "-c", "4096", "--mmproj", shared_model("synthetic-mmproj-smollm2.f32.gguf"),
                 "--media-path", str(media_dir))


@pytest.fixture()
def c(mm_server):
    with mm_server.client(timeout=120) as client:
        yield client


def chat(c, *parts, status=200, **extra):
    content = [{"type": "text", "text": "What is in the image?"}, *parts]
    r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": content}], "max_tokens": 4,
                                             "temperature": 0, **extra})
    assert r.status_code == status, r.text
    return r.json()


def image(seed=None, url=None):
    return {"type": "image_url", "image_url": {"url": url or data_uri(seed)}}


def completion(c, text, media, **extra):
    r = c.post("/completion", json={"prompt": {"prompt_string": text, "multimodal_data": media}, "n_predict": 1,
                                    "temperature": 0, "cache_prompt": False, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def test_props_say_vision(c):
    p = c.get("/props").json()
    assert p["modalities"] == {"vision": True, "video": False, "audio": False}
    assert p["media"]["vision"] is True and p["media"]["path"].endswith("synthetic-mmproj-smollm2.f32.gguf")


def test_an_image_takes_its_tokens_in_the_prompt(c):
    one = completion(c, "A picture: <__media__> ends", [b64(1)])
    two = completion(c, "A picture: <__media__><__media__> ends", [b64(1), b64(2)])
    assert two["tokens_evaluated"] - one["tokens_evaluated"] == N_IMAGE
    # the prompt shown back has the marker where the image was
    assert "<__media__>" in one["prompt"]


def test_different_images_give_different_logits_and_the_same_image_the_same(c):
    def first(seed):
        r = chat(c, image(seed), logprobs=True, top_logprobs=3, max_tokens=1, cache_prompt=False)
        return r["choices"][0]["logprobs"]["content"][0]["top_logprobs"]

    a, b, a_again = first(1), first(2), first(1)
    assert a == a_again
    assert [x["logprob"] for x in a] != [x["logprob"] for x in b]


def test_the_next_turn_reuses_the_cached_prefix_and_the_encoding(c):
    before = c.get("/props").json()["media"]
    first = chat(c, image(11))
    again = chat(c, image(11))
    assert again["usage"]["prompt_tokens"] == first["usage"]["prompt_tokens"]
    # all but the last prompt token came from the slot (the image included)
    assert again["timings"]["prompt_n"] == 1
    # another text before the same image: the prefix differs before it, the encoding is reused
    r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Something else entirely, and then"}, image(11)]}], "max_tokens": 1, "temperature": 0})
    assert r.status_code == 200
    after = c.get("/props").json()["media"]
    assert after["encoded"] - before["encoded"] == 1 and after["reused"] - before["reused"] >= 1


def test_a_different_image_stops_the_cached_prefix_where_it_sits(c):
    first = chat(c, image(21))
    other = chat(c, image(22))
    n = first["usage"]["prompt_tokens"]
    # the text before the image is reused, the image and what follows it are evaluated again
    assert N_IMAGE < other["timings"]["prompt_n"] < n


def test_images_in_parallel_slots(c):
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda s: chat(c, image(s), max_tokens=6, cache_prompt=False), [31, 32, 31, 32]))
    texts = [r["choices"][0]["message"]["content"] for r in results]
    assert texts[0] == texts[2] and texts[1] == texts[3]


def test_every_family_counts_the_image(c):
    text = chat(c, max_tokens=1)["usage"]["prompt_tokens"]
    with_image = chat(c, image(41), max_tokens=1)["usage"]["prompt_tokens"]
    assert with_image > text + N_IMAGE - 1
    anthropic_body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in the image?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(41)}}]}]}
    counted = c.post("/v1/messages/count_tokens", json=anthropic_body).json()["input_tokens"]
    answered = c.post("/v1/messages", json={**anthropic_body, "max_tokens": 2}).json()
    assert counted == answered["usage"]["input_tokens"] + answered["usage"]["cache_read_input_tokens"] >= N_IMAGE
    ollama = c.post("/api/chat", json={"model": "m", "stream": False, "options": {"num_predict": 2},
                                       "messages": [{"role": "user", "content": "What is in the image?", "images": [b64(41)]}]}).json()
    assert ollama["prompt_eval_count"] >= N_IMAGE
    gen = c.post("/api/generate", json={"model": "m", "stream": False, "options": {"num_predict": 2},
                                        "prompt": "What is in the image?", "images": [b64(41)]}).json()
    assert gen["prompt_eval_count"] >= N_IMAGE and gen["response"]
    resp = c.post("/v1/responses", json={"model": "m", "max_output_tokens": 2, "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "What is in the image?"}, {"type": "input_image", "image_url": data_uri(41)}]}]}).json()
    assert resp["usage"]["input_tokens"] == with_image


def test_a_streamed_answer_about_an_image(c):
    with c.stream("POST", "/v1/chat/completions", json={"messages": [{"role": "user", "content": [image(51)]}],
                                                        "max_tokens": 4, "stream": True}) as r:
        assert r.status_code == 200
        body = r.read().decode()
    assert body.count("data: ") >= 3 and "data: [DONE]" in body


def test_file_urls_are_read_under_the_media_path_only(c):
    inside = chat(c, image(url="file://inside.png"), max_tokens=1, cache_prompt=False)
    inline = chat(c, image(7), max_tokens=1, cache_prompt=False)
    assert inside["usage"]["prompt_tokens"] == inline["usage"]["prompt_tokens"]
    chat(c, image(url="file://sub/nested.png"), max_tokens=1)
    for url in ("file://../outside/secret.png", "file:///etc/passwd", "file://link.png", "file://linkdir/secret.png",
                "file://sub/../../x.png", "file://missing.png"):
        assert_error(c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": [image(url=url)]}]}),
                     400, "invalid_request_error")


@pytest.mark.parametrize("part, fragment", [
    (image(url="data:image/png;base64,aGVsbG8gd29ybGQ="), "cannot decode it"),
    (image(url="data:text/plain;base64,aGVsbG8="), "invalid uri format"),
    (image(url="data:image/png,rawdata"), "base64"),
    ({"type": "image_url", "image_url": {"url": ""}}, "non-empty string"),
    ({"type": "input_audio", "input_audio": {}}, '"input_audio" needs "data"'),
])
def test_bad_media_is_a_400_and_the_server_goes_on(c, part, fragment):
    r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": [part]}]})
    assert_error(r, 400, "invalid_request_error", fragment)
    assert chat(c, image(1), max_tokens=1)["choices"]


def test_bad_media_in_the_other_families(c):
    bad = "aGVsbG8gd29ybGQ="  # base64 of text, not an image
    r = c.post("/v1/messages", json={"model": "m", "max_tokens": 2, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": bad}}]}]})
    assert r.status_code == 400 and r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"
    r = c.post("/api/chat", json={"model": "m", "stream": False, "messages": [{"role": "user", "content": "x", "images": [bad]}]})
    assert r.status_code == 400 and "cannot decode" in r.json()["error"]
    r = c.post("/completion", json={"prompt": {"prompt_string": "no marker here", "multimodal_data": [b64(1)]}})
    assert_error(r, 400, "invalid_request_error", "0 media marker(s) for 1 media file(s)")


def test_context_with_an_image_cannot_be_sent_back(c):
    gen = c.post("/api/generate", json={"model": "m", "stream": False, "options": {"num_predict": 1},
                                        "prompt": "Look:", "images": [b64(61)]}).json()
    r = c.post("/api/generate", json={"model": "m", "stream": False, "prompt": "And?", "context": gen["context"]})
    assert r.status_code == 400 and "images" in r.json()["error"]


@pytest.fixture(scope="module")
def image_site():
    """A web server on loopback with an image, a page that is not one, and nothing else (404)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = {"/cat.png": png(71), "/page.html": b"<html>not an image</html>"}.get(self.path)
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_remote_images_are_fetched_as_llama_server_fetches_them(c, image_site):
    fetched = chat(c, image(url=image_site + "/cat.png"), max_tokens=1, cache_prompt=False)
    inline = chat(c, image(71), max_tokens=1, cache_prompt=False)
    assert fetched["usage"]["prompt_tokens"] == inline["usage"]["prompt_tokens"]
    anthropic_body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": image_site + "/cat.png"}}]}]}
    assert c.post("/v1/messages/count_tokens", json=anthropic_body).json()["input_tokens"] > N_IMAGE
    resp = c.post("/v1/responses", json={"model": "m", "max_output_tokens": 1, "input": [{"role": "user", "content": [
        {"type": "input_image", "image_url": image_site + "/cat.png"}]}]})
    assert resp.status_code == 200, resp.text
    for path, fragment in (("/missing.png", "HTTP 404"), ("/page.html", "cannot decode")):
        r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": [image(url=image_site + path)]}]})
        assert_error(r, 400, "invalid_request_error", fragment)


def test_no_remote_image_is_fetched_offline(request, image_site):
    srv = serve(request, "mm-offline", "-np", "1", "-c", "1024", "--offline", "--mmproj",
                shared_model("synthetic-mmproj-smollm2.f32.gguf"))
    with srv.client(timeout=60) as c:
        r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": [image(url=image_site + "/cat.png")]}]})
        assert_error(r, 400, "invalid_request_error", "--offline")
