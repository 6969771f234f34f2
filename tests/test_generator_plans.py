"""How the planner places the generator's FLUX.1 tools, Lumina-Next and HunyuanDiT on the
bundled machines (pure: recipe + hardware profile -> plan, no I/O)."""

from __future__ import annotations

import pytest

from manager.errors import DarkroomError
from manager.hardware import load_profile
from manager.planner import Choices, plan
from manager.recipe import bundled_recipes

RECIPE = bundled_recipes()["generator"]
FLUX_TOOLS = ("flux-fill", "flux-canny", "flux-depth")
NEW = (*FLUX_TOOLS, "lumina-next", "hunyuan-dit")


def one(model: str, profile: str):
    return plan(RECIPE, load_profile(profile), Choices(models=(model,)))


def test_every_new_model_and_variant_names_its_memory_source_and_files() -> None:
    models = {m.id: m for m in RECIPE.models}
    for mid in NEW:
        model = models[mid]
        assert not model.default  # installed when asked for, never instead of text-to-image
        for v in model.variants:
            assert len(v.memory_source) > 40, (mid, v.id)
            assert v.files and all(f.size > 0 for f in v.files), (mid, v.id)
    assert {m.id for m in RECIPE.models if not m.commercial} >= set(FLUX_TOOLS)


@pytest.mark.parametrize("model", FLUX_TOOLS)
def test_flux_tools_are_planned_by_vram(model: str) -> None:
    """The seed's FLUX.1 [dev] rows: GGUF on 12 GB, fp8 on 24 GB, bf16 where it all fits."""
    small, mid, big = (
        one(model, "rtx3060-12gb"),
        one(model, "rtx4090-24gb"),
        one(model, "a100-80gb"),
    )
    assert small.models[0].precision.startswith("gguf") and small.models[0].offload == "model"
    assert mid.models[0].precision == "fp8" and mid.models[0].offload == "model"
    assert big.models[0].precision == "bf16" and big.models[0].offload == "none"
    for p in (small, mid, big):
        words = " ".join(p.warnings)
        assert "non-commercial" in words and "gated on Hugging Face" in words  # licence gates


def test_hunyuan_dit_only_where_the_gpu_has_30_gb() -> None:
    fits = one("hunyuan-dit", "a100-80gb").models[0]
    assert fits.offload == "none" and fits.vram_gb >= 30
    with pytest.raises(DarkroomError) as small:
        one("hunyuan-dit", "rtx4090-24gb")
    assert "needs 30 GB VRAM" in small.value.message and "21.5 GB usable" in small.value.message
    # no CPU build: the hint does not send the user to --cpu
    assert "--cpu" not in small.value.hint and "only on a GPU" in small.value.hint
    with pytest.raises(DarkroomError) as cpu:
        one("hunyuan-dit", "cpu-only-16gb")
    assert "no variant that runs on CPU" in cpu.value.message


def test_lumina_next_fits_small_machines() -> None:
    assert one("lumina-next", "laptop-rtx4060-8gb").models[0].offload == "model"
    assert one("lumina-next", "rtx4090-24gb").models[0].offload == "none"
    cpu = one("lumina-next", "cpu-only-16gb")
    assert cpu.backend == "cpu" and cpu.models[0].variant == "bf16"
    assert not any("non-commercial" in w for w in cpu.warnings)  # Apache 2.0


def test_flux_depth_installs_its_depth_estimator_and_counts_it() -> None:
    """FLUX.1 Depth makes the map from a photo with Depth Anything V2 Small (Apache-2.0, the
    transformers layout): its files are in every flux-depth plan, in the download size and,
    as 0.1 GB, in the RAM; FLUX.1 Canny, which needs no network for its edges, is unchanged."""
    estimator = "depth-anything/Depth-Anything-V2-Small-hf"
    planned = 0
    for profile in ("rtx3060-12gb", "rtx4090-24gb", "a100-80gb", "cpu-only-16gb"):
        try:
            whole = one("flux-depth", profile)
        except DarkroomError:
            continue  # a machine the model does not fit: said elsewhere
        planned += 1
        depth = whole.models[0]
        ours = [f for f in whole.files if f.repo == estimator]
        assert {f.path for f in ours} == {
            "config.json",
            "preprocessor_config.json",
            "model.safetensors",
        }
        assert all(len(f.revision) == 40 for f in ours)  # pinned to the commit that added them
        (weights,) = [f for f in ours if f.path == "model.safetensors"]
        assert weights.sha256 and len(weights.sha256) == 64  # verified as downloaded
        extra = sum(f.size for f in ours)
        assert 95e6 < extra < 105e6  # 99.2 MB on the Hub
        others = sum(f.size for f in depth.files if f.repo != estimator)
        assert depth.download_bytes == others + extra and whole.download_bytes >= others + extra
        canny = plan(
            RECIPE,
            load_profile(profile),
            Choices(models=("flux-canny",), variants={"flux-canny": depth.variant}),
        )
        assert depth.ram_gb == pytest.approx(canny.models[0].ram_gb + 0.1)
        assert not any(f.repo == estimator for f in canny.files)
    assert planned >= 3
