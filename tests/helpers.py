"""Helpers shared by test modules of several suites (fixtures live in conftest.py): the error envelope,
waiting on a server, raw HTTP, vectors, chat templates, router children, the scheduler, tool-call cases."""

from __future__ import annotations

import contextlib
import queue
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from tests.conftest import LiveServer

# --- HTTP ---


def assert_error(r, status: int, type_: str, fragment: str = ""):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == status and err["type"] == type_
    assert fragment.lower() in err["message"].lower()
    return err


def wait_idle(client, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        slots = client.get("/slots").json()
        if not any(s["is_processing"] for s in slots):
            return slots
        time.sleep(0.05)
    raise AssertionError(f"slots still busy: {slots}")


def raw(srv: LiveServer, method: str, path: str, headers: dict | None = None, body: bytes = b"") -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One request on a plain socket: (status, header lines as sent, body bytes as sent, chunk framing included)."""
    url = urlsplit(srv.url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {url.hostname}:{url.port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    with socket.create_connection((url.hostname, url.port), timeout=120) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.split(b"\r\n")
    return int(status_line.split()[1]), [tuple(h.split(b": ", 1)) for h in header_lines], rest


def names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [k for k, _ in headers]


def spelled_like_llama_server(name: bytes) -> bool:
    return all(word[:1].isupper() for word in name.split(b"-")) and name != name.lower()


# --- vectors ---


def cosine(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# --- chat templates (shared/chat-templates) ---


def templates_dir() -> Path:
    # shared/ sits beside the checkout (CI, main) or beside the worktrees' parent
    for base in Path(__file__).resolve().parents:
        candidate = base / "shared" / "chat-templates"
        if candidate.is_dir():
            return candidate
    raise RuntimeError("shared/chat-templates not found beside the repository")


def template_file(name: str) -> str:
    """The path of shared/chat-templates/<name> (name with its .jinja), for --chat-template-file."""
    for base in Path(__file__).resolve().parents:
        candidate = base / "shared" / "chat-templates" / name
        if candidate.is_file():
            return str(candidate)
    raise RuntimeError(f"{name} not found in shared/chat-templates beside the repository")


def template_source(name: str) -> str:
    return (templates_dir() / f"{name}.jinja").read_text(encoding="utf-8")


# --- router mode ---

SMOL = "SmolLM2-135M-Instruct.Q4_1"  # the bundled model's name in a router: its file stem
CHILD = ("-c", "512", "-np", "1", "-t", "1")  # every child small: the router passes its flags on


# --- the scheduler, without HTTP ---


def start_scheduler(**config):
    """A started Scheduler on Config(**config) and the queue its results go to; fails if the model does not load."""
    from llamaserve.config import Config
    from llamaserve.engine import Scheduler

    results: queue.Queue = queue.Queue()
    sched = Scheduler(Config(**config), lambda rs: [results.put(r) for r in rs])
    sched.start()
    try:
        assert sched.ready.wait(60) and sched.load_error is None, sched.load_error
    except BaseException:
        sched.stop()
        raise
    return sched, results


@contextlib.contextmanager
def running_scheduler(**config):
    """start_scheduler as a context: (scheduler, results queue), stopped at the end."""
    sched, results = start_scheduler(**config)
    try:
        yield sched, results
    finally:
        sched.stop()


def run_tasks(engine, tasks, timeout=60):
    """Submit `tasks` to engine = (scheduler, results queue); their final results, in the order of `tasks`."""
    sched, results = engine
    sched.submit(tasks)
    finals = {}
    deadline = time.time() + timeout
    while len(finals) < len(tasks):
        r = results.get(timeout=max(0.1, deadline - time.time()))
        if r.done:
            finals[r.task.id] = r
    return [finals[t.id] for t in tasks]


# --- tool calls: two tools, and per template a call as its grammar writes it ---

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
CALC = {"type": "function", "function": {"name": "calc", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}, "op": {"type": "string", "enum": ["add", "mul"]}},
    "required": ["a"]}}}
TOOLS = [WEATHER, CALC]
PARIS = ("get_weather", {"location": "Paris"})

DS_B, DS_E = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
DS_CB, DS_CE, DS_S = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"

# (template, prompt, a call as the grammar writes it, content the model may write before it under tool_choice auto)
CANONICAL = [
    ("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", "",
     '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>', "Let me check. "),
    ("Qwen-Qwen3-0.6B", "", '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>', "Sure.\n"),
    ("Qwen3-Coder", "",
     '<tool_call>\n<function=get_weather>\n<parameter=location>\nParis\n</parameter>\n</function>\n</tool_call>', "I will look.\n"),
    ("ByteDance-Seed-OSS", "", '<seed:tool_call><function=get_weather>\n<parameter=location>Paris</parameter>\n</function>\n</seed:tool_call>', "Hm. "),
    ("MiniMax-M2", "", '<minimax:tool_call><invoke name="get_weather">\n<parameter name="location">Paris</parameter>\n</invoke>\n</minimax:tool_call>', ""),
    ("GLM-4.6", "", '<tool_call>get_weather\n<arg_key>location</arg_key>\n<arg_value>Paris</arg_value>\n</tool_call>', "Sure. "),
    ("GLM-4.7-Flash", "", '<tool_call>get_weather<arg_key>location</arg_key><arg_value>Paris</arg_value></tool_call>', ""),
    ("NVIDIA-Nemotron-Nano-v2", "", '<TOOLCALL>[{"name": "get_weather", "arguments": {"location": "Paris"}}]</TOOLCALL>', "Okay. "),
    ("unsloth-Apriel-1.5", "", '<tool_calls>[{"name": "get_weather", "arguments": {"location": "Paris"}}]</tool_calls>', "Okay. "),
    ("meta-llama-Llama-3.1-8B-Instruct", "", '{"name": "get_weather", "parameters": {"location": "Paris"}}', ""),
    ("mistralai-Mistral-Nemo-Instruct-2407", "",
     '[TOOL_CALLS][{"name": "get_weather", "arguments": {"location": "Paris"}, "id": "a1b2c3d4e"}]', "Okay. "),
    ("Mistral-Small-3.2-24B-Instruct-2506", "", '[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{"location": "Paris"}', "Okay. "),
    ("unsloth-mistral-Devstral-Small-2507", "", '[TOOL_CALLS]get_weather[ARGS]{"location": "Paris"}', ""),
    ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "",
     DS_B + DS_CB + 'function' + DS_S + 'get_weather\n```json\n{"location": "Paris"}\n```' + DS_CE + DS_E, "Calling. "),
    ("deepseek-ai-DeepSeek-V3.1", "", DS_B + DS_CB + 'get_weather' + DS_S + '{"location": "Paris"}' + DS_CE + DS_E, "Calling. "),
    ("meetkai-functionary-medium-v3.1", "", '<function=get_weather>{"location": "Paris"}</function>', "Sure. "),
    ("meetkai-functionary-medium-v3.2", ">>>", 'get_weather\n{"location": "Paris"}', ""),
    ("CohereForAI-c4ai-command-r7b-12-2024-tool_use", "",
     '<|START_ACTION|>[\n    {"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"location": "Paris"}}\n]<|END_ACTION|>',
     "<|START_THINKING|>Plan.<|END_THINKING|>"),
    ("ibm-granite-granite-3.3-2B-Instruct", "", '<|tool_call|>[{"name": "get_weather", "arguments": {"location": "Paris"}}]', ""),
    ("fireworks-ai-llama-3-firefunction-v2", "", ' functools[{"name": "get_weather", "arguments": {"location": "Paris"}}]', "Sure."),
    ("openai-gpt-oss-120b", "<|start|>assistant",
     '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location": "Paris"}',
     "<|channel|>analysis<|message|>Need it.<|end|><|start|>assistant"),
    ("google-gemma-2-2b-it", "", '{"tool_call": {"name": "get_weather", "arguments": {"location": "Paris"}}}', ""),
]
