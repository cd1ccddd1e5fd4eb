"""How many target pixels people have labeled: the one definition behind every such figure.

Labeled pixels are the non-void pixels (``Annotation.labeled_pixels``) of each pool image's latest
submitted version that may train the model (``round_data.trainable_labels``): what the next model
learns from. Not the size of the regions asked for (a region may be left partly void), and never a
validation image's label.

Each version adds ``its labeled_pixels − the previous counted version's`` to the round it answered
(its query's round) and to its author; the sums telescope, so the rounds (and the people) add up
exactly to the total, and "labeled before round r" is what round r's model trained on. The dashboard's
cards, round rows and charts and the metrics API all read :func:`labeled_pixels`.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from .models import Annotation, Image, Project


@dataclass(frozen=True)
class LabeledPixels:
    total: int
    pool_pixels: int  # every pixel of the target pool: what the fractions are shares of
    by_round: dict[int, int]  # round number → pixels its answers added
    by_author: dict[str, int]  # user name → pixels their versions added

    def before(self, number: int) -> int:
        """Pixels labeled in the rounds before round ``number``: what that round's model trains on."""
        return sum(pixels for round_number, pixels in self.by_round.items() if round_number < number)

    def share(self, pixels: int) -> float | None:
        return pixels / self.pool_pixels if self.pool_pixels else None


def labeled_pixels(*, project: Project) -> LabeledPixels:
    from .services.round_data import trainable_labels

    pool = project.images.filter(domain=Image.Domain.TARGET, split=Image.Split.POOL)
    rows = (Annotation.objects.filter(image__in=pool, is_submitted=True).filter(trainable_labels(project))
            .order_by("image_id", "version")
            .values_list("image_id", "labeled_pixels", "query__round__number", "created_at", "author__username"))
    # A version without a query (made outside a round's queue) counts in the round that was open when it was saved.
    starts = list(project.rounds.order_by("number").values_list("created_at", "number"))
    latest: dict[int, int] = {}
    by_round: dict[int, int] = {}
    by_author: dict[str, int] = {}
    for image_id, pixels, number, created_at, author in rows:
        gained = pixels - latest.get(image_id, 0)
        latest[image_id] = pixels
        if number is None:
            at = bisect_right([start for start, _ in starts], created_at) - 1
            number = starts[at][1] if at >= 0 else 0
        by_round[number] = by_round.get(number, 0) + gained
        if author:
            by_author[author] = by_author.get(author, 0) + gained
    pool_pixels = sum(width * height for width, height in pool.values_list("width", "height"))
    return LabeledPixels(total=sum(latest.values()), pool_pixels=pool_pixels, by_round=by_round, by_author=by_author)
