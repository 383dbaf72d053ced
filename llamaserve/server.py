"""Start the HTTP server (uvicorn) and the engine, or the router without -m; exit non-zero if the model cannot load."""

from __future__ import annotations

import logging
import sys
import threading
import time

import uvicorn

from llamaserve.api.app import create_app
from llamaserve.config import Config

log = logging.getLogger("llamaserve")


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


def run(config: Config) -> int:
    setup_logging(config)
    if config.router_mode:
        return run_router(config)
    app = create_app(config)
    server = uvicorn.Server(uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=max(5, min(config.timeout, 3600)),
        lifespan="on",
    ))
    exit_code = [0]
    scheduler = app.state.bridge.scheduler

    def watch_load() -> None:
        scheduler.ready.wait()
        if scheduler.load_error is not None:
            log.error("cannot serve: %s", scheduler.load_error)
            exit_code[0] = 1
            server.should_exit = True
        else:
            log.info("server is listening on http://%s:%d", config.host, _bound_port(server, config))

    threading.Thread(target=watch_load, name="llamaserve-load-watch", daemon=True).start()
    log.info("llamaserve starting: model %s, %d slots", config.model, config.slots)
    server.run()
    return exit_code[0] or (0 if server.started else 1)


def run_router(config: Config) -> int:
    """No model of its own: child processes serve the models, this one routes (see router/)."""
    from llamaserve.router import create_router_app

    server = uvicorn.Server(uvicorn.Config(
        create_router_app(config),
        host=config.host,
        port=config.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=max(5, min(config.timeout, 3600)),
        lifespan="on",
    ))

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            log.info("router is listening on http://%s:%d", config.host, _bound_port(server, config))

    threading.Thread(target=announce, name="llamaserve-announce", daemon=True).start()
    log.info("llamaserve starting in router mode")
    server.run()
    return 0 if server.started else 1


def _bound_port(server: uvicorn.Server, config: Config) -> int:
    for s in getattr(server, "servers", []) or []:
        for sock in getattr(s, "sockets", []) or []:
            return sock.getsockname()[1]
    return config.port
