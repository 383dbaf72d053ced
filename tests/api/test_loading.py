"""While the model loads, /health (and every model route) answers 503 "Loading model"; then 200."""

from __future__ import annotations

import threading
import time

import httpx
import uvicorn

from llamaserve.api.app import create_app
from llamaserve.config import Config
from llamaserve.engine import Scheduler
from tests.conftest import MODEL, free_port


class GatedScheduler(Scheduler):
    """The real scheduler, but the model load waits until the test opens the gate."""

    gate = threading.Event()

    def _run(self):
        self.gate.wait(30)
        super()._run()


def test_health_is_503_until_the_model_is_loaded():
    config = Config(model=MODEL, n_parallel=1, n_ctx=512, n_threads=2)
    app = create_app(config, lambda deliver: GatedScheduler(config, deliver))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 20
        while not server.started and time.time() < deadline:
            time.sleep(0.02)
        r = httpx.get(url + "/health")
        assert r.status_code == 503
        assert r.json() == {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
        r = httpx.post(url + "/completion", json={"prompt": "hi"})
        assert r.status_code == 503 and r.json()["error"]["type"] == "unavailable_error"
        GatedScheduler.gate.set()
        deadline = time.time() + 30
        while httpx.get(url + "/health").status_code != 200 and time.time() < deadline:
            time.sleep(0.05)
        assert httpx.get(url + "/health").json() == {"status": "ok"}
        r = httpx.post(url + "/completion", json={"prompt": "hi", "n_predict": 2}, timeout=30)
        assert r.status_code == 200 and r.json()["tokens_predicted"] <= 2
    finally:
        GatedScheduler.gate.set()
        server.should_exit = True
        thread.join(15)
