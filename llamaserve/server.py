"""Start the HTTP server (uvicorn) and the engine, or the router without -m; exit non-zero if the model cannot load.

SIGTERM/SIGINT: stop accepting connections, let in-flight requests finish for up to
--shutdown-grace seconds, then end what is left with a clean "server is shutting down"
error, stop the scheduler thread and exit 0. A second SIGINT quits at once.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time

import uvicorn

from llamaserve.api.app import create_app
from llamaserve.config import Config

log = logging.getLogger("llamaserve")

_ENGINE_STOP_S = 60.0  # how long a stopping engine may take to finish its current step


def setup_logging(config: Config) -> None:
    if config.log_disable:
        logging.disable(logging.CRITICAL)
        return
    logging.basicConfig(
        level=logging.DEBUG if config.verbose else logging.INFO,
        format="%(asctime)s.%(msecs)03d %(levelname).1s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


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


def run(config: Config) -> int:
    setup_logging(config)
    if config.router_mode:
        return run_router(config)
    app = create_app(config)
    scheduler = app.state.bridge.scheduler
    grace_timer: list[threading.Timer] = []

    def on_stop_signal(sig: int) -> None:
        busy = sum(1 for s in scheduler.slots if s.busy) + scheduler.queued
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
            scheme = "https" if config.tls else "http"
            log.info("server is listening on %s://%s:%d", scheme, config.host, _bound_port(server, config))

    threading.Thread(target=watch_load, name="llamaserve-load-watch", daemon=True).start()
    log.info("llamaserve starting: model %s, %d slots", config.model, config.slots)
    if config.api_keys:
        log.info("API key required on all but the public routes (%d key%s)", len(config.api_keys), "s" * (len(config.api_keys) > 1))
    try:
        server.run()
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
        host=config.host,
        port=config.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=max(5, min(config.timeout, 3600)),
        ssl_keyfile=config.ssl_key_file or None,
        ssl_certfile=config.ssl_cert_file or None,
        lifespan="on",
        **extra,
    )


def run_router(config: Config) -> int:
    """No model of its own: child processes serve the models, this one routes (see router/)."""
    from llamaserve.router import create_router_app

    server = uvicorn.Server(_uvicorn_config(create_router_app(config), config, timeout_graceful_shutdown=config.shutdown_grace))

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            scheme = "https" if config.tls else "http"
            log.info("router is listening on %s://%s:%d", scheme, config.host, _bound_port(server, config))

    threading.Thread(target=announce, name="llamaserve-announce", daemon=True).start()
    log.info("llamaserve starting in router mode")
    server.run()
    return 0 if server.started else 1


def _bound_port(server: uvicorn.Server, config: Config) -> int:
    for s in getattr(server, "servers", []) or []:
        for sock in getattr(s, "sockets", []) or []:
            return sock.getsockname()[1]
    return config.port
