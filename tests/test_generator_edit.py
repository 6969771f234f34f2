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
from tests.fixtures.tinymodels import (
    AppProcess,
    choice_from_folder,
    models_json,
    running_app,
    with_depth_estimator,
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def square_mask(x: int, y: int) -> int:
    return 255 if 16 <= x < 48 and 16 <= y < 48 else 0


MASK = make_png(SIDE, SIDE, square_mask, "L")


# ---------------------------------------------------------------- the app


@pytest.fixture(scope="module")
def app(
    generator_env, tiny_fill, tiny_control, tiny_lumina, tiny_hunyuan, tiny_depth, tmp_path_factory
) -> Iterator[AppProcess]:
    models = {
        "flux-fill": choice_from_folder(tiny_fill, "fp32"),
        "flux-fill-gguf": choice_from_folder(tiny_fill, "gguf-q8"),
        "flux-canny": choice_from_folder(tiny_control, "fp32"),
        # as the recipe installs it: the pipeline and Depth Anything V2 Small beside it
        "flux-depth": with_depth_estimator(choice_from_folder(tiny_control, "fp32"), tiny_depth),
        # installed before the estimator was part of flux-depth (or its files were removed)
        "flux-depth-bare": choice_from_folder(tiny_control, "fp32"),
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


def test_depth_makes_the_depth_map_from_a_photo_and_follows_it(app: AppProcess) -> None:
    """A photo in (the default, as for Canny): the app estimates its depth with Depth Anything
    V2, returns the map, and FLUX.1 Depth follows exactly that map."""
    job, png = run(app, "control", control_image=b64(PHOTO), seed=7, model="flux-depth")
    assert png_size(png) == (SIDE, SIDE)
    params = json.loads(png_text(png)["parameters"])
    assert params["control"] == "depth" and params["control_from"] == "photo"
    assert params["guidance"] == 10.0  # FLUX.1 Depth's own default
    code, _, map_png = app.get(f"/api/outputs/{job['result']['control_map']}")
    assert code == 200 and png_size(map_png) == (SIDE, SIDE)  # the work size
    depth = read_rgb(map_png)
    assert all(r == g == b for row in depth for r, g, b in row)  # a grey map
    values = [r for row in depth for r, _, _ in row]
    assert min(values) <= 5 and max(values) >= 250  # stretched: nearest white, farthest black
    # the same seed with that map sent as a ready map: the same picture, so it is what FLUX used
    _, again = run(
        app, "control", control_image=b64(map_png), control="map", seed=7, model="flux-depth"
    )
    assert read_rgb(again) == read_rgb(png)
    # another photo, another depth map
    other = make_png(SIDE, SIDE, lambda x, y: (x * 4, 255 - y * 4, (x * y) % 256))
    job2, _ = run(
        app, "control", control_image=b64(other), control="photo", seed=7, model="flux-depth"
    )
    assert read_rgb(app.get(f"/api/outputs/{job2['result']['control_map']}")[2]) != depth


def test_depth_takes_a_ready_map_and_names_the_missing_estimator(app: AppProcess) -> None:
    """Without Depth Anything's files a photo is refused with what to install; a ready map
    still works."""
    message = refused(app, "control", control_image=b64(PHOTO), model="flux-depth-bare")
    assert "Depth Anything V2 Small" in message and "darkroom update generator" in message
    assert "control: map" in message
    depth = make_png(SIDE, SIDE, lambda x, y: (y * 4, y * 4, y * 4))
    job, png = run(
        app, "control", control_image=b64(depth), control="map", seed=1, model="flux-depth-bare"
    )
    params = json.loads(png_text(png)["parameters"])
    assert params["control"] == "depth" and params["control_from"] == "map"
    used = read_rgb(app.get(f"/api/outputs/{job['result']['control_map']}")[2])
    assert used == read_rgb(depth)  # the map as sent


DEPTH_OF = """
import json, sys
import numpy as np
from pathlib import Path
from PIL import Image, ImageDraw
from generator import depth

folder = Path(sys.argv[1])
model = depth._model(folder)
photo = Image.new("RGB", (96, 64), (40, 60, 80))
ImageDraw.Draw(photo).ellipse((20, 10, 60, 50), fill=(250, 240, 200))
other = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
import torch
with torch.no_grad():  # the model's own output, straight from transformers
    raw = model(pixel_values=depth.prepare(photo, folder)).predicted_depth[0].numpy()
made = np.asarray(depth.depth_image(photo, folder))
flipped = np.asarray(depth.depth_image(other, folder))
grey = made[..., 0].astype(float)
# the raw output at the map's size, to compare orderings pixel by pixel
raw_big = np.asarray(Image.fromarray(raw).resize((96, 64), Image.Resampling.BICUBIC))
flat = np.asarray(depth.to_map(np.full((4, 4), 3.0, dtype=np.float32), (8, 8)))
print(json.dumps({
    "input": list(depth.prepare(photo, folder).shape),
    "size": [made.shape[1], made.shape[0]],
    "grey": bool((made[..., 0] == made[..., 1]).all() and (made[..., 1] == made[..., 2]).all()),
    "at_raw_max": int(grey.flat[int(np.argmax(raw_big))]),
    "at_raw_min": int(grey.flat[int(np.argmin(raw_big))]),
    "corr": float(np.corrcoef(grey.ravel(), raw_big.ravel())[0, 1]),
    "raw_spread": float(raw.max() - raw.min()),
    "flip_differs": bool((flipped != made).any()),
    "flat": sorted(set(flat.ravel().tolist())),
}))
"""


def test_depth_map_near_is_white_as_the_raw_output_orders_it(generator_env, tiny_depth) -> None:
    """generator.depth on a tiny Depth Anything V2 loaded from disk as the app loads it: the
    map is the photo's size, grey, and orders pixels as the model's raw output does (larger
    raw = nearer = whiter); a different photo gives a different map."""
    proc = generator_env.run(["-c", DEPTH_OF, str(tiny_depth)], env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # input: short side at the preprocessor's size (56), the photo's shape, multiples of 14
    assert out["input"] == [1, 3, 56, 84]
    assert out["size"] == [96, 64] and out["grey"]
    assert out["raw_spread"] > 0
    assert out["at_raw_max"] >= 250 and out["at_raw_min"] <= 5
    assert out["corr"] > 0.95, out  # not inverted (far = white would be near -1)
    assert out["flip_differs"]
    assert out["flat"] == [128]  # nothing nearer than anything else: mid-grey, no NaN


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
