"""Unit tests of the ML core: tiny images, one thread, fixed seeds (no database, no Django imports needed)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from learning.data import Sample


@pytest.fixture(autouse=True)
def _single_thread_and_seeded():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_samples():
    """Synthetic two-class scenes: a bright square (class 1) on a dark background (class 0)."""

    def make(count: int = 4, *, size=(32, 48), labeled: bool = True, seed: int = 0) -> list[Sample]:
        rng = np.random.default_rng(seed)
        samples = []
        for i in range(count):
            image = rng.integers(0, 60, (*size, 3), dtype=np.uint8)
            mask = np.zeros(size, dtype=np.uint8)
            top, left = rng.integers(0, size[0] // 2), rng.integers(0, size[1] // 2)
            image[top:top + size[0] // 2, left:left + size[1] // 2] += 150
            mask[top:top + size[0] // 2, left:left + size[1] // 2] = 1
            samples.append(Sample(image=image, mask=mask if labeled else None, key=f"s{seed}-{i}"))
        return samples

    return make
