from __future__ import annotations

import io
import os

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from PIL import Image

from annotator.imaging import read_mask
from learning.data import (
    IGNORE_INDEX, NORMALIZATION, Augment, BatchStream, DecodedCache, Sample, SegmentationDataset, load_image,
    load_mask, load_sample, resize_mask, samples_fingerprint,
)
from learning.decoding import InvalidImage


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


# --- decoding: the same path as the import check (learning.decoding) ----------------------------------------


def _encoded(image: Image.Image, fmt: str = "PNG", **options) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    buffer.seek(0)
    return buffer


def test_1_bit_masks_read_as_0_and_1(tmp_path):
    values = np.zeros((6, 8), dtype=bool)
    values[2:4, 3:] = True
    Image.fromarray(values).save(tmp_path / "binary.png")
    assert Image.open(tmp_path / "binary.png").mode == "1"
    assert np.array_equal(load_mask(tmp_path / "binary.png"), values.astype(np.uint8))


def test_16_bit_masks_keep_values_up_to_255_and_refuse_larger():
    values = np.array([[0, 1, 254, 255]], dtype=np.uint16)
    assert np.array_equal(load_mask(_encoded(Image.fromarray(values))), values.astype(np.uint8))
    with pytest.raises(InvalidImage, match="mask holds values from 0 to 300, outside 0–255"):
        load_mask(_encoded(Image.fromarray(np.array([[0, 300]], dtype=np.uint16))))


def test_16_bit_images_are_scaled_not_clipped_to_white():
    full = (np.arange(40 * 30, dtype=np.uint32).reshape(30, 40) * 65535 // (40 * 30 - 1)).astype(np.uint16)
    loaded = load_image(_encoded(Image.fromarray(full)))
    assert loaded.shape == (30, 40, 3) and np.abs(loaded[..., 0].astype(int) - full / 257).max() <= 1
    twelve_bit = (full >> 4).astype(np.uint16)  # 12-bit sensor data in a 16-bit file: scaled by its maximum
    assert load_image(_encoded(Image.fromarray(twelve_bit)))[..., 1].max() == 255


def test_palette_alpha_cmyk_and_grey_images_load_as_rgb():
    rgb = np.random.default_rng(1).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.zeros((6, 8, 1), np.uint8)], axis=2)  # fully transparent: alpha is dropped
    assert np.array_equal(load_image(_encoded(Image.fromarray(rgba))), rgb)
    palette = Image.fromarray(rgb).quantize(8)
    assert np.array_equal(load_image(_encoded(palette)), np.asarray(palette.convert("RGB")))
    grey = rgb[..., 0]
    assert np.array_equal(load_image(_encoded(Image.fromarray(grey).convert("LA"))), np.repeat(grey[..., None], 3, 2))
    cmyk = load_image(_encoded(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=100))
    assert cmyk.shape == (6, 8, 3) and np.abs(cmyk.astype(int) - rgb).mean() < 8


def test_exif_orientation_is_applied():
    raw = np.zeros((30, 40, 3), dtype=np.uint8)
    raw[:5, :5] = 255  # top-left corner of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    upright = load_image(_encoded(Image.fromarray(raw), "JPEG", quality=95, exif=exif.tobytes()))
    assert upright.shape == (40, 30, 3) and upright[:5, -5:].mean() > 200  # now the top-right corner


MASK_MODES = ["1", "L", "P", "I", "I;16", "I;16B", "F", "LA", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr",
              "LAB", "HSV", "La", "RGBa", "I;16L", "I;16N"]


def _check_decoded_mask(source: io.BytesIO) -> None:
    """Training's decoder returns uint8 (H, W) or raises InvalidImage, and accepts exactly what the import does."""
    data = source.getvalue()
    try:
        trained = load_mask(io.BytesIO(data))
    except InvalidImage:
        trained = None
    try:
        size = trained.shape[::-1] if trained is not None else Image.open(io.BytesIO(data)).size
    except Exception:  # noqa: BLE001 - an unreadable header: any size will do, the import must refuse
        size = (1, 1)
    try:
        imported = read_mask(data, size=size, num_classes=255)  # 0–254 and 255: every value is a class or void
    except InvalidImage:
        imported = None
    assert (trained is None) == (imported is None)
    if trained is not None:
        assert trained.dtype == np.uint8 and trained.ndim == 2 and np.array_equal(trained, imported)


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(st.binary(max_size=512) | st.builds(lambda tail: b"\x89PNG\r\n\x1a\n" + tail, st.binary(max_size=512)))
def test_mask_decoder_refuses_arbitrary_bytes_with_invalid_image_only(data):
    try:
        load_mask(io.BytesIO(data))
    except InvalidImage:
        pass


def _valid_mask_files() -> list[bytes]:
    values = (np.arange(48).reshape(6, 8) % 5).astype(np.uint8)
    files = [_encoded(Image.fromarray(values)), _encoded(Image.fromarray(values.astype(bool))),
             _encoded(Image.fromarray(values.astype(np.uint16))), _encoded(Image.fromarray(values), "TIFF"),
             _encoded(Image.fromarray(values), "BMP"), _encoded(Image.fromarray(values), "GIF")]
    return [f.getvalue() for f in files]


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the corrupt EXIF it skips
@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(st.sampled_from(_valid_mask_files()), st.integers(0, 400),
       st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6))
def test_mask_decoder_survives_truncated_and_corrupted_files(data, keep, flips):
    corrupted = bytearray(data[:max(keep, 8)])
    for position, byte in flips:
        if position < len(corrupted):
            corrupted[position] = byte
    _check_decoded_mask(io.BytesIO(bytes(corrupted)))


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the corrupt EXIF it skips
@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(st.sampled_from(MASK_MODES), st.integers(1, 6), st.integers(1, 6), st.randoms(use_true_random=False))
def test_mask_decoder_handles_small_images_in_every_mode(mode, width, height, random):
    probe = Image.new(mode, (width, height))
    raw = bytes(random.getrandbits(8) for _ in range(len(probe.tobytes())))
    image = Image.frombytes(mode, (width, height), raw)
    for fmt in ("PNG", "TIFF"):
        try:
            source = _encoded(image, fmt)
        except (OSError, ValueError, KeyError):
            continue
        _check_decoded_mask(source)


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, max_side=12)),
       st.sampled_from(["L", "P", "I;16", "1"]))
def test_valid_masks_round_trip(values, mode):
    if mode == "1":
        values = values % 2
        image = Image.fromarray(values.astype(bool))
    elif mode == "P":
        image = Image.frombytes("P", values.shape[::-1], values.tobytes())
        image.putpalette(list(range(256)) * 3)
    else:
        image = Image.fromarray(values if mode == "L" else values.astype(np.uint16))
    assert image.mode == mode
    assert np.array_equal(load_mask(_encoded(image)), values)


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
