"""ggml's RPC backend: remote devices for --rpc, the server side for `llamaserve rpc-server`.

llama-cpp-python binds none of it, so it is reached through libggml's backend registry, as
llama-server does: the "RPC" registry exists only when libggml was built with GGML_RPC=ON, and its
functions are looked up by name in it (ggml_backend_reg_get_proc_address).

A lost RPC server is fatal to the process: ggml's RPC client calls GGML_ABORT on a failed command
(the layers held there, and the KV cache beside them, are gone), and abort() follows the abort
callback. `watch_aborts` turns that into a clean end: the callback reports what was lost and keeps
the failing C thread parked instead of returning into abort(), so the server can answer its clients
before it exits.
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

import llama_cpp
import llama_cpp.llama_cpp as ll

from llamaserve.engine.devices import ggml_libraries

log = logging.getLogger("llamaserve")

HOW_TO_GET_RPC = ("this llama-cpp-python was built without ggml's RPC backend; rebuild it with: "
                  'CMAKE_ARGS="-DGGML_RPC=ON" pip install --force-reinstall --no-cache-dir --no-deps '
                  f"llama-cpp-python=={llama_cpp.__version__}")
DEFAULT_PORT = 50052  # rpc-server's
CONNECT_TIMEOUT_S = 3.0

_added: dict[str, list[str]] = {}  # endpoint -> the names of its devices, once registered with ggml
_lock = threading.Lock()


class RpcError(Exception):
    """An RPC server that cannot be used: not reachable, no RPC in this build, a bad endpoint."""


def parse_endpoint(text: str) -> tuple[str, int]:
    """"host:port" (IPv6 as "[::1]:50052") -> (host, port); raises ValueError."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"'{text}' is not host:port")
    return host.strip("[]"), int(port)


def _rpc_reg() -> int:
    lib, base = ggml_libraries()
    lib.ggml_backend_reg_by_name.restype = ctypes.c_void_p
    lib.ggml_backend_reg_by_name.argtypes = [ctypes.c_char_p]
    return lib.ggml_backend_reg_by_name(b"RPC") or 0


def available() -> bool:
    """Whether the loaded libggml has the RPC backend."""
    return bool(_rpc_reg())


def _function(name: str, restype, argtypes):
    reg = _rpc_reg()
    if not reg:
        raise RpcError(HOW_TO_GET_RPC)
    _, base = ggml_libraries()
    base.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
    base.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    address = base.ggml_backend_reg_get_proc_address(reg, name.encode())
    if not address:
        raise RpcError(f"ggml's RPC backend has no {name}")
    return ctypes.CFUNCTYPE(restype, *argtypes)(address)


def reachable(endpoint: str, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """None when something accepts connections at endpoint, else why not. (An RPC server serves one
    client at a time; a busy one still accepts the connection into its backlog.)"""
    try:
        host, port = parse_endpoint(endpoint)
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except ValueError as exc:
        return str(exc)
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


def add_servers(endpoints: list[str]) -> list[str]:
    """Register each RPC server's devices with ggml (once per endpoint for the process: a model that
    loads again after sleeping finds them there). Returns the names of their devices. Raises RpcError
    naming the first endpoint that cannot be reached: ggml's client would abort the process."""
    if not endpoints:
        return []
    with _lock:
        add = None
        for endpoint in endpoints:
            if endpoint in _added:
                continue
            why = reachable(endpoint)
            if why is not None:
                raise RpcError(f"cannot reach the RPC server {endpoint}: {why}")
            if add is None:
                add = _function("ggml_backend_rpc_add_server", ctypes.c_void_p, [ctypes.c_char_p])
            reg = add(endpoint.encode())
            if not reg:
                raise RpcError(f"the RPC server {endpoint} offers no device")
            lib, base = ggml_libraries()
            lib.ggml_backend_register.argtypes = [ctypes.c_void_p]
            lib.ggml_backend_register(reg)
            base.ggml_backend_reg_dev_count.restype = ctypes.c_size_t
            base.ggml_backend_reg_dev_count.argtypes = [ctypes.c_void_p]
            base.ggml_backend_reg_dev_get.restype = ctypes.c_void_p
            base.ggml_backend_reg_dev_get.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
            names = [base.ggml_backend_dev_name(base.ggml_backend_reg_dev_get(reg, i)).decode()
                     for i in range(base.ggml_backend_reg_dev_count(reg))]
            _added[endpoint] = names
            log.info("RPC server %s: device%s %s", endpoint, "s" * (len(names) > 1), ", ".join(names))
        return [name for endpoint in endpoints for name in _added[endpoint]]


# ggml's client waits on its connection without a timeout: a machine that vanishes (power, network)
# without closing it would leave a request waiting for as long as TCP keeps trying (many minutes). With
# these the kernel drops such a connection within about 15 s, and ggml's client fails as if the server
# had died (see watch_aborts).
_KEEPALIVE = ((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1), (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 5),
              (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 2), (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3),
              (socket.IPPROTO_TCP, getattr(socket, "TCP_USER_TIMEOUT", 18), 15000))


def detect_dead_peers(endpoints: list[str]) -> int:
    """Set keepalive and a user timeout on ggml's connections to the endpoints (made when the model's
    buffers are, kept while they live), found among this process's file descriptors by their peer
    address: ggml keeps its sockets to itself. Returns how many it set."""
    peers = set()
    try:
        for endpoint in endpoints:
            host, port = parse_endpoint(endpoint)
            peers |= {(info[4][0], port) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except (OSError, ValueError):
        return 0
    n = 0
    for fd in fds:
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue  # not a socket
        with sock:
            try:
                peer = sock.getpeername()
            except (OSError, TypeError):
                continue
            if isinstance(peer, tuple) and peer[:2] in peers:
                n += 1
                for level, option, value in _KEEPALIVE:
                    try:
                        sock.setsockopt(level, option, value)
                    except OSError:
                        pass
    return n


def serve(host: str, port: int, n_threads: int, devices: list[int], cache_dir: str | None) -> None:
    """Run ggml's RPC server on the calling thread; returns only if it cannot start (it prints why)."""
    ll.llama_backend_init()
    start = _function("ggml_backend_rpc_start_server", None,
                      [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p)])
    arr = (ctypes.c_void_p * len(devices))(*devices)
    endpoint = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    start(endpoint.encode(), cache_dir.encode() if cache_dir else None, n_threads, len(devices), arr)


def _unreachable(endpoints: list[str], within: float = 1.0) -> list[str]:
    """The endpoints that refuse connections, probed for up to `within` seconds: the client sees its
    connection drop a moment before a dying server's listening socket closes."""
    deadline = time.monotonic() + within
    while True:
        lost = [e for e in endpoints if reachable(e, timeout=within) is not None]
        if lost or time.monotonic() >= deadline:
            return lost
        time.sleep(0.1)


_ABORT_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_char_p)


def watch_aborts(endpoints: list[str], on_lost: Callable[[str], None]) -> None:
    """From now on a GGML_ABORT in this process (ggml's RPC client has no other way to fail) calls
    on_lost(reason) on the aborting thread, whichever it is, and then parks that thread for good:
    returning would run abort(). on_lost names the endpoints that no longer accept connections."""

    def handler(message: bytes) -> None:  # pragma: no cover - runs on a C thread at the failure
        text = message.decode("utf-8", "replace").strip() if message else "ggml aborted"
        lost = _unreachable(endpoints)
        where = (f"the RPC server{'s' * (len(lost) > 1)} {', '.join(lost)} stopped answering" if lost else
                 f"an RPC server ({', '.join(endpoints)}) failed")
        try:
            on_lost(f"{where} ({text.rpartition(': ')[2] or text})")
        finally:
            threading.Event().wait()

    callback = _ABORT_CALLBACK(handler)
    lib, base = ggml_libraries()
    base.ggml_set_abort_callback.restype = ctypes.c_void_p
    base.ggml_set_abort_callback.argtypes = [_ABORT_CALLBACK]
    base.ggml_set_abort_callback(callback)
    watch_aborts.callback = callback  # C holds the pointer: keep the object alive

