"""exec_shell_command (output streamed as it comes when asked) and get_info. Commands run in the call's
working directory but are not confined to it: a shell can go anywhere its user can."""

from __future__ import annotations

import platform

from llamaserve.tools.params import param
from llamaserve.tools.process import OnChunk

SHELL_MAX_OUTPUT = 16 * 1024
SHELL_MAX_TIMEOUT = 60  # seconds
SHELL_DEFAULT_TIMEOUT = 10


def exec_shell_command(params: dict, io, stream: OnChunk | None = None) -> dict | None:
    command = param(params, "command", str)
    timeout = min(param(params, "timeout", int, SHELL_DEFAULT_TIMEOUT), SHELL_MAX_TIMEOUT)
    max_output = min(param(params, "max_output_size", int, SHELL_MAX_OUTPUT), SHELL_MAX_OUTPUT)
    if timeout < 1 or max_output < 1:
        return {"error": "timeout and max_output_size must be positive"}
    res = io.run(["sh", "-c", command], max_output, timeout, on_chunk=stream)
    tail = f"\n[exit code: {res.exit_code}]" + (" [exit due to timed out]" if res.timed_out else "")
    if stream is not None:
        stream(tail)
        return None
    return {"plain_text_response": res.output + tail}


def get_info(params: dict, io) -> dict:
    res = io.run(["uname", "-a"], 4096, 5)
    os_info = res.output.strip() if res.exit_code == 0 and not res.timed_out else platform.platform()
    cwd = io.cwd
    if not cwd:  # an isolate's own default directory: ask it
        pwd = io.run(["pwd"], 4096, 5)
        cwd = pwd.output.strip() if pwd.exit_code == 0 and not pwd.timed_out else "unknown"
    return {"os": os_info or "unknown", "cwd": cwd}
