"""Shared fixtures: everything is made on the spot, never fetched from the network."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread_torch():
    # The CI box has 2 cores; oversubscribed BLAS threads make small tests slower, not faster.
    torch.set_num_threads(1)
