"""Pure parts of the embedding engine: normalisation and the batch size of an embedding context."""

from __future__ import annotations

import numpy as np
import pytest

from llamaserve.engine.embeddings import normalize
from llamaserve.engine.model import ModelLoadError, embedding_batch_size

VEC = np.array([3.0, -4.0, 0.0, 1.0], dtype=np.float32)


@pytest.mark.parametrize("mode, norm", [
    (1, lambda v: np.abs(v).sum()),
    (2, lambda v: np.sqrt((v * v).sum())),
    (3, lambda v: (np.abs(v) ** 3).sum() ** (1 / 3)),
])
def test_p_norms_scale_to_unit(mode, norm):
    out = normalize(VEC, mode)
    assert out.dtype == np.float32
    assert norm(out.astype(np.float64)) == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(out * norm(VEC.astype(np.float64)), VEC, atol=1e-5)  # same direction


def test_max_abs_scales_to_int16_range_and_none_keeps_values():
    out = normalize(VEC, 0)
    assert np.abs(out).max() == pytest.approx(32760.0)
    assert out[0] == pytest.approx(3.0 * 32760 / 4)
    assert np.array_equal(normalize(VEC, -1), VEC)
    assert np.array_equal(normalize(np.zeros(3, dtype=np.float32), 2), np.zeros(3))  # no division by zero


@pytest.mark.parametrize("n_seq, n_ubatch, n_ctx, unified, expected", [
    # the libllama table in shared/models/README.md: 3, 5, 6 slots abort with n_ubatch 512; 510 works
    (3, 512, 512, True, 510),
    (5, 512, 512, True, 510),
    (6, 512, 512, True, 510),
    (4, 512, 512, True, 512),
    (2, 511, 512, True, 510),
    # without a unified cache the context holds n_slots * pad(n_ctx / n_slots, 256) cells
    (3, 512, 512, False, 510),
    (4, 512, 8192, False, 512),
    # the context clamps n_ubatch to n_ctx first
    (5, 512, 300, True, 300),
    (7, 512, 300, True, 294),
])
def test_mean_pooling_batch_is_a_multiple_of_the_slots(n_seq, n_ubatch, n_ctx, unified, expected):
    size = embedding_batch_size(2048, n_ubatch, n_ctx, n_seq, unified, mean_pooling=True)
    assert size == expected and size % n_seq == 0


def test_other_poolings_only_cap_the_batch_at_the_ubatch():
    assert embedding_batch_size(2048, 512, 512, 3, True, mean_pooling=False) == 512
    assert embedding_batch_size(256, 512, 512, 3, True, mean_pooling=False) == 256


def test_more_slots_than_tokens_is_refused():
    with pytest.raises(ModelLoadError, match="-np"):
        embedding_batch_size(2048, 4, 512, 8, True, mean_pooling=True)
