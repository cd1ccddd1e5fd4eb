"""The tile grid of large images: one rule for queries, labeling and superpixels."""
from __future__ import annotations

import numpy as np
import pytest

from learning.selection.regions import slic_regions
from learning.selection.tiles import Tile, tile_containing, tile_grid, tiled_regions


def coverage(tiles: list[Tile], width: int, height: int) -> np.ndarray:
    count = np.zeros((height, width), dtype=np.int32)
    for tile in tiles:
        count[tile.slices] += 1
    return count


def test_a_small_image_is_one_tile_the_whole_image():
    assert tile_grid(640, 480, 640 * 480) == [Tile(0, 0, 0, 640, 480)]


def test_a_12_megapixel_image_is_four_3_megapixel_tiles_under_4_megapixels():
    tiles = tile_grid(4000, 3000, 4_000_000)
    assert [t.box for t in tiles] == [(0, 0, 2000, 1500), (2000, 0, 4000, 1500),
                                      (0, 1500, 2000, 3000), (2000, 1500, 4000, 3000)]


@pytest.mark.parametrize("width,height,limit", [
    (4000, 3000, 4_000_000), (4001, 2999, 1_000_000), (10_000, 300, 500_000), (300, 9000, 250_000),
    (1000, 1000, 999_999), (7, 5, 4), (4032, 3024, 2_000_000),
])
def test_tiles_cover_every_pixel_once_and_stay_under_the_limit(width, height, limit):
    tiles = tile_grid(width, height, limit)
    assert len(tiles) > 1
    assert (coverage(tiles, width, height) == 1).all()
    assert all(t.width * t.height <= limit for t in tiles)
    assert [t.index for t in tiles] == list(range(len(tiles)))
    sides_w = {t.width for t in tiles}
    sides_h = {t.height for t in tiles}
    assert max(sides_w) - min(sides_w) <= 1 and max(sides_h) - min(sides_h) <= 1


def test_a_box_is_in_the_tile_that_holds_it_or_in_none_when_it_crosses_a_border():
    tiles = tile_grid(4000, 3000, 4_000_000)
    assert tile_containing(tiles, [2000, 10, 2100, 1500]).index == 1
    assert tile_containing(tiles, [0, 1500, 2000, 3000]).index == 2
    assert tile_containing(tiles, [1990, 10, 2010, 20]) is None


def test_tiled_regions_never_cross_a_tile_border_and_are_numbered_contiguously():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)
    tiles = tile_grid(90, 60, 1500)
    labels = tiled_regions(image, tiles, lambda pixels, n: slic_regions(pixels, n_segments=n), 60)
    assert labels.shape == (60, 90)
    ids = np.unique(labels)
    assert (ids == np.arange(len(ids))).all()
    owners: dict[int, set[int]] = {}
    for tile in tiles:
        for region in np.unique(labels[tile.slices]):
            owners.setdefault(int(region), set()).add(tile.index)
    assert all(len(tiles_of) == 1 for tiles_of in owners.values())
    assert len({tile_index for tiles_of in owners.values() for tile_index in tiles_of}) == len(tiles)
