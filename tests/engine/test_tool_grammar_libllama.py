"""Tool grammars and lazy triggers in libllama itself: they parse, and accept the calls token by token."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from llamaserve.chat.formats import detect_format
from llamaserve.grammar import schema_to_gbnf
from tests.conftest import MODEL
from tests.helpers import CANONICAL, TOOLS, template_source

PROBE = Path(__file__).with_name("grammar_probe.py")


def test_grammars_parse_and_accept_calls_in_libllama():
    cases, names = [], []
    for name, prompt, call, before in CANONICAL:
        fmt = detect_format(template_source(name))
        strict = fmt.grammar(TOOLS, schema_to_gbnf, required=True, prompt=prompt)
        cases.append({"gbnf": strict.gbnf, "lazy": False, "text": call})
        lazy = fmt.grammar(TOOLS, schema_to_gbnf, required=False, prompt=prompt)
        # what the engine does with words: an escaped pattern (or a token, when the word is one)
        patterns = [t.regex() for t in lazy.triggers]
        cases.append({"gbnf": lazy.gbnf, "lazy": True, "patterns": patterns, "text": before + call})
        names += [f"{name} strict", f"{name} lazy"]
    proc = subprocess.run([sys.executable, str(PROBE), str(MODEL)], input=json.dumps(cases), capture_output=True,
                          text=True, timeout=300)
    done = [line for line in proc.stdout.splitlines() if line.startswith("ok ")]
    bad = [line for line in proc.stdout.splitlines() if line.startswith("bad ")]
    failed_at = names[len(done)] if len(done) < len(names) else None
    assert proc.returncode == 0 and not bad and len(done) == len(cases), (
        f"libllama stopped at {failed_at!r}: {bad} {proc.stderr[-2000:]}")
