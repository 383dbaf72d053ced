"""--offline holds by construction: nothing in llamaserve reaches the network but the router, which talks
only to its children on loopback (and to the hub through hub/ for a model it downloads), and hub/, the
downloader of -hf and -mu models, which with --offline makes no call at all (tests/unit/test_hub_fetch.py,
tests/e2e/test_hub.py), and api/media_fetch.py, which fetches a chat request's remote images, never with
--offline (tests/api/test_media.py). One more is opt-in: --ui-mcp-proxy's /cors-proxy (api/cors_proxy.py).
A new import of a network client elsewhere fails here."""

from __future__ import annotations

import ast
import pathlib

import llamaserve
from llamaserve.router import child

ROOT = pathlib.Path(llamaserve.__file__).parent
NETWORK_MODULES = {"httpx", "requests", "aiohttp", "urllib.request", "urllib3", "http.client", "ftplib", "smtplib",
                   "websockets", "huggingface_hub"}
# server.py makes the listening socket of --reuse-port; router/child.py finds a free loopback port;
# engine/rpc.py checks that the --rpc servers the user named accept connections (ggml's client aborts otherwise)
SOCKET_USERS = {"server.py", "router/child.py", "engine/rpc.py"}


def imports(path: pathlib.Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


# The web UI's CORS proxy fetches the URL its caller names, --offline or not (as llama-server's): it is off
# unless --ui-mcp-proxy turns it on, and --offline is about models.
OPT_IN_CLIENTS = {"api/cors_proxy.py"}


def test_only_the_router_and_the_downloader_import_a_network_client():
    for path in ROOT.rglob("*.py"):
        name = path.relative_to(ROOT).as_posix()
        found = {m for m in imports(path) if m in NETWORK_MODULES or m.split(".")[0] in {"httpx", "requests", "aiohttp"}}
        if not name.startswith(("router/", "hub/", "api/media_fetch.py")) and name not in OPT_IN_CLIENTS:
            assert not found, f"{name} imports {found}"
        if "socket" in imports(path):
            assert name in SOCKET_USERS, f"{name} imports socket"


def test_router_children_are_on_loopback():
    assert child.CHILD_HOST == "127.0.0.1"
    source = (ROOT / "router" / "app.py").read_text()
    assert "trust_env=False" in source  # no proxy from the environment either
