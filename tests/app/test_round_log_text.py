"""What a round's job log says: an mIoU as a percentage, and that round 0 trains without consistency."""
import pytest

from annotator.services.projects import project_update
from annotator.services.round_training import _consistency_note, miou_text, train_config
from tests.factories import make_image

pytestmark = pytest.mark.django_db


def test_the_job_log_writes_an_miou_as_a_percentage():
    assert miou_text(0.16698613811979637) == "16.7 %"
    assert miou_text(None) == "n/a (no validation labels yet)"


def test_round_zero_says_consistency_training_joins_later(project):
    make_image(project)
    assert not project.consistency_training  # the default (annotator.models.Project says why)
    project = project_update(project=project, consistency_training=True)
    round0 = train_config(project, round_index=0, warm_start=False)
    assert "consistency" not in round0.objective_names
    assert "consistency training is on but joins from the first fine-tuning round" in _consistency_note(project, round0)
    round1 = train_config(project, round_index=1, warm_start=True)
    assert "consistency" in round1.objective_names and _consistency_note(project, round1) == ""
    project = project_update(project=project, consistency_training=False)
    assert _consistency_note(project, train_config(project, round_index=0, warm_start=False)) == ""


def test_the_settings_page_says_it_too(project, client, users):
    client.force_login(users["lead"])
    html = client.get(f"/projects/{project.pk}/settings/").content.decode()
    assert "Off by default" in html and "round 0 trains without it" in html


def test_a_lead_chooses_which_batchnorm_statistics_a_model_keeps(project, client, users):
    from annotator.models import Project
    from learning.adaptation.batchnorm import STATISTICS_MODES
    from learning.recipe import DEFAULT_TARGET_STATISTICS

    make_image(project)
    assert set(Project.TargetStatistics.values) == set(STATISTICS_MODES)
    assert project.target_statistics == DEFAULT_TARGET_STATISTICS  # the recipe decides the default; the field follows
    assert train_config(project, round_index=1, warm_start=True).target_statistics == "auto"
    project = project_update(project=project, target_statistics="off")
    assert train_config(project, round_index=0, warm_start=False).target_statistics == "off"
    client.force_login(users["lead"])
    html = client.get(f"/projects/{project.pk}/settings/").content.decode()
    assert "Target BatchNorm statistics" in html and "the target validation labels decide" in html
    from annotator.services.errors import ServiceError

    with pytest.raises(ServiceError, match="target_statistics"):
        project_update(project=project, target_statistics="sometimes")


def test_a_new_projects_training_steps_are_the_recipes_defaults(project):
    """The model field cannot import the recipe (torch): the recipe decides the steps, the field follows."""
    from annotator.models import Project
    from learning.recipe import RecipeSettings

    fields = {f.name: f for f in Project._meta.get_fields()}
    assert fields["train_steps_initial"].default == RecipeSettings.steps_initial
    assert fields["train_steps_per_round"].default == RecipeSettings.steps_per_round
    make_image(project)  # the fixture: a project made by the service with every default
    assert project.train_steps_per_round == RecipeSettings.steps_per_round
    assert train_config(project, round_index=1, warm_start=True).steps == RecipeSettings.steps_per_round
