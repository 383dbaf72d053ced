"""The HTTP options in router mode: --api-prefix (proxied requests included), /props' ui_settings and
ignored_options, --tags in /models, start-up notices, and header names on proxied responses."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.conftest import serve, wait_healthy
from tests.helpers import CHILD, SMOL, names, raw, spelled_like_llama_server

PREFIX = "/llama"


@pytest.fixture(scope="module")
def router(request):
    s = serve(request, "router-flags", "--api-prefix", PREFIX, "--tags", "team-a",
              "--ui-config", json.dumps({"theme": "light"}), "--defrag-thold", "0.1", *CHILD,
              router=True, wait=False)
    return wait_healthy(s, PREFIX + "/health")


@pytest.fixture()
def c(router):
    with router.client(PREFIX) as client:
        yield client


def test_router_props(c):
    p = c.get("/props", params={"autoload": "false"}).json()
    assert p["role"] == "router" and p["build_info"].startswith("b")  # llama.cpp's router tests read it so
    assert p["ui_settings"] == {"theme": "light"} and p["ignored_options"] == {"--defrag-thold": 0.1}


def test_router_lists_tags(c):
    models = {m["id"]: m for m in c.get("/models").json()["data"]}
    assert models[SMOL]["tags"] == ["team-a"]


def test_router_routes_only_under_the_prefix(router, c):
    assert httpx.get(router.url + "/health").status_code == 404
    assert httpx.get(router.url + "/v1/models").status_code == 404
    index = c.get("/")
    assert index.status_code == 200 and '<div id="app">' in index.text


def test_proxied_requests_under_the_prefix(router, c):
    r = c.post("/tokenize", json={"model": SMOL, "content": "Hello"})
    assert r.status_code == 200 and r.json()["tokens"]
    # the child serves without the prefix and lists the router's tags and settings as its own
    p = c.get("/props", params={"model": SMOL}).json()
    assert p["ui_settings"] == {"theme": "light"}
    body = json.dumps({"model": SMOL, "content": "Hi"}).encode()
    status, headers, _ = raw(router, "POST", PREFIX + "/tokenize", {"Content-Type": "application/json"}, body)
    assert status == 200 and all(spelled_like_llama_server(n) for n in names(headers)), names(headers)


def test_router_announces_its_notices_once(router):
    own = [l for l in router.log().splitlines() if re.match(r"\S+ W llamaserve: --defrag-thold has no effect", l)]
    assert len(own) == 1
