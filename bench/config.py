"""Suites: one flat TOML file each (`bench/suites/*.toml`), loaded into a frozen `Recipe` whose defaults sit here.

A suite names its dataset, its members (registered model names), an optional list of variants (e.g. Table 1's
median-frequency and natural-frequency halves; a variant's table may name the `members` it is for), one
`[recipe]`, and `[profiles.full]` / `[profiles.paper]` / `[profiles.smoke]` overrides, a profile optionally with
per-member overrides (`[profiles.paper.member.fcn]`, for the paper's per-network iteration counts). The resolved
recipe is written into every run record, so a record alone reproduces its run.

Length settings: where both are set, the iteration form wins over the epoch form (`max_iters` over
`max_epochs`, `eval_every_iters` over `eval_every_epochs`, `budgets_iters` over `budgets_epochs`), so a profile
can restate a schedule in iterations.
"""
from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError, did_you_mean

SUITES_DIR = Path(__file__).with_name("suites")
PROFILES = ("full", "paper", "smoke")
# the paper's tables a suite can name (`tables`): its report shows them beside ours; "table1-costs" is Table 1's
# cost columns and "table6" Table 6, both from `bench profile` records
PAPER_TABLES = ("table1", "table1-costs", "table2", "table3", "table4", "table5", "table6")
MAX_ITERATIONS = 10_000_000  # a run's length, checked before anything is allocated (the paper's longest: 380K)
MAX_EPOCHS = 100_000
MAX_EVALUATIONS = 100_000


@dataclass(frozen=True)
class Recipe:
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    bias_lr_mult: float = 2.0
    # which batch-norm parameters weight decay applies to: "scale" (segnet_train.prototxt: scale decay_mult 1,
    # shift decay_mult 0), "scale-and-shift" (Caffe's default, segnet_basic_train.prototxt), "none"
    bn_weight_decay: str = "scale"
    batch_size: int = 5
    encoder_weights: str = "imagenet"  # "imagenet", "none", or a path to torchvision-layout VGG16 weights
    dropout: float = 0.5
    class_weighting: str = "natural"
    input_normalisation: str = "imagenet"  # "imagenet" (RGB/255, ImageNet mean/std) or "raw-0-255"
    hflip: bool = False
    bn_statistics: str = "recompute"  # "recompute" over the training set before each evaluation, or "running"
    max_epochs: int | None = None
    max_iters: int | None = None
    eval_every_epochs: int | None = None
    eval_every_iters: int | None = None
    budgets_epochs: tuple = ()
    budgets_iters: tuple = ()
    selection: str = "best-val-G"  # or "last"
    # when a run stops before its length (max_iters / max_epochs, then its cap): bench/stopping.py
    stopping: str = "schedule"  # "schedule" (no rule), "val-plateau", "loss-converged"
    patience_iters: int | None = None  # updates without a new best (val-plateau) or a lower loss (loss-converged)
    loss_window_iters: int | None = None  # loss-converged: the loss is compared as means over windows of this many
    loss_min_improvement: float = 0.0  # loss-converged: how far (a fraction) below the best a window must go
    bf_on_val: bool = False
    evaluate_train: bool = False
    image_size: tuple = (360, 480)
    # how images of a dataset whose sizes vary reach image_size: "letterbox" (scaled whole, aspect kept, padded with
    # black and void) or "stretch" (resized to it, aspect not kept); predictions go back to each image's own size
    fit: str = "letterbox"
    train_subset: int | None = None
    val_subset: int | None = None
    test_subset: int | None = None
    precision: str = "auto"  # "auto" (bf16 autocast on CUDA, fp32 elsewhere), "bf16", "fp32"
    channels_last: str = "auto"  # "auto" (on CUDA), "on", "off"
    compile: bool = False
    deterministic: bool = False
    # augmentation besides hflip, drawn per image from (seed, iteration) and applied on the device: a rotation
    # uniform in +-rotation_degrees and a zoom uniform in [scale_min, scale_max] about the centre (bilinear for
    # images, nearest for labels; pixels from outside the image are black and void)
    rotation_degrees: float = 0.0
    scale_min: float = 1.0
    scale_max: float = 1.0
    # the VGG16 encoder's 13 convs (and the batch norms of their units) take no gradient and no weight decay
    freeze_encoder: bool = False
    # the frozen encoder's batch norms: "frozen" (statistics and affine parameters as initialised: with VGG16
    # weights, which have none, an identity, so the encoder computes VGG16's features), or "recomputed" (affine
    # frozen, statistics updated in training and recomputed before each evaluation with the others)
    frozen_encoder_bn: str = "frozen"

    def iterations_per_epoch(self, n_train: int) -> int:
        return -(-n_train // self.batch_size)

    def total_iterations(self, n_train: int) -> int:
        return self.max_iters or self.max_epochs * self.iterations_per_epoch(n_train)

    def eval_every(self, n_train: int) -> int:
        return self.eval_every_iters or self.eval_every_epochs * self.iterations_per_epoch(n_train)

    def budget_iterations(self, n_train: int) -> list[int]:
        """The test-at-budget iterations (Table 3's columns) within the run's length."""
        ipe = self.iterations_per_epoch(n_train)
        its = self.budgets_iters or [e * ipe for e in self.budgets_epochs]
        return sorted({b for b in its if b <= self.total_iterations(n_train)})


CHOICES = {
    "input_normalisation": ("imagenet", "raw-0-255"),
    "bn_statistics": ("recompute", "running"),
    "selection": ("best-val-G", "last"),
    "stopping": ("schedule", "val-plateau", "loss-converged"),
    "precision": ("auto", "bf16", "fp32"),
    "channels_last": ("auto", "on", "off"),
    "bn_weight_decay": ("scale", "scale-and-shift", "none"),
    "frozen_encoder_bn": ("frozen", "recomputed"),
    "fit": ("letterbox", "stretch"),
}
POSITIVE = {"lr", "bias_lr_mult", "batch_size", "max_epochs", "max_iters", "eval_every_epochs", "eval_every_iters",
            "train_subset", "val_subset", "test_subset", "scale_min", "scale_max", "patience_iters",
            "loss_window_iters"}
UPPER = {"max_iters": MAX_ITERATIONS, "max_epochs": MAX_EPOCHS, "batch_size": 4096, "rotation_degrees": 180,
         "patience_iters": MAX_ITERATIONS, "loss_window_iters": MAX_ITERATIONS}
UNIT_INTERVAL = {"momentum", "dropout", "loss_min_improvement"}


def _field_types():
    return {f.name: f for f in dataclasses.fields(Recipe)}


def _check_value(key: str, value, where: str):
    fields = _field_types()
    if key not in fields:
        raise BenchError(f"{where}: unknown recipe key {key!r}{did_you_mean(key, fields)}; known keys: "
                         f"{', '.join(fields)}")
    default = fields[key].default
    t = fields[key].type
    if isinstance(default, tuple) or "tuple" in str(t):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise BenchError(f"{where}: {key} must be a list of integers, got {value!r}")
        if key == "image_size" and (len(value) != 2 or min(value) < 32):
            raise BenchError(f"{where}: image_size must be [height, width], each >= 32, got {value!r}")
        if any(v <= 0 for v in value):
            raise BenchError(f"{where}: {key} values must be positive, got {value!r}")
        if key.startswith("budgets_") and max(value, default=0) > MAX_ITERATIONS:
            raise BenchError(f"{where}: {key} holds values beyond any run (at most {MAX_ITERATIONS:,})")
        return tuple(value)
    if "bool" in str(t):
        if not isinstance(value, bool):
            raise BenchError(f"{where}: {key} must be true or false, got {value!r}")
        return value
    if "int" in str(t) and "float" not in str(t):
        if isinstance(value, bool) or not isinstance(value, int):
            raise BenchError(f"{where}: {key} must be an integer, got {value!r}")
    elif "float" in str(t):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BenchError(f"{where}: {key} must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise BenchError(f"{where}: {key} must be a finite number, got {value!r}")
    elif "str" in str(t) and not isinstance(value, str):
        raise BenchError(f"{where}: {key} must be a string, got {value!r}")
    if key in POSITIVE and value is not None and value <= 0:
        raise BenchError(f"{where}: {key} must be positive, got {value!r}")
    if key in UPPER and value is not None and value > UPPER[key]:
        raise BenchError(f"{where}: {key} = {value:,} is beyond any run this harness makes (at most {UPPER[key]:,})")
    if key in UNIT_INTERVAL and not 0 <= value < 1:
        raise BenchError(f"{where}: {key} must be in [0, 1), got {value!r}")
    if key == "weight_decay" and value < 0:
        raise BenchError(f"{where}: weight_decay must be >= 0, got {value!r}")
    if key in CHOICES and value not in CHOICES[key]:
        raise BenchError(f"{where}: {key} must be one of {', '.join(CHOICES[key])}, got {value!r}")
    return value


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    dataset: str
    members: tuple
    variants: tuple  # () or names; each variant's overrides in variant_overrides
    recipe: dict
    profiles: dict
    variant_overrides: dict = field(default_factory=dict)
    path: str = ""
    variant_members: dict = field(default_factory=dict)  # {variant: members it applies to}, where not all
    postprocessed: dict = field(default_factory=dict)  # {member: {"of": member, "stage": ...}}: trains nothing
    tables: tuple = ()  # the paper's tables the suite reproduces (PAPER_TABLES), as its report shows them

    def applies(self, member: str, variant: str | None) -> bool:
        """Whether the suite runs ``member`` under ``variant`` (a variant may name the members it is for, as
        Table 4's median-frequency line is SegNet's alone; one that names none is for every member, an added
        one too)."""
        return variant is None or variant not in self.variant_members or member in self.variant_members[variant]

    def runs(self, members=None, variants=None) -> list[tuple]:
        """(variant, member) of every run of the chosen members and variants, variant-major, in suite order."""
        return [(v, m) for v in (variants or self.variants or (None,)) for m in (members or self.members)
                if self.applies(m, v)]

    def run_specs(self, members=None, variants=None, seeds=(0,), add_members=()) -> list["SuiteRun"]:
        """Every run of the chosen members, variants and seeds, in the order `bench run` trains them (seed, then
        variant, then member in suite order, then the ``add_members``: registered models beyond the suite, trained
        under its recipe); one line for a member or variant the suite does not have, or a choice that leaves no
        run. `bench run`, plans and dispatch all enumerate runs here."""
        for m in members or ():
            if m not in self.members:
                raise BenchError(f"unknown member {m!r} of suite {self.name}{did_you_mean(m, self.members)}; its "
                                 f"members: {', '.join(self.members)} (a model of your own: --add-member)")
        added = list(dict.fromkeys(add_members or ()))
        for m in added:
            if m in self.members or m in self.postprocessed:
                raise BenchError(f"--add-member {m}: already a member of suite {self.name}")
            from bench.architectures import list_models, model_facts
            try:
                model_facts(m)
            except BenchError:
                raise BenchError(f"--add-member {m}: not a registered model{did_you_mean(m, list_models())} "
                                 "(a model of your own: register it and name its file with --plugin)") from None
        for v in variants or ():
            if v is not None and v not in self.variants:
                raise BenchError(f"unknown variant {v!r} of suite {self.name}{did_you_mean(v, self.variants)}; its "
                                 f"variants: {', '.join(self.variants)}")
        # members [] beside added ones: only the added (`bench run --members my-net`); () or None: every member
        chosen = [*(members or (() if added and members is not None else self.members)), *added]
        runs = [SuiteRun(seed, v, m) for seed in seeds for v, m in self.runs(chosen, variants)]
        if not runs and seeds:
            raise BenchError(f"no run of suite {self.name} matches: variant(s) {', '.join(map(str, variants or ()))} are for "
                             + "; ".join(f"{v}: {', '.join(self.variant_members[v])}" for v in variants
                                         if v in self.variant_members))
        return runs

    def postprocessed_from(self, member: str) -> tuple:
        """The members of this suite that post-process ``member``'s recorded run (they need its selected weights)."""
        return tuple(m for m, spec in self.postprocessed.items() if spec["of"] == member)

    def base_recipe(self, member: str, profile: str, variant: str | None = None, overrides: dict | None = None):
        """The recipe of the run a post-processed member starts from (None for a member that trains)."""
        spec = self.postprocessed.get(member)
        return None if spec is None else self.resolve(profile, variant, overrides, member=spec["of"])

    def resolve(self, profile: str, variant: str | None = None, overrides: dict | None = None,
                member: str | None = None) -> Recipe:
        """The recipe of one run: suite recipe <- variant <- profile <- profile's member overrides <- command line."""
        if profile not in self.profiles:
            raise BenchError(f"{self.path}: unknown profile {profile!r}; this suite has: {', '.join(self.profiles)}")
        values = dict(self.recipe)
        if variant is not None:
            values.update(self.variant_overrides.get(variant, {}))
        prof = dict(self.profiles[profile])
        per_member = prof.pop("member", {})
        values.update(prof)
        if member is not None:
            values.update(per_member.get(member, {}))
        for k, v in (overrides or {}).items():  # blamed on the command line's --set (the API's overrides)
            _check_value(k, v, f"--set {k}={v!r} (overrides)")
        values.update(overrides or {})
        checked = {k: _check_value(k, v, self.path or self.name) for k, v in values.items()}
        recipe = Recipe(**checked)
        if recipe.max_epochs is None and recipe.max_iters is None:
            raise BenchError(f"{self.path}: the recipe needs max_epochs or max_iters")
        if recipe.eval_every_epochs is None and recipe.eval_every_iters is None:
            raise BenchError(f"{self.path}: the recipe needs eval_every_epochs or eval_every_iters")
        if recipe.scale_min > recipe.scale_max:
            raise BenchError(f"{self.path}: scale_min {recipe.scale_min} is above scale_max {recipe.scale_max}")
        if recipe.rotation_degrees < 0:
            raise BenchError(f"{self.path}: rotation_degrees must be >= 0, got {recipe.rotation_degrees}")
        _check_stopping(recipe, self.path or self.name)
        return recipe


@dataclass(frozen=True)
class SuiteRun:
    """One run of a suite: a seed, a variant (None where the suite has none) and a member."""
    seed: int
    variant: str | None
    member: str

    def label(self, suite: str, profile: str | None = None) -> str:
        return (f"{suite} / {self.member}{' / ' + self.variant if self.variant else ''} / seed {self.seed}"
                + (f" / {profile}" if profile else ""))


def _check_stopping(recipe: Recipe, where: str) -> None:
    """A stopping rule needs its patience, decided at evaluation points every `eval_every_iters` (bench.stopping)."""
    if recipe.stopping == "schedule":
        return
    if recipe.patience_iters is None:
        raise BenchError(f"{where}: stopping = {recipe.stopping!r} needs patience_iters")
    if recipe.eval_every_iters is None:
        raise BenchError(f"{where}: stopping = {recipe.stopping!r} is decided at evaluations; give eval_every_iters "
                         "(in updates, the rule's unit)")
    if recipe.stopping == "val-plateau" and recipe.selection != "best-val-G":
        raise BenchError(f"{where}: stopping = \"val-plateau\" watches the selection metric; it needs selection = "
                         "\"best-val-G\"")
    if recipe.stopping == "loss-converged":
        window = recipe.loss_window_iters or recipe.eval_every_iters
        if recipe.patience_iters < window or recipe.eval_every_iters % window:
            raise BenchError(f"{where}: loss_window_iters {window:,} must divide eval_every_iters "
                             f"{recipe.eval_every_iters:,} and be at most patience_iters {recipe.patience_iters:,}")


def plain_recipe(saved) -> dict:
    """A recorded or checkpointed recipe (a dict) with every key it lacks at its default (it was made before the key
    existed), as JSON types."""
    def plain(d):
        return json.loads(json.dumps(d))
    return {**plain(dataclasses.asdict(Recipe())), **plain(saved)}


def same_recipe(saved, recipe: Recipe) -> bool:
    """Whether a recorded or checkpointed recipe (a dict) is ``recipe``; a key it lacks counts as the key's default
    (`plain_recipe`), so adding a recipe key never orphans earlier records."""
    if not isinstance(saved, dict):
        return False
    return plain_recipe(saved) == json.loads(json.dumps(dataclasses.asdict(recipe)))


def list_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def load_suite(name_or_path: str) -> Suite:
    """A suite by name (bench/suites/<name>.toml) or by path to a TOML file; checked before any training."""
    path = Path(name_or_path)
    if not path.suffix == ".toml":
        path = SUITES_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise BenchError(f"unknown suite {name_or_path!r}{did_you_mean(name_or_path, list_suites())}; known "
                             f"suites: {', '.join(list_suites())}")
    if not path.is_file():
        raise BenchError(f"{path}: suite file not found")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"{path}: not valid TOML ({exc})") from None
    where = str(path)
    _check_suite_shape(data, where)
    members = data["members"]
    if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
        raise BenchError(f"{where}: members must be a non-empty list of model names")
    from bench import architectures
    postprocessed = architectures.postprocessed_members()
    for i, m in enumerate(members):
        if m in postprocessed:
            if postprocessed[m]["of"] not in members[:i]:
                raise BenchError(f"{where}: member {m!r} post-processes {postprocessed[m]['of']!r}, which must be "
                                 "a member listed before it")
        elif m not in architectures.list_models():
            raise BenchError(f"{where}: unknown member {m!r}; known models: {', '.join(architectures.list_models())}"
                             f"; post-processed members: {', '.join(postprocessed)}")
    from bench import datasets
    if data["dataset"] not in datasets.list_datasets():
        raise BenchError(f"{where}: unknown dataset {data['dataset']!r}; known: {', '.join(datasets.list_datasets())}")
    variants = tuple(data.get("variants", ()))
    variant_overrides = {v: dict(t) for v, t in data.get("variant", {}).items()}
    variant_members = {}
    for v in variants:
        if v not in variant_overrides:
            raise BenchError(f"{where}: variant {v!r} has no [variant.{v}] table")
        if "members" in variant_overrides[v]:  # not a recipe key: the members the variant is for
            chosen = variant_overrides[v].pop("members")
            if not isinstance(chosen, list) or not chosen or any(m not in members for m in chosen):
                raise BenchError(f"{where}: [variant.{v}] members must be a non-empty list of this suite's members")
            variant_members[v] = tuple(chosen)
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise BenchError(f"{where}: profiles must be a table of [profiles.<name>] tables")
    unknown = set(profiles) - set(PROFILES)
    if unknown:
        raise BenchError(f"{where}: unknown profile(s) {', '.join(sorted(unknown))}; known: {', '.join(PROFILES)}")
    for p, values in profiles.items():
        if not isinstance(values, dict):
            raise BenchError(f"{where}: [profiles.{p}] must be a table of recipe values")
        per_member = values.get("member", {})
        if not isinstance(per_member, dict) or not all(isinstance(v, dict) for v in per_member.values()):
            raise BenchError(f"{where}: [profiles.{p}.member.<name>] must be tables of recipe values")
        for m in per_member:
            if m not in members:
                raise BenchError(f"{where}: [profiles.{p}.member.{m}]: {m!r} is not a member of this suite")
    if not isinstance(data["recipe"], dict):
        raise BenchError(f"{where}: [recipe] must be a table of recipe values")
    profiles = {p: profiles.get(p, {}) for p in PROFILES}
    suite = Suite(name=data["name"], description=data.get("description", ""), dataset=data["dataset"],
                  members=tuple(members), variants=variants, recipe=data["recipe"], profiles=profiles,
                  variant_overrides=variant_overrides, path=where, variant_members=variant_members,
                  postprocessed={m: postprocessed[m] for m in members if m in postprocessed},
                  tables=_paper_tables(data.get("tables", []), where))
    for p in PROFILES:  # every profile, variant and member must resolve: bad values fail before any training
        for v, m in suite.runs():
            suite.resolve(p, v, member=m)
    return suite


# A suite file's keys and their TOML types (the values inside `recipe` and the profiles are checked by
# `_check_value`); every key is checked before anything is made.
SUITE_KEYS = {"name": (str, "a string"), "description": (str, "a string"), "dataset": (str, "a string"),
              "members": (list, "a list of model names"), "variants": (list, "a list of variant names"),
              "variant": (dict, "a table of [variant.<name>] tables"), "recipe": (dict, "a table of recipe values"),
              "profiles": (dict, "a table of [profiles.<name>] tables"), "tables": (list, "a list of the paper's tables")}
SUITE_REQUIRED = ("name", "dataset", "members", "recipe")


def _check_suite_shape(data: dict, where: str) -> None:
    """Every key of a suite file known, present where required and of its type; one line for the first that is not."""
    for key in SUITE_REQUIRED:
        if key not in data:
            raise BenchError(f"{where}: missing key {key!r}")
    unknown = set(data) - set(SUITE_KEYS)
    if unknown:
        raise BenchError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key, value in data.items():
        kind, words = SUITE_KEYS[key]
        if not isinstance(value, kind) or (key == "name" and not value.strip()):
            raise BenchError(f"{where}: {'[recipe]' if key == 'recipe' else key} must be {words}, got {value!r}")
    if not all(isinstance(v, str) for v in data.get("variants", [])):
        raise BenchError(f"{where}: variants must be a list of variant names, got {data['variants']!r}")
    for name, table in data.get("variant", {}).items():
        if not isinstance(table, dict):
            raise BenchError(f"{where}: [variant.{name}] must be a table of recipe values, got {table!r}")


def _paper_tables(tables, where: str) -> tuple:
    if not isinstance(tables, list) or any(t not in PAPER_TABLES for t in tables):
        raise BenchError(f"{where}: tables must be a list of the paper's tables, each one of {', '.join(PAPER_TABLES)}; "
                         f"got {tables!r}")
    return tuple(tables)


def parse_override(text: str):
    """`key=value` from the command line, value parsed as TOML (numbers, booleans, strings, lists)."""
    if "=" not in text:
        raise BenchError(f"--set {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare string
    key = key.strip()
    _check_value(key, value, f"--set {text}")  # a bad key or value blamed on the option, not on the suite's TOML
    return key, value
