"""RALU's random streams: per image, repeatable, and apart from ComfyUI's initial noise."""

import torch

from ralu.streams import image_generators


def draws(generators, n=256):
    return torch.stack([torch.randn(n, generator=g) for g in generators])


def test_same_seed_and_index_same_stream_whatever_the_batch():
    batch = draws(image_generators(7, range(3)))
    alone = draws(image_generators(7, [2]))
    assert torch.equal(batch[2], alone[0])
    assert torch.equal(draws(image_generators(7, [0, 1])), batch[:2])


def test_images_seeds_and_the_initial_noise_all_draw_different_values():
    """The initial noise is torch.manual_seed(seed)'s stream (comfy.sample.prepare_noise): RALU's
    streams must share no value with it, nor with each other."""
    seed = 42
    initial = torch.randn(4096, generator=torch.Generator().manual_seed(seed))
    ours = draws(image_generators(seed, range(2)), 1024)
    other_seed = draws(image_generators(seed + 1, [0]), 1024)
    pools = [set(initial.tolist()), set(ours[0].tolist()), set(ours[1].tolist()), set(other_seed[0].tolist())]
    for i, a in enumerate(pools):
        for b in pools[i + 1 :]:
            assert not a & b
