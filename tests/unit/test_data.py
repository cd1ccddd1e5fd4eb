from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from learning.data import (
    IGNORE_INDEX, NORMALIZATION, Augment, BatchStream, DecodedCache, Sample, SegmentationDataset, load_image,
    load_mask, load_sample, resize_mask, samples_fingerprint,
)


def _write_pair(tmp_path, name="a", size=(30, 40), value=2):
    image = np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)
    mask = np.full(size, value, dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / f"{name}.png")
    Image.fromarray(mask, mode="L").save(tmp_path / f"{name}_mask.png")
    return tmp_path / f"{name}.png", tmp_path / f"{name}_mask.png", image


def test_paths_and_arrays_load_the_same(tmp_path):
    image_path, mask_path, image = _write_pair(tmp_path)
    assert np.array_equal(load_image(image_path), image)
    assert np.array_equal(load_image(image), image)
    assert load_mask(mask_path).dtype == np.uint8 and set(np.unique(load_mask(mask_path))) == {2}


def test_rgb_masks_are_refused(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="single-channel"):
        load_mask(tmp_path / "rgb.png")


def test_mask_resize_never_invents_class_ids():
    mask = np.zeros((30, 40), dtype=np.uint8)
    mask[:, 20:] = 7
    mask[:5] = IGNORE_INDEX
    assert set(np.unique(resize_mask(mask, (13, 17)))) <= {0, 7, IGNORE_INDEX}


def test_in_memory_region_mask_follows_the_image_size():
    image = np.zeros((60, 80, 3), dtype=np.uint8)
    mask = np.full((30, 40), IGNORE_INDEX, dtype=np.uint8)
    mask[:10, :10] = 1
    loaded_image, loaded_mask = load_sample(Sample(image, mask), (30, 40))
    assert loaded_image.shape == (30, 40, 3) and loaded_mask.shape == (30, 40)
    assert (loaded_mask == 1).sum() == 100


def test_cache_decodes_once_and_rereads_an_edited_file(tmp_path):
    image_path, mask_path, _ = _write_pair(tmp_path)
    cache = DecodedCache(max_bytes=10 * 2**20)
    first = cache.get_or_load("mask", mask_path, (15, 20))
    assert cache.get_or_load("mask", mask_path, (15, 20)) is first
    Image.fromarray(np.full((30, 40), 5, np.uint8), mode="L").save(mask_path)
    os.utime(mask_path, ns=(1, 1))  # make the edit visible even within one mtime tick
    assert set(np.unique(cache.get_or_load("mask", mask_path, (15, 20)))) == {5}


def test_cache_is_bounded_in_bytes(tmp_path):
    paths = [_write_pair(tmp_path, name=f"img{i}")[0] for i in range(3)]
    cache = DecodedCache(max_bytes=2 * 30 * 40 * 3)
    for path in paths:
        cache.get_or_load("image", path, None)
    assert cache._bytes <= cache.max_bytes and len(cache._items) == 2


def test_augmentation_is_deterministic_per_seed_epoch_and_index(tiny_samples):
    dataset = SegmentationDataset(tiny_samples(2), (32, 48), augment=Augment(), seed=3)
    a_image, a_mask = dataset[1]
    b_image, b_mask = dataset[1]
    assert torch.equal(a_image, b_image) and torch.equal(a_mask, b_mask)
    dataset.epoch = 1
    c_image, _ = dataset[1]
    assert not torch.equal(a_image, c_image)


def test_augmentation_keeps_shapes_and_pads_with_ignore():
    image = torch.rand(3, 20, 30)
    mask = torch.ones(20, 30, dtype=torch.uint8)
    out_image, out_mask = Augment(scale=(0.5, 0.5), hflip=0.0)(image, mask, np.random.default_rng(0))
    assert out_image.shape == (3, 20, 30) and out_mask.shape == (20, 30)
    assert (out_mask == IGNORE_INDEX).float().mean() == pytest.approx(0.75)
    assert set(torch.unique(out_mask).tolist()) == {1, IGNORE_INDEX}


def test_dataset_normalises_and_marks_unlabeled_samples_as_ignore(tiny_samples):
    sample = tiny_samples(1, labeled=False)[0]
    image, mask = SegmentationDataset([sample], (32, 48))[0]
    assert image.dtype == torch.float32 and mask.dtype == torch.int64
    assert torch.all(mask == IGNORE_INDEX)
    expected = (sample.image[0, 0, 0] / 255.0 - NORMALIZATION["mean"][0]) / NORMALIZATION["std"][0]
    assert image[0, 0, 0].item() == pytest.approx(expected, abs=1e-5)


def test_batch_stream_visits_every_sample_once_per_epoch(tiny_samples):
    samples = tiny_samples(5)
    dataset = SegmentationDataset(samples, (32, 48))
    stream = BatchStream(dataset, 5, seed=0)
    _, masks = stream.next()
    firsts = sorted(int(m.sum()) for m in masks)
    expected = sorted(int(torch.from_numpy(s.mask.astype(np.int64)).sum()) for s in samples)
    assert firsts == expected


def test_fingerprint_changes_when_a_label_changes(tiny_samples):
    samples = tiny_samples(2)
    before = samples_fingerprint(samples)
    edited = samples[1].mask.copy()
    edited[0, 0] = 1 - edited[0, 0]
    assert samples_fingerprint([samples[0], Sample(samples[1].image, edited)]) != before
    assert samples_fingerprint(samples) == before
