"""RALU's own random streams: one per image, derived from the run's seed and the image's batch index."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

# Keeps RALU's streams apart from the initial noise, which ComfyUI draws from torch.manual_seed(seed):
# seeding ours with the seed itself made the stage-2 re-noise a shifted copy of the initial noise.
STREAM_TAG = 0x52414C55  # "RALU"


def image_generators(seed: int, batch_indices: Iterable[int]) -> list[torch.Generator]:
    """One CPU generator per image for its tie-breaks and re-noise, seeded from (seed, batch index).

    An image draws the same values whatever batch it is sampled in, so one image of a batch can be
    made again alone (Latent From Batch keeps its batch_index), as ComfyUI's initial noise allows.
    """
    generators = []
    for index in batch_indices:
        state = np.random.SeedSequence([STREAM_TAG, int(seed), int(index)]).generate_state(1, np.uint64)
        generators.append(torch.Generator().manual_seed(int(state[0])))
    return generators
