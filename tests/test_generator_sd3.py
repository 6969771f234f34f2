"""Stable Diffusion 3.5 through the generator app: a tiny SD 3.5-shaped pipeline (three text
encoders, transformer and T5 in shards with index files as the stabilityai repos hold them,
qk-norm and a dual-attention layer as 3.5 adds) run on the CPU over real HTTP, in full
precision and from a Q8_0 GGUF transformer."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.fixtures.pngbytes import png_size, png_text
from tests.fixtures.tinymodels import (
    AppProcess,
    choice_from_folder,
    models_json,
    running_app,
)

SMALL = {"width": 64, "height": 64, "steps": 2}


@pytest.fixture(scope="module")
def sd3(generator_env, tiny_sd3, tmp_path_factory) -> Iterator[AppProcess]:
    models = {
        "sd35-medium": choice_from_folder(tiny_sd3, "fp32"),
        "sd35-gguf": choice_from_folder(tiny_sd3, "gguf-q8"),
    }
    with running_app(
        generator_env, "generator", tmp_path_factory.mktemp("gen-sd3"), models_json(models)
    ) as app:
        yield app


def generate(app: AppProcess, **body) -> tuple[dict, bytes]:
    code, job, _ = app.post("/api/generate?wait=true", {"prompt": "a lighthouse", **SMALL, **body})
    assert code == 200, (job, app.log_tail())
    code, _, png = app.get(f"/api/jobs/{job['id']}/result")
    assert code == 200
    return job, png


def test_sd35_loads_with_its_family_and_defaults(sd3: AppProcess) -> None:
    info = sd3.get("/api/info")[1]
    assert info["model"] == "sd35-medium" and info["family"] == "sd3"
    assert info["negative_prompt"] is True
    # the model's own defaults, and the size from the tiny VAE's config
    assert info["defaults"]["steps"] == 40 and info["defaults"]["guidance"] == 4.5
    assert info["defaults"]["width"] == 64


def test_negative_prompt_is_used_and_recorded_and_same_seed_repeats(sd3: AppProcess) -> None:
    job, first = generate(sd3, seed=5, negative_prompt="blurry, dark", guidance=4.0)
    _, again = generate(sd3, seed=5, negative_prompt="blurry, dark", guidance=4.0)
    _, plain = generate(sd3, seed=5, guidance=4.0)
    _, other_seed = generate(sd3, seed=6, negative_prompt="blurry, dark", guidance=4.0)
    assert first == again
    assert first != plain, "the negative prompt changed nothing"
    assert first != other_seed
    assert png_size(first) == (64, 64)
    params = json.loads(png_text(first)["parameters"])
    assert params["negative_prompt"] == "blurry, dark" and params["seed"] == 5
    assert params["model"] == "sd35-medium" and params["guidance"] == 4.0 and params["steps"] == 2
    assert job["result"]["settings"]["negative_prompt"] == "blurry, dark"


def test_sd35_gguf_transformer(sd3: AppProcess) -> None:
    _, full = generate(sd3, seed=9, negative_prompt="fog", model="sd35-medium")
    job, quant = generate(sd3, seed=9, negative_prompt="fog", model="sd35-gguf")
    info = sd3.get("/api/info")[1]
    assert info["model"] == "sd35-gguf" and info["family"] == "sd3"
    assert "GGUFParameter" in info["weight_types"]
    assert png_size(quant) == (64, 64) and quant != full
    assert json.loads(png_text(quant)["parameters"])["precision"] == "gguf-q8"
    assert generate(sd3, seed=9, negative_prompt="fog", model="sd35-gguf")[1] == quant
