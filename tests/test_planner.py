"""The planner against the published memory guidance, on every bundled hardware profile."""

from __future__ import annotations

import pytest

from manager.errors import DarkroomError
from manager.hardware import Hardware, load_profile, profile_names
from manager.planner import Choices, plan
from manager.recipe import bundled_recipes

RECIPES = bundled_recipes()


def gen(profile: str, model: str, **kw) -> tuple:
    p = plan(RECIPES["generator"], load_profile(profile), Choices(models=(model,), **kw))
    m = p.models[0]
    return p, m


@pytest.mark.parametrize(("profile", "model", "variant", "offloads"), [
    # FLUX.1-dev: 24 GB -> bf16; 16 GB -> fp8; 8 GB -> GGUF Q4 with offload.
    ("rtx4090-24gb", "flux-dev", "bf16", {"none", "model"}),
    ("rtx3090-24gb", "flux-dev", "bf16", {"none", "model"}),
    ("a100-80gb", "flux-dev", "bf16", {"none"}),
    ("rtx4080-16gb", "flux-dev", "fp8", {"none", "model"}),
    ("laptop-rtx4060-8gb", "flux-dev", "gguf-q4", {"model", "sequential"}),
    # FLUX.1-schnell: 12 GB -> fp8; 6 GB -> NF4 or GGUF Q4.
    ("rtx3060-12gb", "flux-schnell", "fp8", {"none", "model"}),
    ("rtx4070-12gb", "flux-schnell", "fp8", {"none", "model"}),
    ("gtx1660-6gb", "flux-schnell", "gguf-q4", {"model", "sequential"}),
])
def test_flux_choices_follow_published_guidance(profile, model, variant, offloads) -> None:
    p, m = gen(profile, model)
    assert (m.variant, m.offload in offloads) == (variant, True), m.reason
    assert p.backend == "cuda" and p.torch_backend.startswith("cu")
    assert m.vram_gb <= load_profile(profile).gpus[0].vram_total_gb


def test_reason_names_the_numbers() -> None:
    _, m = gen("rtx3060-12gb", "flux-dev")
    assert "23.3 GB" in m.reason and "12 GB" in m.reason and "GGUF" in m.reason


def test_cpu_only_gets_a_cpu_variant_and_a_slow_warning() -> None:
    p, m = gen("cpu-only-16gb", "flux-schnell")
    assert p.backend == "cpu" and p.torch_backend == "cpu" and p.device == "cpu"
    variant = RECIPES["generator"].model("flux-schnell").variant(m.variant)
    assert "cpu" in variant.backends and variant.ram_gb <= 16
    assert any("slow" in w for w in p.warnings)


def test_apple_gets_mps_and_never_nf4() -> None:
    for model in ("flux-dev", "flux-schnell"):
        p, m = gen("apple-m2-16gb", model)
        assert p.backend == "mps" and p.device == "mps"
        assert m.precision != "nf4"
    with pytest.raises(DarkroomError, match="does not run on MPS"):
        gen("apple-m2-16gb", "flux-dev", variants={"flux-dev": "nf4"})


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
    tiny = Hardware(name="toy", os="linux", arch="x86_64", ram_total_gb=4, ram_free_gb=2, disk_free_gb=10)
    with pytest.raises(DarkroomError) as info:
        plan(RECIPES["generator"], tiny, Choices(models=("flux-dev",)))
    assert "16 GB RAM" in str(info.value) and "4 GB" in str(info.value)


def test_non_commercial_and_gated_are_warned() -> None:
    p, _ = gen("rtx4090-24gb", "flux-dev")
    assert any("non-commercial" in w for w in p.warnings)
    assert any("hf_token" in w for w in p.warnings)


@pytest.mark.parametrize("profile", profile_names())
@pytest.mark.parametrize("app", sorted(RECIPES))
def test_every_app_plans_on_every_profile(profile: str, app: str) -> None:
    p = plan(RECIPES[app], load_profile(profile))
    assert p.download_bytes == sum({(f.repo, f.revision, f.path): f.size
                                    for m in p.models for f in m.files}.values())
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
