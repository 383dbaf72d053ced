"""Commands of the tools: the output cap keeps draining, a timeout ends the whole process group (what
the command left in the background too), a stop from the stream's reader ends it, stop_all ends them all."""

import os
import threading
import time

from llamaserve.tools.process import Processes


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too; its parent (an init of sorts here) reaps it when it can
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_the_output_cap_keeps_the_command_running_to_its_end():
    res = Processes().run(["sh", "-c", "head -c 200000 /dev/zero | tr '\\0' x; echo; echo end >&2"], cwd=None,
                          max_output=1000, timeout=20)
    assert res.exit_code == 0 and not res.timed_out
    assert res.output == "x" * 1000 + "\n[output truncated]" and len(res.raw) == 1000


def test_a_timeout_ends_what_the_command_left_in_the_background():
    res = Processes().run(["sh", "-c", "sleep 60 & echo $!"], cwd=None, max_output=1000, timeout=1)
    assert res.timed_out
    pid = int(res.output.split()[0])
    deadline = time.time() + 5
    while alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not alive(pid)


def test_streamed_output_comes_in_pieces_and_a_false_stops_it():
    pieces = []

    def on_chunk(text):
        pieces.append(text)
        return len(pieces) < 2

    t0 = time.monotonic()
    res = Processes().run(["sh", "-c", "echo one; sleep 0.3; echo two; sleep 30; echo never"], cwd=None,
                          max_output=1000, timeout=40, on_chunk=on_chunk)
    assert pieces == ["one\n", "two\n"] and "never" not in res.output and time.monotonic() - t0 < 20


def test_stop_all_ends_running_commands_and_refuses_new_ones():
    processes = Processes()
    results = []
    worker = threading.Thread(target=lambda: results.append(processes.run(["sleep", "60"], cwd=None, max_output=10, timeout=60)))
    worker.start()
    time.sleep(0.3)
    processes.stop_all()
    worker.join(10)
    assert results and results[0].exit_code != 0
    assert processes.run(["sleep", "60"], cwd=None, max_output=10, timeout=60).exit_code != 0
