"""--tools-runtime docker:<image> / podman:<image>: a container of the server's own that every tool call
runs in. It runs `sh` with its stdin held open by us, so it lives until the server closes that stdin at
exit (then --rm removes it); one that dies meanwhile is started again at the next call."""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import threading
import time

from llamaserve.errors import ServerError
from llamaserve.tools.runtime import RuntimeSpec

log = logging.getLogger("llamaserve.tools")

START_TIMEOUT = 10.0  # seconds for the engine to report the container's id
STOP_TIMEOUT = 5.0


class OwnedContainer:
    def __init__(self, engine: str, image: str):
        self.engine, self.image = engine, image
        self.container_id = ""
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def _start(self) -> None:
        folder = tempfile.mkdtemp(prefix="llamaserve-tools-")
        cidfile, errfile = os.path.join(folder, "cid"), os.path.join(folder, "stderr")
        with open(errfile, "wb") as err:
            try:
                self._proc = subprocess.Popen(
                    [self.engine, "run", "--rm", "-i", "--cidfile", cidfile, self.image, "sh"],
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
            except OSError as exc:
                raise ServerError(f"cannot start the {self.engine} tools runtime ({self.image}): {exc.strerror or exc}") from None
        deadline = time.monotonic() + START_TIMEOUT
        cid = ""
        while not cid and time.monotonic() < deadline and self._proc.poll() is None:
            try:
                with open(cidfile, encoding="utf-8") as f:
                    cid = f.read().strip()
            except OSError:
                pass
            if not cid:
                time.sleep(0.1)
        with open(errfile, encoding="utf-8", errors="replace") as f:
            why = f.read().strip()[-500:]
        for path in (cidfile, errfile):
            if os.path.exists(path):
                os.remove(path)
        os.rmdir(folder)
        if not cid:
            self.stop()
            raise ServerError(f"the {self.engine} tools runtime ({self.image}) did not start" + (f": {why}" if why else ""))
        self.container_id = cid
        log.info("tools run in %s container %s (%s)", self.engine, cid[:12], self.image)

    def spec(self) -> RuntimeSpec:
        """The running container, started (again) when there is none."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                if self._proc is not None:
                    log.warning("the %s tools runtime container %s stopped; starting another", self.engine, self.container_id[:12])
                self._start()
            return RuntimeSpec("container", self.engine, self.container_id)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()  # the container's sh reads EOF and exits; --rm removes the container
            proc.wait(STOP_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
