"""The tile grid of a large image: the one rule of where an image is cut for queries, labeling and superpixels.

An image above ``max_pixels`` is cut into a grid of near-equal tiles, each at
most ``max_pixels``; smaller images are one tile (the whole image) and are never
tiled. Tiles do not overlap: every pixel belongs to exactly one tile, so a
region computed inside a tile never crosses a tile border, and a query whose
box lies inside a tile can be labeled on that tile alone while the mask stays
whole-image in storage. Plain numpy, no Django.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tile:
    """Pixels ``[x0, x1) × [y0, y1)`` of an image; ``index`` in row-major order."""

    index: int
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x1, self.y1

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def slices(self) -> tuple[slice, slice]:
        """``array[tile.slices]`` is the tile's part of an ``(H, W, …)`` array."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def contains(self, bbox: Sequence[int]) -> bool:
        """Whether the box ``[x0, y0, x1, y1]`` (exclusive ends) lies inside this tile."""
        x0, y0, x1, y1 = (int(v) for v in bbox)
        return self.x0 <= x0 and self.y0 <= y0 and x1 <= self.x1 and y1 <= self.y1


def is_tiled(width: int, height: int, max_pixels: int) -> bool:
    return width * height > max_pixels


def tile_grid(width: int, height: int, max_pixels: int) -> list[Tile]:
    """The tiles of a ``width``×``height`` image, each of at most ``max_pixels`` pixels.

    The fewest tiles of near-square shape: the column count follows the image's
    aspect ratio, then rows and columns grow until a tile fits. Tile sides
    differ by at most one pixel, and the tiles cover the image exactly.
    """
    if width < 1 or height < 1 or max_pixels < 1:
        raise ValueError(f"need a positive image size and tile limit, got {width}×{height} and {max_pixels}")
    if not is_tiled(width, height, max_pixels):
        return [Tile(0, 0, 0, width, height)]
    needed = math.ceil(width * height / max_pixels)
    cols = max(1, min(width, round(math.sqrt(needed * width / height))))
    rows = max(1, min(height, math.ceil(needed / cols)))
    while math.ceil(width / cols) * math.ceil(height / rows) > max_pixels:
        # Grow the side whose tiles are longer, so tiles stay close to square.
        if math.ceil(width / cols) >= math.ceil(height / rows) and cols < width:
            cols += 1
        elif rows < height:
            rows += 1
        else:
            cols += 1
    xs = [round(i * width / cols) for i in range(cols + 1)]
    ys = [round(j * height / rows) for j in range(rows + 1)]
    return [Tile(j * cols + i, xs[i], ys[j], xs[i + 1], ys[j + 1]) for j in range(rows) for i in range(cols)]


def tile_containing(tiles: Sequence[Tile], bbox: Sequence[int]) -> Tile | None:
    """The tile holding all of ``bbox`` ([x0, y0, x1, y1]); None when it crosses a tile border."""
    return next((tile for tile in tiles if tile.contains(bbox)), None)


def tiled_regions(
    image: np.ndarray, tiles: Sequence[Tile], segment: Callable[[np.ndarray, int], np.ndarray], n_segments: int,
) -> np.ndarray:
    """A region map of ``image`` made tile by tile: no region crosses a tile border.

    ``segment(tile_pixels, n)`` returns a contiguous ``0..R-1`` label map of one
    tile (e.g. SLIC); ``n_segments`` is shared between the tiles by area. Ids
    are offset per tile, so the whole map is contiguous ``0..R-1`` too.
    """
    height, width = image.shape[:2]
    labels = np.empty((height, width), dtype=np.int32)
    total = width * height
    offset = 0
    for tile in tiles:
        share = max(1, round(n_segments * tile.width * tile.height / total))
        part = segment(image[tile.slices], share).astype(np.int32)
        _, part = np.unique(part, return_inverse=True)  # contiguous even if a segmenter skipped ids
        part = part.reshape(tile.height, tile.width)
        labels[tile.slices] = part + offset
        offset += int(part.max()) + 1
    return labels
