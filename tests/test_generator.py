"""The generator app over real HTTP: a tiny FLUX.1 pipeline (fp32, bf16, GGUF Q8_0, fp8) run
by diffusers on the CPU inside the app's own uv env, launched like the supervisor does."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path

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
def gen(generator_env, tiny_flux, tmp_path_factory) -> Iterator[AppProcess]:
    models = {
        "flux-schnell": choice_from_folder(tiny_flux, "fp32"),
        "flux-bf16": choice_from_folder(tiny_flux, "bf16"),
        "flux-gguf": choice_from_folder(tiny_flux, "gguf-q8"),
        "flux-fp8": choice_from_folder(tiny_flux, "fp8-file", precision="fp8"),
    }
    with running_app(
        generator_env, "generator", tmp_path_factory.mktemp("gen"), models_json(models)
    ) as app:
        yield app


def generate(app: AppProcess, **body) -> dict:
    code, job, _ = app.post("/api/generate?wait=true", {"prompt": "a red apple", **SMALL, **body})
    assert code == 200, job
    assert job["status"] == "done"
    return job


def result_bytes(app: AppProcess, job: dict, index: int = 0) -> bytes:
    code, _, data = app.get(f"/api/jobs/{job['id']}/result?index={index}")
    assert code == 200
    return data


def test_health_says_loading_then_ready(gen: AppProcess) -> None:
    loading = [h for h in gen.health_seen if h["status"] == "loading"]
    assert loading, gen.health_seen[:3]
    assert all(h["code"] == 503 and 0.0 <= h["progress"] <= 1.0 for h in loading)
    last = gen.health_seen[-1]
    assert last["code"] == 200 and last["status"] == "ready" and last["model"] == "flux-schnell"


def test_info_names_model_variant_and_device(gen: AppProcess) -> None:
    code, info, _ = gen.get("/api/info")
    assert code == 200
    assert info["app"] == "generator" and info["version"]
    assert info["device"] == "cpu" and info["vram_in_use"] == 0
    assert info["model"] == "flux-schnell" and info["variant"] == "fp32" and info["loaded"] is True
    assert set(info["models"]) == {"flux-schnell", "flux-bf16", "flux-gguf", "flux-fp8"}
    assert (
        info["family"] == "flux" and info["defaults"]["width"] == 64
    )  # from the tiny VAE's config
    assert "generate" in info["tasks"]


def test_same_seed_gives_the_same_png_and_parameters_are_inside(gen: AppProcess) -> None:
    first = generate(gen, seed=1234)
    second = generate(gen, seed=1234)
    other = generate(gen, seed=99)
    a, b, c = result_bytes(gen, first), result_bytes(gen, second), result_bytes(gen, other)
    assert a == b
    assert a != c
    assert png_size(a) == (64, 64)

    params = json.loads(png_text(a)["parameters"])
    assert params["prompt"] == "a red apple" and params["seed"] == 1234 and params["steps"] == 2
    assert params["model"] == "flux-schnell" and params["variant"] == "fp32"
    # the file lies in the outputs folder, and /api/outputs serves the same bytes
    (name,) = first["result"]["files"]
    assert (gen.outputs / name).read_bytes() == a
    assert gen.get(first["result"]["urls"][0])[2] == a


def test_batch_count_uses_consecutive_seeds(gen: AppProcess) -> None:
    batch = generate(gen, seed=7, count=2)
    assert batch["result"]["seeds"] == [7, 8]
    single = generate(gen, seed=8)
    assert result_bytes(gen, batch, 1) == result_bytes(gen, single)
    assert result_bytes(gen, batch, 0) != result_bytes(gen, single)


def test_job_reports_progress_per_step(gen: AppProcess) -> None:
    code, job, _ = gen.post(
        "/api/generate", {"prompt": "a boat", "width": 256, "height": 256, "steps": 6, "seed": 3}
    )
    assert code == 202 and job["status"] in ("queued", "running")
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        code, state, _ = gen.get(job["url"])
        assert code == 200
        seen.append(state["progress"])
        if state["status"] in ("done", "failed"):
            break
        time.sleep(0.02)
    assert state["status"] == "done", state
    assert state["message"] == "image 1/1 saved"
    # Every step moved the figure, and the last step left room for decoding the picture.
    assert (
        len(state["trail"]) >= 6
        and state["trail"] == sorted(state["trail"])
        and state["trail"][-2] < 1.0
    )
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert png_size(result_bytes(gen, state)) == (256, 256)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"prompt": "x", "seed": "twelve"}, 422, "seed"),
        ({"prompt": "x", "width": 100}, 422, "width"),
        ({"prompt": "x", "width": 8192}, 422, "width"),
        ({"prompt": ""}, 422, "prompt"),
        ({"prompt": "x", "steps": 0}, 422, "steps"),
        ({"prompt": "x", "colour": "red"}, 422, "colour"),
        ({"prompt": "x", "model": "sdxl"}, 404, "Unknown model 'sdxl'"),
        ({"prompt": "x", "negative_prompt": "blur"}, 400, "negative prompt"),
        ([1, 2], 422, "Invalid request"),
    ],
)
def test_bad_requests_get_a_sentence_and_the_server_lives(
    gen: AppProcess, body, status, words
) -> None:
    code, answer, _ = gen.post("/api/generate", body)
    assert code == status, answer
    assert words in answer["error"]
    assert gen.get("/api/health")[0] == 200


def test_other_bad_calls(gen: AppProcess) -> None:
    assert gen.post("/api/generate", raw=b"{not json")[0] == 400
    code, answer, _ = gen.post("/api/paint", {"prompt": "x"})
    assert code == 404 and "generate" in answer["error"]
    assert gen.get("/api/jobs/nope")[0] == 404
    assert gen.get("/api/outputs/../../etc/passwd")[0] == 404
    # a body over the limit is refused from its Content-Length, before it is read
    conn = http.client.HTTPConnection(gen.url.removeprefix("http://"), timeout=30)
    conn.putrequest("POST", "/api/generate")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(200 * 1024 * 1024))
    conn.endheaders(b"{}")
    resp = conn.getresponse()
    assert resp.status == 413 and "too large" in json.loads(resp.read())["error"]
    conn.close()
    generate(gen, seed=5)  # still serving


def test_gguf_and_fp8_variants_load_and_run(gen: AppProcess) -> None:
    base = result_bytes(gen, generate(gen, seed=11))
    gguf = generate(gen, seed=11, model="flux-gguf")
    info = gen.get("/api/info")[1]
    assert info["model"] == "flux-gguf" and info["variant"] == "gguf-q8"
    assert "GGUFParameter" in info["weight_types"]
    gguf_png = result_bytes(gen, gguf)
    assert gguf_png != base and png_size(gguf_png) == (64, 64)
    assert json_params(gguf_png)["precision"] == "gguf-q8"

    fp8 = generate(gen, seed=11, model="flux-fp8")
    info = gen.get("/api/info")[1]
    assert info["model"] == "flux-fp8" and "float8_e4m3fn" in info["weight_dtypes"]
    assert png_size(result_bytes(gen, fp8)) == (64, 64)

    generate(gen, seed=11, model="flux-bf16")
    assert gen.get("/api/info")[1]["dtype"] == "bfloat16"
    # back to the first: the same image as before the switches
    assert result_bytes(gen, generate(gen, seed=11, model="flux-schnell")) == base


def json_params(png: bytes) -> dict:
    return json.loads(png_text(png)["parameters"])


def test_unload_frees_the_model_and_the_next_job_reloads_it(gen: AppProcess) -> None:
    before = result_bytes(gen, generate(gen, seed=21, model="flux-schnell"))
    loads = gen.get("/api/info")[1]["loads"]
    code, body, _ = gen.post("/api/unload")
    assert code == 200 and body == {"loaded": False}
    code, health, _ = gen.get("/api/health")
    assert code == 200 and health["status"] == "ready" and health["loaded"] is False
    assert gen.get("/api/info")[1]["loaded"] is False
    after = result_bytes(gen, generate(gen, seed=21))
    info = gen.get("/api/info")[1]
    assert info["loaded"] is True and info["loads"] == loads + 1 and info["model"] == "flux-schnell"
    assert after == before


def test_outputs_folder_holds_pngs_only(gen: AppProcess) -> None:
    files = [p for p in Path(gen.outputs).rglob("*") if p.is_file()]
    assert files and all(p.suffix == ".png" for p in files)


def test_web_page_is_built_on_the_first_visit_only(gen: AppProcess) -> None:
    # health checks and every API call so far left Gradio alone (it costs ~70 MB of RAM)
    assert gen.get("/api/info")[1]["page"] == {"url": "/", "built": False}
    code, _, html = gen.get("/", timeout=180)
    assert code == 200 and b"gradio" in html.lower()
    assert gen.get("/api/info")[1]["page"]["built"] is True
    assert gen.get("/config")[0] == 200  # the page's own routes answer from now on
    generate(gen, seed=31)  # and the API still serves
    code, answer, _ = gen.get("/api/nothing-here")
    assert code == 404 and "/api/nothing-here" in answer["error"]


def test_openapi_lists_the_task_and_its_schema(gen: AppProcess) -> None:
    code, spec, _ = gen.get("/api/openapi.json")
    assert code == 200
    schema = spec["paths"]["/api/generate"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert "prompt" in schema["properties"] and "/api/health" in spec["paths"]


def test_bad_query_parameters_get_a_sentence(gen: AppProcess) -> None:
    code, answer, _ = gen.post("/api/generate?wait=maybe", {"prompt": "x"})
    assert code == 422 and "query.wait" in answer["error"]
    code, answer, _ = gen.get("/api/jobs/x/result?index=first")
    assert code == 422 and "query.index" in answer["error"]
