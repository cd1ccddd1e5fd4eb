"""The round's pool reads label and queried masks lazily, and the selection store follows the rows that name them.

``round_pool`` hands the ML core one loader per mask instead of the mask,
so a large pool's selection never holds every labeled image's masks; the
loaders must give the masks the eager reads gave, and their identities
(annotation rows, answered queries) must keep the store fresh exactly until
an answer changes an image's labels.
"""
from __future__ import annotations

import numpy as np
import pytest
from django.db import transaction
from PIL import Image as PILImage

from annotator.imaging import encode_png
from annotator.models import Job, Round
from annotator.services.labeling import annotation_save, query_next
from annotator.services.round_data import class_names, latest_labels, queried_masks, round_pool
from annotator.services.round_jobs import round_select_run, round_train_run
from annotator.services.round_selection import _round_model, _score_cache
from annotator.services.rounds import project_start
from annotator.services.superpixels import image_superpixels
from learning.data import load_mask
from learning.round_step import summary_spec
from learning.selection import store as store_module
from learning.selection.masks import LazyMask, mask_array
from learning.selection.streaming import missing_shards, score_into_store
from tests.app.test_round_loop import ORACLE, tiny_project

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def answer_one_query(project, user) -> int:
    """The annotator answers the next query with the oracle's labels; returns its image's id."""
    query = query_next(project=project, user=user)
    region = np.asarray(PILImage.open(query.region_mask.path)) > 0
    mask = np.where(region, ORACLE[query.image.original_name], 255).astype(np.uint8)
    annotation_save(query=query, user=user, mask_png=encode_png(mask), base_version=0, submit=True)
    return query.image_id


def test_the_pool_reads_masks_lazily_and_the_store_is_rescored_only_where_an_answer_changed_labels(
        users, monkeypatch, settings, django_assert_max_num_queries, django_assert_num_queries):
    monkeypatch.setattr(store_module, "SHARD_SIZE", 1)  # one shard per image: staleness shows per image
    settings.MASKLOOP_PARALLEL_SCORING_MIN_SHARDS = 0
    project = tiny_project(users, steps_initial=2)
    with transaction.atomic():
        round0 = project_start(project=project)
    job = Job.objects.get(round=round0)
    assert round_train_run(job_id=job.pk) == "trained" and round_select_run(job_id=job.pk) == "opened"
    round0 = Round.objects.get(pk=round0.pk)
    model, selection = _round_model(round0, class_names(project))

    def store_and_pool():
        with django_assert_max_num_queries(4):  # labels, answered queries, images: whatever the pool's size
            images, pool = round_pool(project)
        return images, pool, _score_cache(round0).summaries(summary_spec(selection, len(pool)))

    # Nothing changed since the round's selection filled the store: a new read of the pool finds it fresh.
    images, pool, store = store_and_pool()
    assert len(pool) == 3 and missing_shards(pool, store) == []

    answered = answer_one_query(project, users["annotator"])
    images, pool, store = store_and_pool()
    position = [image.pk for image in images].index(answered)
    assert missing_shards(pool, store) == [position]  # only the answered image's shard is stale

    # The loaders give what the eager reads gave, from files alone.
    labels = {pk: load_mask(a.mask.path) for pk, a in latest_labels(project).items()}
    asked = queried_masks(project)
    assert isinstance(pool[position].labels, LazyMask) and isinstance(pool[position].queried, LazyMask)
    for image, entry in zip(images, pool):
        with django_assert_num_queries(0):
            got_labels, got_queried = mask_array(entry.labels), mask_array(entry.queried)
        assert (got_labels is None) == (image.pk not in labels)
        assert (got_queried is None) == (image.pk not in asked)
        if got_labels is not None:
            assert np.array_equal(got_labels, labels[image.pk])
        if got_queried is not None:
            assert got_queried.dtype == bool and np.array_equal(got_queried, asked[image.pk])

    by_key = {entry.key: image for entry, image in zip(pool, images)}
    assert score_into_store(model, pool, store, regions=lambda key: image_superpixels(image=by_key[key]),
                            device="cpu") == [position]
    _, pool, store = store_and_pool()
    assert missing_shards(pool, store) == []
