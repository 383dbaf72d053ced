"""The chat UI at / in a real browser against a real llamaserve and model.

Replies come from SmolLM2 unless a test needs what that model cannot produce (reasoning, tool
calls, a 401, router statuses); those tests replace one response with page.route and say so.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
expect = playwright.expect

CHAT = "**/v1/chat/completions"


def send(page, text: str) -> None:
    box = page.get_by_label("Message")
    box.fill(text)
    box.press("Enter")


def wait_done(page) -> None:
    page.locator(".msg.assistant.pending").wait_for(state="detached")
    page.locator("form.composer button[type=submit]").wait_for()


def last_reply(page):
    return page.locator(".msg.assistant").last


def change_settings(page, **fields: str) -> None:
    page.get_by_role("button", name="Settings").click()
    dialog = page.get_by_role("dialog", name="Settings")
    for name, value in fields.items():
        dialog.locator(f"#set-{name}").fill(value)
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="detached")


def capture_chat_requests(page) -> list[dict]:
    bodies: list[dict] = []
    page.on("request", lambda r: bodies.append(json.loads(r.post_data)) if r.url.endswith("/v1/chat/completions") else None)
    return bodies


def sse(*events) -> str:
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def chunk(delta=None, finish=None, **extra) -> dict:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": choices, **extra}


def test_page_loads_offline_with_model_name(page, ui_server):
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.reload()
    assert page.title() == "llamaserve"
    page.get_by_text("SmolLM2-135M-Instruct.Q4_1.gguf").first.wait_for()
    assert page.get_by_label("Message").is_visible()
    assert page.get_by_role("button", name="Attach").count() == 0  # a text-only model: nothing to attach
    assert page.get_by_role("button", name="Send").is_disabled()  # nothing typed yet
    # every asset and API call goes to the server itself: no CDN
    assert requests and all(u.startswith(ui_server.url) or u.startswith("data:") for u in requests), requests


def test_streamed_reply_grows_then_shows_stats(page):
    change_settings(page, max_tokens="24", extra='{"ignore_eos": true}')
    send(page, "Tell me about the sea.")
    # Text is on screen while the Stop button still is: the reply arrives in pieces.
    page.wait_for_function(
        """() => !!document.querySelector('button.stop')
              && (document.querySelector('.msg.assistant .content')?.textContent.length ?? 0) > 0"""
    )
    partial = last_reply(page).locator(".content").inner_text()
    assert page.locator("button.stop").is_visible()
    wait_done(page)
    final = last_reply(page).locator(".content").inner_text()
    assert len(final) > len(partial) and final.startswith(partial.strip()[:5])
    stats = last_reply(page).locator(".stats").inner_text()
    assert "24 tokens" in stats and "tok/s" in stats and "prompt tokens" in stats
    assert "reached the token limit" in last_reply(page).inner_text()


def test_stop_aborts_and_frees_the_slot(page, ui_server):
    change_settings(page, max_tokens="1500", extra='{"ignore_eos": true}')
    send(page, "Count to one thousand.")
    page.wait_for_function("(document.querySelector('.msg.assistant .content')?.textContent.length ?? 0) > 0")
    with httpx.Client(base_url=ui_server.url, timeout=30) as c:
        assert any(s["is_processing"] for s in c.get("/slots").json())
        page.get_by_role("button", name="Stop").click()
        wait_done(page)
        assert "stopped" in last_reply(page).locator(".msg-footer").inner_text()
        assert last_reply(page).locator(".content").inner_text().strip()  # the partial reply is kept
        # 1500 tokens would take minutes: an idle slot soon after Stop means the request was cancelled.
        deadline = time.time() + 30
        while any(s["is_processing"] for s in c.get("/slots").json()):
            assert time.time() < deadline, "slot still busy after Stop"
            time.sleep(0.2)


def test_settings_reach_the_request_and_persist(page):
    bodies = capture_chat_requests(page)
    send(page, "Hi")
    wait_done(page)
    assert "temperature" not in bodies[0]  # blank field: the server's default applies
    assert bodies[0]["max_tokens"] == 12 and bodies[0]["stream"] is True
    assert bodies[0]["messages"] == [{"role": "user", "content": "Hi"}]

    change_settings(page, temperature="0.25", top_k="7", systemPrompt="Answer briefly.", extra='{"repeat_penalty": 1.2}')
    last_reply(page).get_by_role("button", name="Regenerate").click()
    wait_done(page)
    body = bodies[-1]
    assert body["temperature"] == 0.25 and body["top_k"] == 7 and body["repeat_penalty"] == 1.2
    assert body["messages"] == [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Hi"}]

    page.reload()
    page.get_by_role("button", name="Settings").click()
    assert page.locator("#set-temperature").input_value() == "0.25"
    assert page.locator("#set-temperature").get_attribute("placeholder") == "default: 0.8"  # from /props
    page.locator("#set-extra").fill("[1, 2]")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("must be a JSON object").wait_for()  # bad JSON is refused in the dialog


def test_conversation_survives_reload_rename_and_delete(page):
    send(page, "Name a color.")
    wait_done(page)
    reply = last_reply(page).locator(".content").inner_text()
    page.get_by_role("button", name="Rename Name a color.").click()
    page.get_by_label("Conversation title").fill("Colors")
    page.get_by_label("Conversation title").press("Enter")
    page.get_by_role("button", name="+ New chat").click()
    page.reload()
    page.get_by_role("button", name="Colors", exact=True).click()
    assert page.locator(".msg.user .content").inner_text() == "Name a color."
    assert last_reply(page).locator(".content").inner_text() == reply
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete Colors").click()
    page.get_by_text("No conversations yet").wait_for()
    page.reload()
    page.get_by_text("No conversations yet").wait_for()


def test_markdown_renders_and_model_html_never_runs(page):
    # A grammar forces the real model to write a code block, a script, an event handler and a javascript: link.
    forced = r"```python\nprint(1)\n```\n<script>window.__pwned=1</script>\n\nSee <img src=x onerror=window.__pwned=2> [a](javascript:window.__pwned=3)"
    grammar = f'root ::= "{forced}"'
    change_settings(page, max_tokens="200", extra=json.dumps({"grammar": grammar}))
    send(page, "Show me code.")
    wait_done(page)
    reply = last_reply(page)
    code = reply.locator(".code-block code.language-python")
    assert code.inner_text().strip() == "print(1)"
    assert reply.locator(".code-block .hljs-built_in").inner_text() == "print"  # highlighted
    assert reply.locator(".code-block .code-lang").inner_text() == "python"
    # the HTML is shown as text, and nothing of it became an element or ran
    assert "<script>window.__pwned=1</script>" in reply.locator(".content").inner_text()
    assert reply.locator(".content script, .content img, .content [onerror]").count() == 0
    assert reply.locator(".content a[href^='javascript']").count() == 0
    reply.locator(".content a").first.click()  # a javascript: link, if one survived, would run now
    assert page.evaluate("typeof window.__pwned") == "undefined"

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    reply.get_by_role("button", name="Copy", exact=True).first.click()
    reply.get_by_role("button", name="Copied").first.wait_for()
    assert page.evaluate("navigator.clipboard.readText()").strip() == "print(1)"


def test_edit_and_resend_replaces_the_rest(page):
    bodies = capture_chat_requests(page)
    send(page, "Say hello.")
    wait_done(page)
    page.locator(".msg.user").get_by_role("button", name="Edit").click()
    page.get_by_label("Edit message").fill("Say goodbye.")
    page.locator(".msg.user").get_by_role("button", name="Send").click()
    wait_done(page)
    assert bodies[-1]["messages"] == [{"role": "user", "content": "Say goodbye."}]
    assert page.locator(".msg").count() == 2
    assert page.locator(".msg.user .content").inner_text() == "Say goodbye."


def test_server_error_is_shown_inline(page):
    change_settings(page, extra='{"grammar": "root ::= nonsense("}')
    send(page, "Hi")
    wait_done(page)
    error = last_reply(page).get_by_role("alert")
    assert "400" in error.inner_text() and "grammar" in error.inner_text()
    # the page keeps working: fix the setting and regenerate
    change_settings(page, extra="")
    last_reply(page).get_by_role("button", name="Regenerate").click()
    wait_done(page)
    assert last_reply(page).get_by_role("alert").count() == 0
    assert last_reply(page).locator(".content").inner_text().strip()


def test_api_key_field_on_401_sends_bearer(page):
    # Stands in for a server started with --api-key: no Bearer key → 401, any key → the real server.
    seen = []

    def guard(route):
        auth = route.request.headers.get("authorization")
        seen.append(auth)
        if not auth:
            body = {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}}
            return route.fulfill(status=401, content_type="application/json", body=json.dumps(body))
        return route.continue_()

    page.route(CHAT, guard)
    send(page, "Hi")
    wait_done(page)
    assert "401" in last_reply(page).get_by_role("alert").inner_text()
    last_reply(page).get_by_label("API key").fill("sekret")
    last_reply(page).get_by_role("button", name="Save key and retry").click()
    wait_done(page)
    assert seen == [None, "Bearer sekret"]
    assert last_reply(page).get_by_role("alert").count() == 0
    page.reload()  # the key is remembered
    page.get_by_role("button", name="Settings").click()
    assert page.locator("#set-apiKey").input_value() == "sekret"


def test_api_key_asked_for_when_the_server_info_needs_one(page, ui_server):
    # Stands in for --api-key on every API route: the page itself loads, then asks for the key.
    def guard(route):
        if route.request.headers.get("authorization") == "Bearer sekret":
            return route.continue_()
        body = {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}}
        return route.fulfill(status=401, content_type="application/json", body=json.dumps(body))

    page.route(lambda url: "/v1/" in url or "/props" in url, guard)
    page.reload()
    banner = page.get_by_role("alert").filter(has_text="needs an API key")
    banner.get_by_label("API key").fill("sekret")
    banner.get_by_role("button", name="Save key and retry").click()
    banner.wait_for(state="detached")
    page.get_by_text("SmolLM2-135M-Instruct.Q4_1.gguf").first.wait_for()


def test_reasoning_tool_calls_and_usage_from_the_stream(page):
    # SmolLM2 neither reasons nor calls tools: this reply is an injected chat.completion.chunk stream.
    body = sse(
        chunk({"role": "assistant", "content": None}),
        chunk({"reasoning_content": "The user wants "}),
        chunk({"reasoning_content": "the weather."}),
        chunk({"content": "Let me check."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        chunk({}, "tool_calls", timings={"cache_n": 3, "prompt_n": 9, "prompt_per_second": 90.0, "predicted_n": 17, "predicted_per_second": 42.5}),
        chunk(usage={"prompt_tokens": 12, "completion_tokens": 17, "total_tokens": 29}),
    )
    page.route(CHAT, lambda route: route.fulfill(status=200, content_type="text/event-stream", body=body))
    send(page, "Weather in Paris?")
    wait_done(page)
    reply = last_reply(page)
    reasoning = reply.locator("details.reasoning")
    assert reasoning.locator("summary").inner_text() == "Reasoning"
    assert not reasoning.locator(".reasoning-body").is_visible()  # collapsed once the reply is done
    reasoning.locator("summary").click()
    assert reasoning.locator(".reasoning-body").inner_text() == "The user wants the weather."
    assert reply.locator(".content").inner_text() == "Let me check."
    assert reply.locator(".tool-call-name code").inner_text() == "get_weather"
    assert json.loads(reply.locator(".tool-call-args").inner_text()) == {"city": "Paris"}
    assert reply.locator(".stats").inner_text() == "12 prompt tokens (3 cached) · 17 tokens · 42.5 tok/s · prompt 90.0 tok/s"


def test_router_model_picker_loads_the_chosen_model(page):
    # Router mode is served by another process kind; its /v1/models and /models/load are stood in for here.
    state = {"b": "unloaded"}
    loads = []

    def models(route):
        data = [
            {"id": "model-a", "object": "model", "status": {"value": "loaded"}},
            {"id": "model-b", "object": "model", "status": {"value": state["b"], "args": []}},
        ]
        route.fulfill(status=200, content_type="application/json", body=json.dumps({"object": "list", "data": data}))

    def load(route):
        loads.append(json.loads(route.request.post_data))
        state["b"] = "loaded"
        route.fulfill(status=200, content_type="application/json", body='{"success": true}')

    page.route("**/v1/models", models)
    page.route("**/models/load", load)
    bodies = capture_chat_requests(page)
    page.reload()
    picker = page.get_by_label("Model", exact=True)
    expect(picker.locator("option")).to_have_text(["model-a (loaded)", "model-b (unloaded)"])
    expect(picker).to_have_value("model-a")
    picker.select_option("model-b")
    expect(picker.locator("option")).to_have_text(["model-a (loaded)", "model-b (loaded)"])
    assert loads == [{"model": "model-b"}]
    send(page, "Hi")
    wait_done(page)
    assert bodies[-1]["model"] == "model-b"


def test_export_then_import_conversations(page, tmp_path):
    page.route(CHAT, lambda route: route.fulfill(status=200, content_type="text/event-stream", body=sse(chunk({"content": "Blue."}, "stop"))))
    send(page, "Favourite color?")
    wait_done(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Export").click()
    path = tmp_path / "export.json"
    download.value.save_as(path)
    exported = json.loads(path.read_text())
    assert exported["format"] == "llamaserve-conversations"
    [conv] = exported["conversations"]
    assert [(m["role"], m["content"]) for m in conv["messages"]] == [("user", "Favourite color?"), ("assistant", "Blue.")]

    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete Favourite color?").click()
    page.get_by_text("No conversations yet").wait_for()
    page.get_by_label("Import conversations").set_input_files(str(path))
    page.get_by_text("Imported 1 conversation").wait_for()
    page.get_by_role("button", name="Favourite color?", exact=True).click()
    assert last_reply(page).locator(".content").inner_text() == "Blue."
    page.get_by_role("button", name="Rename Favourite color?").click()  # the imported copy is a live one
    page.get_by_label("Conversation title").fill("Colors")
    page.get_by_label("Conversation title").press("Enter")
    page.get_by_role("button", name="Colors", exact=True).wait_for()

    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    page.get_by_label("Import conversations").set_input_files(str(bad))
    page.get_by_text("Import failed").wait_for()


def test_narrow_screen_uses_a_drawer(page):
    page.set_viewport_size({"width": 390, "height": 800})
    off_screen = "document.querySelector('.sidebar').getBoundingClientRect().right <= 1"
    page.wait_for_function(off_screen)
    page.get_by_role("button", name="Conversations", exact=True).click()
    page.wait_for_function("document.querySelector('.sidebar').getBoundingClientRect().x >= 0")
    assert page.get_by_role("button", name="+ New chat").is_visible()
    page.get_by_role("button", name="+ New chat").click()
    page.wait_for_function(off_screen)
    assert page.get_by_label("Message").is_visible()
