"""A unified KV cache shared by 8 slots (llama.cpp #23694: parallel slots exhausting the context): a mix of
long and short requests whose sum fits is always served, however many cells idle slots keep cached, and
one that does not fit fails alone, with a clean error, while the server goes on."""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest

from tests.conftest import serve

N_CTX = 2048


@pytest.fixture(scope="module")
def pool(request):
    return serve(request, "kvu8", "-np", "8", "-kvu", "-c", str(N_CTX))


def _words(n: int, seed: int) -> str:
    return " ".join(f"w{(seed * 7919 + i) % 997}" for i in range(n))


def _run(srv, bodies: list[dict]) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as ex:
        return list(ex.map(lambda b: httpx.post(srv.url + "/completion", json=b, timeout=300), bodies))


def _tokens(srv, text: str) -> int:
    return len(httpx.post(srv.url + "/tokenize", json={"content": text}).json()["tokens"])


def test_a_mix_that_fits_is_always_served(pool):
    long_prompt = _words(180, 1)
    n_long = _tokens(pool, long_prompt)
    assert 500 < n_long < 800, n_long
    for round_ in range(3):  # later rounds meet the cells the earlier ones left cached in idle slots
        bodies = [{"prompt": _words(180, 10 * round_ + i), "n_predict": 64, "ignore_eos": True, "cache_prompt": True}
                  for i in range(2)]
        bodies += [{"prompt": f"Say something about the number {round_}{i}.", "n_predict": 16, "ignore_eos": True}
                   for i in range(6)]
        # 2 x (<800 + 64) + 6 x (<40 + 16) < 2048 cells: it fits
        for r in _run(pool, bodies):
            assert r.status_code == 200, r.text
            assert r.json()["tokens_predicted"] in (64, 16)


def test_a_mix_that_does_not_fit_fails_one_request_cleanly(pool):
    bodies = [{"prompt": _words(180, 100 + i), "n_predict": 400, "ignore_eos": True} for i in range(3)]
    bodies += [{"prompt": "Hello there.", "n_predict": 8, "ignore_eos": True} for _ in range(3)]
    # 3 x (~650 + 400) > 2048 cells: not every long one can finish
    replies = _run(pool, bodies)
    failed = [r for r in replies if r.status_code != 200]
    assert failed and all(r.status_code == 500 for r in failed)
    for r in failed:
        assert "context size has been exceeded" in r.json()["error"]["message"]
    assert len(failed) < 3  # failing the one holding the most cells let the others finish
    assert all(r.status_code == 200 for r in replies[3:])  # the short ones are never the victims here
    assert httpx.post(pool.url + "/completion", json={"prompt": "Still here?", "n_predict": 4}).status_code == 200
