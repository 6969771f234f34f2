"""The planner places DiffBIR (and SUPIR) by the seed's VRAM table, and where the GPU is missing
or too small it leaves the model out with a sentence and plans the lighter step instead."""

from __future__ import annotations

import pytest

from manager.errors import DarkroomError
from manager.hardware import load_profile
from manager.planner import Choices, plan, usable_vram_gb
from manager.recipe import Recipe, bundled_recipes

RESTORER = bundled_recipes()["restorer"]
CHAIN = ("gfpgan", "face-detection", "diffbir", "lama")
SUPIR_CHAIN = ("gfpgan", "face-detection", "supir", "lama")


def planned(profile: str, models=CHAIN, **kw):
    p = plan(RESTORER, load_profile(profile), Choices(models=models, **kw))
    return p, {m.model: m for m in p.models}


@pytest.mark.parametrize(
    ("profile", "variant", "offload"),
    [
        # seed: DiffBIR 8 GB minimum (tiled), 12 GB recommended, 16 GB optimal
        ("laptop-rtx4060-8gb", "fp16-tiled", "model"),
        ("rtx3060-12gb", "fp16", "model"),
        ("rtx4080-16gb", "fp16", "none"),
        ("rtx4090-24gb", "fp16", "none"),
    ],
)
def test_diffbir_follows_the_seeds_table(profile: str, variant: str, offload: str) -> None:
    """The table is for DiffBIR alone; beside the chain's other models see the test below."""
    p, by = planned(profile, models=("diffbir",))
    d = by["diffbir"]
    assert (d.variant, d.offload) == (variant, offload)
    assert d.vram_gb <= usable_vram_gb(load_profile(profile).gpus[0])
    assert not any("left out" in w for w in p.warnings)
    model = next(m for m in RESTORER.models if m.id == "diffbir")
    assert "seed report's VRAM table" in model.variant(variant).memory_source


@pytest.mark.parametrize(
    ("chain", "profile", "variant", "offload"),
    [
        (CHAIN, "rtx3060-12gb", "fp16-tiled", "none"),
        (CHAIN, "rtx4080-16gb", "fp16", "model"),
        (CHAIN, "rtx4090-24gb", "fp16", "none"),
        (SUPIR_CHAIN, "rtx4080-16gb", "fp16-tiled", "model"),
        (SUPIR_CHAIN, "rtx4090-24gb", "fp16", "model"),
    ],
)
def test_the_diffusion_step_is_planned_in_the_room_the_chains_other_models_leave(
    chain: tuple[str, ...], profile: str, variant: str, offload: str
) -> None:
    """The restorer keeps its face and fill models on the GPU while the diffusion step works:
    the planner places the step in the room they leave (it used to plan it as if alone, then
    warn that large images may run out of memory on the very cards the seed recommends)."""
    p, by = planned(profile, models=chain)
    step = by[chain[2]]
    assert (step.variant, step.offload) == (variant, offload)
    kept = sum(m.resident_gb for m in p.models if m is not step)
    assert kept > 0 and p.vram_gb == round(kept + step.vram_gb, 2)
    assert p.vram_gb <= usable_vram_gb(load_profile(profile).gpus[0])
    assert not any("may run out of memory" in w for w in p.warnings), p.warnings
    assert "realesrgan-x4" not in by  # the diffusion model does the texture step itself


@pytest.mark.parametrize("profile", ["cpu-only-16gb", "gtx1660-6gb"])
def test_without_a_fitting_gpu_diffbir_is_left_out_and_real_esrgan_does_the_step(
    profile: str,
) -> None:
    p, by = planned(profile)
    assert "diffbir" not in by and by["realesrgan-x4"].variant == "fp32"
    said = [w for w in p.warnings if "left out" in w]
    assert len(said) == 1
    assert said[0].startswith("DiffBIR v2") and "Real-ESRGAN x4plus" in said[0]
    assert ("CPU" in said[0]) if profile.startswith("cpu") else ("needs 6 GB VRAM" in said[0])
    # asked for alongside its fallback: the fallback is planned once
    p, by = planned(profile, models=(*CHAIN, "realesrgan-x4"))
    assert [m.model for m in p.models].count("realesrgan-x4") == 1 and "diffbir" not in by


def test_a_forced_variant_is_not_swapped_for_the_fallback() -> None:
    """The user who names a variant gets it (with the warning), not Real-ESRGAN."""
    p, by = planned("gtx1660-6gb", variants={"diffbir": "fp16-tiled"})
    assert by["diffbir"].forced and "realesrgan-x4" not in by
    assert any("probably run out of memory" in w for w in p.warnings)
    with pytest.raises(DarkroomError, match="has no variant that runs on CPU"):
        planned("cpu-only-16gb", variants={"diffbir": "fp16"})


def test_a_fallback_the_recipe_lacks_is_a_sentence() -> None:
    data = RESTORER.model_dump()
    for m in data["models"]:
        if m["id"] == "diffbir":
            m["fallback"] = "no-such-model"
    broken = Recipe.model_validate(data)
    with pytest.raises(DarkroomError) as err:
        plan(broken, load_profile("cpu-only-16gb"), Choices(models=CHAIN))
    assert "names 'no-such-model' as its fallback" in err.value.message


@pytest.mark.parametrize(
    ("profile", "variant", "offload"),
    [
        # seed: SUPIR 12 GB minimum (tiled), 16 GB recommended, 24 GB optimal
        ("rtx3060-12gb", "fp16-tiled", "model"),
        ("rtx4080-16gb", "fp16", "model"),
        ("rtx4090-24gb", "fp16", "none"),
    ],
)
def test_supir_follows_the_seeds_table(profile: str, variant: str, offload: str) -> None:
    p, by = planned(profile, models=("supir",))
    s = by["supir"]
    assert (s.variant, s.offload) == (variant, offload)
    assert s.vram_gb <= usable_vram_gb(load_profile(profile).gpus[0])
    assert "diffbir" not in by
    assert not any("left out" in w for w in p.warnings)
    # non-commercial: the plan says so and the user is asked to accept the licence
    assert any(w.startswith("SUPIR v0Q") and "non-commercial use only" in w for w in p.warnings)
    model = next(m for m in RESTORER.models if m.id == "supir")
    assert "seed report's VRAM table" in model.variant(variant).memory_source


@pytest.mark.parametrize(
    ("profile", "lighter", "why"),
    [
        ("laptop-rtx4060-8gb", "diffbir", "needs 10 GB VRAM"),  # DiffBIR's tiled variant fits
        ("gtx1660-6gb", "realesrgan-x4", "needs 10 GB VRAM"),  # neither diffusion model fits
        ("cpu-only-16gb", "realesrgan-x4", "CPU"),
    ],
)
def test_where_supir_does_not_fit_the_chain_falls_to_diffbir_or_real_esrgan(
    profile: str, lighter: str, why: str
) -> None:
    p, by = planned(profile, models=SUPIR_CHAIN)
    assert "supir" not in by and lighter in by
    assert ("diffbir" in by) == (lighter == "diffbir")
    said = [w for w in p.warnings if "left out" in w]
    assert len(said) == 1 and said[0].startswith("SUPIR v0Q") and why in said[0]
    name = "DiffBIR v2" if lighter == "diffbir" else "Real-ESRGAN x4plus"
    assert f"left out; {name}" in said[0] and said[0].endswith("does its step instead.")
    assert not any("non-commercial" in w and "SUPIR" in w for w in p.warnings)


def test_a_fallback_loop_ends_in_a_sentence() -> None:
    data = RESTORER.model_dump()
    for m in data["models"]:
        if m["id"] == "diffbir":
            m["fallback"] = "supir"
    looped = Recipe.model_validate(data)
    with pytest.raises(DarkroomError, match="CPU"):
        plan(looped, load_profile("cpu-only-16gb"), Choices(models=SUPIR_CHAIN))
