"""Forms of the lead pages. They validate input; the services decide (and say why they refuse)."""
from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model

from annotator.models import Image, Membership, Project, hex_color
from annotator.services.exports import EXPORT_FORMATS
from annotator.services.init_checkpoints import init_checkpoint_choices
from annotator.services.projects import ClassSpec, class_specs_complete

HEX_COLOR = hex_color.regex  # the model's own rule for a class colour

SETTINGS_GROUPS = (
    ("Budget and schedule", ("query_unit", "budget_unit", "budget_per_round", "rounds_total", "validation_images",
                              "cold_start_images")),
    ("Selection strategy", ("strategy", "uncertainty_measure", "diversity_weight")),
    ("Model", ("architecture", "pretrained", "train_height", "train_width", "train_steps_initial",
               "train_steps_per_round", "init_checkpoint")),
    ("Domain adaptation and label-efficient training", ("adversarial_adaptation", "self_training",
                                                        "consistency_training", "pixel_contrastive",
                                                        "target_statistics", "ssl_pretraining")),
    ("Suggestions", ("suggestion_precision",)),
    ("Review and agreement", ("review_mode", "review_sample_percent", "training_source", "review_blocks_round",
                              "agreement_percent", "agreement_threshold", "agreement_boundary_px")),
)

SETTINGS_COLUMNS = (
    ("Budget and schedule", "Suggestions"),
    ("Selection strategy", "Domain adaptation and label-efficient training"),
    ("Model", "Review and agreement"),
)

HELP = {
    "budget_per_round": "How much annotators label per round, in the unit on the left.",
    "rounds_total": "Labeling rounds after round 0; the project ends after the last one's model is evaluated.",
    "query_unit": "Region queries (superpixels) ask for the most useful parts of images only.",
    "uncertainty_measure": "How the model's doubt about a pixel is scored.",
    "train_steps_initial": "Optimizer steps of round 0 (source + unlabeled target).",
    "train_steps_per_round": "Fine-tuning steps of every later round (warm start from the previous model).",
    "suggestion_precision": "Pixels are pre-filled only where the model reaches this precision on validation "
                            "pixels; the rest stays for the annotator (0.95 = 95 %).",
    "pretrained": "Where round 0's backbone starts. ImageNet weights come from torch's cache ($TORCH_HOME), "
                  "downloaded once when the machine is online; the dashboard says which start was used.",
    "consistency_training": "Mean-teacher weak-to-strong consistency on unlabeled target images. Off by default: "
                            "with labels it added nothing on street scenes and a biased teacher made polyp rounds "
                            "worse. When on, round 0 trains without it (its teacher needs a trained model to copy); "
                            "it joins from round 1 on.",
    "validation_images": "When no validation masks were imported, this many target images are set aside at the "
                         "start and labeled like any query; they never train the model. mIoU shows from 5 on.",
    "cold_start_images": "A project that starts with no labels first asks for this many whole images, picked to "
                         "differ from each other as much as possible (at most half the pool), so its first model "
                         "learns from more than the one or two images a small budget buys. 0 = the budget alone.",
    "target_statistics": "After training, the network's BatchNorm statistics can be re-estimated on the unlabeled "
                         "target images (one pass, seconds). That helped street scenes and the demo by 7 to 26 mIoU "
                         "and cost polyp frames 8, so by default the target validation labels decide, round by "
                         "round; without them the model stays as trained. The job log says which was kept.",
    "adversarial_adaptation": "Output-space adversarial adaptation from a labeled source domain to the target "
                              "images. Without labeled source images there is no gap to close: it is left out.",
}


class ProjectCreateForm(forms.Form):
    name = forms.CharField(max_length=120)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    classes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "road\ncar #dc143c\nsky"}), required=False,
        help_text="One class per line, optionally with a #rrggbb colour. Leave empty to take them from the "
                  "classes.json of your first import.",
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if Project.objects.filter(name=name).exists():
            raise forms.ValidationError(f"A project named {name!r} exists already.")
        return name

    def clean_classes(self) -> list[ClassSpec]:
        entries, problems = [], []
        for number, line in enumerate(self.cleaned_data["classes"].splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            color = parts[-1] if parts[-1].startswith("#") else None
            if color is not None and not HEX_COLOR.fullmatch(color):
                problems.append(f"line {number}: {color!r} is not a colour like #1f77b4 (# and six hex digits)")
            name = " ".join(parts[:-1] if color else parts)
            if not name:
                problems.append(f"line {number}: a class needs a name before its colour")
            entries.append({"name": name, "color": color})
        if problems:
            raise forms.ValidationError([p[0].upper() + p[1:] + "." for p in problems])
        if len(entries) == 1:
            raise forms.ValidationError("A segmentation project needs at least two classes.")
        return class_specs_complete(entries)


class ProjectSettingsForm(forms.ModelForm):
    """Every setting a lead edits; those fixed after the start are shown disabled."""

    class Meta:
        model = Project
        fields = ["name", "description", *(f for _, group in SETTINGS_GROUPS for f in group)]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "diversity_weight": forms.NumberInput(attrs={"step": "0.05", "min": "0", "max": "1"}),
            "suggestion_precision": forms.NumberInput(attrs={"step": "0.01", "min": "0.5", "max": "1"}),
            "budget_per_round": forms.NumberInput(attrs={"step": "any", "min": "0"}),
        }
        help_texts = HELP
        labels = {
            "budget_unit": "Budget unit", "budget_per_round": "Budget per round", "rounds_total": "Rounds",
            "train_height": "Training crop height (px)", "train_width": "Training crop width (px)",
            "train_steps_initial": "Training steps, round 0", "train_steps_per_round": "Training steps, later rounds",
            "init_checkpoint": "Initial checkpoint (optional)",
            "adversarial_adaptation": "Adversarial adaptation", "self_training": "Self-training",
            "consistency_training": "Consistency training", "pixel_contrastive": "Pixel contrastive loss",
            "target_statistics": "Target BatchNorm statistics",
            "ssl_pretraining": "Self-supervised pretraining", "suggestion_precision": "Suggestion precision target",
            "pretrained": "Pretrained backbone", "validation_images": "Validation images to label in the app",
            "cold_start_images": "First images to label when starting without labels",
            "review_mode": "Review", "review_sample_percent": "Sample reviewed (%)",
            "training_source": "What trains the model", "review_blocks_round": "Round closing waits for reviews",
            "agreement_percent": "Queries labeled twice (%)", "agreement_threshold": "Agreement threshold (mIoU)",
            "agreement_boundary_px": "Boundary tolerance (px)",
        }

    def __init__(self, *args, locked: frozenset[str] = frozenset(), **kwargs):
        super().__init__(*args, **kwargs)
        self._offer_init_checkpoints()
        for name in locked:
            self.fields[name].disabled = True
            self.fields[name].help_text = "Fixed once the project has started."

    def _offer_init_checkpoints(self) -> None:
        """A choice among what staff placed under MASKLOOP_INIT_CHECKPOINT_ROOTS, never a free path."""
        field = self.fields["init_checkpoint"]
        choices = [("", "None: train from scratch"), *init_checkpoint_choices(project=self.instance)]
        current = self.instance.init_checkpoint
        if current and current not in dict(choices):
            choices.append((current, f"{current} (no longer available)"))
        self.fields["init_checkpoint"] = forms.ChoiceField(
            choices=choices, required=False, label=field.label,
            help_text="Backbone files and checkpoint folders an administrator placed on the server "
                      "(MASKLOOP_INIT_CHECKPOINT_ROOTS).",
        )

    def columns(self):
        """The groups as three page columns of (title, [bound fields]), balanced by height."""
        groups = {title: [self[name] for name in names] for title, names in SETTINGS_GROUPS}
        return [[(title, groups[title]) for title in column] for column in SETTINGS_COLUMNS]


class ClassForm(forms.Form):
    name = forms.CharField(max_length=64)
    color = forms.CharField(max_length=7, validators=[hex_color], widget=forms.TextInput(attrs={"type": "color"}))
    hotkey = forms.CharField(max_length=1, required=False, widget=forms.TextInput(attrs={"size": 2}))


ClassFormSet = forms.formset_factory(ClassForm, extra=1, can_delete=True)
LockedClassFormSet = forms.formset_factory(ClassForm, extra=0, can_delete=False)


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"list": "usernames"}))
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.ANNOTATOR)

    def clean_username(self):
        user = get_user_model().objects.filter(username=self.cleaned_data["username"].strip()).first()
        if user is None:
            raise forms.ValidationError("There is no user with this name (an admin creates accounts).")
        return user


class ImportForm(forms.Form):
    domain = forms.ChoiceField(choices=Image.Domain.choices, initial=Image.Domain.TARGET)
    archive = forms.FileField(required=False, label="Zip file",
                              help_text="images/ (+ masks/ with the same stems as .png, + classes.json).",
                              widget=forms.ClearableFileInput(attrs={"accept": ".zip"}))
    folder = forms.CharField(required=False, label="…or a folder on the server",
                             widget=forms.TextInput(attrs={"placeholder": "/data/imports/dusk"}))
    val_count = forms.IntegerField(min_value=0, initial=0, label="Validation images",
                                   help_text="Target only: the last N images in name (frame) order become frozen "
                                             "validation images; they need masks.")

    def clean(self):
        data = super().clean()
        if bool(data.get("archive")) == bool(data.get("folder", "").strip()):
            raise forms.ValidationError("Give either a zip file or a server folder.")
        return data


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=[(name, fmt.label) for name, fmt in EXPORT_FORMATS.items()])
    include_imported = forms.BooleanField(required=False, initial=True,
                                          label="Include imported ground truth (source, validation)")
