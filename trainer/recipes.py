"""Training recipes: everything a published source fixes about how a model is trained, by name.

A recipe is more than loss weights: the loss definitions with the source's own normalisation, the
weights that were tuned for that normalisation, the blur kernel, the generator head, the
discriminator form, the optimiser, learning rate, batch size and augmentation. Weights copied
without their normalisation mean nothing, so they never travel alone.

Recipes are registered by the model modules (`dped_recipes.py`, `wespe_recipes.py`) and chosen with
`train.recipe` (empty: the model's default). Explicit `train.learning_rate`, `train.batch_size`,
`train.head` and `train.loss_weights` override the recipe; `resolve` returns both, so logs and the
run report say what came from the source and what the user changed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

_REGISTRY: dict[tuple[str, str], "Recipe"] = {}
_DEFAULTS: dict[str, str] = {}


class RecipeError(ValueError):
    """An unknown recipe, or an override the recipe cannot take; the message is one line."""


@dataclass(frozen=True)
class Recipe:
    """One source's training recipe for one model.

    model: 'dped' | 'wespe'. name: the `train.recipe` value. source: what it follows (repository
    file:line or paper section). learning_rate: Adam step size. batch_size: patches per step (per
    replica). loss_weights: term name -> weight, for the terms as this recipe normalises them.
    head: generator output head. adam_beta_1: Adam's first-moment decay. augment: random flips /
    rotations of the training patches (train.augment: false turns them off). batches_per_step:
    batches of batch_size drawn per training step (2: the official DPED code's discriminator step
    draws a new batch after the generator's). ema_decay: decay of an exponential moving average
    of the generator's weights, which is then validated and exported (0: none; no published
    DPED/WESPE recipe keeps one, BasicSR and KAIR do). options: model-specific choices (loss
    normalisation, blur kernel, discriminator form, ...), read by the model module. deviations:
    what still differs from the source, and why (shown in logs and the README's recipes table).
    """

    model: str
    name: str
    source: str
    learning_rate: float
    batch_size: int
    loss_weights: dict[str, float]
    head: str = "tanh"
    adam_beta_1: float = 0.9
    augment: bool = True
    batches_per_step: int = 1
    ema_decay: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)
    deviations: str = ""


def register(recipe: Recipe, default: bool = False) -> Recipe:
    """Make `recipe` available as train.recipe=<name> for its model; `default` for an empty name."""
    _REGISTRY[(recipe.model, recipe.name)] = recipe
    if default:
        _DEFAULTS[recipe.model] = recipe.name
    return recipe


def names(model: str) -> list[str]:
    """Recipe names registered for `model`."""
    _load()
    return sorted(n for m, n in _REGISTRY if m == model)


def get(model: str, name: str = "") -> Recipe:
    """The registered recipe; an empty name is the model's default. Raises RecipeError."""
    _load()
    name = name or _DEFAULTS.get(model, "")
    if (model, name) not in _REGISTRY:
        raise RecipeError(f"train.recipe {name!r} is not a {model} recipe; choose one of "
                          f"{', '.join(names(model)) or '(none)'}")
    return _REGISTRY[(model, name)]


def resolve(train_cfg: Any) -> tuple[Recipe, dict[str, Any]]:
    """The recipe train_cfg names, with its explicit overrides applied, and those overrides.

    Overrides: learning_rate > 0, batch_size > 0, head non-empty, loss_weights entries (each must
    name a term of the recipe), pretrain_d_steps >= 0 (an option of recipes that pre-train their
    discriminator). Returns (effective recipe, {field or option: value} of what was overridden).
    """
    recipe = get(train_cfg.model, getattr(train_cfg, "recipe", ""))
    overrides: dict[str, Any] = {}
    if train_cfg.learning_rate > 0 and train_cfg.learning_rate != recipe.learning_rate:
        overrides["learning_rate"] = float(train_cfg.learning_rate)
    if train_cfg.batch_size > 0 and train_cfg.batch_size != recipe.batch_size:
        overrides["batch_size"] = int(train_cfg.batch_size)
    if train_cfg.head and train_cfg.head != recipe.head:
        overrides["head"] = train_cfg.head
    if train_cfg.loss_weights:
        unknown = sorted(set(train_cfg.loss_weights) - set(recipe.loss_weights))
        if unknown:
            raise RecipeError(f"train.loss_weights: unknown term(s) {', '.join(unknown)} for recipe "
                              f"{recipe.model}/{recipe.name}; known: {', '.join(recipe.loss_weights)}")
        negative = sorted(k for k, v in train_cfg.loss_weights.items() if float(v) < 0)
        if negative:
            raise RecipeError(f"train.loss_weights: {', '.join(negative)} must be >= 0 (0 turns a term off)")
        changed = {k: float(v) for k, v in train_cfg.loss_weights.items() if float(v) != recipe.loss_weights[k]}
        if changed:
            overrides["loss_weights"] = {**recipe.loss_weights, **changed}
    replaced = dataclasses.replace(recipe, **overrides)
    pretrain = int(getattr(train_cfg, "pretrain_d_steps", -1))
    if pretrain >= 0 and pretrain != recipe.options.get("pretrain_d_steps", 0):
        if "pretrain_d_steps" not in recipe.options:
            raise RecipeError(f"train.pretrain_d_steps: recipe {recipe.model}/{recipe.name} does not "
                              "pre-train its discriminator; leave it at -1 (or 0)")
        overrides["pretrain_d_steps"] = pretrain
        replaced = dataclasses.replace(replaced, options={**recipe.options, "pretrain_d_steps": pretrain})
    steps = int(getattr(train_cfg, "train_steps", 0) or 0)
    pretrain_steps = int(replaced.options.get("pretrain_d_steps", 0))
    if steps and pretrain_steps >= steps:
        # The pre-training counts towards train_steps: the generator would never train.
        raise RecipeError(f"train.train_steps {steps} leaves no generator steps after recipe "
                          f"{recipe.model}/{recipe.name}'s {pretrain_steps} discriminator pre-training "
                          "steps; raise train.train_steps or set train.pretrain_d_steps lower (0: none)")
    return replaced, overrides


def describe(recipe: Recipe, overrides: dict[str, Any] | None = None) -> str:
    """One line for logs: recipe, source, lr, batch, weights, and what the config overrode."""
    weights = ", ".join(f"{k} {v:g}" for k, v in recipe.loss_weights.items())
    options = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in recipe.options.items() if isinstance(v, (str, int, float)))
    text = (f"recipe {recipe.model}/{recipe.name} ({recipe.source}): lr {recipe.learning_rate:g}, "
            f"batch {recipe.batch_size}, head {recipe.head}, weights {weights}")
    if recipe.ema_decay:
        text += f", generator EMA {recipe.ema_decay:g}"
    if options:
        text += f"; {options}"
    if overrides:
        text += "; overridden by the config: " + ", ".join(f"{k}={v}" for k, v in overrides.items())
    return text


def as_dict(recipe: Recipe, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Plain-data form for recipe.json (read by the run report)."""
    return {**dataclasses.asdict(recipe), "overrides": dict(overrides or {})}


def _load() -> None:
    # The model modules register their recipes on import; imported here, not at the top, so this
    # module stays importable from them without a cycle.
    from phone2dslr.trainer import dped_recipes, wespe_recipes  # noqa: F401
