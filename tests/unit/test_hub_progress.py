"""What a download shows: a bar redrawn in place on a terminal, a log line per tenth otherwise, and the
figures for /health and the router's listing."""

import io
import logging

from llamaserve.hub.progress import Progress


def test_without_a_terminal_a_log_line_per_tenth(caplog):
    progress = Progress(stream=io.StringIO(), terminal=False)
    with caplog.at_level(logging.INFO, logger="llamaserve.hub"):
        f = progress.file("m.gguf", "http://hub/m.gguf", 1000)
        for done in range(0, 1001, 50):
            f.update(done)
        f.finish(True)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "downloading m.gguf (0.0 MiB)"
    assert sum("%)" in line for line in lines) == 10  # 10%, 20%, ... 100%
    assert "m.gguf: 0.0 MiB of 0.0 MiB (50%)" in lines[5] and "left" in lines[5]
    assert lines[-1].startswith("downloaded m.gguf")
    assert progress.snapshot() == {"http://hub/m.gguf": {"done": 1000, "total": 1000}}


def test_on_a_terminal_a_bar_in_place(caplog):
    out = io.StringIO()
    progress = Progress(stream=out, terminal=True)
    f = progress.file("m.gguf", "u", 100, start=50)  # resumed half way
    f.update(75)
    f.finish(True)
    text = out.getvalue()
    assert text.startswith("\r\033[K") and text.endswith("\n")
    assert "(75%)" in text and "█" in text


def test_a_resumed_file_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="llamaserve.hub"):
        Progress(terminal=False).file("m.gguf", "u", 4 << 20, start=1 << 20)
    assert caplog.records[0].getMessage() == "resuming m.gguf at 1.0 MiB of 4.0 MiB"
