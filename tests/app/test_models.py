"""Invariants the data model enforces by itself (constraints), whatever code writes the rows."""
import pytest
from django.db import IntegrityError, transaction

from annotator.models import Job, LabelClass, Membership, Project, Query, Round
from annotator.services.errors import ServiceError
from annotator.services.projects import ClassSpec, membership_set, project_create, project_set_classes
from models_store.models import ModelVersion
from tests.factories import make_annotation, make_image, make_model_version, make_query, make_round

pytestmark = pytest.mark.django_db


def test_class_index_and_name_and_hotkey_are_unique_per_project(project):
    for duplicate in (dict(index=0, name="x"), dict(index=7, name="road"), dict(index=8, name="y", hotkey="1")):
        with pytest.raises(IntegrityError), transaction.atomic():
            LabelClass.objects.create(project=project, color="#000000", **{"hotkey": "", **duplicate})


def test_class_index_must_stay_below_the_ignore_value(project):
    with pytest.raises(IntegrityError), transaction.atomic():
        LabelClass.objects.create(project=project, index=255, name="void", color="#000000")


def test_class_list_needs_contiguous_indices_and_distinct_hotkeys(project):
    with pytest.raises(ServiceError, match="0..N-1"):
        project_set_classes(project=project, classes=[ClassSpec(0, "a", "#000000"), ClassSpec(2, "b", "#000000")])
    with pytest.raises(ServiceError, match="hotkey"):
        project_set_classes(project=project, classes=[ClassSpec(0, "a", "#000000", "1"),
                                                      ClassSpec(1, "b", "#000000", "1")])


def test_classes_cannot_be_added_once_masks_exist_but_can_be_renamed(project):
    import numpy as np

    make_image(project, gt=np.zeros((48, 64), np.uint8), domain="source", split="train")
    renamed = [ClassSpec(0, "street", "#111111", "1"), ClassSpec(1, "car", "#400080", "2"),
               ClassSpec(2, "sky", "#808080", "3")]
    project_set_classes(project=project, classes=renamed)
    assert list(project.classes.values_list("name", flat=True)) == ["street", "car", "sky"]
    with pytest.raises(ServiceError, match="masks exist already"):
        project_set_classes(project=project, classes=[*renamed, ClassSpec(3, "tree", "#00ff00")])


def test_one_membership_per_user_and_project_and_role_changes_in_place(project, users):
    membership_set(project=project, user=users["annotator"], role=Membership.Role.LEAD)
    assert Membership.objects.get(project=project, user=users["annotator"]).role == "lead"
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(project=project, user=users["annotator"], role="annotator")


def test_project_creator_becomes_lead(users):
    project = project_create(name="P", created_by=users["lead"])
    assert Membership.objects.get(project=project, user=users["lead"]).role == Membership.Role.LEAD
    with pytest.raises(ServiceError, match="exists already"):
        project_create(name="P")


def test_a_refused_class_list_leaves_no_half_created_project(users):
    with pytest.raises(ServiceError, match="0..N-1"):
        project_create(name="Half", classes=[ClassSpec(0, "road", "#808080"), ClassSpec(2, "car", "#ff0000")], created_by=users["lead"])
    assert not Project.objects.filter(name="Half").exists()


def test_round_numbers_are_unique_and_states_only_move_forward(project):
    round_ = make_round(project, number=0, state=Round.State.TRAINING)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_round(project, number=0)
    assert round_.can_move_to(Round.State.SELECTING)
    assert not round_.can_move_to(Round.State.LABELING)
    round_.state = Round.State.CLOSED
    assert not any(round_.can_move_to(state) for state in Round.State.values)


def test_a_region_is_queried_at_most_once_per_round(project):
    image = make_image(project)
    round_ = make_round(project)
    make_query(round_, image, region_key="sp-3")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_query(round_, image, region_key="sp-3")
    make_query(round_, image, region_key="sp-4")
    assert Query.objects.filter(round=round_).count() == 2


def test_annotation_versions_are_unique_per_image(project):
    import numpy as np

    image = make_image(project)
    query = make_query(make_round(project), image)
    first = make_annotation(query, np.zeros((48, 64), np.uint8))
    second = make_annotation(query, np.ones((48, 64), np.uint8))
    assert (first.version, second.version, second.parent_id) == (1, 2, first.pk)
    with pytest.raises(IntegrityError), transaction.atomic():
        type(first).objects.create(image=image, version=2, mask=first.mask.name)


def test_one_model_version_per_round_and_version_number(project):
    round_ = make_round(project, number=0, state=Round.State.TRAINING)
    make_model_version(project, round_=round_, version=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_model_version(project, round_=round_, version=2)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_model_version(project, version=1)
    assert ModelVersion.objects.filter(project=project).count() == 1


def test_job_progress_cannot_exceed_100(project):
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.create(project=project, kind=Job.Kind.ROUND, progress=101)


def test_every_model_is_in_the_admin():
    from django.apps import apps
    from django.contrib import admin

    for app in ("annotator", "models_store"):
        for model in apps.get_app_config(app).get_models():
            assert admin.site.is_registered(model), f"{model.__name__} is not in the Django admin"


def test_project_defaults_are_valid():
    project = Project(name="defaults")
    project.full_clean()
    assert (project.query_unit, project.strategy, project.architecture) == (
        "region", "adaptive", "deeplabv3_mobilenet_v3_large")


def test_initial_checkpoint_must_exist_on_the_server(project, tmp_path, settings):
    from annotator.services.projects import project_update

    settings.MASKLOOP_INIT_CHECKPOINT_ROOTS = [str(tmp_path)]
    with pytest.raises(ServiceError, match="a backbone file or a checkpoint folder"):
        project_update(project=project, init_checkpoint=str(tmp_path / "imagenet.pth"))
    (tmp_path / "imagenet.pth").write_bytes(b"weights")
    assert project_update(project=project, init_checkpoint=str(tmp_path / "imagenet.pth")).init_checkpoint
