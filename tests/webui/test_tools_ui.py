"""Server tools in the chat page: the model's tool calls shown with their arguments, each waiting for
Allow or Deny (unless auto-allow is on), run through POST /tools on the real server, their results shown
and sent back to the model, which then goes on.

SmolLM2 does not call tools, so the model's turns are injected chat.completion.chunk streams (page.route);
the tools themselves run on a live llamaserve started with --tools."""

from __future__ import annotations

import json

import pytest

from tests.conftest import serve
from tests.webui.test_chat_ui import CHAT, chunk, send, sse, wait_done

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
expect = playwright.expect


@pytest.fixture(scope="module")
def tools_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("ui-tools")
    (path / "note.txt").write_text("hello from the file\n")
    return path


@pytest.fixture(scope="module")
def ui_server(request, tools_dir):
    """The conftest page fixture's server, here with two tools confined to tools_dir."""
    return serve(request, "webui-tools", "-np", "1", "-c", "2048", "--tools", "read_file,write_file", "--tools-root", str(tools_dir))


def call_stream(name: str, arguments: dict) -> str:
    return sse(
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [{"index": 0, "id": "call_7", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}]}),
        chunk({}, "tool_calls"),
    )


def answer_stream(text: str) -> str:
    return sse(chunk({"role": "assistant", "content": text}), chunk({}, "stop"))


def model_turns(page, *turns: str) -> list[dict]:
    """The model answers each chat request with the next of `turns`; returns the request bodies."""
    bodies: list[dict] = []

    def handle(route):
        bodies.append(json.loads(route.request.post_data))
        route.fulfill(status=200, content_type="text/event-stream", body=turns[min(len(bodies), len(turns)) - 1])

    page.route(CHAT, handle)
    return bodies


def tool_message(body: dict) -> dict:
    return next(m for m in body["messages"] if m["role"] == "tool")


def test_a_call_waits_for_allow_then_runs_and_the_model_goes_on(page):
    bodies = model_turns(page, call_stream("read_file", {"path": "note.txt"}), answer_stream("The file says hello."))
    expect(page.locator(".tools-note")).to_contain_text("2 server tools")
    send(page, "What is in note.txt?")
    call = page.locator(".tool-call").first
    expect(call).to_have_attribute("data-status", "pending")
    assert call.locator(".tool-call-name code").inner_text() == "read_file"
    assert json.loads(call.locator(".tool-call-args").inner_text()) == {"path": "note.txt"}
    assert len(bodies) == 1 and [t["function"]["name"] for t in bodies[0]["tools"]] == ["read_file", "write_file"]
    call.get_by_role("button", name="Allow").click()
    expect(page.locator(".msg.assistant").last.locator(".content")).to_have_text("The file says hello.")
    wait_done(page)
    expect(call).to_have_attribute("data-status", "done")
    call.locator(".tool-call-result summary").click()
    expect(call.locator(".tool-call-result pre")).to_have_text("hello from the file\n")
    # the second turn carries the call and what it gave back
    assert len(bodies) == 2
    assistant = next(m for m in bodies[1]["messages"] if m.get("tool_calls"))
    assert assistant["tool_calls"][0]["id"] == "call_7"
    assert tool_message(bodies[1]) == {"role": "tool", "tool_call_id": "call_7", "content": "hello from the file\n"}


def test_a_denied_call_does_not_run_and_the_model_hears_it(page, tools_dir):
    bodies = model_turns(page, call_stream("write_file", {"path": "made.txt", "content": "x"}), answer_stream("Understood."))
    send(page, "Write a file")
    call = page.locator(".tool-call").first
    call.get_by_role("button", name="Deny").click()
    expect(page.locator(".msg.assistant").last.locator(".content")).to_have_text("Understood.")
    expect(call).to_have_attribute("data-status", "denied")
    assert tool_message(bodies[1])["content"] == "The user denied this tool call."
    assert not (tools_dir / "made.txt").exists()


def test_auto_allow_runs_calls_without_asking_and_shows_errors(page, tools_dir):
    page.get_by_role("button", name="Settings").click()
    dialog = page.get_by_role("dialog", name="Settings")
    dialog.locator("#set-autoAllowTools").check()
    dialog.get_by_role("button", name="Save").click()
    bodies = model_turns(page, call_stream("read_file", {"path": "../../etc/passwd"}), answer_stream("That is not allowed."))
    send(page, "Read the passwords")
    expect(page.locator(".msg.assistant").last.locator(".content")).to_have_text("That is not allowed.")
    call = page.locator(".tool-call").first
    expect(call).to_have_attribute("data-status", "error")
    assert call.get_by_role("button", name="Allow").count() == 0
    content = tool_message(bodies[1])["content"]
    assert content.startswith("Error: ") and "outside the directory" in content
