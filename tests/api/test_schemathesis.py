"""schemathesis against the app's own OpenAPI schema (built in-process; the server serves no schema route).

Valid and invalid bodies are generated from the request models (api/openapi.py puts them in the schema)
and sent to `capped_server`: no 5xx except 501 not_supported, and bodies that break the schema get a 4xx.
Bounded for CI: a fixed number of examples per operation, no shrinking.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from schemathesis.config import SchemathesisConfig  # noqa: E402

from tests.conftest import app_openapi  # noqa: E402

EXAMPLES = 25

CONFIG = SchemathesisConfig.from_dict({
    "generation": {"mode": "all", "max-examples": EXAMPLES, "no-shrink": True, "deterministic": True},
    "checks": {
        # 501 is llama-server's "not supported" (POST /props, json_schema for now): an answer, not a crash
        "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "501"]},
    },
})
schema = schemathesis.openapi.from_dict(app_openapi(), config=CONFIG)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_api_schema(case, capped_server):
    case.call_and_validate(
        base_url=capped_server.url,
        timeout=300,
        checks=[schemathesis.checks.not_a_server_error, schemathesis.checks.negative_data_rejection],
    )
