"""Every plan the planner emits for the generator loads, is placed as planned, and generates.

Walks every bundled hardware profile (plus an 8 GB laptop with 32 GB RAM, where FLUX fits in
RAM but not in VRAM) × every generator model, collects the distinct placements the planner
picks (model family, precision, offload policy), and runs each on the tiny FLUX / SD 3.5
models in the generator's own env: loaded by apps/generator/loading.load, placed by its
`_place` for that offload policy, one 64x64 image generated.

What this proves on a CPU-only machine: the offload hooks (accelerate's model offload,
diffusers' group offload) are installed and run with the CPU as execution device — the same
code that fails for accelerate's sequential offload of GGUF weights (KeyError: None while
re-creating GGUFParameter on the meta device) whatever the device. It does not prove the
memory figures; shared/gpu/memcheck.py measures those where a GPU is lent. NF4 needs CUDA
(bitsandbytes cannot quantize on a CPU), so an NF4 placement is left to that GPU check.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from manager.errors import DarkroomError
from manager.hardware import load_profile, profile_names
from manager.planner import Choices, plan
from manager.recipe import bundled_recipes
from tests.fixtures.machines import LAPTOP_32
from tests.fixtures.tinymodels import AppEnv, TinyModel, choice_from_folder

SCRIPT = Path(__file__).parent / "fixtures" / "place_and_generate.py"
RECIPE = bundled_recipes()["generator"]
# Which tiny pipeline stands in for each model (same diffusers classes, same layout), and the
# model id it is loaded as (the id picks the model's defaults in the app).
FAMILY_OF = {
    "flux-schnell": "flux",
    "flux-dev": "flux",
    "flux-fill": "flux-fill",
    "flux-canny": "flux-control",
    "flux-depth": "flux-control",
    "lumina-next": "lumina",
    "hunyuan-dit": "hunyuan",
}
LOAD_AS = {
    "flux": "flux-schnell",
    "sd3": "sd35-medium",
    "flux-fill": "flux-fill",
    "flux-control": "flux-canny",
    "lumina": "lumina-next",
    "hunyuan": "hunyuan-dit",
}


def planned_placements() -> dict[tuple[str, str, str], list[str]]:
    """(family, precision, offload) -> the 'profile/model/variant' plans that use it."""
    machines = {name: load_profile(name) for name in profile_names()} | {
        "laptop-8gb-32gb-ram": LAPTOP_32
    }
    out: dict[tuple[str, str, str], list[str]] = {}
    for name, hw in machines.items():
        for model in RECIPE.models:
            try:
                m = plan(RECIPE, hw, Choices(models=(model.id,))).models[0]
            except DarkroomError as exc:
                assert exc.message.endswith(".") and exc.hint, (
                    exc
                )  # a refusal is a sentence + what to do
                continue
            family = FAMILY_OF.get(model.id, "sd3")
            out.setdefault((family, m.precision, m.offload), []).append(
                f"{name}/{model.id}/{m.variant}"
            )
    return out


def test_placements_include_the_ones_that_used_to_crash() -> None:
    keys = planned_placements()
    assert any(p.startswith("gguf") and o == "sequential" for _, p, o in keys), keys
    assert any(o == "model" for _, _, o in keys) and any(o == "none" for _, _, o in keys)


@pytest.mark.timeout(900)  # 30 placements (six families), each loaded and run once
def test_every_planned_placement_loads_and_generates(
    generator_env: AppEnv,
    tiny_flux: TinyModel,
    tiny_sd3: TinyModel,
    tiny_fill: TinyModel,
    tiny_control: TinyModel,
    tiny_lumina: TinyModel,
    tiny_hunyuan: TinyModel,
) -> None:
    placements = planned_placements()
    tinies = {
        t.family: t
        for t in (tiny_flux, tiny_sd3, tiny_fill, tiny_control, tiny_lumina, tiny_hunyuan)
    }
    assert {f for f, _, _ in placements} == set(tinies), placements  # every family is planned
    jobs = []
    for family, precision, offload in sorted(placements):
        if precision == "nf4":
            continue  # CUDA only; see the module docstring
        tiny = tinies[family]
        variant = "fp8-file" if precision == "fp8" and family.startswith("flux") else precision
        if family in ("flux-control",) and precision == "fp8":
            variant = "fp8"  # Canny / Depth fp8: the snapshot's own transformer, cast per layer
        model_id = LOAD_AS[family]
        jobs.append(
            {
                "key": f"{family}/{precision}/{offload}",
                "model": model_id,
                "choice": choice_from_folder(tiny, variant, precision=precision, offload=offload),
            }
        )
    proc = generator_env.run(
        [str(SCRIPT)], input=json.dumps(jobs), timeout=900, env={"HF_HUB_OFFLINE": "1"}
    )
    results = {
        r["key"]: r
        for r in (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{"))
    }
    assert set(results) == {j["key"] for j in jobs}, proc.stderr[-3000:]
    failed = {
        k: (r.get("error"), placements[tuple(k.split("/"))][:3])
        for k, r in results.items()
        if not r["ok"]
    }
    assert not failed, failed
    for key, r in results.items():
        assert r["shape"] == [64, 64, 3]
        assert r["placed"] == key.split("/")[2], (key, r)  # placed exactly as planned
        if "/gguf" in key:
            assert "GGUFParameter" in r["param_types"], (key, r)  # offload kept the GGUF weights


def test_accelerate_sequential_offload_of_gguf_still_crashes(
    generator_env: AppEnv, tiny_flux: TinyModel
) -> None:
    """The reason the planner's layer-by-layer offload is group offload: if diffusers fixes
    accelerate's path, this fails and the choice can be revisited."""
    code = (
        "import json,sys,torch\nfrom appkit.models import ModelChoice\nfrom generator import loading\n"
        "c=ModelChoice.from_dict(json.loads(sys.argv[1]))\n"
        "loading._place=lambda pipe,d,o: pipe.enable_sequential_cpu_offload(device=d)\n"
        "try:\n loading.load('flux-schnell',c,'cpu',lambda *a:None); print('LOADED')\n"
        "except KeyError as e: print('KEYERROR',e)\n"
    )
    choice = choice_from_folder(tiny_flux, "gguf-q4", offload="sequential")
    proc = generator_env.run(
        ["-c", code, json.dumps(choice)], timeout=600, env={"HF_HUB_OFFLINE": "1"}
    )
    assert "KEYERROR None" in proc.stdout, proc.stdout + proc.stderr[-2000:]
