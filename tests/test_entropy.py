"""Entropy models, probability tables and the constriction-based coder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dcae.entropy import FactorizedPrior, GaussianConditional
from dcae.entropy.coder import CodingError, SymbolDecoder, SymbolEncoder
from dcae.entropy.tables import CategoricalTable, GaussianTables, tabulate_factorized


def test_factorized_likelihoods_sum_to_one_over_integers() -> None:
    torch.manual_seed(0)
    prior = FactorizedPrior(4)
    values = torch.arange(-400, 401, dtype=torch.float32).reshape(1, 1, -1, 1).expand(1, 4, -1, 1)
    total = prior.likelihood(values.contiguous()).sum(dim=2)
    torch.testing.assert_close(total, torch.ones_like(total), atol=1e-4, rtol=0)


def test_factorized_names_and_aux_loss_fit_the_quantiles() -> None:
    torch.manual_seed(0)
    prior = FactorizedPrior(3)
    names = {n for n, _ in prior.named_parameters()}
    assert {"quantiles", "matrices.0", "matrices.4", "biases.4", "factors.3"} <= names
    optimizer = torch.optim.Adam([prior.quantiles], lr=1.0)
    first = float(prior.aux_loss().detach())
    for _ in range(300):
        optimizer.zero_grad()
        prior.aux_loss().backward()
        optimizer.step()
    assert float(prior.aux_loss().detach()) < 0.01 * first


def test_gaussian_likelihood_bounds_and_values() -> None:
    gc = GaussianConditional()
    y = torch.tensor([0.0, 0.0, 50.0])
    lik = gc.likelihood(y, torch.tensor([1.0, 0.01, 1.0]), torch.zeros(3))
    assert abs(float(lik[0]) - 0.38292) < 1e-4  # P(|N(0,1)| < 0.5)
    assert abs(float(lik[1]) - 0.99999) < 1e-3  # scale bounded below at 0.11
    assert float(lik[2]) == pytest.approx(1e-9)  # likelihood bounded below


def test_gaussian_tables_are_normalised_and_snap_in_log_space() -> None:
    tables = GaussianTables(64)
    for table in tables.tables:
        assert abs(table.probs.sum() - 1) < 1e-6 and table.probs.min() > 0
    scales = torch.tensor([0.0, 0.11, 1.0, 255.0, 1e6])
    idx = tables.indexes(scales)
    assert idx[0] == 0 and idx[1] == 0 and idx[-1] == 63
    assert abs(tables.scales[idx[2]] / 1.0 - 1) < tables.log_step


def test_factorized_tables_cover_the_quantiles() -> None:
    torch.manual_seed(0)
    prior = FactorizedPrior(2)
    tables = tabulate_factorized(prior)
    assert len(tables) == 2
    for table in tables:
        assert table.low <= -9 and table.high >= 9  # initial quantiles are +-10
        assert 0.99 < table.probs.sum() <= 1 + 1e-9


def test_coder_round_trips_including_escapes() -> None:
    rng = np.random.default_rng(0)
    tables = GaussianTables(32)
    chosen = [tables.tables[i] for i in (0, 5, 31)]
    chunks = []
    encoder = SymbolEncoder()
    for table in chosen:
        values = rng.integers(table.low, table.high + 1, size=500)
        values[:4] = [table.high + 1, table.low - 1, 2**31 - 1 + table.high, table.low - 12345]
        encoder.add(values, table)
        chunks.append(values)
    decoder = SymbolDecoder(encoder.finish())
    for table, values in zip(chosen, chunks):
        np.testing.assert_array_equal(decoder.take(len(values), table), values)
    assert decoder.exhausted()


def test_coder_refuses_values_beyond_its_range() -> None:
    table = CategoricalTable(-2, np.array([0.2, 0.2, 0.2, 0.2, 0.2, 1e-9]))
    with pytest.raises(CodingError, match="beyond the codable range"):
        SymbolEncoder().add(np.array([2**40]), table)


def test_coded_size_is_close_to_the_ideal_code_length() -> None:
    rng = np.random.default_rng(1)
    tables = GaussianTables()
    table = tables.tables[80]
    values = np.round(rng.normal(0, tables.scales[80], 200_000)).astype(np.int64)
    ideal_bits = -np.log2(table.probs[values - table.low]).sum()
    encoder = SymbolEncoder()
    encoder.add(values, table)
    assert 8 * len(encoder.finish()) < ideal_bits * 1.002 + 64
