"""Start the HTTP server (uvicorn) and the engine, or the router without -m; exit non-zero if the model cannot load.

SIGTERM/SIGINT: stop accepting connections, let in-flight requests finish for up to
--shutdown-grace seconds, then end what is left with a clean "server is shutting down"
error, stop the scheduler thread and exit 0. A second SIGINT quits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time

import uvicorn

from llamaserve.api import tools
from llamaserve.api.app import create_app
from llamaserve.api.timeouts import read_timeout_protocol
from llamaserve.config import Config
from llamaserve.logs import setup_logging

log = logging.getLogger("llamaserve")

_ENGINE_STOP_S = 60.0  # how long a stopping engine may take to finish its current step
_LOST_EXIT_S = 1.5  # after a lost RPC server: time to send the clients their errors before exiting


def announce_notices(config: Config) -> None:
    """The command line's warnings (options without effect, repeated options, GPU options on a CPU
    build), each once; /props lists the options without effect too."""
    for notice in config.notices:
        log.warning("%s", notice)


def _bind_one(host: str, port: int, config: Config, several: bool) -> socket.socket:
    if host.endswith(".sock"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address: object = host
    else:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    try:
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if several and sock.family == socket.AF_INET6:
                # "::" beside "0.0.0.0" would otherwise claim the IPv4 port too (llama-server: IPv6 only)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if config.reuse_port:
                if hasattr(socket, "SO_REUSEPORT"):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                else:  # pragma: no cover - not on Linux or macOS
                    log.warning("SO_REUSEPORT is not supported on this system")
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def listening_sockets(config: Config) -> list[socket.socket] | None:
    """The listening sockets, one per --host address, when uvicorn cannot bind them itself: several
    addresses, a UNIX socket, or --reuse-port (uvicorn has no such option); None lets uvicorn bind its
    one address. With --port 0 every address gets the port the first one was given. Raises OSError
    (naming the address) when one cannot be bound; none stays open then."""
    hosts = config.hosts
    if len(hosts) == 1 and not config.reuse_port and not hosts[0].endswith(".sock"):
        return None
    port, sockets = config.port, []
    try:
        for host in hosts:
            try:
                sock = _bind_one(host, port, config, len(hosts) > 1)
            except OSError as exc:
                raise OSError(exc.errno, f"{host}: {exc.strerror or exc}") from exc
            sockets.append(sock)
            if port == 0 and sock.family != socket.AF_UNIX:
                port = sock.getsockname()[1]
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bind(config: Config) -> tuple[bool, list[socket.socket] | None]:
    """(ok, the sockets for uvicorn.Server.run, None = its own)."""
    try:
        return True, listening_sockets(config)
    except OSError as exc:
        log.error("cannot listen on %s port %d: %s", config.host, config.port, exc.strerror or exc)
        return False, None


def listening_addresses(server: uvicorn.Server, config: Config) -> str:
    """Where the server listens, as URLs, for the start-up line."""
    scheme = "https" if config.tls else "http"
    urls = []
    for s in getattr(server, "servers", []) or []:
        for sock in getattr(s, "sockets", []) or []:
            name = sock.getsockname()
            if sock.family == socket.AF_UNIX:
                urls.append(f"unix://{name}")
            else:
                host = f"[{name[0]}]" if sock.family == socket.AF_INET6 else name[0]
                urls.append(f"{scheme}://{host}:{name[1]}")
    return ", ".join(urls) or f"{scheme}://{config.host}:{config.port}"


class _Server(uvicorn.Server):
    """uvicorn's server with our signal handling.

    uvicorn re-raises a caught SIGTERM/SIGINT once it has shut down, so the process would
    die by the signal (or a KeyboardInterrupt); a graceful stop here exits 0 instead."""

    def __init__(self, config: uvicorn.Config, on_stop_signal):
        super().__init__(config)
        self._on_stop_signal = on_stop_signal

    def handle_exit(self, sig: int, frame) -> None:  # noqa: ARG002 - signal handler signature
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
            return
        self.should_exit = True
        self._on_stop_signal(sig)


def _exit_when_rpc_is_lost(config: Config, scheduler) -> None:
    """A lost RPC server takes part of the model and its KV cache with it, and ggml's client cannot
    reconnect: the requests in flight get a 500 naming it, /health and new requests a 503, and after
    a moment to send those the process exits 1, for its supervisor (or the router) to start it again."""
    from llamaserve.engine.rpc import watch_aborts
    from llamaserve.errors import ServerError

    def on_lost(reason: str) -> None:
        log.error("%s: the model's layers there are gone; answering the requests in flight and exiting", reason)
        scheduler.lose(ServerError(reason))

        def leave() -> None:
            log.error("exiting: %s", reason)
            for handler in logging.getLogger().handlers + log.handlers:
                handler.flush()
            os._exit(1)

        threading.Timer(_LOST_EXIT_S, leave).start()

    watch_aborts(config.rpc_servers, on_lost)


def run(config: Config) -> int:
    setup_logging(config)
    announce_notices(config)
    if config.router_mode:
        return run_router(config)
    bound, sockets = _bind(config)
    if not bound:
        return 1
    try:
        app = create_app(config)
    except ValueError as exc:  # a route that cannot be set up (api/vertex.py)
        log.error("cannot serve: %s", exc)
        for sock in sockets or []:
            sock.close()
        return 1
    scheduler = app.state.bridge.scheduler
    if config.rpc_servers:
        _exit_when_rpc_is_lost(config, scheduler)
    grace_timer: list[threading.Timer] = []

    def on_stop_signal(sig: int) -> None:
        tools.stop_now(app)
        occupancy = scheduler.occupancy()
        busy = occupancy.busy + occupancy.queued
        log.info("%s: shutting down; %d tasks in flight get up to %.0f s to finish",
                 signal.Signals(sig).name, busy, config.shutdown_grace)
        if not grace_timer:
            # When the grace period is over, stopping the scheduler ends every task with a
            # "server is shutting down" error, so their handlers answer and the connections close.
            timer = threading.Timer(config.shutdown_grace, scheduler.stop, kwargs={"timeout": _ENGINE_STOP_S})
            timer.daemon = True
            timer.name = "llamaserve-shutdown-grace"
            timer.start()
            grace_timer.append(timer)

    server = _Server(_uvicorn_config(
        app, config,
        # A backstop for responses that do not end once the engine has stopped (a stalled client).
        # The engine finishes its current step first, which on a CPU can take a while.
        timeout_graceful_shutdown=config.shutdown_grace + _ENGINE_STOP_S,
    ), on_stop_signal)
    exit_code = [0]

    def watch_load() -> None:
        scheduler.ready.wait()
        if scheduler.load_error is not None:
            log.error("cannot serve: %s", scheduler.load_error)
            exit_code[0] = 1
            server.should_exit = True
        else:
            # the model may be ready before the socket is bound, or the bind may have failed
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                log.info("server is listening on %s", listening_addresses(server, config))

    threading.Thread(target=watch_load, name="llamaserve-load-watch", daemon=True).start()
    where = f"{config.hf_repo} (Hugging Face)" if config.hf_repo else config.model_url if config.model_url else config.model
    log.info("llamaserve starting: model %s, %d slots", where, config.slots)
    if config.api_keys:
        log.info("API key required on all but the public routes (%d key%s)", len(config.api_keys), "s" * (len(config.api_keys) > 1))
    try:
        server.run(sockets=sockets)
    finally:
        for timer in grace_timer:
            timer.cancel()
        scheduler.stop(timeout=_ENGINE_STOP_S)  # no-op when the lifespan already stopped it
    if scheduler.running:
        log.error("the scheduler thread did not stop")
        return 1
    if server.started and server.should_exit:
        log.info("stopped")
    return exit_code[0] or (0 if server.started else 1)


def _uvicorn_config(app, config: Config, **extra) -> uvicorn.Config:
    """The HTTP server settings a model server and the router share."""
    return uvicorn.Config(
        app,
        host=config.hosts[0],
        port=config.port,
        loop="uvloop",
        http=read_timeout_protocol(config.timeout),  # httptools, with -to on reads (api/timeouts.py)
        access_log=False,
        # uvicorn's loggers go through ours (llamaserve/logs.py: --log-file, --log-jsonl, ...)
        log_config=None,
        log_level="warning",
        # Written by api/header_names.py instead, in llama-server's spelling (uvicorn's would be lowercase).
        server_header=False,
        date_header=False,
        timeout_keep_alive=max(5, min(config.timeout, 3600)),
        ssl_keyfile=config.ssl_key_file or None,
        ssl_certfile=config.ssl_cert_file or None,
        lifespan="on",
        **extra,
    )


def run_router(config: Config) -> int:
    """No model of its own: child processes serve the models, this one routes (see router/)."""
    from llamaserve.router import create_router_app

    bound, sockets = _bind(config)
    if not bound:
        return 1
    app = create_router_app(config)
    server = uvicorn.Server(_uvicorn_config(app, config, timeout_graceful_shutdown=config.shutdown_grace))
    uvicorn_exit = server.handle_exit

    def handle_exit(sig: int, frame) -> None:
        tools.stop_now(app)  # tool calls in flight answer now, so the connections drain
        uvicorn_exit(sig, frame)

    server.handle_exit = handle_exit

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            log.info("router is listening on %s", listening_addresses(server, config))

    threading.Thread(target=announce, name="llamaserve-announce", daemon=True).start()
    log.info("llamaserve starting in router mode")
    server.run(sockets=sockets)
    return 0 if server.started else 1
