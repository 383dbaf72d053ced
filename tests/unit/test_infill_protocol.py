"""/infill request parsing and FIM prompt construction, checked against llama-server's layout (no model)."""

from __future__ import annotations

import pytest

from llamaserve.errors import InvalidRequest
from llamaserve.protocol.infill import CHUNK_SEPARATOR, FimTokens, build_infill_prompt, parse_infill

PRE, SUF, MID, REP, SEP, BOS = 9010, 9011, 9012, 9013, 9014, 9001


def tokenize(text: str, add_special: bool, parse_special: bool) -> list[str]:
    """A stand-in tokenizer: one token per character, so sizes are easy to count.

    parse_special is recorded: only the prompt may contain special tokens."""
    assert not add_special
    return [("s:" if parse_special else "") + c for c in text]


def build(body, fim=FimTokens(PRE, SUF, MID), *, add_bos=False, n_batch=2048, n_predict=-1, n_ctx=4096, spm=False):
    return build_infill_prompt(parse_infill(body), tokenize, fim, bos=BOS, add_bos=add_bos,
                               n_batch=n_batch, n_predict=n_predict, n_ctx=n_ctx, spm=spm)


def test_prefix_suffix_middle():
    # the prompt continues the prefix; the middle token ends the sequence
    assert build({"input_prefix": "ab", "input_suffix": "c", "prompt": "d"}) == [PRE, "a", "b", "s:d", SUF, "c", MID]


def test_suffix_prefix_middle_and_bos():
    got = build({"input_prefix": "ab", "input_suffix": "c", "prompt": "d"}, add_bos=True, spm=True)
    assert got == [BOS, SUF, "c", PRE, "a", "b", "s:d", MID]


def test_prefix_and_suffix_may_hold_token_ids():
    assert build({"input_prefix": ["a", 7], "input_suffix": [8]}) == [PRE, "a", 7, SUF, 8, MID]


def test_extra_context_without_repo_tokens_uses_snippet_separators():
    got = build({"input_prefix": "p", "input_suffix": "s", "input_extra": [{"filename": "f.py", "text": "xy"}]})
    extra = list(CHUNK_SEPARATOR) + ["x", "y"]
    assert got == extra + [PRE, "p", SUF, "s", MID]


def test_repo_level_format():
    fim = FimTokens(PRE, SUF, MID, rep=REP, sep=SEP)
    got = build({"input_prefix": "p", "input_suffix": "s", "input_extra": [{"filename": "a.h", "text": "xy"}, {"text": "z"}]},
                fim, add_bos=True)
    extra = [REP, *"myproject\n", SEP, *"a.h\n", "x", "y", SEP, *"tmp\n", "z", SEP, *"filename\n"]
    # the extra context goes before everything, BOS included (as in llama-server)
    assert got == extra + [BOS, PRE, "p", SUF, "s", MID]


def test_sizes_follow_llama_server():
    body = {"input_prefix": "0123456789", "input_suffix": "abcdefghij", "prompt": "P",
            "input_extra": [{"text": "EXTRA"}]}
    # n_batch 8: the prefix keeps its last 3 * 8/4 = 6 tokens, the suffix its first max(0, 8/4 - 2 - 1) = 0;
    # the extra context its last n_ctx - n_batch - 2 * n_predict = 20 - 8 - 8 = 4
    got = build(body, n_batch=8, n_ctx=20, n_predict=4)
    assert got == [*"XTRA", PRE, *"456789", "s:P", SUF, MID]
    got = build(body, n_batch=16, n_ctx=16, n_predict=-1)
    # suffix: 16/4 - 2 - 1 = 1 token; extra: 16 - 16 + 2 = 2 tokens
    assert got == ["R", "A", PRE, *"0123456789"[-10:], "s:P", SUF, "a", MID]


@pytest.mark.parametrize("body, fragment", [
    ({"input_suffix": "s"}, '"input_prefix" is required'),
    ({"input_prefix": "p"}, '"input_suffix" is required'),
    ({"input_prefix": 5, "input_suffix": "s"}, "input_prefix"),
    ({"input_prefix": "p", "input_suffix": "s", "prompt": 3}, '"prompt" must be a string'),
    ({"input_prefix": "p", "input_suffix": "s", "input_extra": {}}, '"input_extra" must be an array'),
    ({"input_prefix": "p", "input_suffix": "s", "input_extra": [{}]}, '"text" field'),
    ({"input_prefix": "p", "input_suffix": "s", "input_extra": [{"filename": "ok"}]}, '"text" field'),
    ({"input_prefix": "p", "input_suffix": "s", "input_extra": [{"filename": 123}]}, '"text" field'),
    ({"input_prefix": "p", "input_suffix": "s", "input_extra": [{"filename": 123, "text": "abc"}]}, '"filename"'),
    ({"input_prefix": "p", "input_suffix": "s", "input_extra": [{"filename": 123, "text": 456}]}, '"text" field'),
    ({"input_prefix": "p", "input_suffix": "s", "input_extra": ["text"]}, '"text" field'),
])
def test_invalid_requests(body, fragment):
    with pytest.raises(InvalidRequest) as exc:
        parse_infill(body)
    assert fragment in exc.value.message


def test_missing_fim_tokens_message():
    assert FimTokens(PRE, SUF, MID).missing() == ""
    assert FimTokens(-1, -1, -1).missing() == "prefix token is missing. suffix token is missing. middle token is missing. "
    assert FimTokens.from_ids({"pre": 1, "suf": 2, "mid": -1, "rep": 4}).missing() == "middle token is missing. "
