"""The audit's settings: the default experiment, and the sweeps that change one thing in it.

A *setting* is the default experiment with one thing changed: the reference's own knobs (rank,
width, where the update goes, the A init, the token correlation) and the controls a reviewer
asks for (the optimizer, the learning rate of each optimizer, the stop probability, the target
pair). In every setting whose update is LoRA on W_Q, each seed is also trained with LoRA on W_K
and with full fine-tuning of W_Q under the same settings, because two claims compare against
those runs of the same seed.

The optimizer sweep's gradient-descent point has no learning rate of its own: it is the point of
the gradient-descent learning-rate sweep that ``choose_sgd_lr`` picks from the measured steps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .config import ExperimentConfig

SWEEPS: dict[str, tuple[str, tuple]] = {
    # sweep name: (what varies, values in order); the default's value is among them.
    "rank": ("rank", (1, 2, 4, 8, 16, 32)),
    "d_model": ("d_model", (16, 32, 64, 128, 256)),
    "site": ("update site", ("q", "k", "v", "full")),
    "a_init": ("A initialisation", ("gaussian", "kaiming")),
    "tokens": ("token correlation", (0.0, 0.25, 0.5, 0.75)),
    # The controls.
    "optimizer": ("optimizer", ("adam", "sgd")),
    "lr": ("Adam learning rate", (0.001, 0.003, 0.01, 0.03, 0.1)),
    "lr_sgd": ("gradient-descent learning rate", (0.03, 0.1, 0.3, 1.0, 3.0)),
    "stop_prob": ("stop probability", (0.5, 0.7, 0.9, 0.99, 0.999, 0.9999)),
    "target": ("(query, key) target", ((0, 5), (3, 8), (7, 2), (4, 4))),
}
SWEEP_CHOICES = ("default", "all")
# The sweep whose point stands for gradient descent in the optimizer sweep.
SGD_LR_SWEEP = "lr_sgd"
SGD_LR_RULE = ("the learning rate of the gradient-descent sweep whose median number of steps "
               "to the stop probability is closest to Adam's at its default learning rate "
               "(the smaller on a tie)")


@dataclass(frozen=True)
class Setting:
    name: str                         # "default", "rank=8", "site=full", "tokens=0.25", ...
    overrides: tuple = ()             # (field, value) pairs applied to ExperimentConfig()
    update: str = "lora"
    sweep: str | None = None
    value: Any = None

    @property
    def lora_q(self) -> bool:
        return self.update == "lora" and dict(self.overrides).get("site", "q") == "q"

    def config(self, seed: int) -> ExperimentConfig:
        return ExperimentConfig(seed=seed, **dict(self.overrides))


DEFAULT = Setting("default")


def setting_for(sweep: str, value: Any) -> Setting | None:
    """The setting of one sweep point (the default itself where the value is the default's);
    None for the optimizer sweep's gradient-descent point, which choose_sgd_lr resolves."""
    base = ExperimentConfig()
    if sweep == "site":
        if value == "q":
            return DEFAULT
        if value == "full":
            return Setting("site=full", (), "full", sweep, value)
        return Setting(f"site={value}", (("site", value),), "lora", sweep, value)
    if sweep == "tokens":
        if value == 0.0:
            return DEFAULT
        return Setting(f"tokens={value:g}", (("tokens", "correlated"), ("token_corr", value)),
                       "lora", sweep, value)
    if sweep == "optimizer":
        return DEFAULT if value == base.optimizer else None
    if sweep == SGD_LR_SWEEP:
        return Setting(f"optimizer=sgd,lr={value:g}", (("optimizer", "sgd"), ("lr", value)),
                       "lora", sweep, value)
    if sweep == "target":
        query, key = value
        if (query, key) == (base.query, base.key):
            return DEFAULT
        return Setting(f"target={query},{key}", (("query", query), ("key", key)), "lora",
                       sweep, (query, key))
    if getattr(base, sweep) == value:
        return DEFAULT
    return Setting(f"{sweep}={value:g}" if isinstance(value, float) else f"{sweep}={value}",
                   ((sweep, value),), "lora", sweep, value)


def settings_for(which: str) -> list[Setting]:
    """The settings of the default audit ("default") or of every sweep ("all"), in order."""
    if which not in SWEEP_CHOICES:
        from ..core.errors import ConfigError
        raise ConfigError(f"unknown sweep set {which!r}", field="--sweeps",
                          hint=f"use one of {', '.join(SWEEP_CHOICES)}")
    out = [DEFAULT]
    if which == "all":
        for sweep, (_, values) in SWEEPS.items():
            for value in values:
                s = setting_for(sweep, value)
                if s is not None and s not in out:
                    out.append(s)
    return out


def choose_sgd_lr(median_steps: Sequence[float], adam_median_steps: float) -> int:
    """Index into SWEEPS[SGD_LR_SWEEP]'s values of the learning rate SGD_LR_RULE picks."""
    gaps = [abs(s - adam_median_steps) for s in median_steps]
    return gaps.index(min(gaps))      # the first of equal gaps: the values ascend


# A run set: one setting's configs for every seed, as one update kind; roles "main", "lora_k",
# "full_q". Run sets are deduplicated, so site=k's runs are the default's lora_k partners.
@dataclass(frozen=True)
class RunSet:
    overrides: tuple
    update: str

    def specs(self, seeds: Sequence[int]):
        from .batched import RunSpec
        return [RunSpec(ExperimentConfig(seed=s, **dict(self.overrides)), self.update)
                for s in seeds]


def run_sets(setting: Setting) -> dict[str, RunSet]:
    roles = {"main": RunSet(setting.overrides, setting.update)}
    if setting.lora_q:
        ov = dict(setting.overrides)
        roles["lora_k"] = RunSet(tuple(sorted({**ov, "site": "k"}.items())), "lora")
        roles["full_q"] = RunSet(setting.overrides, "full")
    return roles


def canonical(rs: RunSet) -> RunSet:
    return RunSet(tuple(sorted(rs.overrides)), rs.update)
