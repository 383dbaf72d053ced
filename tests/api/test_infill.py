"""/infill through HTTP: on a SmolLM2 copy whose vocabulary names FIM tokens (written by
shared/models/derive_smollm2.py; its infill text is meaningless, the prompt and plumbing are real),
and the 501 on the plain model, which has none."""

from __future__ import annotations

import pytest

from tests.conftest import serve
from tests.helpers import assert_error

# the control tokens derive_smollm2.py names as FIM tokens
PRE, SUF, MID, REP, SEP = "<issue_start>", "<issue_comment>", "<issue_closed>", "<repo_name>", "<file_sep>"

BODY = {
    "input_prefix": "def add(a, b):\n",
    "prompt": "    return",
    "input_suffix": "\n\nprint(add(1, 2))\n",
    "input_extra": [{"filename": "util.py", "text": "ONE = 1\n"}],
    "n_predict": 6,
    "temperature": 0,
}


@pytest.fixture(scope="module")
def fim(derived_models, request):
    # -b 512 leaves n_ctx - n_batch tokens of room for the extra context (llama-server's budget)
    with serve(request, "fim", "-m", str(derived_models / "SmolLM2-135M-Instruct-fim.Q4_1.gguf"),
               "-np", "2", "-c", "4096", "-b", "512").client() as c:
        yield c


def test_infill_builds_the_repo_level_fim_prompt(fim):
    r = fim.post("/infill", json=BODY)
    assert r.status_code == 200, r.text
    d = r.json()
    expected = (f"{REP}myproject\n{SEP}util.py\nONE = 1\n{SEP}filename\n"
                f"{PRE}def add(a, b):\n    return{SUF}\n\nprint(add(1, 2))\n{MID}")
    assert d["prompt"] == expected
    # each part is tokenized on its own (the prefix may end mid-word), so only roughly the whole text's count
    n_whole = len(fim.post("/tokenize", json={"content": expected}).json()["tokens"])
    assert abs(d["tokens_evaluated"] - n_whole) <= 3
    # the rest is a /completion response
    assert d["stop"] is True and d["stop_type"] in ("eos", "limit") and 0 < d["tokens_predicted"] <= 6
    assert d["generation_settings"]["n_predict"] == 6
    # greedy: the same request gives the same text
    assert fim.post("/infill", json=BODY).json()["content"] == d["content"]


def test_infill_streams_like_completion(fim):
    with fim.stream("POST", "/infill", json={**BODY, "stream": True}) as r:
        assert r.status_code == 200
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert events and '"stop":true' in events[-1]


@pytest.mark.parametrize("body, fragment", [
    ({"input_suffix": "b"}, "input_prefix"),
    ({"input_prefix": "a"}, "input_suffix"),
    ({"input_prefix": "a", "input_suffix": "b", "input_extra": [{"filename": "ok"}]}, "text"),
    ({"input_prefix": "a", "input_suffix": "b", "input_extra": [{"filename": 123, "text": "abc"}]}, "filename"),
    ({"input_prefix": "a", "input_suffix": "b", "prompt": 1}, "prompt"),
    ({"input_prefix": "a", "input_suffix": "b", "temperature": "hot"}, "temperature"),
])
def test_invalid_infill_requests(fim, body, fragment):
    assert_error(fim.post("/infill", json=body), 400, "invalid_request_error", fragment)


def test_model_without_fim_tokens(client):
    err = assert_error(client.post("/infill", json=BODY), 501, "not_supported_error")
    assert err["message"] == ("Infill is not supported by this model: prefix token is missing. "
                              "suffix token is missing. middle token is missing. ")
