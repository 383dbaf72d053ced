"""The logging options on a real server process: the lines it writes and the --log-file copy."""

from __future__ import annotations

import json
import re

import httpx

from tests.conftest import ONE_THREAD, start_server

SMALL = ("-np", "1", "-c", "512", *ONE_THREAD)
NOOP = ("--defrag-thold", "0.1")  # an option without effect: one start-up warning


def test_jsonl_to_the_console_and_the_file(tmp_path):
    log_file = tmp_path / "copy.log"
    srv = start_server(tmp_path, "--log-jsonl", "--log-timestamps", "--log-file", str(log_file), *NOOP, *SMALL)
    try:
        httpx.post(srv.url + "/tokenize", json={"content": "hi"}, timeout=30).raise_for_status()
    finally:
        srv.stop()
    console = [json.loads(line) for line in srv.log().splitlines() if line.strip()]  # every line is one object
    copied = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert copied and all(set(o) == {"type", "time", "level", "name", "msg"} and o["type"] == "log" for o in copied)
    assert console == copied  # the file holds the same lines
    warning = next(o for o in copied if "--defrag-thold has no effect" in o["msg"])
    assert warning["level"] == "warn" and warning["name"] == "llamaserve" and warning["time"] > 0
    assert any(o["msg"].startswith("POST /tokenize 200") and o["level"] == "info" for o in copied)


def test_prefix_timestamps_colours_and_threshold(tmp_path):
    srv = start_server(tmp_path, "--log-prefix", "--log-timestamps", "--log-colors", "on", "-lv", "2", *NOOP, *SMALL)
    try:
        httpx.post(srv.url + "/tokenize", json={"content": "hi"}, timeout=30).raise_for_status()
    finally:
        srv.stop()
    lines = [line for line in srv.log().splitlines() if line.strip()]
    warning = next(line for line in lines if "--defrag-thold has no effect" in line)
    assert re.fullmatch(r"\x1b\[34m\d+\.\d\d\.\d{3}\.\d{3}\x1b\[0m \x1b\[35mW llamaserve: --defrag-thold has no effect.*\x1b\[0m",
                        warning), warning
    # -lv 2: warnings and errors only
    assert not any("server is listening" in line or "POST /tokenize" in line for line in lines)


def test_verbose_logs_debug_lines(tmp_path):
    srv = start_server(tmp_path, "-v", *SMALL)
    try:
        httpx.get(srv.url + "/health", timeout=30).raise_for_status()  # its log line is a debug one
    finally:
        srv.stop()
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} D llamaserve\.http: GET /health 200", srv.log(), re.M)


def test_default_lines_are_unchanged(server):
    httpx.post(server.url + "/tokenize", json={"content": "hi"}, timeout=30).raise_for_status()
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} I llamaserve\.http: POST /tokenize 200 ", server.log(), re.M)
    assert "\x1b[" not in server.log()  # auto colours: the log is a file, not a terminal
