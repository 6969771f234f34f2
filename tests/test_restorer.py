"""The restorer over real HTTP: random-weight GFPGAN, CodeFormer, RestoreFormer, Real-ESRGAN
x4/x2, LaMa and RetinaFace files loaded through spandrel in the app's own env, run on CPU
on small drawn photos; bad files answered with 400 and a sentence."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.pngbytes import chunks, huge_png, ihdr
from tests.fixtures.tinymodels import AppProcess, models_json, running_app, start_app
from tests.fixtures.tinyrestore import restore_models

ALL = [
    "gfpgan",
    "codeformer",
    "restoreformer",
    "retinaface",
    "parsenet",
    "esrgan-x4",
    "esrgan-x2",
    "lama",
]


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@pytest.fixture(scope="module")
def app(restorer_env, tiny_restore, tmp_path_factory) -> Iterator[AppProcess]:
    models = restore_models(tiny_restore, ALL)
    with running_app(
        restorer_env, "restorer", tmp_path_factory.mktemp("restorer"), models_json(models, "gfpgan")
    ) as proc:
        yield proc


def restore(app: AppProcess, image: Path, **body) -> tuple[dict, bytes]:
    code, job, _ = app.post(
        "/api/restore?wait=true", {"image": b64(image), "tile": 64, **body}, timeout=300
    )
    assert code == 200, job
    code, _, data = app.get(f"/api/jobs/{job['id']}/result")
    assert code == 200
    return job, data


def test_info_shows_architectures_spandrel_detected(app: AppProcess) -> None:
    code, info, _ = app.get("/api/info")
    assert code == 200
    nets = info["nets"]
    assert {k: (v["arch"], v["scale"]) for k, v in nets.items()} == {
        "gfpgan": ("GFPGAN", 1),
        "codeformer": ("CodeFormer", 1),
        "restoreformer": ("RestoreFormer", 1),
        "realesrgan-x4": ("ESRGAN", 4),
        "realesrgan-x2": ("ESRGAN", 2),
        "lama": ("LaMa", 1),
    }
    assert nets["codeformer"]["non_commercial_arch"] is True
    assert nets["gfpgan"]["non_commercial_arch"] is False
    assert info["face_detector"] == "face-detection"
    assert any("parsing_parsenet" in k for k in info["skipped"])


def test_full_pipeline_keeps_exif_orientation_and_icc(app: AppProcess, restore_photos) -> None:
    job, data = restore(app, restore_photos["photo"], face_boxes=[[44, 20, 84, 72]], scale=2)
    result = job["result"]
    assert result["steps"][0] == "scratches" and result["steps"][-2:] == ["upscale", "faces"]
    assert result["upscaler"] == "realesrgan-x2" and result["face_model"] == "gfpgan"
    assert len(result["faces"]) == 1
    # stored 128x96 with orientation 6: the output keeps the stored layout and the tag
    assert ihdr(data)[:2] == (256, 192)
    c = chunks(data)
    assert (
        b"\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00" in c[b"eXIf"][0]
        or b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06" in c[b"eXIf"][0]
    )
    assert b"iCCP" in c
    params = json.loads(
        next(v for v in c[b"tEXt"] if v.startswith(b"parameters\0")).split(b"\0", 1)[1]
    )
    assert params["scale"] == 2 and "image" not in params


def test_progress_moves_per_tile_and_per_face_and_output_keeps_the_name(
    app: AppProcess, restore_photos
) -> None:
    job, _ = restore(
        app,
        restore_photos["clean"],
        scratches=False,
        tile=32,
        scale=2,
        face_boxes=[[44, 20, 84, 72], [4, 4, 40, 40]],
        filename="Grandma Lise.jpg",
    )
    trail = job["trail"]
    assert trail == sorted(trail) and len(trail) >= 20, (
        trail
    )  # 12 tiles and 2 faces, each through its layers
    assert len([p for p in trail if 0.35 < p < 0.8]) >= 12  # upscaling, tile by tile
    assert len([p for p in trail if 0.8 < p < 0.95]) >= 4  # the faces, one after the other
    assert job["result"]["files"][0].rsplit("/", 1)[-1].startswith("Grandma-Lise-restored")


def test_every_step_switches_off(app: AppProcess, restore_photos) -> None:
    job, data = restore(
        app, restore_photos["clean"], scratches=False, inpaint=False, faces=False, upscale=False
    )
    assert job["result"]["steps"] == []
    assert ihdr(data)[:2] == (128, 96)


def test_x4_and_other_face_models(app: AppProcess, restore_photos) -> None:
    job, data = restore(
        app,
        restore_photos["clean"],
        scratches=False,
        scale=4,
        face_model="codeformer",
        fidelity=0.7,
        face_boxes=[[44, 20, 84, 72]],
    )
    assert ihdr(data)[:2] == (512, 384)
    assert (
        job["result"]["face_model"] == "codeformer" and job["result"]["upscaler"] == "realesrgan-x4"
    )


def test_detector_runs_when_no_boxes_are_given(app: AppProcess, restore_photos) -> None:
    job, _ = restore(
        app,
        restore_photos["clean"],
        scratches=False,
        upscale=False,
        face_threshold=0.5,
        max_faces=1,
        face_model="restoreformer",
    )
    assert job["result"]["face_model"] == "restoreformer"
    # random weights find random "faces": the point is that RetinaFace ran and the cap held
    assert len(job["result"]["faces"]) == min(1, job["result"]["faces_found"])


def test_scratches_found_and_filled(app: AppProcess, restore_photos) -> None:
    job, data = restore(
        app, restore_photos["scratched"], faces=False, upscale=False, return_mask=True
    )
    scratched = job["result"]["defect_pixels"]
    clean, _ = restore(app, restore_photos["clean"], faces=False, upscale=False)
    assert scratched > 150, job["result"]  # two lines of ~130 and ~95 pixels
    assert clean["result"]["defect_pixels"] < scratched / 4
    assert "inpaint" in job["result"]["steps"] and len(job["result"]["files"]) == 2
    assert ihdr(data)[:2] == (128, 96)


def test_user_mask_is_filled(app: AppProcess, restore_photos, tmp_path: Path) -> None:
    # a 128x96 greyscale PNG, white in a 10x10 square
    rows = b"".join(
        b"\0" + bytes(255 if 40 <= x < 50 and 30 <= y < 40 else 0 for x in range(128))
        for y in range(96)
    )
    png = b"\x89PNG\r\n\x1a\n"
    for kind, body in (
        (b"IHDR", struct.pack(">IIBBBBB", 128, 96, 8, 0, 0, 0, 0)),
        (b"IDAT", zlib.compress(rows)),
        (b"IEND", b""),
    ):
        png += (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )
    mask = tmp_path / "mask.png"
    mask.write_bytes(png)
    job, _ = restore(
        app, restore_photos["clean"], scratches=False, faces=False, upscale=False, mask=b64(mask)
    )
    assert job["result"]["defect_pixels"] == 100
    assert job["result"]["steps"] == ["mask", "inpaint"]


@pytest.mark.parametrize(
    "name, words",
    [
        ("empty", "empty"),
        ("text", "not a picture"),
        ("truncated", "truncated"),
        ("huge", "megapixels"),
        ("cmyk", "CMYK"),
        ("deep", "16 or 32 bits"),
        ("animated", "animated"),
        ("base64", "base64"),
    ],
)
def test_bad_images_are_400_with_a_sentence(
    app: AppProcess, restore_photos, name: str, words: str
) -> None:
    payload = {
        "empty": "",
        "text": base64.b64encode(b"hello, not a picture").decode(),
        "huge": base64.b64encode(huge_png()).decode(),
        "base64": "%%%not base64%%%",
    }.get(name)
    if payload is None:
        payload = b64(restore_photos[name])
    code, body, _ = app.post("/api/restore?wait=true", {"image": payload})
    assert code == 400, body
    assert words.lower() in body["error"].lower() and body["error"].endswith(".")
    assert app.get("/api/health")[0] == 200


def test_unknown_face_model_and_scale_are_400(app: AppProcess, restore_photos) -> None:
    code, body, _ = app.post(
        "/api/restore?wait=true",
        {
            "image": b64(restore_photos["clean"]),
            "face_model": "gpen",
            "face_boxes": [[1, 1, 20, 20]],
            "upscale": False,
            "scratches": False,
        },
    )
    assert code == 400 and "not installed" in body["error"]
    code, body, _ = app.post("/api/restore", {"image": b64(restore_photos["clean"]), "scale": 3})
    assert code == 400 and "2 or 4" in body["error"]


TILING = r"""
import json, sys
import numpy as np, torch
from PIL import Image
import spandrel
from restorer.tiling import run_tiled, to_tensor, to_uint8
d = spandrel.ModelLoader().load_from_file(sys.argv[1]).eval()
rgb = np.asarray(Image.open(sys.argv[2]).convert("RGB"))
with torch.inference_mode():
    whole = to_uint8(d(to_tensor(rgb, "cpu", torch.float32)))
tiled = run_tiled(lambda x, _m: d(x), rgb, d.scale, 32, 32, "cpu", torch.float32)
print(json.dumps({"shape": list(tiled.shape), "max": int(np.abs(whole.astype(int) - tiled).max()),
                  "mean": float(np.abs(whole.astype(int) - tiled).mean())}))
"""


def test_tiles_with_overlap_match_the_whole_image(
    restorer_env, tiny_restore, restore_photos
) -> None:
    proc = restorer_env.run(
        ["-c", TILING, tiny_restore["esrgan-x4"]["path"], str(restore_photos["clean"])]
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["shape"] == [384, 512, 3]
    assert r["mean"] < 0.05 and r["max"] <= 2, r


# --- the old-photo scratch U-Net (BOPBTL FT_Epoch_latest.pt, full size, random weights) ---


@pytest.fixture(scope="module")
def scratch_app(restorer_env, tiny_restore, tmp_path_factory) -> Iterator[AppProcess]:
    models = restore_models(tiny_restore, ["scratchnet", "lama"])
    with running_app(
        restorer_env, "restorer", tmp_path_factory.mktemp("scratch"), models_json(models, "lama")
    ) as proc:
        yield proc


def test_scratch_unet_is_loaded_from_its_checkpoint(scratch_app: AppProcess) -> None:
    code, info, _ = scratch_app.get("/api/info")
    assert code == 200
    assert info["scratch_detector"] == "scratch-detector"
    assert set(info["nets"]) == {"lama"} and not info["skipped"]


def test_scratch_unet_mask_goes_to_lama(scratch_app: AppProcess, restore_photos) -> None:
    # Random weights put every pixel near p = 0.5: over the 0.4 cut at sensitivity 0.5, under
    # the 0.7 cut at sensitivity 0. So the U-Net, not the built-in filter, decides the mask:
    # all of a clean photo, none of a scratched one.
    job, data = restore(
        scratch_app, restore_photos["clean"], faces=False, upscale=False, return_mask=True
    )
    r = job["result"]
    assert r["scratch_detector"] == "scratch-detector"
    assert (
        r["defect_pixels"] == 128 * 96
        and r["steps"] == ["scratches", "inpaint"]
        and len(r["files"]) == 2
    )
    assert ihdr(data)[:2] == (128, 96)
    code, _, mask = scratch_app.get(f"/api/jobs/{job['id']}/result?index=1")
    assert code == 200 and ihdr(mask)[:2] == (128, 96)

    job, _ = restore(
        scratch_app, restore_photos["scratched"], faces=False, upscale=False, sensitivity=0.0
    )
    assert job["result"]["defect_pixels"] == 0 and job["result"]["steps"] == ["scratches"]
    job, _ = restore(
        scratch_app,
        restore_photos["scratched"],
        faces=False,
        upscale=False,
        scratch_detector="builtin",
    )
    assert job["result"]["scratch_detector"] == "builtin" and job["result"]["defect_pixels"] > 150


def test_asking_for_the_scratch_unet_when_absent_is_400(app: AppProcess, restore_photos) -> None:
    code, body, _ = app.post(
        "/api/restore?wait=true",
        {
            "image": b64(restore_photos["clean"]),
            "faces": False,
            "upscale": False,
            "scratch_detector": "model",
        },
    )
    assert code == 400 and "scratch detector is not installed" in body["error"]


def test_asking_for_diffbir_when_absent_is_400_and_auto_uses_the_upscaler(
    app: AppProcess, restore_photos
) -> None:
    body = {"image": b64(restore_photos["clean"]), "faces": False, "scratches": False, "tile": 64}
    code, err, _ = app.post("/api/restore?wait=true", {**body, "texture": "diffbir"})
    assert code == 400 and "DiffBIR is not installed" in err["error"]
    assert "texture: upscaler" in err["error"] and err["error"].endswith(".")
    job, _ = restore(app, restore_photos["clean"], faces=False, scratches=False)
    assert job["result"]["steps"] == ["upscale"]


SCRATCH_FILES = r"""
import json, sys
from pathlib import Path
import numpy as np
from restorer.scratchnet import NotScratchDetector, ScratchDetector, ScratchUNet, working_size
sd = ScratchUNet().state_dict()
out = {"entries": len(sd), "numel": sum(v.numel() for v in sd.values()),
       "shapes": {k: list(sd[k].shape) for k in sys.argv[1].split(",")},
       "sizes": [working_size(96, 128), working_size(3000, 2000), working_size(200, 30000)], "refused": {}}
for path in sys.argv[2:]:
    try:
        ScratchDetector(Path(path), "cpu")
        out["refused"][Path(path).name] = None
    except NotScratchDetector as exc:
        out["refused"][Path(path).name] = str(exc)
det = ScratchDetector(Path(sys.argv[2]), "cpu")
rng = np.random.default_rng(0)
out["mask_shape"] = list(det.mask(rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)).shape)
print(json.dumps(out))
"""

# The released checkpoint's layout, from the BOPBTL detection code (UNet depth 4, wf 6, conv_num 2,
# anti-aliased downsampling, bilinear upsampling, 1 channel in and out).
LAYOUT = {
    "first.1.weight": [64, 1, 7, 7],
    "down_sample.0.1.weight": [64, 64, 3, 3],
    "down_sample.3.4.filt": [512, 1, 3, 3],
    "down_path.3.block.5.weight": [1024, 1024, 3, 3],
    "down_path.0.block.2.running_var": [128],
    "up_path.0.up.2.weight": [512, 1024, 3, 3],
    "up_path.3.conv_block.block.1.weight": [64, 128, 3, 3],
    "last.1.weight": [1, 64, 3, 3],
}


def test_scratch_unet_layout_and_strict_loading(restorer_env, tiny_restore, tmp_path: Path) -> None:
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    files = [
        tiny_restore["scratchnet"]["path"],
        tiny_restore["esrgan-x4"]["path"],
        tiny_restore["retinaface"]["path"],
        tiny_restore["lama"]["path"],
        str(text),
    ]
    proc = restorer_env.run(["-c", SCRATCH_FILES, ",".join(LAYOUT), *files])
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["entries"] == 156 and r["numel"] == 37_648_277 and r["shapes"] == LAYOUT
    assert r["sizes"] == [[256, 336], [384, 256], [16, 2048]]
    assert r["mask_shape"] == [97, 131]
    refused = r["refused"]
    assert refused["FT_Epoch_latest.pt"] is None
    assert "holds the entries 'params_ema'" in refused["RealESRGAN_x4plus.pth"]
    retina = refused["detection_Resnet50_Final.pth"]
    assert "is not the old-photo scratch detector" in retina and "weights are missing" in retina
    for name in ("big-lama.pt", "notes.pt"):
        assert "not a PyTorch checkpoint that can be read safely" in refused[name], refused[name]
    assert all(v.endswith(".") for v in refused.values() if v)


def test_wrong_scratch_file_stops_the_app_with_a_sentence(
    restorer_env, tiny_restore, tmp_path: Path
) -> None:
    wrong = tmp_path / "Global" / "checkpoints" / "detection" / "FT_Epoch_latest.pt"
    wrong.parent.mkdir(parents=True)
    wrong.write_bytes(Path(tiny_restore["esrgan-x4"]["path"]).read_bytes())
    models = restore_models(tiny_restore, ["lama"])
    models["scratch-detector"] = {
        "variant": "fp32",
        "precision": "fp32",
        "files": [
            {
                "repo": "databuzzword/bringing-old-photos-back-to-life",
                "revision": "main",
                "path": "Global/checkpoints/detection/FT_Epoch_latest.pt",
                "local": str(wrong),
            }
        ],
    }
    proc = start_app(restorer_env, "restorer", tmp_path / "app", models_json(models, "lama"))
    try:
        with pytest.raises(RuntimeError, match="exited"):
            proc.wait_ready(timeout=300)
        log = proc.log_tail()
        assert "error: FT_Epoch_latest.pt holds the entries 'params_ema'" in log
        assert "so it is not the old-photo scratch detector" in log
        assert "darkroom models pull restorer" in log and "Traceback" not in log
    finally:
        proc.stop()


def test_default_scale_and_presets_use_the_default_installs_upscaler(restorer_env) -> None:
    """The page, the API and the bundled presets ask for a scale the default install can do."""
    import yaml

    from manager.bundled import apps_dir
    from manager.recipe import bundled_recipes

    recipe = bundled_recipes()["restorer"]
    installed = {
        int(m.id.rsplit("-x", 1)[1])
        for m in recipe.models
        if m.default and m.library == "upscale_models"
    }
    assert installed == {4}
    proc = restorer_env.run(
        [
            "-c",
            "from restorer.restore import RestoreRequest; "
            "print(RestoreRequest.model_fields['scale'].default)",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.strip()) in installed
    ui = (apps_dir() / "restorer" / "ui.py").read_text("utf-8")
    assert 'value="4", label="Scale"' in ui
    for preset in (apps_dir() / "workflow" / "presets").glob("*.yaml"):
        for step in yaml.safe_load(preset.read_text("utf-8"))["steps"]:
            if step["app"] == "restorer" and step["params"].get("upscale"):
                assert step["params"].get("scale", 4) in installed, preset.name
