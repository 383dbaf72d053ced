"""The pure parts of the Vertex AI predict route (api/vertex.py) and the CORS proxy (api/cors_proxy.py):
@requestFormat aliases, the predict body's checks, the proxy's URL and header rules."""

from __future__ import annotations

import pytest
from starlette.routing import Route

from llamaserve.api.cors_proxy import forwarded_headers, target_url
from llamaserve.api.vertex import format_alias, format_paths, parse_instances
from llamaserve.errors import InvalidRequest


@pytest.mark.parametrize("path, alias", [
    ("/v1/chat/completions", "chatCompletions"), ("/chat/completions", "chatCompletions"),
    ("/apply-template", "applyTemplate"), ("/completion", "completion"), ("/v1/messages/count_tokens", "messagesCountTokens"),
    ("/lora-adapters", "loraAdapters"), ("/slots/{id_slot}", "slots"), ("/v1", ""), ("/v1x", "x"),
])
def test_format_alias(path, alias):
    assert format_alias(path) == alias


def test_format_paths_first_route_wins_and_paths_name_themselves():
    async def endpoint(request):  # pragma: no cover - never called
        return None

    routes = [Route("/chat/completions", endpoint, methods=["POST"]), Route("/v1/chat/completions", endpoint, methods=["POST"]),
              Route("/health", endpoint, methods=["GET"]), Route("/slots/{id_slot}", endpoint, methods=["POST"])]
    paths = format_paths(routes)
    assert paths["chatCompletions"] == "/chat/completions"
    assert paths["/v1/chat/completions"] == "/v1/chat/completions"
    assert "health" not in paths and "/health" not in paths  # GET only: an instance is a POST body
    assert "slots" not in paths  # a path parameter cannot come from an instance


@pytest.mark.parametrize("body, fragment", [
    (b"nope", "invalid JSON"), (b"[]", "JSON object"), (b"{}", "instances"), (b'{"instances": "x"}', "instances"),
    (b'{"instances": [' + b",".join([b"1"] * 129) + b"]}", "128"),
])
def test_parse_instances_refuses(body, fragment):
    with pytest.raises(InvalidRequest, match=fragment):
        parse_instances(body)


def test_parse_instances_takes_up_to_128():
    assert parse_instances(b'{"instances": []}') == []
    assert len(parse_instances(b'{"instances": [' + b",".join([b"{}"] * 128) + b"]}")) == 128


@pytest.mark.parametrize("url, fragment", [
    (None, "required"), ("", "required"), ("ftp://h/x", "scheme"), ("javascript:alert(1)", "scheme"),
    ("//host/x", "scheme"), ("http://a:b@h/", "authentication"), ("https:///x", "host"),
])
def test_target_url_refuses(url, fragment):
    with pytest.raises(InvalidRequest, match=fragment):
        target_url(url)


def test_target_url_keeps_path_and_query():
    url = target_url("https://mcp.example.com:8443/sse?session=1")
    assert (url.scheme, url.host, url.port, url.raw_path) == ("https", "mcp.example.com", 8443, b"/sse?session=1")
    assert target_url("http://user@h/").host == "h"  # a user without a password carries no secret


def test_forwarded_headers_are_only_the_named_ones():
    headers = {"Authorization": "Bearer server-key", "X-Api-Key": "k", "Cookie": "c", "Accept": "text/html",
               "X-Llama-Server-Proxy-Header-Authorization": "Bearer mcp", "x-llama-server-proxy-header-accept": "a/b",
               "X-Llama-Server-Proxy-Header-": "empty name", "X-Llama-Server-Proxy-Header-Host": "evil",
               "X-Llama-Server-Proxy-Header-Content-Length": "5"}
    assert forwarded_headers(headers) == {"Authorization": "Bearer mcp", "accept": "a/b"}
