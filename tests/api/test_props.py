"""GET /props (everything llama-server reports) and POST /props with --props (server-wide defaults)."""

from __future__ import annotations

import pytest

from tests.conftest import ONE_THREAD, serve
from tests.helpers import assert_error

LLAMA_SERVER_KEYS = {
    "default_generation_settings", "total_slots", "model_alias", "model_ftype", "model_path", "modalities",
    "endpoint_slots", "endpoint_props", "endpoint_metrics", "ui", "ui_settings", "chat_template",
    "chat_template_caps", "bos_token", "eos_token", "build_info", "is_sleeping", "cors_proxy_enabled",
}
# llama-server's default_generation_settings.params keys (task_params::to_json(only_metrics = true))
PARAMS_KEYS = {
    "seed", "temperature", "dynatemp_range", "dynatemp_exponent", "top_k", "top_p", "min_p", "top_n_sigma",
    "xtc_probability", "xtc_threshold", "typical_p", "repeat_last_n", "repeat_penalty", "presence_penalty",
    "frequency_penalty", "dry_multiplier", "dry_base", "dry_allowed_length", "dry_penalty_last_n", "mirostat",
    "mirostat_tau", "mirostat_eta", "adaptive_target", "adaptive_decay", "max_tokens", "n_predict", "n_keep",
    "n_discard", "ignore_eos", "stream", "n_probs", "min_keep", "chat_format", "reasoning_format",
    "reasoning_in_content", "generation_prompt", "samplers", "speculative.types", "timings_per_token",
    "post_sampling_probs", "backend_sampling", "lora",
}
CHAT = {"messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture(scope="module")
def props_server(request):
    return serve(request, "props", "-np", "2", "-c", "1024", "--props", "-s", "42",
                 "--temp", "0.5", *ONE_THREAD)


@pytest.fixture()
def c(props_server):
    with props_server.client() as client:
        yield client
        client.post("/props", json={"system_prompt": "", "stop": []}).raise_for_status()


def test_props_has_everything_llama_server_reports(c):
    p = c.get("/props").json()
    assert LLAMA_SERVER_KEYS <= set(p)
    settings = p["default_generation_settings"]
    assert settings["n_ctx"] == 512 and PARAMS_KEYS <= set(settings["params"])
    params = settings["params"]
    assert (params["seed"], params["temperature"], params["top_k"], params["n_predict"]) == (42, 0.5, 40, -1)
    assert p["total_slots"] == 2 and p["model_path"].endswith(".gguf") and p["model_ftype"] == "Q4_1"
    assert p["model_alias"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (p["endpoint_slots"], p["endpoint_props"], p["endpoint_metrics"]) == (True, True, False)
    assert p["modalities"] == {"vision": False, "video": False, "audio": False}
    assert "<|im_start|>" in p["chat_template"] and p["chat_template_caps"]["supports_system_role"] is True
    assert (p["bos_token"], p["eos_token"]) == ("<|im_start|>", "<|im_end|>")
    assert p["is_sleeping"] is False and p["build_info"].startswith("b")  # as llama-server: "b<build>-<commit>"


def test_post_props_sets_the_default_system_prompt(c):
    assert "Answer in French." not in c.post("/apply-template", json=CHAT).json()["prompt"]
    assert c.post("/props", json={"system_prompt": "Answer in French."}).json() == {"success": True}
    assert c.get("/props").json()["system_prompt"] == "Answer in French."
    prompt = c.post("/apply-template", json=CHAT).json()["prompt"]
    assert prompt.startswith("<|im_start|>system\nAnswer in French.<|im_end|>")
    # a request's own system message wins
    own = {"messages": [{"role": "system", "content": "Be terse."}, *CHAT["messages"]]}
    prompt = c.post("/apply-template", json=own).json()["prompt"]
    assert "Be terse." in prompt and "French" not in prompt
    # and every chat route renders with it (here: the prompt length the Anthropic count reports)
    count = "/v1/messages/count_tokens"
    with_default = c.post(count, json={"model": "m", **CHAT}).json()["input_tokens"]
    explicit = c.post(count, json={"model": "m", "system": "Answer in French.", **CHAT}).json()["input_tokens"]
    c.post("/props", json={"system_prompt": ""}).raise_for_status()
    without = c.post(count, json={"model": "m", **CHAT}).json()["input_tokens"]
    assert with_default == explicit != without  # (without one, SmolLM2's template adds its own)


def test_post_props_sets_the_default_stop_strings(c):
    body = {"prompt": "One, two, three,", "n_predict": 2, "temperature": 0}
    assert c.post("/completion", json=body).json()["generation_settings"]["stop"] == []
    c.post("/props", json={"stop": ["four"]}).raise_for_status()
    assert c.get("/props").json()["default_generation_settings"]["params"]["stop"] == ["four"]
    assert c.post("/completion", json=body).json()["generation_settings"]["stop"] == ["four"]
    assert c.post("/completion", json={**body, "stop": ["five"]}).json()["generation_settings"]["stop"] == ["five"]


@pytest.mark.parametrize("body, fragment", [
    ({"bogus": 1}, "bogus"), ({"system_prompt": 5}, "system_prompt"), ({"stop": "x"}, "stop"),
    ({"stop": [1]}, "stop"), ([], "object"),
])
def test_post_props_refuses_bad_fields(c, body, fragment):
    assert_error(c.post("/props", json=body), 400, "invalid_request_error", fragment)
    assert c.get("/props").json()["system_prompt"] == ""


def test_post_props_needs_the_flag(client):
    err = assert_error(client.post("/props", json={"system_prompt": "x"}), 501, "not_supported_error")
    assert err["message"] == "This server does not support changing global properties. Start it with `--props`"
    assert client.get("/props").json()["endpoint_props"] is False
