"""The planner against the published memory guidance, on every bundled hardware profile."""

from __future__ import annotations

import pytest

from manager.errors import DarkroomError
from manager.hardware import Hardware, load_profile, profile_names
from manager.planner import Choices, plan, usable_ram_gb, usable_vram_gb, vram_headroom_gb
from manager.recipe import bundled_recipes
from tests.fixtures.machines import LAPTOP_32

RECIPES = bundled_recipes()


def gen(profile: str, model: str, **kw) -> tuple:
    p = plan(RECIPES["generator"], load_profile(profile), Choices(models=(model,), **kw))
    m = p.models[0]
    return p, m


@pytest.mark.parametrize(
    ("profile", "model", "variant", "offload"),
    [
        # 24 GB with a desktop: bf16 + model offload peaks at 23.3 GB (no headroom left) -> fp8.
        ("rtx4090-24gb", "flux-dev", "fp8", "model"),
        ("rtx3090-24gb", "flux-dev", "fp8", "model"),
        ("a100-80gb", "flux-dev", "bf16", "none"),
        # 16 GB: fp8 + model offload needs 15.6 GB -> GGUF Q8_0; 12 GB -> GGUF Q5.
        ("rtx4080-16gb", "flux-dev", "gguf-q8", "model"),
        ("rtx3060-12gb", "flux-schnell", "gguf-q5", "model"),
        ("rtx4070-12gb", "flux-schnell", "gguf-q5", "model"),
    ],
)
def test_flux_choices_follow_published_figures(profile, model, variant, offload) -> None:
    p, m = gen(profile, model)
    assert (m.variant, m.offload) == (variant, offload), m.reason
    assert p.backend == "cuda" and p.torch_backend.startswith("cu")
    gpu = load_profile(profile).gpus[0]
    assert m.vram_gb <= usable_vram_gb(gpu) < gpu.vram_total_gb


def test_planned_peaks_are_at_least_the_published_ones() -> None:
    """diffusers quantization benchmark, FLUX.1-dev at 1024²: fp8 + model offload 15.6 GB,
    bf16 + model offload 23.3 GB, NF4 (with T5 in NF4) 17.3 / 12.4 GB."""
    for model in ("flux-schnell", "flux-dev"):
        flux = RECIPES["generator"].model(model)
        assert flux.variant("fp8").offload["model"] >= 15.6
        assert flux.variant("bf16").offload["model"] >= 23.3
        # RAM: the pipeline's own files, T5 in bf16 (9.52 GB) included
        assert flux.variant("gguf-q4").ram_gb >= 6.81 + 9.52 + 0.25 + 0.17 - 0.05
    nf4 = RECIPES["generator"].model("flux-dev").variant("nf4")
    assert nf4.vram_gb >= 17.3 + 6.0 and nf4.offload["model"] >= 12.4 + 6.0  # T5 stays bf16 here
    for profile in ("rtx3060-12gb", "rtx4070-12gb", "rtx4080-16gb"):
        assert gen(profile, "flux-dev")[1].variant != "fp8"


def test_every_variant_states_where_its_memory_figures_come_from() -> None:
    for recipe in RECIPES.values():
        for model in recipe.models:
            for v in model.variants:
                assert len(v.memory_source) > 30, (recipe.id, model.id, v.id)


def test_headroom_is_per_gpu() -> None:
    desk = load_profile("rtx4090-24gb").gpus[0]
    server = load_profile("a100-80gb").gpus[0]
    assert vram_headroom_gb(desk) >= 0.5 + 0.8 + 0.05 * 24 - 0.01
    assert not server.display and vram_headroom_gb(server) < 0.5 + 0.05 * 80 + 0.01
    assert vram_headroom_gb(load_profile("apple-m2-16gb").gpus[0]) == 0.0


def test_16gb_ram_is_not_let_through_to_swap() -> None:
    """FLUX's pipeline is 16.7 GB even in GGUF Q4; a 15.6 GB machine gets a model that fits."""
    with pytest.raises(DarkroomError, match="RAM") as info:
        gen("cpu-only-16gb", "flux-schnell")
    assert "GGUF Q4_K_S" in str(info.value) and "17 GB RAM" in str(info.value)
    p = plan(RECIPES["generator"], load_profile("cpu-only-16gb"))
    (m,) = p.models
    assert m.model == "sd35-medium" and "RAM" in m.reason and "FLUX.1 [schnell]" in m.reason
    assert m.ram_gb <= usable_ram_gb(load_profile("cpu-only-16gb"))
    assert any("instead" in w for w in p.warnings) and any("slow" in w for w in p.warnings)


def test_layer_by_layer_is_planned_only_where_ram_holds_the_pipeline() -> None:
    p = plan(RECIPES["generator"], LAPTOP_32, Choices(models=("flux-schnell",)))
    (m,) = p.models
    assert (m.variant, m.offload) == ("gguf-q4", "sequential")
    assert "group offload" in m.reason and "9.2 GB VRAM" in m.reason


def test_apple_unified_memory_is_counted_once_and_offload_is_planned() -> None:
    hw = load_profile("apple-m2-16gb")
    with pytest.raises(DarkroomError, match="RAM"):
        gen("apple-m2-16gb", "flux-dev")  # 16.7 GB into 16 GB: refused, not planned
    p, m = gen("apple-m2-16gb", "sd35-medium")
    assert p.backend == "mps" and p.device == "mps" and m.precision != "nf4"
    assert m.offload == "model" and m.vram_gb <= hw.gpus[0].vram_total_gb
    assert m.ram_gb <= usable_ram_gb(hw)
    with pytest.raises(DarkroomError, match="does not run on MPS"):
        gen("apple-m2-16gb", "flux-dev", variants={"flux-dev": "nf4"})


def test_reasons_name_the_real_constraint() -> None:
    _, m = gen("laptop-rtx4060-8gb", "sd35-medium")
    assert "bf16 (full quality) needs 16.3 GB RAM" in m.reason
    assert "3 GB VRAM at least" not in m.reason and "bf16 (full quality) needs 3" not in m.reason


DIFFBIR_CHAIN = ("gfpgan", "face-detection", "realesrgan-x4", "lama", "scratch-detector", "diffbir")


def test_restorer_counts_what_its_models_keep_plus_the_one_at_work() -> None:
    """The restorer holds its models at once but runs one at a time: on a 6 GB card the default
    chain needs their weights plus the hungriest step, not the sum of every step's peak."""
    p = plan(RECIPES["restorer"], load_profile("gtx1660-6gb"))
    kept = sum(m.resident_gb for m in p.models)
    assert 0 < kept < sum(m.vram_gb for m in p.models)
    assert p.vram_gb == round(kept + max(m.vram_gb - m.resident_gb for m in p.models), 2)
    assert p.vram_gb <= usable_vram_gb(load_profile("gtx1660-6gb").gpus[0])
    assert not any("GPU memory" in w for w in p.warnings), p.warnings


def test_restorer_warns_when_its_models_do_not_fit_together() -> None:
    p = plan(RECIPES["restorer"], load_profile("laptop-rtx4060-8gb"), Choices(models=DIFFBIR_CHAIN))
    assert p.vram_gb > usable_vram_gb(load_profile("laptop-rtx4060-8gb").gpus[0])
    assert any("GPU memory" in w and "usable" in w for w in p.warnings), p.warnings


def test_turbo_has_gguf_for_small_gpus_and_its_cpu_refusal_names_the_smallest() -> None:
    p = plan(RECIPES["generator"], LAPTOP_32, Choices(models=("sd35-large-turbo",)))
    assert p.models[0].variant == "gguf-q4"
    small = Hardware(
        name="toy", os="linux", arch="x86_64", ram_total_gb=8, ram_free_gb=6, disk_free_gb=100
    )
    with pytest.raises(DarkroomError) as info:
        plan(RECIPES["generator"], small, Choices(models=("sd35-large-turbo",)))
    assert "GGUF Q4_0" in str(info.value) and "bf16" not in str(info.value)
    turbo = RECIPES["generator"].model("sd35-large-turbo")
    assert all(
        f.sha256 is None for v in turbo.variants if v.precision.startswith("gguf") for f in v.files
    )


def test_reason_names_the_numbers() -> None:
    _, m = gen("rtx3060-12gb", "flux-dev")
    assert (
        "34 GB RAM" in m.reason
        and "13 GB VRAM" in m.reason
        and "12 GB" in m.reason
        and "GGUF" in m.reason
    )


def test_nf4_is_offered_only_with_nvidia() -> None:
    _, m = gen("rtx4080-16gb", "flux-dev", variants={"flux-dev": "nf4"})
    assert m.variant == "nf4" and m.forced
    with pytest.raises(DarkroomError, match="does not run on CPU"):
        gen("cpu-only-16gb", "flux-dev", variants={"flux-dev": "nf4"})


def test_forced_variant_that_does_not_fit_warns() -> None:
    p, m = gen("laptop-rtx4060-8gb", "flux-dev", variants={"*": "bf16"})
    assert m.variant == "bf16"
    assert any("run out of memory" in w for w in p.warnings)


def test_old_driver_falls_back_to_cpu_with_advice() -> None:
    hw = load_profile("rtx3060-12gb").model_copy(deep=True)
    hw.gpus[0].cuda_version = "11.4"
    p = plan(RECIPES["restorer"], hw)
    assert p.backend == "cpu"
    assert any("Update the NVIDIA driver" in r for r in p.reasons)


def test_nothing_fits_refuses_with_numbers() -> None:
    tiny = Hardware(
        name="toy", os="linux", arch="x86_64", ram_total_gb=4, ram_free_gb=2, disk_free_gb=10
    )
    with pytest.raises(DarkroomError) as info:
        plan(RECIPES["generator"], tiny, Choices(models=("flux-dev",)))
    assert "17 GB RAM" in str(info.value) and "4.3 GB RAM" in str(info.value)  # 4 GiB


def test_non_commercial_and_gated_are_warned() -> None:
    p, _ = gen("rtx4090-24gb", "flux-dev")
    assert any("non-commercial" in w for w in p.warnings)
    assert any("hf_token" in w for w in p.warnings)


@pytest.mark.parametrize("profile", profile_names())
@pytest.mark.parametrize("app", sorted(RECIPES))
def test_every_app_plans_on_every_profile(profile: str, app: str) -> None:
    p = plan(RECIPES[app], load_profile(profile))
    assert p.download_bytes == sum(
        {(f.repo, f.revision, f.path): f.size for m in p.models for f in m.files}.values()
    )
    assert p.disk_needed_bytes >= p.download_bytes
    for m in p.models:
        assert m.reason
    if RECIPES[app].torch is None:
        assert p.torch_backend is None


def test_backend_flavour_follows_driver_and_gpu_age() -> None:
    assert plan(RECIPES["restorer"], load_profile("gtx1660-6gb")).torch_backend == "cu126"
    assert plan(RECIPES["restorer"], load_profile("rtx3060-12gb")).torch_backend == "cu124"
    assert plan(RECIPES["restorer"], load_profile("rtx4090-24gb")).torch_backend == "cu128"


def test_unknown_model_or_variant_is_a_clear_error() -> None:
    with pytest.raises(DarkroomError, match="no model called"):
        gen("rtx4090-24gb", "flux-pro")
    with pytest.raises(DarkroomError, match="no variant"):
        gen("rtx4090-24gb", "flux-dev", variants={"flux-dev": "q1"})
