"""Two llamaserve replicas behind LiteLLM's Router (the routing core of the LiteLLM proxy, with the
model_list and router settings of the README's config.yaml): requests spread over both, and none is
lost when one replica dies in the middle of a burst. LiteLLM is an optional extra (`pip install
llamaserve[replicas]`); without it the module is skipped."""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest

from tests.conftest import ONE_THREAD, serve

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM would fetch its price list at import
litellm = pytest.importorskip("litellm", reason="litellm is not installed (the `replicas` extra)")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic's, about LiteLLM's own types

N_REQUESTS = 40
SERVED = 'llamaserve:request_duration_seconds_count{method="POST",route="/v1/chat/completions"}'


def replica(request, name):
    return serve(request, name, "-np", "2", "-c", "1024", "--metrics", *ONE_THREAD)


@pytest.fixture()
def replicas(request):
    return [replica(request, "replica-a"), replica(request, "replica-b")]


def metric(srv, name: str) -> float:
    for line in httpx.get(srv.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def served(srv) -> float:
    """Chat completions this replica answered, from its own /metrics."""
    return metric(srv, SERVED)


def balancer(replicas):
    """What the README's LiteLLM config.yaml sets up: one model group of N replicas, the least busy one
    picked, a failed request retried (without num_retries the requests on a killed replica fail)."""
    return litellm.Router(
        model_list=[{"model_name": "smollm2", "litellm_params": {
            "model": "openai/smollm2", "api_base": srv.url + "/v1", "api_key": "none"}} for srv in replicas],
        routing_strategy="least-busy", num_retries=3, retry_after=0, timeout=60,
    )


async def ask(router, i: int) -> str:
    r = await router.acompletion(model="smollm2", messages=[{"role": "user", "content": f"Count to {i}."}],
                                 max_tokens=12, temperature=0)
    return r.choices[0].message.content


def test_requests_spread_over_replicas_and_none_lost_when_one_stops(replicas):
    a, b = replicas
    router = balancer(replicas)

    async def burst():
        return await asyncio.gather(*(ask(router, i) for i in range(N_REQUESTS)))

    answers = asyncio.run(burst())
    assert len(answers) == N_REQUESTS and all(isinstance(x, str) for x in answers)
    on_a, on_b = served(a), served(b)
    assert on_a > 0 and on_b > 0, (on_a, on_b)  # both replicas took a share
    assert on_a + on_b == N_REQUESTS  # no request ran twice

    async def burst_with_a_replica_killed():
        tasks = [asyncio.ensure_future(ask(router, i)) for i in range(N_REQUESTS)]
        done, in_flight = 0, 0
        for finished in asyncio.as_completed(tasks):
            await finished
            done += 1
            if done == 5:  # in the middle of the burst
                in_flight = metric(b, "vllm:num_requests_running") + metric(b, "vllm:num_requests_waiting")
                b.proc.kill()
        return [t.result() for t in tasks], in_flight

    answers, in_flight = asyncio.run(burst_with_a_replica_killed())
    assert in_flight > 0  # the replica died with requests of the burst running and queued on it
    assert len(answers) == N_REQUESTS and all(isinstance(x, str) for x in answers)  # none lost
    assert b.proc.poll() is not None
    assert served(a) > on_a  # the survivor took over
