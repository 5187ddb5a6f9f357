"""Shared fixtures: everything is made on the spot, never fetched from the network."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread_torch():
    # The CI box has 2 cores; oversubscribed BLAS threads make small tests slower, not faster.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def toy_store(tmp_path_factory):
    """A database holding the 3-genre toy corpus as dataset 'toy' (24 tracks of 4 s)."""
    from genre_core.datasets.ingest import ingest
    from genre_core.store import open_store
    from tests.helpers import make_toy_corpus

    root = tmp_path_factory.mktemp("toy")
    corpus = make_toy_corpus(root / "corpus")
    store = open_store(root / "db" / "toy.duckdb")
    ingest(store, "folder", corpus, name="toy", progress=False)
    return store
