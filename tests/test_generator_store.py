"""The generator on weights that came the real way: served by the local hub, pulled by
manager.weights into the HF cache (snapshot symlinks), handed over as DARKROOM_MODELS;
and idle unload (DARKROOM_IDLE_UNLOAD_MINUTES) freeing the model while the app keeps serving."""

from __future__ import annotations

import time

from manager import weights
from manager.config import Settings
from manager.recipe import ModelFile
from tests.fixtures.tinymodels import (
    FLUX_REPO,
    GGUF_REPO,
    choice_from_store,
    models_json,
    publish_flux,
    start_app,
)


def test_pulled_gguf_model_runs_and_idle_unload_frees_it(
    generator_env, tiny_flux, hub, home, tmp_path
) -> None:
    publish_flux(hub, tiny_flux)
    common = [
        ModelFile(repo=FLUX_REPO, path=p, size=0)
        for p in (
            "model_index.json",
            "scheduler/*",
            "tokenizer/*",
            "tokenizer_2/*",
            "text_encoder/*",
            "text_encoder_2/*",
            "vae/*",
            "transformer/config.json",
        )
    ]
    variant = [ModelFile(repo=GGUF_REPO, path="flux1-tiny-Q8_0.gguf", size=0)]
    local = weights.pull(home, Settings(hf_endpoint=hub.url), common + variant)
    assert any(
        f.local_path.parts[-4] == "snapshots" or "snapshots" in f.local_path.parts for f in local
    )
    # only the chosen variant's transformer: the repo's full-precision weights stay on the hub
    assert not any(f.path.startswith("transformer/diffusion_pytorch_model") for f in local)

    models = models_json({"flux-schnell": choice_from_store(home, local, "gguf-q8")})
    app = start_app(
        generator_env,
        "generator",
        tmp_path / "app",
        models,
        {"HF_HUB_CACHE": str(home.models), "DARKROOM_IDLE_UNLOAD_MINUTES": "0.05"},
    )
    try:
        app.wait_ready()
        code, job, _ = app.post(
            "/api/generate?wait=true",
            {"prompt": "a kite", "width": 64, "height": 64, "steps": 2, "seed": 4},
        )
        assert code == 200, job
        info = app.get("/api/info")[1]
        assert "GGUFParameter" in info["weight_types"] and info["idle_unload_minutes"] == 0.05
        deadline = time.monotonic() + 60
        while app.get("/api/info")[1]["loaded"] and time.monotonic() < deadline:
            time.sleep(0.2)
        info = app.get("/api/info")[1]
        assert info["loaded"] is False, app.log_tail()
        assert app.get("/api/health")[0] == 200 and app.proc.poll() is None
        code, again, _ = app.post(
            "/api/generate?wait=true",
            {"prompt": "a kite", "width": 64, "height": 64, "steps": 2, "seed": 4},
        )
        assert code == 200
        assert (
            app.get(f"/api/jobs/{again['id']}/result")[2]
            == app.get(f"/api/jobs/{job['id']}/result")[2]
        )
        assert app.get("/api/info")[1]["loads"] == 2
        assert "idle for" in app.log_tail()
    finally:
        app.stop()


def test_missing_files_end_the_app_with_a_sentence(generator_env, tmp_path) -> None:
    models = models_json(
        {
            "flux-schnell": {
                "variant": "bf16",
                "files": [
                    {
                        "repo": FLUX_REPO,
                        "path": "model_index.json",
                        "local": str(tmp_path / "gone" / "model_index.json"),
                    }
                ],
            }
        }
    )
    app = start_app(generator_env, "generator", tmp_path / "app", models)
    try:
        assert app.proc.wait(timeout=180) == 1
        assert (
            "model_index.json is missing" in app.log_tail()
            and "darkroom models pull generator" in app.log_tail()
        )
    finally:
        app.stop()
