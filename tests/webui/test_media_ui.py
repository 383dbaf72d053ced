"""Images in the chat UI, in a real browser against a server with a projector (the synthetic one of
shared/models): attached with the button, shown in the conversation, sent as image_url content parts
with the text, answered by the model, and kept in the stored chat across a reload."""

from __future__ import annotations

import pytest

from tests.conftest import serve, shared_model
from tests.media_files import png
from tests.webui.test_chat_ui import capture_chat_requests, send, wait_done

pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def ui_server(request):
    """Overrides the session's text-only server for this module: the page fixture talks to this one."""
    return serve(request, "webui-mm", "-np", "2", "-c", "4096", "--mmproj", shared_model("synthetic-mmproj-smollm2.f32.gguf"))


def test_an_attached_image_is_sent_shown_and_kept(page, tmp_path):
    picture = tmp_path / "cat.png"
    picture.write_bytes(png(3))
    bodies = capture_chat_requests(page)
    attach = page.get_by_role("button", name="Attach")
    attach.wait_for()  # offered because /props says vision
    page.get_by_test_id("attach-input").set_input_files(str(picture))
    page.locator(".attachments img").wait_for()
    send(page, "What is in this picture?")
    wait_done(page)
    content = bodies[-1]["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What is in this picture?"}
    assert content[1]["type"] == "image_url" and content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert page.locator(".attachments").count() == 0  # the composer is empty again
    user_image = page.locator(".msg.user .msg-attachments img")
    assert user_image.count() == 1
    assert page.locator(".msg.assistant .stats").first.inner_text().split()[0].isdigit()
    page.reload()
    page.locator(".msg.user .msg-attachments img").wait_for()  # kept in the stored conversation


def test_a_file_the_model_does_not_take_is_refused_with_a_notice(page, tmp_path):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not an image")
    page.get_by_role("button", name="Attach").wait_for()
    page.get_by_test_id("attach-input").set_input_files(str(text_file))
    page.get_by_role("alert").filter(has_text="does not take").wait_for()
    assert page.locator(".attachments").count() == 0
