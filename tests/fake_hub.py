"""A Hugging Face hub on loopback, in the test process: the endpoints llama.cpp's downloader (and ours) uses,
for repositories the test fills with local files. Tests point MODEL_ENDPOINT at it; nothing reaches the
internet.

    GET  /api/models/<repo>/refs                     {"branches": [{"name": "main", "targetCommit": ...}]}
    GET  /api/models/<repo>/tree/<commit>?recursive=true   files with size, git oid, and lfs {oid: sha256, size}
    HEAD|GET /<repo>/resolve/<commit>/<path>         302 to /cdn/<sha256> (as the hub sends bytes from a CDN)
    HEAD|GET /cdn/<sha256>                           the bytes: ETag, Content-Length, Accept-Ranges, Range -> 206

A gated repository answers 401 without the right bearer token. Faults for the transfer: cut the
connection after N bytes, send corrupt bytes, or send slowly."""

from __future__ import annotations

import hashlib
import http.server
import json
import pathlib
import re
import threading
import time
from dataclasses import dataclass, field

TOKEN = "hf_" + "a" * 34


@dataclass
class HubFile:
    path: str
    source: pathlib.Path | bytes
    size: int = 0
    sha256: str = ""
    git_oid: str = ""

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        if isinstance(self.source, bytes):
            return self.source[start:end]
        with open(self.source, "rb") as f:
            f.seek(start)
            return f.read((end if end is not None else self.size) - start)


_digests: dict[tuple[str, int], tuple[str, str]] = {}  # (path, mtime) -> (sha256, git oid): the model is hashed once


def _hash(source: pathlib.Path | bytes) -> tuple[int, str, str]:
    if isinstance(source, bytes):
        data = source
        return len(data), hashlib.sha256(data).hexdigest(), hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    key = (str(source), source.stat().st_mtime_ns)
    size = source.stat().st_size
    if key not in _digests:
        sha, git = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
        with open(source, "rb") as f:
            while chunk := f.read(1 << 20):
                sha.update(chunk)
                git.update(chunk)
        _digests[key] = (sha.hexdigest(), git.hexdigest())
    return size, *_digests[key]


@dataclass
class HubRepo:
    name: str
    files: dict[str, HubFile]
    commit: str
    gated: bool = False


@dataclass
class Faults:
    cut_after: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before the first GET is cut
    corrupt: set[str] = field(default_factory=set)  # paths whose bytes arrive with one byte changed
    rate: int = 0  # bytes per second for every transfer; 0 = as fast as it goes


class FakeHub:
    def __init__(self):
        self.repos: dict[str, HubRepo] = {}
        self.faults = Faults()
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, headers)
        self._lock = threading.Lock()
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                hub._serve(self, head=True)

            def do_GET(self):
                hub._serve(self, head=False)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_repo(self, name: str, files: dict[str, pathlib.Path | bytes], gated: bool = False) -> HubRepo:
        hub_files = {}
        for path, source in files.items():
            size, sha, git = _hash(source)
            hub_files[path] = HubFile(path, source, size, sha, git)
        commit = hashlib.sha1(name.encode() + b"".join(f.sha256.encode() for f in hub_files.values())).hexdigest()
        repo = self.repos[name] = HubRepo(name, hub_files, commit, gated)
        return repo

    def paths_requested(self, method: str = "GET") -> list[str]:
        with self._lock:
            return [p for m, p, _ in self.requests if m == method]

    # --- serving ---

    def _serve(self, h: http.server.BaseHTTPRequestHandler, head: bool) -> None:
        with self._lock:
            self.requests.append((h.command, h.path, dict(h.headers)))
        path = h.path.split("?", 1)[0]
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/refs", path):
            repo = self._repo(h, m.group(1))
            if repo:
                self._json(h, {"branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": repo.commit}],
                               "converts": [], "tags": []})
        elif m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([0-9a-f]{40})", path):
            repo = self._repo(h, m.group(1))
            if repo:
                self._json(h, [self._tree_entry(f) for f in repo.files.values()])
        elif m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([0-9a-f]{40})/(.+)", path):
            repo = self._repo(h, m.group(1))
            if repo:
                f = repo.files.get(m.group(3))
                if f is None or m.group(2) != repo.commit:
                    return self._send(h, 404, b'{"error":"Entry not found"}')
                h.send_response(302)
                h.send_header("Location", f"/cdn/{repo.name}/{f.path}")
                h.send_header("X-Repo-Commit", repo.commit)
                h.send_header("Content-Length", "0")
                h.end_headers()
        elif m := re.fullmatch(r"/cdn/([^/]+/[^/]+)/(.+)", path):
            repo = self.repos.get(m.group(1))
            f = repo.files.get(m.group(2)) if repo else None
            if f is None:
                return self._send(h, 404, b"not found")
            self._transfer(h, f, head)
        else:
            self._send(h, 404, b'{"error":"Repository not found"}')

    def _repo(self, h, name: str) -> HubRepo | None:
        repo = self.repos.get(name)
        if repo is None:  # as the hub answers an unknown repository: 401, and the reason in X-Error-Code
            self._send(h, 401, b'{"error":"Repository not found"}', headers={"X-Error-Code": "RepoNotFound"})
            return None
        if repo.gated and h.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(h, 401, b'{"error":"Access to model is restricted. You must be authenticated."}',
                       headers={"X-Error-Code": "GatedRepo"})
            return None
        return repo

    @staticmethod
    def _tree_entry(f: HubFile) -> dict:
        entry = {"type": "file", "path": f.path, "size": f.size, "oid": f.git_oid}
        if f.path.endswith(".gguf"):
            entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": 134}
        return entry

    def _json(self, h, body) -> None:
        self._send(h, 200, json.dumps(body).encode(), "application/json")

    @staticmethod
    def _send(h, status: int, body: bytes, content_type: str = "application/json", headers: dict | None = None) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _transfer(self, h, f: HubFile, head: bool) -> None:
        start = 0
        rng = h.headers.get("Range", "")
        if m := re.fullmatch(r"bytes=(\d+)-", rng):
            start = int(m.group(1))
            if start >= f.size:
                return self._send(h, 416, b"")
        h.send_response(206 if start else 200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(f.size - start))
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("ETag", f'"{f.sha256}"')
        if start:
            h.send_header("Content-Range", f"bytes {start}-{f.size - 1}/{f.size}")
        h.end_headers()
        if head:
            return
        with self._lock:
            cut = self.faults.cut_after.pop(f.path, None)
            corrupt = f.path in self.faults.corrupt
            rate = self.faults.rate
        pos, end = start, f.size if cut is None else min(f.size, start + cut)
        step = 1 << 16
        try:
            while pos < end:
                chunk = f.read(pos, min(pos + step, end))
                if corrupt and pos <= f.size // 2 < pos + len(chunk):
                    i = f.size // 2 - pos
                    chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1:]
                h.wfile.write(chunk)
                pos += len(chunk)
                if rate:
                    time.sleep(len(chunk) / rate)
            if cut is not None:
                h.wfile.flush()
                h.close_connection = True
                h.connection.shutdown(2)  # the transfer ends before Content-Length: the client sees it cut
        except (BrokenPipeError, ConnectionResetError):
            pass
