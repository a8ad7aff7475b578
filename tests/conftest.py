import os

import pytest
import torch

# Two cores are shared by the whole suite; one intra-op thread per test process avoids oversubscription.
torch.set_num_threads(int(os.environ.get("IFRVP_TEST_THREADS", "1")))


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)
