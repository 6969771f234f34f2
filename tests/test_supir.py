"""SUPIR's sampler in the restorer: the full-size layout (SDXL-base on the meta device) sized
against the released file, a tiny SDXL + SUPIR set of the real layout loaded strictly and
sampled on the CPU end to end, files that are something else refused with a sentence, and
`texture: supir` through the API beside DiffBIR and Real-ESRGAN."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.pngbytes import make_png, photo, png_size, read_rgb
from tests.fixtures.tinydiffbir import diffbir_choice
from tests.fixtures.tinymodels import AppProcess, models_json, running_app
from tests.fixtures.tinyrestore import restore_models
from tests.fixtures.tinysupir import BUILD_SCRIPT, supir_choice

RELEASED_BYTES = 2_664_858_464  # Kijai/SUPIR_pruned SUPIR-v0Q_fp16.safetensors (recipe)

# Runs in the restorer's env. SDXL-base's UNet and VAE configs on the meta device: GLVControl,
# the twelve connectors and the degradation-robust encoder built by the app, their fp16 bytes
# set against the released file's size (the rest is its JSON header).
FULL = r"""
import json, torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from restorer import supirnet
XL = dict(
    sample_size=128, in_channels=4, out_channels=4, block_out_channels=[320, 640, 1280],
    layers_per_block=2, down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    transformer_layers_per_block=[1, 2, 10], cross_attention_dim=2048, attention_head_dim=[5, 10, 20],
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
)
with torch.device("meta"):
    unet = UNet2DConditionModel(**XL)
    vae = AutoencoderKL(
        block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=2, latent_channels=4,
    )
    connectors = supirnet.build_connectors(320)
control = supirnet.build_control(unet)
parts = [control, connectors, vae.encoder]
print(json.dumps({
    "params": sum(p.numel() for m in parts for p in m.parameters()),
    "entries": sum(len(m.state_dict()) for m in parts),
    "control_feats": [unet.conv_in.out_channels] + [
        r.out_channels for b in unet.down_blocks for r in b.resnets
    ],
}))
"""


def test_the_full_size_layout_fills_the_released_file(restorer_env) -> None:
    proc = restorer_env.run(["-c", FULL])
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    header = RELEASED_BYTES - 2 * r["params"]
    # every weight of the file has its place, and nothing else: what is left is a JSON header
    # of 100-250 bytes per entry (name, dtype, shape, offsets)
    assert 100 * r["entries"] < header < 250 * r["entries"], (header, r["entries"])


# Runs in the restorer's env: the tiny set loaded and sampled, then wrong files refused.
SAMPLE = r"""
import json, sys
from pathlib import Path
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from restorer import supir, supirpipe
from restorer.difftexture import Sampling

built = json.loads(sys.argv[1])
tmp = Path(sys.argv[2])
sd = [(p, Path(local)) for p, local in built["sd_files"]]

def files(path):
    return sd + [("SUPIR-v0Q_fp16.safetensors", path)]

m = supirpipe.load("supir", files(Path(built["supir"])), "fp16", "none", "cpu")
y, x = np.mgrid[0:12, 0:16]
photo = np.stack([x * 15, y * 20, np.full_like(x, 128)], -1).astype(np.uint8)
two = Sampling(steps=2, tile=0, seed=3)
one, facts = m.restore(photo, 2, two)
again, _ = m.restore(photo, 2, two)
other, _ = m.restore(photo, 2, Sampling(steps=2, tile=0, seed=4))
free, _ = m.restore(photo, 2, two, control_scale=0.0)
unpulled, _ = m.restore(photo, 2, two, tau=0.0)
tiled, tfacts = m.restore(photo, 2, Sampling(steps=2, tile=16, seed=3))
out = {
    "describe": m.describe(),
    "shape": list(one.shape),
    "facts": facts,
    "tiles": tfacts["latent_tiles"],
    "same": bool((one == again).all()),
    "seed_differs": bool((one != other).any()),
    "control_matters": bool((one != free).any()),
    "guidance_matters": bool((one != unpulled).any()),
    "tiled_shape": list(tiled.shape),
}

good = load_file(built["supir"])
cases = {
    "no_connectors.safetensors": {k: v for k, v in good.items() if "project_modules" not in k},
    "short_control.safetensors": {k: v for k, v in good.items() if not k.endswith("label_emb.0.2.bias")},
    "other_base.safetensors": {
        k: (torch.zeros(v.shape[0], 8) if k.endswith("label_emb.0.0.weight") else v)
        for k, v in good.items()
    },
    "full_checkpoint.safetensors": {**good, "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(32, 4, 3, 3)},
    "odd_encoder.safetensors": {**good, "first_stage_model.denoise_encoder.mid.attn_2.q.weight": torch.zeros(4)},
}
refused = {}
for name, state in cases.items():
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / name))
(tmp / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
for name in [*cases, "broken.safetensors"]:
    try:
        supirpipe.load("supir", files(tmp / name), "fp16", "none", "cpu")
        refused[name] = None
    except supir.NotSUPIR as exc:
        refused[name] = str(exc)
out["refused"] = refused
print(json.dumps(out))
"""


def test_supir_samples_on_the_cpu_and_refuses_other_files(
    restorer_env, tiny_supir, tmp_path: Path
) -> None:
    proc = restorer_env.run(
        ["-c", SAMPLE, json.dumps(tiny_supir), str(tmp_path)],
        env={"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(BUILD_SCRIPT.parent)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["describe"]["kind"] == "SUPIR" and r["describe"]["tiled"] is False
    assert r["describe"]["files"]["supir"] == "SUPIR-v0Q_fp16.safetensors"
    assert r["shape"] == [24, 32, 3] and r["tiled_shape"] == [24, 32, 3]
    assert r["facts"]["texture"] == "supir" and r["facts"]["latent_tiles"] == 1
    assert r["tiles"] > 1  # 16 px tiles: the latent sampled in windows
    assert r["same"] and r["seed_differs"]
    # the connectors steer the UNet, and the pull towards the photo's latent changes the result
    assert r["control_matters"] and r["guidance_matters"]
    refused = r["refused"]
    assert "no SUPIR connectors" in refused["no_connectors.safetensors"]
    assert "GLVControl are missing" in refused["short_control.safetensors"]
    assert "other shapes than this SDXL's" in refused["other_base.safetensors"]
    assert "use the pruned release" in refused["full_checkpoint.safetensors"]
    assert "have no place" in refused["odd_encoder.safetensors"]
    assert "is not a safetensors file" in refused["broken.safetensors"]
    for name, text in refused.items():
        assert text is not None and text.startswith(name) and text.endswith("."), text


@pytest.fixture(scope="module")
def supir_app(
    restorer_env, tiny_restore, tiny_diffbir, tiny_supir, tmp_path_factory
) -> Iterator[AppProcess]:
    models = restore_models(tiny_restore, ["esrgan-x4"])
    models["diffbir"] = diffbir_choice(tiny_diffbir)
    models["supir"] = supir_choice(tiny_supir, variant="fp16-tiled")
    with running_app(
        restorer_env, "restorer", tmp_path_factory.mktemp("supir"), models_json(models, "supir")
    ) as proc:
        yield proc


def _restore(app: AppProcess, image: bytes, **body) -> tuple[dict, bytes]:
    code, job, _ = app.post(
        "/api/restore?wait=true",
        {"image": base64.b64encode(image).decode(), "scratches": False, "faces": False, **body},
        timeout=600,
    )
    assert code == 200, job
    code, _, data = app.get(f"/api/jobs/{job['id']}/result")
    assert code == 200
    return job, data


def test_supir_texture_step_through_the_api(supir_app: AppProcess) -> None:
    code, info, _ = supir_app.get("/api/info")
    assert code == 200
    text = json.dumps(info)
    assert '"kind": "SUPIR"' in text and '"supir": "SUPIR-v0Q_fp16.safetensors"' in text
    picture = make_png(32, 24, photo)
    small = {"scale": 2, "diffusion_steps": 2, "seed": 5, "prompt": "an old portrait"}
    # left open, the chain takes SUPIR: installed, and ranked above DiffBIR
    job, png = _restore(supir_app, picture, tile=0, **small)
    facts = job["result"]
    assert facts["texture"] == "supir" and facts["supir"]["model"] == "supir"
    assert facts["supir"]["steps"] == 2 and facts["supir"]["restoration_tau"] > 0
    assert png_size(png) == (64, 48)
    _, again = _restore(supir_app, picture, tile=0, texture="supir", **small)
    assert read_rgb(again) == read_rgb(png)  # the same seed, the same picture
    # the colour fix is on by default; off, the picture is the one sampled; the paper's
    # quality prompts are the defaults, and the user's own take their place
    assert facts["supir"]["colour_fix"] == "wavelet"
    job, raw = _restore(supir_app, picture, tile=0, colour_fix="none", **small)
    assert job["result"]["supir"]["colour_fix"] == "none" and read_rgb(raw) != read_rgb(png)
    _, own = _restore(supir_app, picture, tile=0, negative_prompt="a cartoon", **small)
    assert read_rgb(own) != read_rgb(png)
    code, err, _ = supir_app.post(
        "/api/restore", {"image": base64.b64encode(picture).decode(), "colour_fix": "sepia"}
    )
    assert code == 422 and "colour_fix" in json.dumps(err), err
    # the tiled variant's windows at a small tile; DiffBIR and Real-ESRGAN still on request
    job, _ = _restore(supir_app, picture, tile=32, texture="supir", **small)
    assert job["result"]["supir"]["latent_tiles"] > 1
    job, _ = _restore(supir_app, picture, tile=0, texture="diffbir", **small)
    assert job["result"]["texture"] == "diffbir" and "supir" not in job["result"]
    job, _ = _restore(supir_app, picture, texture="upscaler", scale=4)
    assert job["result"]["texture"] == "upscaler"


def _not_supir(path: Path) -> Path:
    """A small safetensors file of another model (one zero-filled fp16 conv)."""
    header = {
        "input_blocks.0.0.weight": {"dtype": "F16", "shape": [4, 4, 1, 1], "data_offsets": [0, 32]}
    }
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(32))
    return path


INSTALLED = r"""
import json, sys
import numpy as np
from appkit.errors import LoadError
from appkit.models import ModelsSpec
from restorer import loading
from restorer.difftexture import Sampling
box = loading.load(ModelsSpec.from_json(sys.argv[1]), "cpu", lambda f, m="": None)
s = box.diffusion["supir"]
out, facts = s.restore(np.full((12, 16, 3), 90, np.uint8), 2, Sampling(steps=1, tile=0))
try:  # the same set with another model's file where SUPIR's should be
    loading.load(ModelsSpec.from_json(sys.argv[2]), "cpu", lambda f, m="": None)
    wrong = None
except LoadError as exc:
    wrong = str(exc)
print(json.dumps({**s.describe(), "shape": list(out.shape), "nets": sorted(box.nets), "wrong": wrong}))
"""


def test_supir_installs_from_the_hub_as_the_recipe_names_it_and_loads(
    restorer_env, tiny_supir, hub, home, tmp_path: Path
) -> None:
    """The recipe's own file list (repos, fp16 names, the tokenizer globs) pulled into the
    store, handed over as the installer hands it, and loaded from the store's snapshots; with
    another model's file in SUPIR's place the app stops with a sentence (LoadError)."""
    from manager import weights
    from manager.config import Settings
    from manager.recipe import bundled_recipes
    from tests.fixtures.tinymodels import choice_from_store
    from tests.fixtures.tinysupir import SDXL_REPO, SUPIR_FILE, SUPIR_REPO

    model = next(m for m in bundled_recipes()["restorer"].models if m.id == "supir")
    renamed = {  # the tiny set under the names the real repo uses
        "unet/diffusion_pytorch_model.safetensors": "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.safetensors": "vae/diffusion_pytorch_model.fp16.safetensors",
        "text_encoder/model.safetensors": "text_encoder/model.fp16.safetensors",
        "text_encoder_2/model.safetensors": "text_encoder_2/model.fp16.safetensors",
    }
    sd = {renamed.get(p, p): Path(local).read_bytes() for p, local in tiny_supir["sd_files"]}
    sd["unet/diffusion_pytorch_model.safetensors"] = b"fp32 weights the plan does not fetch"
    sd["sd_xl_base_1.0.safetensors"] = b"the single-file checkpoint the plan does not fetch"
    hub.add_files(SDXL_REPO, sd)
    hub.add_files(SUPIR_REPO, {SUPIR_FILE: Path(tiny_supir["supir"]).read_bytes()})
    # The tiny set stands in for the real bytes, so the recipe's pins on them (revision and
    # SHA-256, docs/checked-hashes.md) are dropped; repos, names and globs stay the recipe's.
    specs = [f.model_copy(update={"revision": "main", "sha256": None}) for f in model.common_files]
    local = weights.pull(home, Settings(hf_endpoint=hub.url), specs)
    got = {f.path for f in local}
    assert "tokenizer_2/tokenizer.json" in got and SUPIR_FILE in got
    assert not {"unet/diffusion_pytorch_model.safetensors", "sd_xl_base_1.0.safetensors"} & got
    models = models_json({"supir": choice_from_store(home, local, "fp16-tiled")})
    wrong = supir_choice(tiny_supir, supir_file=str(_not_supir(tmp_path / SUPIR_FILE)))
    proc = restorer_env.run(
        ["-c", INSTALLED, models, models_json({"supir": wrong})],
        env={"HF_HUB_CACHE": str(home.models)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["kind"] == "SUPIR" and r["tiled"] is True and r["files"]["supir"] == SUPIR_FILE
    assert r["shape"] == [24, 32, 3] and r["nets"] == []
    assert r["wrong"].startswith("supir cannot be loaded as SUPIR: SUPIR-v0Q_fp16.safetensors:")
    assert "no SUPIR connectors" in r["wrong"] and "darkroom models pull restorer" in r["wrong"]


def test_the_page_offers_supir_and_a_prompt(supir_app: AppProcess) -> None:
    code, _, _ = supir_app.get("/", timeout=180)
    assert code == 200
    code, config, _ = supir_app.get("/config")
    assert code == 200
    props = {c["props"].get("label"): c["props"] for c in config["components"] if "props" in c}
    assert "supir" in json.dumps(props["Texture step"]["choices"])
    assert "What the photo shows (DiffBIR / SUPIR, optional)" in props
    fix = props["Colour fix (DiffBIR / SUPIR)"]
    assert fix["value"] == "wavelet" and len(fix["choices"]) == 3
    assert "Positive quality prompt" in props and "Negative prompt" in props
