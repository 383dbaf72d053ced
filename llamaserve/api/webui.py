"""The browser chat UI at `/`: static files built from webui/ into llamaserve/webui_dist.

index.html is revalidated on every load (its name never changes, its content does with each build);
files under assets/ carry a content hash in their names and are cached for a year. `--no-webui`
turns every route here into a 404, and so does `--path DIR`, whose files take the UI's place
(api/static_dir.py).
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import pathlib
from dataclasses import dataclass

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

DIST = pathlib.Path(__file__).resolve().parent.parent / "webui_dist"

INDEX_CACHE = "no-cache"
ASSET_CACHE = "public, max-age=31536000, immutable"

# The page only talks to the server that served it; nothing from elsewhere may load or run.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'self'"
)

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
_COMPRESSIBLE = (".html", ".js", ".mjs", ".css", ".json", ".svg", ".txt")

router = APIRouter()


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None  # None when gzip does not make it smaller
    media_type: str
    etag: str
    cache_control: str


def media_type(name: str) -> str:
    suffix = pathlib.PurePosixPath(name).suffix.lower()
    return MEDIA_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def load_bundle(dist: pathlib.Path = DIST) -> dict[str, Asset]:
    """Every file of the built UI by its URL path relative to `/` (e.g. "assets/index-3f2a.js")."""
    bundle: dict[str, Asset] = {}
    if not (dist / "index.html").is_file():
        return bundle
    for path in sorted(dist.rglob("*")):
        if not path.is_file():
            continue
        name = path.relative_to(dist).as_posix()
        body = path.read_bytes()
        packed = gzip.compress(body, 9, mtime=0) if name.endswith(_COMPRESSIBLE) else None
        bundle[name] = Asset(
            body=body,
            gzipped=packed if packed is not None and len(packed) < len(body) else None,
            media_type=media_type(name),
            etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
            cache_control=INDEX_CACHE if name == "index.html" else ASSET_CACHE,
        )
    return bundle


def _bundle(request: Request) -> dict[str, Asset]:
    config = request.app.state.config
    if not getattr(config, "webui", True) or getattr(config, "static_path", ""):
        raise HTTPException(404)
    state = request.app.state
    bundle = getattr(state, "webui_bundle", None)
    if bundle is None:
        bundle = state.webui_bundle = load_bundle()
    return bundle


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def serve(request: Request, name: str) -> Response:
    asset = _bundle(request).get(name)
    if asset is None:
        raise HTTPException(404)
    headers = {
        "Cache-Control": asset.cache_control,
        "ETag": asset.etag,
        "X-Content-Type-Options": "nosniff",
        "Vary": "Accept-Encoding",
    }
    if name == "index.html":
        headers["Content-Security-Policy"] = CSP
        headers["Referrer-Policy"] = "no-referrer"
        # cross-origin isolation of the page, as llama-server's index.html has it
        headers["Cross-Origin-Embedder-Policy"] = "require-corp"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if _etag_matches(request.headers.get("if-none-match"), asset.etag):
        return Response(status_code=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", "").lower():
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=asset.media_type, headers=headers)


def is_public_path(path: str) -> bool:
    """Paths of the UI itself, which a browser must load before it can ask for an API key."""
    return path in ("/", "/index.html") or path.startswith("/assets/")


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
@router.api_route("/index.html", methods=["GET", "HEAD"], include_in_schema=False)
async def index(request: Request) -> Response:
    return serve(request, "index.html")


@router.api_route("/assets/{name:path}", methods=["GET", "HEAD"], include_in_schema=False)
async def asset(request: Request, name: str) -> Response:
    return serve(request, "assets/" + name)
