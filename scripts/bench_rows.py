"""What `make bench` compares: the model families it runs and the rows of its table (the plain sampler,
naive step reduction, the RALU presets, latent-gradient edges and the step caches)."""

from __future__ import annotations

from dataclasses import dataclass

from ralu.cost import COST_MODELS

CACHES = ("easycache", "lazycache")


@dataclass(frozen=True)
class Family:
    """What the bench runs for one model family, as the shipped workflows' comparison KSampler does."""

    # The plans' family (their `model` for the base model's presets) and the key of the base model's
    # cost model (FLUX.1-dev, SD3 Medium): its name, step count and text tokens are the bench's.
    name: str
    cfg: float
    scheduler: str
    vae: str  # the test models' TAESD for the edge decode (vae_approx/)
    cpu_minutes: float  # what the default CPU table took on 2 quiet cores

    @property
    def real_model(self) -> str:
        """Whose dimensions --gpu builds and the last FLOP column uses."""
        return COST_MODELS[self.name].label

    @property
    def baseline_steps(self) -> int:
        return COST_MODELS[self.name].baseline_steps  # FLUX.1-dev's 50, SD3 Medium's 28

    @property
    def gpu_text_tokens(self) -> int:
        return COST_MODELS[self.name].step.text_tokens  # FLUX.1-dev's 512 T5 tokens, SD3's 77 + 256


FAMILIES = {
    "flux": Family("flux", 1.0, "simple", "taef1", 7.5),
    "sd3": Family("sd3", 4.5, "sgm_uniform", "taesd3", 4),
}


@dataclass(frozen=True)
class Row:
    """One way of sampling: the plain sampler for `steps` steps, or RALU with `preset`; either with a
    step cache ("easycache" / "lazycache") or without."""

    key: str  # its name for --rows
    label: str
    steps: int | None = None
    preset: str | None = None
    cache: str | None = None
    edges: str = "vae"  # RALU KSampler's edge_source

    @property
    def is_baseline(self) -> bool:
        return self.key == "plain"


def family_presets(presets: dict, family: Family) -> list:
    """The presets of the family's base model (FLUX.1-dev, SD3 Medium) in `presets` (ralu.plan.PRESETS;
    flux_schnell and sd35_turbo are for other models, which refuse them or take other step counts)."""
    return [plan for plan in presets.values() if plan.model == family.name]


def lead_preset(presets: dict, family: Family) -> str:
    """The preset that the latent-edges and step-cache rows run (flux_4x, sd3_2x)."""
    return family_presets(presets, family)[0].name


def latent_edges_key(presets: dict, family: Family) -> str:
    """The row of the lead preset with its edges from a gradient kernel on the stage-1 latent (no decode),
    whose selection is compared with the same preset's VAE path."""
    return f"{lead_preset(presets, family)}+latent"


def default_rows(presets: dict, family: Family) -> list[Row]:
    """The table's rows, baseline first."""
    plans = family_presets(presets, family)
    lead, baseline_steps = lead_preset(presets, family), family.baseline_steps
    rows = [Row("plain", f"plain sampler, {baseline_steps} steps", steps=baseline_steps)]
    for steps in dict.fromkeys(plan.total_steps for plan in plans):
        names = ", ".join(p.name for p in plans if p.total_steps == steps)
        rows.append(Row(f"naive{steps}", f"plain sampler, {steps} steps (as {names})", steps=steps))
    rows += [Row(plan.name, f"RALU {plan.name}", preset=plan.name) for plan in plans]
    latent_label = f"RALU {lead}, latent-gradient edges"
    rows.append(Row(latent_edges_key(presets, family), latent_label, preset=lead, edges="latent gradient"))
    label = {"easycache": "EasyCache", "lazycache": "LazyCache"}
    rows += [Row(f"{lead}+{c}", f"RALU {lead} + {label[c]}", preset=lead, cache=c) for c in CACHES]
    plain_cached = f"plain sampler, {baseline_steps} steps + EasyCache"
    rows.append(Row("plain+easycache", plain_cached, steps=baseline_steps, cache="easycache"))
    return rows
