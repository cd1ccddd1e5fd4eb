"""A pool image's labels and already-queried pixels: arrays, or masks read from storage only when needed.

A pool of 100,000 images with a few thousand labeled ones would hold
gigabytes if every label mask and queried mask were loaded up front, while
selection needs an image's masks only while it scores that image and again
for the few images it queries. So a :class:`~learning.round_step.PoolImage`
may carry a :class:`LazyMask` instead of an array: :func:`mask_array` reads
it where the masks are used (and the caller drops it right after), and
:func:`mask_identity` names its content for the selection store's
fingerprint without reading it.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class LazyMask:
    """A mask read by ``load()`` when needed; ``identity`` changes whenever what ``load()`` returns changes.

    The app names a label mask by its annotation row (rows are never
    updated) and a queried mask by the answered queries it is made of, so
    the store can tell stale shards without reading a single file.
    """

    identity: str
    load: Callable[[], np.ndarray]

    def __repr__(self) -> str:
        return f"LazyMask({self.identity!r})"


Mask = np.ndarray | LazyMask | None


def mask_array(mask: Mask) -> np.ndarray | None:
    """The mask as an array: read now if lazy (nothing is kept: a second call reads it again)."""
    return mask.load() if isinstance(mask, LazyMask) else mask


def mask_identity(mask: Mask) -> str:
    """What the mask's content is, for a fingerprint: a digest of an array, the identity of a lazy mask.

    The two never coincide (a lazy identity carries a prefix a hex digest
    lacks), so a store filled from arrays is scored again for lazy masks
    rather than trusted.
    """
    if mask is None:
        return "-"
    if isinstance(mask, LazyMask):
        return f"lazy:{mask.identity}"
    array = np.ascontiguousarray(mask)
    return hashlib.sha1(f"{array.dtype}{array.shape}".encode() + array.tobytes()).hexdigest()
