"""Browser fixtures: Debian's chromium driven headless by Playwright against a live llamaserve.

Each test gets a fresh browser context (empty localStorage) and leaves a screenshot in the
artifacts folder: $LLAMASERVE_ARTIFACTS/webui if set, else pytest's temporary folder.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil

import pytest

from tests.conftest import serve

# Playwright adds --headless itself.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("LLAMASERVE_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
    path = chromium_path()
    if path is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does this)")
    pw = sync_api.sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
    except Exception as exc:  # a broken browser install is an environment problem, not a UI failure
        pw.stop()
        pytest.skip(f"chromium at {path} does not start: {exc}")
    yield b
    b.close()
    pw.stop()


@pytest.fixture(scope="session")
def ui_server(request):
    """Two slots of 2048 tokens; the UI tests talk to it through the browser only."""
    return serve(request, "webui", "-np", "2", "-c", "4096")


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> pathlib.Path:
    root = os.environ.get("LLAMASERVE_ARTIFACTS")
    path = pathlib.Path(root) / "webui" if root else tmp_path_factory.getbasetemp() / "webui-screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


# Settings every test starts with unless it says otherwise: short replies keep the suite quick.
BASE_SETTINGS = {"max_tokens": "12"}


@pytest.fixture()
def settings() -> dict:
    return dict(BASE_SETTINGS)


@pytest.fixture()
def page(browser, ui_server, artifacts, request, settings):
    # bypass_csp: the page's Content-Security-Policy would also stop model HTML from running, so
    # without it the tests show that the sanitizer alone does (and wait_for_function may eval).
    context = browser.new_context(viewport={"width": 1100, "height": 760}, accept_downloads=True, bypass_csp=True)
    # Preset settings once; a test that changes them in the UI keeps its changes across reloads.
    context.add_init_script(
        "if (!localStorage.getItem('llamaserve.settings')) "
        f"localStorage.setItem('llamaserve.settings', {json.dumps(json.dumps(settings))});"
    )
    pg = context.new_page()
    pg.set_default_timeout(120_000)  # replies come from a real model on a shared CPU
    pg.errors = []
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    pg.goto(ui_server.url + "/")
    yield pg
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    try:
        pg.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
    finally:
        context.close()
    assert not pg.errors, f"uncaught errors in the page: {pg.errors}"
