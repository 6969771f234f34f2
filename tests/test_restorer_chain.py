"""The seed's old-photo chain in the restorer (#21): defects -> BOPBTL global restoration ->
texture (upscale) -> faces (GFPGAN / GPEN / RestoreFormer++) -> colour, over real HTTP with
random-weight files of the real layouts (GPEN, RestoreFormer++ and the global restoration
are written in the app; narrowed copies are built by tinyrestore_build.py), run on CPU.
The layouts are checked against the released files: parameter counts that match their
byte sizes, key names and shapes, strict loading, and a sentence for any other file."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.pngbytes import ihdr
from tests.fixtures.tinymodels import AppProcess, models_json, running_app
from tests.fixtures.tinyrestore import restore_models

CHAIN = [
    "gfpgan",
    "gpen",
    "rfpp",
    "oldface",
    "retinaface",
    "esrgan-x2",
    "lama",
    "scratchnet",
    "global-a",
    "global-b",
    "global-map",
    "scratch-a",
    "scratch-b",
    "scratch-map",
    "ddcolor-tiny",
]
GLOBALS = ["old-photo-global", "old-photo-global-scratch"]
FACE = [[44, 20, 84, 72]]


@pytest.fixture(scope="module")
def chain_app(restorer_env, tiny_restore, tmp_path_factory) -> Iterator[AppProcess]:
    models = restore_models(tiny_restore, CHAIN)
    with running_app(
        restorer_env, "restorer", tmp_path_factory.mktemp("chain"), models_json(models, "gfpgan")
    ) as proc:
        yield proc


def restore(app: AppProcess, image: Path, **body) -> tuple[dict, bytes]:
    payload = {"image": base64.b64encode(image.read_bytes()).decode(), "tile": 64, **body}
    code, job, _ = app.post("/api/restore?wait=true", payload, timeout=300)
    assert code == 200, job
    assert job["status"] == "done", job.get("error")
    code, _, data = app.get(f"/api/jobs/{job['id']}/result")
    assert code == 200
    return job["result"], data


OFF = {
    "scratches": False,
    "inpaint": False,
    "global_restore": False,
    "faces": False,
    "upscale": False,
}


def test_info_lists_each_steps_choices(chain_app: AppProcess) -> None:
    code, info, _ = chain_app.get("/api/info")
    assert code == 200
    assert info["nets"]["gpen"]["arch"] == "GPEN"
    assert info["nets"]["restoreformer-pp"]["arch"] == "RestoreFormer++"
    assert info["global_restoration"] == GLOBALS
    assert info["global_settings"] == dict(zip(GLOBALS, ["quality", "scratch"], strict=True))
    chain = info["chain"]
    assert chain["steps"] == ["defects", "global", "texture", "faces", "colour"]
    assert chain["global"] == GLOBALS
    settings = chain["global_settings"]
    assert settings["quality"]["model"] == "old-photo-global"
    assert settings["scratch"]["model"] == "old-photo-global-scratch"
    assert settings["scratch"]["uses_scratch_mask"] and not settings["quality"]["uses_scratch_mask"]
    assert chain["texture"]["upscaler"]["unavailable"] is None
    assert chain["faces"] == {
        "gfpgan": "GFPGAN",
        "gpen": "GPEN",
        "restoreformer-pp": "RestoreFormer++",
        "old-photo-face": "BOPBTL-Face",
    }
    assert chain["colour"] == ["ddcolor-tiny"]
    assert chain["defects"]["scratch_detector"] == "scratch-detector"


def test_whole_chain_in_the_seeds_order(chain_app: AppProcess, restore_photos) -> None:
    result, data = restore(
        chain_app,
        restore_photos["grey"],
        scale=2,
        face_boxes=FACE,
        face_model="gpen",
        colour=True,
        colour_size=128,
        global_setting="quality",  # LaMa fills the scratches, then the quality setting
    )
    assert result["steps"] == ["scratches", "inpaint", "global", "upscale", "faces", "colour"]
    assert result["scratch_detector"] == "scratch-detector"
    assert result["global_restoration"] == "old-photo-global"
    assert result["texture"] == "upscaler" and result["upscaler"] == "realesrgan-x2"
    assert result["face_model"] == "gpen" and result["colour_model"] == "ddcolor-tiny"
    width, height, _, colour_type = ihdr(data)
    assert (width, height) == (256, 192)
    assert colour_type == 2  # a grey photo comes back in colour (RGB), not forced back to grey


def test_global_restoration_changes_the_photo_and_switches_off(
    chain_app: AppProcess, restore_photos
) -> None:
    plain, before = restore(chain_app, restore_photos["faded"], **OFF)
    # left open (null), it runs because it is installed
    restored, after = restore(chain_app, restore_photos["faded"], **{**OFF, "global_restore": None})
    assert plain["steps"] == [] and restored["steps"] == ["global"]
    assert ihdr(before)[:2] == ihdr(after)[:2] == (128, 96)
    assert before != after


def test_scratch_setting_fills_the_scratches_when_the_photo_has_them(
    chain_app: AppProcess, restore_photos
) -> None:
    """Left on auto, the global step takes BOPBTL's scratch setting for a scratched photo (it
    fills the scratches instead of LaMa), and the quality setting when nothing is to be filled."""
    found = {**OFF, "scratches": True, "inpaint": True, "global_restore": None}
    result, data = restore(
        chain_app, restore_photos["scratched"], **found, scratch_detector="builtin"
    )
    assert result["defect_pixels"] > 0
    assert result["steps"] == ["scratches", "global"]  # no "inpaint": LaMa did not run
    assert result["global_restoration"] == "old-photo-global-scratch"
    assert result["global_setting"] == "scratch"
    assert result["scratches_filled_by"] == "old-photo-global-scratch"
    assert ihdr(data)[:2] == (128, 96)
    # found but not to be filled: nothing for the mask to do, the quality setting runs
    kept, _ = restore(
        chain_app,
        restore_photos["scratched"],
        **{**found, "inpaint": False},
        scratch_detector="builtin",
    )
    assert kept["steps"] == ["scratches", "global"] and kept["global_setting"] == "quality"
    assert "scratches_filled_by" not in kept
    # named: the scratch setting on a photo without scratches, and the quality one with LaMa
    named, _ = restore(
        chain_app,
        restore_photos["clean"],
        **{**OFF, "global_restore": True},
        global_setting="scratch",
    )
    assert named["global_restoration"] == "old-photo-global-scratch"
    quality, _ = restore(
        chain_app,
        restore_photos["scratched"],
        **found,
        scratch_detector="builtin",
        global_setting="quality",
    )
    assert quality["steps"] == ["scratches", "inpaint", "global"]
    assert quality["global_restoration"] == "old-photo-global"


def test_page_offers_both_global_settings(chain_app: AppProcess) -> None:
    """The page's global restoration step has the setting choice, scratch-aware included."""
    code, html, _ = chain_app.get("/")
    assert code == 200
    code, config, _ = chain_app.get("/config")
    assert code == 200
    radios = [
        c["props"]
        for c in config["components"]
        if c.get("props", {}).get("elem_id") == "global-setting"
    ]
    assert len(radios) == 1
    labels = [c[0] if isinstance(c, list) else c for c in radios[0]["choices"]]
    assert labels == [
        "auto (with scratches when the photo has them)",
        "quality (grain, fading, blur)",
        "with scratches (fills them from the rest of the photo)",
    ]


@pytest.mark.parametrize(
    ("asked", "used"),
    [
        ("restoreformer++", "restoreformer-pp"),
        ("restoreformer-pp", "restoreformer-pp"),
        ("auto", "gfpgan"),
        ("old-photo-face", "old-photo-face"),
    ],
)
def test_face_models_by_name_id_or_preference(
    chain_app: AppProcess, restore_photos, asked: str, used: str
) -> None:
    result, data = restore(
        chain_app,
        restore_photos["clean"],
        **{**OFF, "faces": True},
        face_boxes=FACE,
        face_model=asked,
    )
    assert result["steps"] == ["faces"] and result["face_model"] == used
    assert ihdr(data)[:2] == (128, 96)


def test_unknown_steps_and_models_are_400_with_a_sentence(
    chain_app: AppProcess, restore_photos
) -> None:
    image = base64.b64encode(restore_photos["clean"].read_bytes()).decode()
    for body, words in (
        ({"upscale": True, "texture": "nonesuch"}, "There is no texture step 'nonesuch'. Known: "),
        (
            {"faces": True, "face_model": "codeformer", "face_boxes": FACE},
            "The face model 'codeformer' is not installed",
        ),
        (
            {"colour": True, "colour_model": "ddcolor-l"},
            "The colour model 'ddcolor-l' is not installed",
        ),
        ({"colour": True, "colour_size": 200}, "colour_size must be a multiple of 32"),
    ):
        code, job, _ = chain_app.post(
            "/api/restore?wait=true", {"image": image, "tile": 64, **OFF, **body}, timeout=300
        )
        assert code == 400 and words in job["error"], (body, job)
        assert job["error"].rstrip().endswith("."), job["error"]


ABSENT = r"""
import base64, io, json, sys
import numpy as np
from appkit.errors import BadRequest
from restorer import chain
from restorer.loading import Toolbox
from restorer.restore import RestoreRequest, process

box = Toolbox(device="cpu")
rgb = np.full((32, 32, 3), 128, np.uint8)
out = {}
for body in ({"global_restore": True}, {"colour": True}, {"upscale": True}, {"global_setting": "scratch"}):
    off = {"scratches": False, "inpaint": False, "faces": False, "upscale": False}
    req = RestoreRequest(image="x", **{**off, **body})
    try:
        process(box, rgb, req)
        out[next(iter(body))] = None
    except BadRequest as exc:
        out[next(iter(body))] = str(exc)

# a texture step that cannot run here is passed over for the upscaler, and named when asked for
heavy = chain.TextureStep("heavy", "A heavy texture step", 10, lambda b, r: "it needs 12 GB of GPU memory.", None)
chain.register_texture(heavy)
from restorer.loading import Net
box.nets["x4"] = Net("x4", "ESRGAN", "SR", 4, None, "float32", None)
out["picked"] = chain.pick_texture(box, RestoreRequest(image="x")).id
try:
    chain.pick_texture(box, RestoreRequest(image="x", texture="heavy"))
except BadRequest as exc:
    out["heavy"] = str(exc)
out["plugins"] = list(chain.PLUGINS)
print(json.dumps(out))
"""


def test_steps_that_are_not_installed_say_so_and_the_texture_slot_falls_back(restorer_env) -> None:
    proc = restorer_env.run(["-c", ABSENT])
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "global restoration is not installed" in r["global_restore"]
    assert "old-photo-global" in r["global_restore"]
    assert r["global_setting"].startswith("The old-photo global restoration's scratch setting is")
    assert "old-photo-global-scratch`" in r["global_setting"]
    assert "No colour model (DDColor) is installed" in r["colour"]
    assert "No upscaler can run" in r["upscale"] and "Real-ESRGAN" in r["upscale"]
    assert r["picked"] == "upscaler"
    assert r["heavy"] == "A heavy texture step cannot run: it needs 12 GB of GPU memory."
    assert r["plugins"] == ["diffbir", "supir"]


LAYOUTS = r"""
import json, sys
from pathlib import Path
import torch
from restorer import gpen, oldface, oldphoto, oldscratch, rfpp, statedict

def count(net):
    sd = net.state_dict()
    return sd, sum(v.numel() for v in sd.values())

out = {}
with torch.device("meta"):
    # GPEN-BFR-512: StyleGAN2 widths with channel multiplier 2, 8 mapping layers
    g = gpen.GPEN({4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64})
    r = rfpp.RestoreFormerPP()
    a = oldphoto.VAE(64)
    m = oldphoto.Mapping([64, 128, 256, 512, 512], 6, [512, 512, 256, 128], 64)
    f = oldface.FaceEnhancer()
    s = oldscratch.MaskedMapping([64, 128, 256, 512, 512], 512, 6, [512, 512, 256, 128], 64)
for name, net in (("gpen", g), ("rfpp", r), ("vae", a), ("mapping", m), ("face", f), ("scratch", s)):
    sd, n = count(net)
    out[name] = {"entries": len(sd), "numel": n,
                 "shapes": {k: list(sd[k].shape) for k in sys.argv[1].split(",") if k in sd}}
out["work"] = [oldphoto.working_size(96, 128), oldphoto.working_size(3000, 4000)]
refused = {}
def attempt(label, fn):
    try:
        fn()
        refused[label] = None
    except statedict.WrongFile as exc:
        refused[label] = str(exc)
files = dict(arg.split("=", 1) for arg in sys.argv[2:])
attempt("gpen-ok", lambda: gpen.load(Path(files["gpen"])))
attempt("rfpp-ok", lambda: rfpp.load(Path(files["rfpp"])))
attempt("gpen-esrgan", lambda: gpen.load(Path(files["esrgan"])))
attempt("rfpp-gpen", lambda: rfpp.load(Path(files["gpen"])))
attempt("rfpp-v1", lambda: rfpp.load(Path(files["restoreformer"])))
attempt("gpen-text", lambda: gpen.load(Path(files["text"])))
parts = {"a": Path(files["a"]), "b": Path(files["b"]), "mapping": Path(files["map"])}
attempt("global-ok", lambda: oldphoto.GlobalRestorer.from_files(parts, "cpu"))
attempt("global-swapped", lambda: oldphoto.GlobalRestorer.from_files({**parts, "mapping": parts["a"]}, "cpu"))
attempt("face-ok", lambda: oldface.load(Path(files["face"])))
attempt("face-vae", lambda: oldface.load(parts["a"]))
attempt("global-two", lambda: oldphoto.GlobalRestorer.from_files({"a": parts["a"], "b": parts["b"]}, "cpu"))
scratch = {"a": parts["a"], "b": Path(files["sb"]), "mapping": Path(files["smap"])}
attempt("scratch-ok", lambda: oldphoto.GlobalRestorer.from_files(scratch, "cpu", "scratch"))
attempt("scratch-quality-map", lambda: oldphoto.GlobalRestorer.from_files({**scratch, "mapping": parts["mapping"]}, "cpu", "scratch"))
attempt("scratch-text", lambda: oldphoto.GlobalRestorer.from_files({**scratch, "mapping": Path(files["text"])}, "cpu", "scratch"))
attempt("scratch-two", lambda: oldphoto.GlobalRestorer.from_files({"a": parts["a"], "mapping": scratch["mapping"]}, "cpu", "scratch"))
out["setting_of"] = [oldphoto.setting_of([Path(p) for p in ps]) for ps in (
    ["x/VAE_A_quality/latest_net_G.pth", "x/VAE_B_scratch/latest_net_G.pth", "x/mapping_scratch/latest_net_mapping_net.pth"],
    ["x/VAE_A_quality/latest_net_G.pth", "x/VAE_B_quality/latest_net_G.pth", "x/mapping_quality/latest_net_mapping_net.pth"],
)]
out["refused"] = refused
print(json.dumps(out))
"""

# Key names and shapes of the released files' layouts, from the papers' configurations and the
# authors' state-dict names (GPEN's FullGenerator, RestoreFormer++'s VQVAEGANMultiHeadTransformer
# under `vqvae.`, BOPBTL's GlobalGenerator_DCDCv2 and Mapping_Model in the quality setting).
LAYOUT = {
    "ecd0.0.0.weight": [64, 3, 1, 1],
    "ecd1.0.0.kernel": [4, 4],
    "ecd7.0.2.bias": [512],
    "final_linear.0.weight": [512, 8192],
    "generator.style.8.weight": [512, 512],
    "generator.conv1.conv.weight": [1, 512, 512, 3, 3],
    "generator.conv1.activate.bias": [1024],
    "generator.to_rgb1.conv.weight": [1, 3, 1024, 1, 1],
    "generator.convs.13.conv.weight": [1, 64, 128, 3, 3],
    "generator.to_rgbs.6.upsample.kernel": [4, 4],
    "encoder.down.5.attn.1.q.weight": [512, 512, 1, 1],
    "decoder.up.4.attn.2.norm2.weight": [256],
    "decoder.mid.attn_1.proj_out.weight": [512, 512, 1, 1],
    "quantize.embedding.weight": [1024, 256],
    "encoder.13.conv_block.5.weight": [64, 64, 3, 3],
    "decoder.7.weight": [64, 64, 4, 4],
    "decoder.11.weight": [3, 64, 7, 7],
    "model.9.weight": [512, 512, 3, 3],
    "model.17.conv_block.1.weight": [512, 512, 3, 3],
    "model.27.weight": [64, 128, 3, 3],
    "before_NL.9.weight": [512, 512, 3, 3],
    "NL.theta.weight": [512, 512, 1, 1],
    "NL.g.bias": [512],
    "NL.res_block.2.conv_block.5.weight": [512, 512, 3, 3],
    "after_NL.5.conv_block.1.weight": [512, 512, 3, 3],
    "after_NL.15.weight": [64, 128, 3, 3],
    "head_0.conv_0.weight_orig": [1024, 1024, 3, 3],
    "head_0.conv_0.weight_v": [9216],
    "up_0.norm_s.mlp_gamma.weight": [1024, 128, 3, 3],
    "up_3.conv_s.weight_orig": [64, 128, 1, 1],
    "up_3.norm_1.param_free_norm.running_var": [64],
    "conv_img.weight": [3, 64, 3, 3],
}


def test_layouts_match_the_released_files_and_load_strictly(
    restorer_env, tiny_restore, tmp_path: Path
) -> None:
    text = tmp_path / "GPEN-notes.pth"
    text.write_text("not a checkpoint")
    files = {
        "gpen": tiny_restore["gpen"]["path"],
        "rfpp": tiny_restore["rfpp"]["path"],
        "esrgan": tiny_restore["esrgan-x4"]["path"],
        "restoreformer": tiny_restore["restoreformer"]["path"],
        "text": str(text),
        "a": tiny_restore["global-a"]["path"],
        "b": tiny_restore["global-b"]["path"],
        "map": tiny_restore["global-map"]["path"],
        "face": tiny_restore["oldface"]["path"],
        "sb": tiny_restore["scratch-b"]["path"],
        "smap": tiny_restore["scratch-map"]["path"],
    }
    proc = restorer_env.run(
        ["-c", LAYOUTS, ",".join(LAYOUT), *(f"{k}={v}" for k, v in files.items())]
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    # GPEN-BFR-512.pth is 284 MB: 71.0 M fp32 values. RestoreFormer++.ckpt is 294,028,815 bytes:
    # 73,472,579 fp32 values are 293,890,316 of them, the rest is the pickle's framing.
    assert (r["gpen"]["entries"], r["gpen"]["numel"]) == (163, 71_005_559)
    assert (r["rfpp"]["entries"], r["rfpp"]["numel"]) == (441, 73_472_579)
    assert 0 < 294_028_815 - 4 * r["rfpp"]["numel"] < 200_000
    assert (r["vae"]["numel"], r["mapping"]["numel"]) == (872_131, 36_135_232)
    assert (r["face"]["entries"], r["face"]["numel"]) == (234, 92_173_653)
    # mapping_scratch: the quality mapping's layers plus the 512-wide partial non-local block
    # (four 1x1 convs, three residual blocks): 205 MB in fp32
    assert r["scratch"]["numel"] == 36_135_232 + 4 * (512 * 512 + 512) + 6 * (512 * 512 * 9 + 512)
    assert r["scratch"]["numel"] == 51_344_704
    shapes = {
        k: v
        for part in ("gpen", "rfpp", "vae", "mapping", "face", "scratch")
        for k, v in r[part]["shapes"].items()
    }
    assert shapes == LAYOUT
    assert r["work"] == [[96, 128], [1224, 1632]]
    refused = r["refused"]
    assert (
        refused["gpen-ok"] is None and refused["rfpp-ok"] is None and refused["global-ok"] is None
    )
    assert "is not a GPEN face model" in refused["gpen-esrgan"]
    assert "has no weight ecd0.0.0.weight" in refused["gpen-esrgan"]
    assert "is not a RestoreFormer++ face model" in refused["rfpp-gpen"]
    assert "loads through spandrel when named RestoreFormer.pth" in refused["rfpp-v1"]
    assert "not a PyTorch checkpoint that can be read safely" in refused["gpen-text"]
    assert "is not the old-photo mapping network" in refused["global-swapped"]
    assert "needs three files and mapping_quality is not among them" in refused["global-two"]
    assert refused["face-ok"] is None
    assert "is not the old-photo face enhancer" in refused["face-vae"]
    assert refused["scratch-ok"] is None
    assert (
        "is not the old-photo mapping network with scratches (mapping_scratch/"
        in refused["scratch-quality-map"]
    )
    assert "has no weight before_NL.0.weight" in refused["scratch-quality-map"]
    assert "not a PyTorch checkpoint that can be read safely" in refused["scratch-text"]
    assert "(scratch setting) needs three files and VAE_B_scratch is not" in refused["scratch-two"]
    assert r["setting_of"] == ["scratch", "quality"]
    assert all(v.endswith(".") for v in refused.values() if v)


MASKED = r"""
import json, sys
from pathlib import Path
import numpy as np
import torch
from restorer import oldphoto, oldscratch

torch.manual_seed(0)
out = {}
# The partial non-local block alone, random weights: every kept latent position holds the same
# feature c, the scratched ones hold noise. Filled positions must be drawn from kept features
# only, so they come out as if the noise were c; a block that let scratched positions into the
# attention (or ignored the mask) would carry the noise into them.
block = oldscratch.ContextFill(8, 8).eval()
for p in block.parameters():
    torch.nn.init.normal_(p, 0.0, 0.5)
mask = torch.zeros(1, 1, 48, 48)
mask[..., 12:26, 20:30] = 1.0  # a scratch in the photo: 4x the latent size
keep = oldscratch.kept_positions(mask, (12, 12))
hole = keep[0, 0] == 0
c = torch.randn(8, 1, 1)
flat = c.expand(1, 8, 12, 12).clone()
noisy = flat.clone()
noisy[0][:, hole] = torch.randn(8, int(hole.sum())) * 3
with torch.no_grad():
    filled = block(noisy, mask)
    reference = block(flat, mask)
    unmasked = block(noisy, torch.zeros_like(mask))
out["holes"] = int(hole.sum())
out["kept_unchanged"] = bool(torch.equal(filled[0][:, ~hole], noisy[0][:, ~hole]))
out["holes_from_context"] = float((filled - reference)[0][:, hole].abs().max())
out["holes_changed"] = float((filled - noisy)[0][:, hole].abs().max())
out["noise_without_mask"] = float((unmasked - reference)[0][:, hole].abs().max())
# a scratch one pixel wide still marks its latent position (bilinear shrink above zero)
thin = torch.zeros(1, 1, 48, 48)
thin[..., 21, :] = 1.0
out["thin_rows"] = sorted({int(i) for i in torch.nonzero(oldscratch.kept_positions(thin, (12, 12))[0, 0] == 0)[:, 0]})

# The whole setting from the tiny files: what lies under the scratch never reaches the result
files = dict(arg.split("=", 1) for arg in sys.argv[1:])
net = oldphoto.GlobalRestorer.from_files(
    {"a": Path(files["a"]), "b": Path(files["b"]), "mapping": Path(files["map"])}, "cpu", "scratch"
)
rng = np.random.default_rng(0)
photo = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
other = photo.copy()
scratch = np.zeros((40, 56), np.uint8)
scratch[10:14, 5:50] = 255
other[scratch > 0] = rng.integers(0, 256, (int((scratch > 0).sum()), 3), dtype=np.uint8)
a, b = net(photo, scratch), net(other, scratch)
out["same_with_mask"] = bool(np.array_equal(a, b))
out["differ_without_mask"] = bool(not np.array_equal(net(photo), net(other)))
out["mask_changes_result"] = bool(not np.array_equal(a, net(photo)))
out["shape"] = list(a.shape)
# the band computation equals one pass over all query rows
oldscratch.BAND_VALUES = 7
with torch.no_grad():
    banded = block(noisy, mask)
out["banded_same"] = float((banded - filled).abs().max())
print(json.dumps(out))
"""


def test_scratch_setting_fills_scratches_from_the_unscratched_picture(
    restorer_env, tiny_restore
) -> None:
    """The mask reaches the result only through the attention: scratched latent positions are
    rebuilt from kept ones, kept ones pass unchanged, and the pixels under a scratch are unused."""
    files = {
        "a": tiny_restore["global-a"]["path"],
        "b": tiny_restore["scratch-b"]["path"],
        "map": tiny_restore["scratch-map"]["path"],
    }
    proc = restorer_env.run(["-c", MASKED, *(f"{k}={v}" for k, v in files.items())])
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["holes"] > 0 and r["kept_unchanged"]
    assert r["holes_from_context"] < 1e-5  # the noise under the scratch is not used
    assert r["holes_changed"] > 0.1  # ... but the scratched positions were rebuilt
    assert r["noise_without_mask"] > 0.1  # without the mask the noise stays
    assert r["thin_rows"] == [5]  # latent row 5 samples rows 21-22 of 48: the scratch shows
    assert r["same_with_mask"] and r["differ_without_mask"] and r["mask_changes_result"]
    assert r["shape"] == [40, 56, 3]
    assert r["banded_same"] < 1e-4  # float summation order only


def test_old_photo_preset_follows_the_seeds_chain_with_valid_params(restorer_env) -> None:
    """Every restorer step of the bundled old-photo preset is a valid request, and the steps it
    switches on come in the chain's order: defects, global, texture, faces; then colour."""
    import yaml

    from manager.bundled import apps_dir

    preset = yaml.safe_load((apps_dir() / "workflow" / "presets" / "old-photo.yaml").read_text())
    steps = preset["steps"]
    code = (
        "import json, sys\n"
        "from restorer.restore import RestoreRequest\n"
        "out = []\n"
        "for params in json.loads(sys.argv[1]):\n"
        "    r = RestoreRequest(image='x', **params)\n"
        "    out.append([n for n, on in (('defects', r.scratches or r.inpaint),"
        " ('global', r.global_restore is not False), ('texture', r.upscale), ('faces', r.faces)) if on])\n"
        "print(json.dumps(out))\n"
    )
    restorer = [s["params"] for s in steps if s["app"] == "restorer"]
    proc = restorer_env.run(["-c", code, json.dumps(restorer)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    # defects and global restoration in one call: the scratch setting takes the scratch mask
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [
        ["defects", "global"],
        ["texture"],
        ["faces"],
    ]
    assert [s["app"] for s in steps][-1] == "colorizer"
    # open choices: the restorer picks what is installed and fits
    assert restorer[0]["global_restore"] is None and restorer[0]["global_setting"] == "auto"
    assert restorer[1]["texture"] is None and restorer[2]["face_model"] == "auto"


def test_wrong_global_restoration_file_stops_the_app_with_a_sentence(
    restorer_env, tiny_restore, tmp_path: Path
) -> None:
    """A VAE saved where the mapping network belongs: the app says which file and what to do."""
    from tests.fixtures.tinymodels import start_app

    wrong = tmp_path / "store" / "latest_net_mapping_net.pth"
    wrong.parent.mkdir()
    wrong.write_bytes(Path(tiny_restore["global-a"]["path"]).read_bytes())
    models = restore_models(tiny_restore, ["lama", "global-a", "global-b", "global-map"])
    for f in models["old-photo-global"]["files"]:
        if f["path"].endswith("latest_net_mapping_net.pth"):
            f["local"] = str(wrong)
    proc = start_app(restorer_env, "restorer", tmp_path / "app", models_json(models, "lama"))
    try:
        with pytest.raises(RuntimeError, match="exited"):
            proc.wait_ready(timeout=300)
        log = proc.log_tail()
        assert "error: latest_net_mapping_net.pth is not the old-photo mapping network" in log
        assert "darkroom models pull restorer" in log and "Traceback" not in log
    finally:
        proc.stop()
