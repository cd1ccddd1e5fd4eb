from __future__ import annotations

import json

import pytest
import torch

from learning.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from learning.models import build_model, model_forward

CLASSES = ["road", "car", "sky"]


@pytest.fixture
def model():
    return build_model("lraspp_mobilenet_v3_large", len(CLASSES)).eval()


def _save(model, path, **meta):
    return save_checkpoint(path, state_dict=model.state_dict(), meta={
        "architecture": "lraspp_mobilenet_v3_large", "classes": CLASSES, "parent_version": None,
        "metrics": {"miou": 0.5}, **meta})


def test_round_trip_restores_identical_weights_and_meta(model, tmp_path):
    path = _save(model, tmp_path / "v1", data_hashes={"labeled": "abc"})
    state_dict, meta = load_checkpoint(path, expected_classes=CLASSES)
    for key, value in model.state_dict().items():
        assert torch.equal(state_dict[key], value), key
    assert meta["classes"] == CLASSES and meta["data_hashes"] == {"labeled": "abc"}
    assert len(meta["weights_sha256"]) == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1"]  # no temp leftovers


def test_load_model_rebuilds_the_architecture(model, tmp_path):
    path = _save(model, tmp_path / "v1")
    loaded, meta = load_model(path, expected_classes=[{"id": i, "name": n} for i, n in enumerate(CLASSES)])
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model_forward(loaded, x).logits, model_forward(model, x).logits)


def test_existing_version_is_never_overwritten(model, tmp_path):
    path = _save(model, tmp_path / "v1")
    before = (path / "weights.pt").read_bytes()
    with pytest.raises(CheckpointError, match="never overwritten"):
        _save(build_model("lraspp_mobilenet_v3_large", 3), tmp_path / "v1")
    assert (path / "weights.pt").read_bytes() == before


def test_truncated_weights_are_rejected_with_a_clear_error(model, tmp_path):
    path = _save(model, tmp_path / "v1")
    weights = path / "weights.pt"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_same_size_corruption_is_caught_by_the_checksum(model, tmp_path):
    path = _save(model, tmp_path / "v1")
    weights = path / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_unreadable_pickle_with_matching_checksum_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "v1"
    path.mkdir()
    (path / "weights.pt").write_bytes(b"not a torch file")
    import hashlib

    (path / "meta.json").write_text(json.dumps({
        "architecture": "lraspp_mobilenet_v3_large", "classes": CLASSES,
        "weights_sha256": hashlib.sha256(b"not a torch file").hexdigest()}))
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(path)


def test_class_list_mismatch_is_rejected(model, tmp_path):
    path = _save(model, tmp_path / "v1")
    with pytest.raises(CheckpointError, match="trained for classes"):
        load_checkpoint(path, expected_classes=["road", "sky", "car"])


def test_directory_without_meta_is_not_a_checkpoint(tmp_path):
    (tmp_path / "half").mkdir()
    with pytest.raises(CheckpointError, match="no meta.json"):
        load_checkpoint(tmp_path / "half")


def test_a_failed_write_leaves_nothing_that_looks_like_a_version(model, tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("learning.checkpoint._sha256", crash)
    with pytest.raises(OSError, match="disk full"):
        _save(model, tmp_path / "v1")
    assert list(tmp_path.iterdir()) == []


def test_meta_must_name_architecture_and_classes(model, tmp_path):
    with pytest.raises(CheckpointError, match="missing"):
        save_checkpoint(tmp_path / "v1", state_dict=model.state_dict(), meta={"classes": CLASSES})
