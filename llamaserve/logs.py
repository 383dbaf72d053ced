"""Log output as the command line asks: the threshold (-lv, -v), the line layout (--log-prefix,
--log-timestamps, --log-jsonl), colours (--log-colors) and a copy of every line in --log-file.

Without --log-prefix and --log-timestamps a line keeps llamaserve's own layout,
"18:44:28.472 I llamaserve: message" (wall-clock time, level letter, logger). Either flag asks for
llama-server's layout instead: the time since start ("M.SS.mmm.uuu") with --log-timestamps, the level
letter with --log-prefix, then "logger: message".
"""

from __future__ import annotations

import logging
import os
import sys
import time

import orjson

from llamaserve.config import Config

# -lv N: llama-server's thresholds (0 generic output, 1 errors, 2 warnings, 3 info, 4 and up debug).
# Nothing here is "generic output", so 0 keeps only what stops the server.
_THRESHOLDS = (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO)

# llama-server's JSONL level names
_JSONL_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "error",
                 logging.CRITICAL: "error"}

_RESET = "\033[0m"
_BLUE = "\033[34m"
# the level letter's colour; warnings, errors and debug lines keep theirs to the end of the line, as llama-server's do
_LEVEL_COLOURS = {"I": "\033[32m", "W": "\033[35m", "E": "\033[31m", "C": "\033[31m", "D": "\033[33m"}


def threshold(config: Config) -> int:
    """The lowest level logged: -v logs everything, else -lv picks."""
    if config.verbose:
        return logging.DEBUG
    if config.verbosity < 0:
        return logging.CRITICAL
    return _THRESHOLDS[config.verbosity] if config.verbosity < len(_THRESHOLDS) else logging.DEBUG


def colours_wanted(setting: str, stream) -> bool:
    """--log-colors: on, off, or auto (the stream is a terminal that can show them)."""
    if setting == "on":
        return True
    if setting == "off":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb" and "NO_COLOR" not in os.environ


class LineFormatter(logging.Formatter):
    """One text line per record, in llamaserve's layout or, with prefix/timestamps, llama-server's."""

    def __init__(self, *, prefix: bool = False, timestamps: bool = False, colours: bool = False, t0: float | None = None):
        super().__init__()
        self.prefix = prefix
        self.timestamps = timestamps
        self.colours = colours
        self.t0 = time.time() if t0 is None else t0
        self.house = not (prefix or timestamps)

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.name}: {record.getMessage()}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        letter = record.levelname[:1]
        colour = _LEVEL_COLOURS.get(letter, "") if self.colours else ""
        whole_line = bool(colour) and letter != "I"  # warnings, errors and debug lines are coloured to the end
        head = []
        if self.house:
            head.append(time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}")
        elif self.timestamps:
            head.append(_elapsed(record.created - self.t0))
        if head and self.colours:
            head[0] = f"{_BLUE}{head[0]}{_RESET}"
        if self.house or self.prefix:
            head.append(f"{colour}{letter}{_RESET if colour and not whole_line else ''}")
        elif whole_line:
            text = colour + text
        if whole_line:
            text += _RESET
        return " ".join([*head, text])


def _elapsed(seconds: float) -> str:
    """llama-server's timestamp: minutes.seconds.milliseconds.microseconds since start."""
    us = max(0, int(seconds * 1e6))
    return f"{us // 60_000_000}.{us // 1_000_000 % 60:02d}.{us // 1000 % 1000:03d}.{us % 1000:03d}"


class JsonLineFormatter(logging.Formatter):
    """--log-jsonl: {"type": "log", "time", "level", "name", "msg"} per record, as llama-server writes them
    ("time" is microseconds since start with --log-timestamps, else 0, as there)."""

    def __init__(self, *, timestamps: bool = False, t0: float | None = None):
        super().__init__()
        self.timestamps = timestamps
        self.t0 = time.time() if t0 is None else t0

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            msg += "\n" + record.exc_text
        return orjson.dumps({
            "type": "log",
            "time": max(0, int((record.created - self.t0) * 1e6)) if self.timestamps else 0,
            "level": _JSONL_LEVELS.get(record.levelno, "info" if record.levelno < logging.WARNING else "error"),
            "name": record.name,
            "msg": msg,
        }).decode()


def handlers(config: Config, stderr=None, stdout=None) -> list[logging.Handler]:
    """The console handler (stderr; stdout for JSONL, as llama-server) and the --log-file one."""
    stderr = sys.stderr if stderr is None else stderr
    stdout = sys.stdout if stdout is None else stdout
    t0 = time.time()
    out: list[logging.Handler] = []
    if config.log_jsonl:
        console = logging.StreamHandler(stdout)
        console.setFormatter(JsonLineFormatter(timestamps=config.log_timestamps, t0=t0))
    else:
        console = logging.StreamHandler(stderr)
        console.setFormatter(LineFormatter(prefix=config.log_prefix, timestamps=config.log_timestamps,
                                           colours=colours_wanted(config.log_colors, stderr), t0=t0))
    out.append(console)
    if config.log_file:
        # truncated at start, as llama-server's; never coloured (a file is read with other tools)
        file = logging.FileHandler(config.log_file, mode="w", encoding="utf-8")
        file.setFormatter(JsonLineFormatter(timestamps=config.log_timestamps, t0=t0) if config.log_jsonl else
                          LineFormatter(prefix=config.log_prefix, timestamps=config.log_timestamps, t0=t0))
        out.append(file)
    return out


def setup_logging(config: Config) -> None:
    """Configure the root logger once for the process; uvicorn's loggers propagate to it (server.py)."""
    if config.log_disable:
        logging.disable(logging.CRITICAL)
        return
    try:
        chosen, error = handlers(config), None
    except OSError as exc:  # the console still logs, and says why the file does not
        chosen, error = handlers(config.replace(log_file="")), exc
    logging.basicConfig(level=threshold(config), handlers=chosen, force=True)
    if error is not None:
        logging.getLogger("llamaserve").error("cannot write the log to %s: %s", config.log_file, error.strerror or error)
