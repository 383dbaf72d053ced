"""`llamaserve rpc-server`: ggml's RPC server, as llama.cpp's rpc-server binary runs it, from this package.

It lends this machine's devices (a GPU, else the CPU) to a server started elsewhere with --rpc, so
a cluster needs llamaserve on every machine and nothing else. The options are rpc-server's.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from llamaserve.engine.rpc import DEFAULT_PORT, HOW_TO_GET_RPC, available, serve


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="llamaserve rpc-server",
        description="Serve this machine's ggml devices to a llamaserve or llama-server started with --rpc HOST:PORT. "
                    "The protocol has no authentication: bind it to a private address.")
    p.add_argument("-H", "--host", default="127.0.0.1", help="address to bind to (default: 127.0.0.1)")
    p.add_argument("-p", "--port", type=int, default=DEFAULT_PORT, help=f"port to bind to (default: {DEFAULT_PORT})")
    p.add_argument("-t", "--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                   help="threads for the CPU device (default: half the cores)")
    p.add_argument("-d", "--device", default="", metavar="DEV1,DEV2,...",
                   help="comma-separated devices to serve (default: every GPU, else the CPU; see llamaserve --list-devices)")
    p.add_argument("-c", "--cache", action="store_true",
                   help="keep tensors sent by clients in a local file cache (LLAMA_CACHE or ~/.cache/llama.cpp, under rpc/)")
    return p


def _devices(names: str) -> list[int]:
    """The named devices, else every device but the CPU and accelerators, else the CPU (as rpc-server)."""
    from llamaserve.engine.devices import devices

    known = devices()
    if names:
        picked = []
        for name in (n.strip() for n in names.split(",") if n.strip()):
            dev = next((d for d in known if d.name.lower() == name.lower()), None)
            if dev is None:
                raise SystemExit(f"error: unknown device: {name}; available: {', '.join(d.name for d in known)}")
            picked.append(dev.handle)
        return picked
    gpus = [d.handle for d in known if d.kind not in ("CPU", "ACCEL")]
    return gpus or [d.handle for d in known if d.kind == "CPU"][:1]


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.threads <= 0:
        raise SystemExit(f"error: invalid number of threads: {args.threads}")
    if not available():
        print(f"error: {HOW_TO_GET_RPC}", file=sys.stderr)
        return 1
    if args.host != "127.0.0.1":
        print(f"WARNING: the RPC server binds to {args.host}, not 127.0.0.1. Its protocol has no authentication "
              "and no encryption: anyone who reaches this port can run code on its devices and read what they hold. "
              "Bind it only to a private network.", file=sys.stderr)
    devices = _devices(args.device)
    if not devices:
        print("error: no devices found", file=sys.stderr)
        return 1
    cache_dir = None
    if args.cache:
        from llamaserve.hub.cache import url_cache_dir

        cache_dir = os.path.join(url_cache_dir(os.environ), "rpc")
        os.makedirs(cache_dir, exist_ok=True)
    # ggml's server loop never returns while it serves, and a foreign call holds off Python's signal
    # handlers: it runs on a daemon thread and the main thread waits for a signal or its failure.
    failed = threading.Event()

    def run() -> None:
        serve(args.host, args.port, args.threads, devices, cache_dir)
        failed.set()  # it returns only when it could not start (it has printed why)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    threading.Thread(target=run, name="llamaserve-rpc-server", daemon=True).start()
    try:
        while not failed.wait(0.5):
            pass
    except KeyboardInterrupt:
        return 0
    return 1
