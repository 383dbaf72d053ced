"""The web UI's files over HTTP: content types, caching, ETags, gzip, and --no-webui."""

from __future__ import annotations

import gzip
import hashlib
import pathlib
import re

import pytest

from llamaserve.api import webui
from tests.conftest import start_server
from tests.helpers import assert_error


def asset_paths(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="\./(assets/[^"]+)"', html)


def test_index_is_revalidated_and_locked_down(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert '<div id="app">' in r.text
    assert client.get("/index.html").content == r.content
    # a browser revalidating with the ETag gets 304 and no body
    again = client.get("/", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_hashed_assets_are_cached_for_good(client):
    html = client.get("/").text
    paths = asset_paths(html)
    assert any(p.endswith(".js") for p in paths) and any(p.endswith(".css") for p in paths)
    for path in paths:
        r = client.get("/" + path)
        assert r.status_code == 200, path
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        kind = "text/javascript" if path.endswith(".js") else "text/css"
        assert r.headers["content-type"] == f"{kind}; charset=utf-8"
    js = next(p for p in paths if p.endswith(".js"))
    # httpx asks for gzip and unpacks it; the raw size shows it came compressed
    with client.stream("GET", "/" + js, headers={"Accept-Encoding": "gzip"}) as r:
        raw = b"".join(r.iter_raw())
    assert r.headers["content-encoding"] == "gzip"
    assert len(raw) < len(gzip.decompress(raw))
    plain = client.get("/" + js, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == gzip.decompress(raw)
    assert client.head("/" + js).status_code == 200


def test_the_bundle_stays_small(client):
    total = sum(len(client.get("/" + p, headers={"Accept-Encoding": "identity"}).content) for p in asset_paths(client.get("/").text))
    assert total < 400_000


def test_unknown_asset_is_404(client):
    assert_error(client.get("/assets/nope.js"), 404, "not_found_error")
    assert_error(client.get("/assets/%2e%2e/config.py"), 404, "not_found_error")


def test_no_webui_serves_the_api_only(tmp_path):
    srv = start_server(tmp_path, "-np", "1", "-c", "512", "--no-webui")
    try:
        with srv.client() as c:
            html_paths = asset_paths(webui.load_bundle()["index.html"].body.decode())
            for path in ["/", "/index.html", "/" + html_paths[0]]:
                assert_error(c.get(path), 404, "not_found_error")
            assert c.get("/health").status_code == 200
    finally:
        srv.stop()


def test_load_bundle_reads_a_build_folder(tmp_path):
    assert webui.load_bundle(tmp_path) == {}  # not built: nothing served
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<html>" + "x" * 500 + "</html>")
    (tmp_path / "assets" / "app-1a2b.js").write_text("console.log(1)")
    (tmp_path / "assets" / "logo.png").write_bytes(b"\x89PNG")
    bundle = webui.load_bundle(tmp_path)
    assert set(bundle) == {"index.html", "assets/app-1a2b.js", "assets/logo.png"}
    assert bundle["index.html"].cache_control == "no-cache" and bundle["index.html"].gzipped is not None
    assert bundle["assets/app-1a2b.js"].cache_control.endswith("immutable")
    assert bundle["assets/app-1a2b.js"].gzipped is None  # too short to shrink
    assert bundle["assets/logo.png"].media_type == "image/png"
    assert webui.is_public_path("/") and webui.is_public_path("/assets/app-1a2b.js") and not webui.is_public_path("/props")


WEBUI_SOURCES = pathlib.Path(__file__).resolve().parents[2] / "webui"


def test_built_ui_matches_its_sources():
    """The committed build carries a digest of webui/ (see webui/vite.config.js); a source edit
    committed without `npm ci && npm run build` shows up here."""
    if not (WEBUI_SOURCES / "package.json").is_file():
        pytest.skip("no webui/ sources in this installation")
    files = []
    for rel in ("index.html", "package.json", "package-lock.json", "vite.config.js", "src"):
        path = WEBUI_SOURCES / rel
        files += [f.relative_to(WEBUI_SOURCES).as_posix() for f in path.rglob("*") if f.is_file()] if path.is_dir() else [rel]
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0")
        digest.update((WEBUI_SOURCES / rel).read_bytes())
        digest.update(b"\0")
    built = (webui.DIST / "source-digest.txt").read_text().strip()
    assert built == digest.hexdigest(), "webui/ changed without a rebuild: cd webui && npm ci && npm run build"
