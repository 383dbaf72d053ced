"""llamaserve/logs.py: thresholds, line layouts, colours and JSONL, on records and through real handlers."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from llamaserve.config import Config
from llamaserve.logs import JsonLineFormatter, LineFormatter, colours_wanted, handlers, threshold


def record(level: int, msg: str = "hello %s", args=("world",), name: str = "llamaserve.http", created: float = 1000.25):
    rec = logging.LogRecord(name, level, __file__, 1, msg, args, None)
    rec.created = created
    rec.msecs = (created - int(created)) * 1000
    return rec


@pytest.mark.parametrize("verbosity, level", [(0, logging.CRITICAL), (1, logging.ERROR), (2, logging.WARNING),
                                              (3, logging.INFO), (4, logging.DEBUG), (9, logging.DEBUG)])
def test_lv_thresholds(verbosity, level):
    assert threshold(Config(verbosity=verbosity)) == level


def test_verbose_logs_everything_whatever_lv_says():
    assert threshold(Config(verbose=True, verbosity=1)) == logging.DEBUG


def test_default_layout_is_unchanged():
    # the layout before these options: "%(asctime)s.%(msecs)03d %(levelname).1s %(name)s: %(message)s", %H:%M:%S
    before = logging.Formatter("%(asctime)s.%(msecs)03d %(levelname).1s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        rec = record(level)
        assert LineFormatter().format(rec) == before.format(rec)
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.250 I llamaserve\.http: hello world", LineFormatter().format(record(logging.INFO)))


def test_exceptions_follow_the_line():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = LineFormatter().format(rec)
    assert text.splitlines()[0].endswith("E x: failed") and "ValueError: boom" in text


def test_llama_server_layout_prefix_and_timestamps():
    t0 = 1000.0
    rec = record(logging.WARNING, created=t0 + 61.002003)
    assert LineFormatter(prefix=True, t0=t0).format(rec) == "W llamaserve.http: hello world"
    assert LineFormatter(prefix=True, timestamps=True, t0=t0).format(rec) == "1.01.002.003 W llamaserve.http: hello world"
    # timestamps alone: the time, no level letter
    assert LineFormatter(timestamps=True, t0=t0).format(rec) == "1.01.002.003 llamaserve.http: hello world"


def test_colours():
    green, magenta, reset = "\033[32m", "\033[35m", "\033[0m"
    info = LineFormatter(prefix=True, colours=True).format(record(logging.INFO))
    assert info == f"{green}I{reset} llamaserve.http: hello world"
    # a warning keeps its colour to the end of the line
    warn = LineFormatter(prefix=True, colours=True).format(record(logging.WARNING))
    assert warn == f"{magenta}W llamaserve.http: hello world{reset}"
    # the default layout is coloured the same way; without colours nothing is
    assert f"{green}I{reset} llamaserve.http" in LineFormatter(colours=True).format(record(logging.INFO))
    assert "\033" not in LineFormatter().format(record(logging.WARNING))


def test_colours_setting():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert colours_wanted("on", io.StringIO()) is True
    assert colours_wanted("off", Tty()) is False
    assert colours_wanted("auto", io.StringIO()) is False


def test_colours_auto_follows_the_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert colours_wanted("auto", Tty()) is True
    monkeypatch.setenv("TERM", "dumb")
    assert colours_wanted("auto", Tty()) is False


def test_jsonl():
    t0 = 1000.0
    line = JsonLineFormatter(t0=t0).format(record(logging.WARNING, created=t0 + 2.5))
    assert json.loads(line) == {"type": "log", "time": 0, "level": "warn", "name": "llamaserve.http", "msg": "hello world"}
    timed = json.loads(JsonLineFormatter(timestamps=True, t0=t0).format(record(logging.ERROR, created=t0 + 2.5)))
    assert timed["time"] == 2_500_000 and timed["level"] == "error"
    assert json.loads(JsonLineFormatter().format(record(logging.DEBUG)))["level"] == "debug"
    assert json.loads(JsonLineFormatter().format(record(logging.INFO)))["level"] == "info"


def _log_through(config: Config, *messages) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    logger = logging.getLogger("test.logs")
    logger.propagate = False
    logger.handlers = handlers(config, stderr=err, stdout=out)
    logger.setLevel(threshold(config))
    try:
        for level, msg in messages:
            logger.log(level, msg)
    finally:
        for h in logger.handlers:
            h.close()
        logger.handlers = []
    return out.getvalue(), err.getvalue()


def test_text_goes_to_stderr_jsonl_to_stdout(tmp_path):
    out, err = _log_through(Config(), (logging.INFO, "text line"))
    assert out == "" and err.rstrip().endswith("I test.logs: text line")
    out, err = _log_through(Config(log_jsonl=True), (logging.INFO, "json line"))
    assert err == "" and json.loads(out)["msg"] == "json line"


def test_log_file_gets_a_copy_without_colours(tmp_path):
    path = tmp_path / "server.log"
    path.write_text("old run\n")
    _, err = _log_through(Config(log_file=str(path), log_colors="on", log_prefix=True), (logging.WARNING, "careful"))
    assert "\033[35m" in err
    assert path.read_text() == "W test.logs: careful\n"  # truncated first, as llama-server's


def test_threshold_filters(tmp_path):
    _, err = _log_through(Config(verbosity=2), (logging.INFO, "hidden"), (logging.WARNING, "shown"))
    assert "hidden" not in err and "shown" in err
