"""FLUX.1 Fill, FLUX.1 Canny / Depth, Lumina-Next and HunyuanDiT through the generator's API:
tiny pipelines of each real layout (diffusers' FluxFillPipeline, FluxControlPipeline,
LuminaPipeline, HunyuanDiTPipeline) run on the CPU in the app's own env, over real HTTP.

Pictures travel as PNG bytes made and read here with the standard library (the dev venv has
no Pillow), so what is checked is the pixels the app saved, not what it says it did."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from tests.fixtures.pngbytes import PHOTO, SIDE, make_png, png_size, png_text, read_rgb
from tests.fixtures.tinymodels import AppProcess, choice_from_folder, models_json, running_app


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def square_mask(x: int, y: int) -> int:
    return 255 if 16 <= x < 48 and 16 <= y < 48 else 0


MASK = make_png(SIDE, SIDE, square_mask, "L")


# ---------------------------------------------------------------- the app


@pytest.fixture(scope="module")
def app(
    generator_env, tiny_fill, tiny_control, tiny_lumina, tiny_hunyuan, tmp_path_factory
) -> Iterator[AppProcess]:
    models = {
        "flux-fill": choice_from_folder(tiny_fill, "fp32"),
        "flux-fill-gguf": choice_from_folder(tiny_fill, "gguf-q8"),
        "flux-canny": choice_from_folder(tiny_control, "fp32"),
        "flux-depth": choice_from_folder(tiny_control, "fp32"),
        "lumina-next": choice_from_folder(tiny_lumina, "fp32"),
        "hunyuan-dit": choice_from_folder(tiny_hunyuan, "fp32"),
    }
    with running_app(
        generator_env, "generator", tmp_path_factory.mktemp("gen-edit"), models_json(models)
    ) as proc:
        yield proc


def run(app: AppProcess, task: str, **body) -> tuple[dict, bytes]:
    code, job, _ = app.post(f"/api/{task}?wait=true", {"prompt": "a red door", "steps": 2, **body})
    assert code == 200, (job, app.log_tail())
    assert job["status"] == "done", job
    code, _, png = app.get(f"/api/jobs/{job['id']}/result")
    assert code == 200
    return job, png


def refused(app: AppProcess, task: str, **body) -> str:
    code, err, _ = app.post(f"/api/{task}", {"prompt": "a red door", "steps": 2, **body})
    assert code in (400, 404, 422), (code, err)
    message = err.get("error") or err.get("detail") or json.dumps(err)
    assert message.rstrip().endswith("."), message
    return message


# ---------------------------------------------------------------- FLUX.1 Fill


def test_inpaint_repaints_the_mask_and_keeps_every_other_pixel(app: AppProcess) -> None:
    job, png = run(app, "inpaint", image=b64(PHOTO), mask=b64(MASK), seed=5, model="flux-fill")
    assert png_size(png) == (SIDE, SIDE)
    out, source = read_rgb(png), read_rgb(PHOTO)
    outside = [(x, y) for y in range(SIDE) for x in range(SIDE) if not square_mask(x, y)]
    inside = [(x, y) for y in range(SIDE) for x in range(SIDE) if square_mask(x, y)]
    assert all(out[y][x] == source[y][x] for x, y in outside)
    changed = sum(out[y][x] != source[y][x] for x, y in inside)
    assert changed > len(inside) // 2, changed  # the model painted the masked square
    params = json.loads(png_text(png)["parameters"])
    assert params["model"] == "flux-fill" and params["seed"] == 5 and params["steps"] == 2
    # the model's own guidance (FLUX.1 Fill is run at 30, as Black Forest Labs does)
    assert params["guidance"] == 30.0


def test_inpaint_from_a_gguf_fill_transformer(app: AppProcess) -> None:
    """The Fill transformer's wider input (latents + masked picture + 8x8-packed mask) loads
    from a single GGUF file, as the community Q8/Q5/Q4 builds are loaded."""
    _, png = run(app, "inpaint", image=b64(PHOTO), mask=b64(MASK), seed=5, model="flux-fill-gguf")
    info = app.get("/api/info")[1]
    assert info["model"] == "flux-fill-gguf" and "GGUFParameter" in info["weight_types"]
    out, source = read_rgb(png), read_rgb(PHOTO)
    assert out[0][0] == source[0][0] and out[63][63] == source[63][63]


def test_outpainting_extends_the_canvas_around_the_picture(app: AppProcess) -> None:
    _, png = run(app, "inpaint", image=b64(PHOTO), expand=[16, 0, 16, 0], seed=2, model="flux-fill")
    assert png_size(png) == (SIDE + 32, SIDE)
    out, source = read_rgb(png), read_rgb(PHOTO)
    assert all(out[y][x + 16] == source[y][x] for y in range(SIDE) for x in range(SIDE))


def test_inpaint_refuses_what_it_cannot_do_with_a_sentence(app: AppProcess) -> None:
    small_mask = make_png(32, 32, lambda x, y: 255, "L")
    assert "send a mask of the picture's own size" in refused(
        app, "inpaint", image=b64(PHOTO), mask=b64(small_mask), model="flux-fill"
    )
    black = make_png(SIDE, SIDE, lambda x, y: 0, "L")
    assert "mask is empty" in refused(
        app, "inpaint", image=b64(PHOTO), mask=b64(black), model="flux-fill"
    )
    assert "Nothing to repaint" in refused(app, "inpaint", image=b64(PHOTO), model="flux-fill")
    # a Fill model asked for plain text-to-image, and a text-to-image model asked to inpaint
    assert "/api/inpaint" in refused(app, "generate", model="flux-fill")
    message = refused(app, "inpaint", image=b64(PHOTO), mask=b64(MASK), model="lumina-next")
    assert "/api/generate" in message and "flux-fill" in message


# ---------------------------------------------------------------- FLUX.1 Canny / Depth


def test_canny_computes_the_edge_map_from_a_photo(app: AppProcess) -> None:
    job, png = run(app, "control", control_image=b64(PHOTO), seed=3, model="flux-canny")
    assert png_size(png) == (SIDE, SIDE)
    params = json.loads(png_text(png)["parameters"])
    assert params["control"] == "canny" and params["control_from"] == "photo"
    edges = read_rgb(app.get(f"/api/outputs/{job['result']['control_map']}")[2])
    # the bright square's outline is an edge; its flat middle is not
    assert any(edges[y][x] == (255, 255, 255) for y in range(18, 46) for x in (18, 19, 20, 21))
    assert edges[32][32] == (0, 0, 0)
    white = sum(p == (255, 255, 255) for row in edges for p in row)
    assert 0 < white < SIDE * SIDE // 4, white  # thin lines, not a filled area


def test_the_control_image_steers_the_picture(app: AppProcess) -> None:
    """Same seed and prompt, two different maps: two different pictures (the map is used)."""
    blank = make_png(SIDE, SIDE, lambda x, y: (0, 0, 0))
    _, a = run(app, "control", control_image=b64(PHOTO), control="map", seed=9, model="flux-canny")
    _, b = run(app, "control", control_image=b64(blank), control="map", seed=9, model="flux-canny")
    _, again = run(
        app, "control", control_image=b64(PHOTO), control="map", seed=9, model="flux-canny"
    )
    assert a == again and a != b


def test_depth_takes_a_ready_map_and_says_why_not_a_photo(app: AppProcess) -> None:
    message = refused(app, "control", control_image=b64(PHOTO), control="photo", model="flux-depth")
    assert "depth map" in message and "control: map" in message
    depth = make_png(SIDE, SIDE, lambda x, y: (y * 4, y * 4, y * 4))
    _, png = run(app, "control", control_image=b64(depth), seed=1, model="flux-depth")
    params = json.loads(png_text(png)["parameters"])
    assert params["control"] == "depth" and params["control_from"] == "map"
    assert params["guidance"] == 10.0  # FLUX.1 Depth's own default


# ---------------------------------------------------------------- Lumina-Next, HunyuanDiT


def test_lumina_next_draws_any_aspect_ratio(app: AppProcess) -> None:
    _, png = run(
        app,
        "generate",
        width=96,
        height=64,
        seed=4,
        negative_prompt="blurry",
        model="lumina-next",
    )
    assert png_size(png) == (96, 64)
    info = app.get("/api/info")[1]
    assert info["family"] == "lumina" and info["negative_prompt"] is True
    params = json.loads(png_text(png)["parameters"])
    assert params["negative_prompt"] == "blurry" and params["steps"] == 2


def test_hunyuan_dit_generates(app: AppProcess) -> None:
    _, png = run(app, "generate", width=64, height=64, seed=4, model="hunyuan-dit")
    assert png_size(png) == (64, 64)
    assert app.get("/api/info")[1]["family"] == "hunyuan"


MASK_OF = """
import json
from PIL import Image
from generator.ui import mask_of
bg = Image.new("RGB", (40, 30), (10, 20, 30))
layer = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
layer.paste((0, 0, 0, 255), (5, 5, 15, 10))   # a black brush stroke: still a mask
layer2 = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
layer2.paste((255, 0, 0, 90), (30, 20, 35, 25))  # a soft red stroke on a second layer
picture, mask = mask_of({"background": bg, "layers": [layer, layer2], "composite": bg})
try:
    mask_of({"background": None, "layers": [], "composite": None})
    empty = "accepted"
except Exception as exc:
    empty = exc.message
print(json.dumps({
    "size": mask.size, "mode": mask.mode, "white": sum(v == 255 for v in mask.getdata()),
    "others": sorted(set(mask.getdata())), "picture": picture.getpixel((0, 0)), "empty": empty,
}))
"""


def test_the_mask_painted_on_the_page_becomes_the_api_mask(generator_env) -> None:
    """Gradio's ImageMask hands over a background and transparent layers with the strokes;
    every painted pixel, whatever the brush colour or opacity, is white in the mask."""
    proc = generator_env.run(["-c", MASK_OF])
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["size"] == [40, 30] and out["mode"] == "L"
    assert out["white"] == 10 * 5 + 5 * 5 and out["others"] == [0, 255]
    assert out["picture"] == [10, 20, 30]
    assert out["empty"].startswith("Upload a picture first")
