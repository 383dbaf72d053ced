"""Which files `-hf <user>/<repo>[:quant]` means: the same choices as the llama-server we build against."""

import pytest

from llamaserve.hub.names import HubError, pick_model, pick_sibling, quants, shards, split_repo_tag, valid_repo_id

REPO = [
    "README.md",
    "mmproj-model-F16.gguf",
    "model-Q2_K.gguf",
    "model-Q8_0.gguf",
    "model-Q4_K_M.gguf",
    "imatrix-Q4_K_M.gguf",
    "BF16/model-BF16-00002-of-00003.gguf",
    "BF16/model-BF16-00001-of-00003.gguf",
    "BF16/model-BF16-00003-of-00003.gguf",
    "BF16/mmproj-BF16.gguf",
]


@pytest.mark.parametrize("text, expected", [
    ("ggml-org/models:F16", ("ggml-org/models", "F16")),
    ("ggml-org/models", ("ggml-org/models", "")),
    ("a/b:c:Q4_0", ("a/b", "Q4_0")),  # the last part is the tag
])
def test_split_repo_tag(text, expected):
    assert split_repo_tag(text) == expected


@pytest.mark.parametrize("text", ["model-only", "a/b/c", "/b", "a/"])
def test_a_repository_needs_exactly_user_and_name(text):
    with pytest.raises(HubError, match="expected <user>/<model>"):
        split_repo_tag(text)


@pytest.mark.parametrize("repo, ok", [
    ("ggml-org/SmolLM2-135M-GGUF", True), ("a/b.c_d", True), ("a/-b", False), ("a/b..c", False), ("a/b c", False),
])
def test_valid_repo_id(repo, ok):
    assert valid_repo_id(repo) is ok


@pytest.mark.parametrize("tag, expected", [
    ("", "model-Q4_K_M.gguf"),  # the default quantization
    ("q8_0", "model-Q8_0.gguf"),  # case-insensitive
    ("BF16", "BF16/model-BF16-00001-of-00003.gguf"),  # a split model: its first shard
    ("Q5_K_M", ""),  # not there
])
def test_pick_model(tag, expected):
    assert pick_model(REPO, tag) == expected


def test_without_the_default_quantizations_the_first_model_file_serves():
    assert pick_model(["mmproj-x-F16.gguf", "x-IQ2_M.gguf", "x-F32.gguf"], "") == "x-IQ2_M.gguf"


def test_a_tag_that_is_only_a_prefix_of_the_file_quantization_is_not_it():
    assert pick_model(["m-Q4_K_M.gguf"], "Q4_K") == ""


def test_shards_in_order():
    assert shards(REPO, "BF16/model-BF16-00001-of-00003.gguf") == [
        "BF16/model-BF16-00001-of-00003.gguf", "BF16/model-BF16-00002-of-00003.gguf", "BF16/model-BF16-00003-of-00003.gguf"]
    assert shards(REPO, "model-Q8_0.gguf") == ["model-Q8_0.gguf"]


def test_the_projector_nearest_the_model():
    assert pick_sibling(REPO, "BF16/model-BF16-00001-of-00003.gguf", "mmproj") == "BF16/mmproj-BF16.gguf"
    assert pick_sibling(REPO, "model-Q4_K_M.gguf", "mmproj") == "mmproj-model-F16.gguf"  # not one of a sub-directory
    assert pick_sibling(["m-Q4_0.gguf"], "m-Q4_0.gguf", "mmproj") == ""


def test_the_projector_closest_in_bits():
    files = ["mmproj-F32.gguf", "mmproj-F16.gguf", "mmproj-Q8_0.gguf", "m-Q8_0.gguf"]
    assert pick_sibling(files, "m-Q8_0.gguf", "mmproj") == "mmproj-Q8_0.gguf"


def test_quants_lists_the_model_files_quantizations():
    assert quants(REPO) == ["BF16", "Q2_K", "Q4_K_M", "Q8_0"]
