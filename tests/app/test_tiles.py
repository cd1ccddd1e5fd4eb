"""Large images are queried and labeled as tiles; their masks stay whole-image in storage."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from annotator.models import Query, Round
from annotator.selectors_labeling import query_tile
from annotator.services.labeling import InvalidMask, annotation_save
from annotator.services.queries import image_queries_store, queries_store
from annotator.services.superpixels import image_superpixels, image_tiles
from learning.labels import IGNORE_INDEX
from learning.round_step import ProposedQuery, RoundProposal
from learning.selection import QuerySpec
from learning.suggestions import Suggestion, fallback_thresholds
from tests.conftest import png_bytes
from tests.factories import make_annotation, make_image, make_model_version, make_query, make_round

pytestmark = pytest.mark.django_db

W, H = 40, 30  # tiled into four 20×15 tiles under the limit below
TILE_PIXELS = 400


@pytest.fixture(autouse=True)
def small_tiles(settings):
    settings.MASKLOOP_TILE_PIXELS = TILE_PIXELS


@pytest.fixture
def round_(project):
    return make_round(project, number=0, state=Round.State.LABELING)


def read_png(data: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(data)))


def stored(field) -> np.ndarray:
    with field.open("rb") as handle:
        return read_png(handle.read())


def tile_query(round_, image, index: int) -> Query:
    tile = image_tiles(width=image.width, height=image.height)[index]
    region = np.zeros((image.height, image.width), dtype=bool)
    region[tile.slices] = True
    return make_query(round_, image, region=region, region_key=f"image-t{index}")


def test_a_cold_start_queries_a_large_image_tile_by_tile_and_a_small_one_whole(project, round_):
    big = make_image(project, size=(W, H))
    small = make_image(project, size=(20, 15))
    assert image_queries_store(round_=round_, images=[big, small])
    tiles = image_tiles(width=W, height=H)
    assert len(tiles) == 4
    by_key = {q.region_key: q for q in Query.objects.filter(image=big)}
    assert sorted(by_key) == ["image-t0", "image-t1", "image-t2", "image-t3"]
    for tile in tiles:
        query = by_key[f"image-t{tile.index}"]
        assert query.region_bbox == list(tile.box) and query.pixels == tile.width * tile.height
        assert query_tile(query=query) == tile
        region = stored(query.region_mask)
        assert region.shape == (H, W) and (region[tile.slices] == 255).all() and region.sum() == 255 * query.pixels
    whole = Query.objects.get(image=small)
    assert whole.region_key == "" and not whole.region_mask and query_tile(query=whole) is None


def test_a_region_query_across_tile_borders_becomes_one_query_per_tile(project, round_):
    image = make_image(project, size=(W, H))
    mask = np.zeros((H, W), dtype=bool)
    mask[10:20, 15:25] = True  # crosses the borders at x = 20 and y = 15
    suggested = np.full((H, W), IGNORE_INDEX, dtype=np.uint8)
    suggested[10:20, 15:25] = 1
    proposal = RoundProposal(
        queries=[ProposedQuery("k", QuerySpec(
            key="k", region_ids=(3, 4, 9), pixels=int(mask.sum()), score=0.7, rank=0, mask=mask),
            Suggestion(mask=suggested, confidence=np.full((H, W), 200, np.uint8)), np.full((H, W), 200, np.uint8))],
        thresholds=fallback_thresholds(3),
        uncertainty_weight=None, val_quality=None,
    )
    assert queries_store(round_=round_, model_version=make_model_version(project, round_=round_),
                         proposal=proposal, images={"k": image})
    queries = list(Query.objects.filter(round=round_).order_by("region_key"))
    assert len(queries) == 4 and sum(q.pixels for q in queries) == 100
    union = np.zeros((H, W), dtype=bool)
    for query in queries:
        tile = query_tile(query=query)
        assert tile is not None, f"{query.region_bbox} crosses a tile border"
        region = stored(query.region_mask) == 255
        assert not region[~np.pad(np.ones((tile.height, tile.width), bool),
                                  ((tile.y0, H - tile.y1), (tile.x0, W - tile.x1)))].any()
        assert not (union & region).any()
        union |= region
        suggestion = stored(query.suggestions.get().mask)
        assert (suggestion[region] == 1).all() and (suggestion[~region] == IGNORE_INDEX).all()
    assert (union == mask).all()


def test_a_tile_save_writes_the_tile_into_the_previous_whole_image_version(project, users, round_):
    image = make_image(project, size=(W, H))
    query = tile_query(round_, image, 3)
    rng = np.random.default_rng(1)
    previous = rng.choice(np.array([0, 1, 2, IGNORE_INDEX], np.uint8), size=(H, W))
    make_annotation(query, previous, author=users["annotator"], submitted=False)
    painted = rng.choice(np.array([0, 1, 2, IGNORE_INDEX], np.uint8), size=(15, 20))
    result = annotation_save(query=query, user=users["annotator"], mask_png=png_bytes(painted), base_version=1,
                             submit=True)
    whole = stored(result.annotation.mask)
    expected = previous.copy()
    expected[15:30, 20:40] = painted
    assert whole.shape == (H, W)
    assert (whole == expected).all()
    assert result.annotation.labeled_pixels == int((expected != IGNORE_INDEX).sum())


def test_a_first_tile_save_leaves_the_rest_of_the_image_void(project, users, round_):
    image = make_image(project, size=(W, H))
    query = tile_query(round_, image, 0)
    result = annotation_save(query=query, user=users["annotator"], mask_png=png_bytes(np.full((15, 20), 2, np.uint8)),
                             base_version=0)
    whole = stored(result.annotation.mask).copy()
    assert (whole[:15, :20] == 2).all()
    whole[:15, :20] = IGNORE_INDEX
    assert (whole == IGNORE_INDEX).all()


def test_a_tile_query_refuses_a_whole_image_mask(project, users, round_):
    query = tile_query(round_, make_image(project, size=(W, H)), 1)
    with pytest.raises(InvalidMask, match="20×15"):
        annotation_save(query=query, user=users["annotator"], mask_png=png_bytes(np.zeros((H, W), np.uint8)),
                        base_version=0)


def test_the_api_serves_a_tile_query_as_its_tile_and_the_whole_image_as_context(project, users, round_, client):
    pixels = np.random.default_rng(2).integers(0, 255, (H, W, 3), dtype=np.uint8)
    image = make_image(project, size=(W, H), pixels=pixels)
    query = tile_query(round_, image, 1)  # x 20–40, y 0–15
    version = np.random.default_rng(3).choice(np.array([0, 1, IGNORE_INDEX], np.uint8), size=(H, W))
    make_annotation(query, version, author=users["annotator"], submitted=False)
    client.force_login(users["annotator"])
    detail = client.get(f"/api/labeling/queries/{query.pk}/").json()
    assert (detail["image"]["width"], detail["image"]["height"]) == (20, 15)
    assert detail["tile"]["box"] == [20, 0, 40, 15] and detail["tile"]["image_width"] == W
    assert detail["region"]["bbox"] == [0, 0, 20, 15]
    with image.file.open("rb") as handle:
        decoded = np.asarray(PILImage.open(handle).convert("RGB"))
    crop = read_png(body(client.get(detail["image"]["url"])))
    assert (crop == decoded[0:15, 20:40]).all()
    assert (read_png(client.get(detail["annotation"]["mask_url"]).content) == version[0:15, 20:40]).all()
    assert (read_png(client.get(detail["region"]["mask_url"]).content) == 255).all()
    superpixels = image_superpixels(image=image)
    for tile in image_tiles(width=W, height=H):  # computed per tile: no superpixel crosses a tile border
        inside = set(np.unique(superpixels[tile.slices]))
        outside = set(np.unique(np.where(np.pad(np.zeros((tile.height, tile.width), bool),
                                                ((tile.y0, H - tile.y1), (tile.x0, W - tile.x1)),
                                                constant_values=True), superpixels, -1))) - {-1}
        assert not inside & outside
    served = read_png(client.get(detail["superpixels_url"]).content)
    assert (served == superpixels[0:15, 20:40]).all()
    context = client.get(detail["tile"]["context_url"])
    assert context.status_code == 200 and PILImage.open(io.BytesIO(body(context))).size == (W, H)
    assert client.get(f"{detail['annotation']['mask_url'].split('?')[0]}?box=0,0,41,15").status_code == 400


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_a_tiles_crop_and_context_are_made_once_then_read_from_storage(project, users, round_, client, monkeypatch):
    from annotator.services import derived_images

    image = make_image(project, size=(W, H), pixels=np.random.default_rng(4).integers(0, 255, (H, W, 3), np.uint8))
    query = tile_query(round_, image, 1)
    client.force_login(users["annotator"])
    detail = client.get(f"/api/labeling/queries/{query.pk}/").json()
    first_crop, first_context = body(client.get(detail["image"]["url"])), body(client.get(detail["tile"]["context_url"]))
    storage = image.file.storage
    assert storage.exists(f"projects/{project.pk}/tiles/{image.checksum}-20-0-40-15.png")

    def no_decoding(*args, **kwargs):
        raise AssertionError("the image was decoded again")

    monkeypatch.setattr(derived_images.PILImage, "open", no_decoding)
    assert body(client.get(detail["image"]["url"])) == first_crop
    assert body(client.get(detail["tile"]["context_url"])) == first_context


def test_a_small_image_keeps_whole_image_labeling(project, users, round_, client):
    query = make_query(round_, make_image(project, size=(20, 15)))
    client.force_login(users["annotator"])
    detail = client.get(f"/api/labeling/queries/{query.pk}/").json()
    assert detail["tile"] is None and (detail["image"]["width"], detail["image"]["height"]) == (20, 15)
    assert client.get(f"/api/labeling/queries/{query.pk}/context/").status_code == 404
