"""The colour fix after DiffBIR's and SUPIR's sampling: the tiny models (random weights) give
back pictures whose colours are far off their stage-1 picture (a real model's drift, writ
large); the wavelet fix puts the stage-1 picture's broad colour back and keeps the result's
fine detail, adain matches each channel's mean and spread, none leaves the result as sampled.
One run in the restorer's env, both models loaded from their tiny sets of the real layout."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.tinydiffbir import BUILD_SCRIPT

# Runs in the restorer's env. For each model: the stage-1 picture (DiffBIR: the cleaner's
# output; SUPIR: the photo through the robust encoder and back), and the same seed restored
# with each colour fix. Then the fix alone on a picture with a known cast and known detail.
SCRIPT = r"""
import json, sys
from pathlib import Path
import numpy as np
from PIL import Image, ImageFilter
from restorer import colourfix, diffbir, supirpipe
from restorer.difftexture import Sampling

def pair(built):
    return [(p, Path(local)) for p, local in built["sd_files"]]

def detail(a):
    # what a 3x3 box blur takes away: the finest detail, measured apart from colourfix
    img = Image.fromarray(a)
    return a.astype(np.float32) - np.asarray(img.filter(ImageFilter.BoxBlur(1)), np.float32)

def broad(a):
    # the broad colour: a Gaussian blur as wide as the fix's low band (about 13 px), measured
    # apart from colourfix
    img = Image.fromarray(a)
    return np.asarray(img.filter(ImageFilter.GaussianBlur(12)), np.float32)

def measure(ref, out, raw):
    return {
        "mean_off": float(np.abs(out.mean((0, 1)) - ref.mean((0, 1), dtype=np.float64)).max()),
        "std_off": float(np.abs(out.std((0, 1)) - ref.std((0, 1), dtype=np.float64)).max()),
        "broad_off": float(np.abs(broad(out) - broad(ref)).mean()),
        "detail_kept": float(np.corrcoef(detail(out).ravel(), detail(raw).ravel())[0, 1]),
        "detail_off": float(np.abs(detail(out) - detail(raw)).mean()),
        "detail_size": float(np.abs(detail(raw)).mean()),
    }

d_built, s_built = json.loads(sys.argv[1]), json.loads(sys.argv[2])
y, x = np.mgrid[0:24, 0:32]
photo = np.stack([x * 7, y * 9, 140 - x * 2], -1).astype(np.uint8)
res = {}
d = diffbir.load("diffbir", pair(d_built) + [
    ("v2.pth", Path(d_built["controlnet"])), ("general_swinir_v1.ckpt", Path(d_built["cleaner"]))
], "fp16", "none", "cpu")
s = supirpipe.load("supir", pair(s_built) + [
    ("SUPIR-v0Q_fp16.safetensors", Path(s_built["supir"]))
], "fp16", "none", "cpu")
refs = {"diffbir": d.clean(photo, (48, 64), 0), "supir": s.stage1(photo, 2, 0)}
for name, m in (("diffbir", d), ("supir", s)):
    ref = refs[name]
    # SUPIR without its pull towards the photo's latent: free to drift, as DiffBIR is
    free = {"tau": 0.0} if name == "supir" else {}
    outs = {
        k: m.restore(photo, 2, Sampling(steps=2, tile=0, seed=3, colour_fix=k), **free)
        for k in colourfix.KINDS
    }
    raw = outs["none"][0]
    res[name] = {k: {**measure(ref, o, raw), "fact": f["colour_fix"]} for k, (o, f) in outs.items()}
    res[name]["ref_range"] = int(ref.max()) - int(ref.min())

# the fix alone: a picture with fine stripes (detail) under a strong warm cast
ref = np.stack([y * 8 + x, y * 8 + 40, 200 - y * 6], -1).astype(np.uint8)
stripes = ((x % 2) * 24)[..., None]
cast = np.clip(ref.astype(np.int32) * [0.6, 0.8, 0.5] + [90, 20, 0] + stripes, 0, 255).astype(np.uint8)
fixed = colourfix.fix("wavelet", cast, ref)
res["synthetic"] = {
    "before": float(np.abs(broad(cast) - broad(ref)).mean()),
    "after": float(np.abs(broad(fixed) - broad(ref)).mean()),
    "stripes_before": float(np.abs(detail(cast)).mean()),
    "stripes_after": float(np.abs(detail(fixed)).mean()),
    "none_same": bool((colourfix.fix("none", cast, ref) == cast).all()),
}
try:
    colourfix.fix("sepia", cast, ref)
    res["unknown"] = None
except ValueError as exc:
    res["unknown"] = str(exc)
print(json.dumps(res))
"""


@pytest.fixture(scope="module")
def measured(restorer_env, tiny_diffbir, tiny_supir) -> dict:
    proc = restorer_env.run(
        ["-c", SCRIPT, json.dumps(tiny_diffbir), json.dumps(tiny_supir)],
        env={"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(BUILD_SCRIPT.parent)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("model", ["diffbir", "supir"])
def test_wavelet_puts_the_stage1_colour_back_and_keeps_the_detail(measured, model) -> None:
    r = measured[model]
    none, wavelet = r["none"], r["wavelet"]
    assert r["ref_range"] > 20  # the stage-1 picture is a picture, not a flat fill
    # as sampled (none), the tiny model's colours are far off the stage-1 picture's...
    assert none["mean_off"] > 15 and none["broad_off"] > 10, none
    # ...the wavelet fix brings the broad colour back to it (what is left: clipping at 0 and
    # 255, and the picture's edges)...
    assert wavelet["mean_off"] < 4 and wavelet["broad_off"] < none["broad_off"] / 3, wavelet
    # ...and leaves the fine detail the model made where it was
    assert wavelet["detail_kept"] > 0.99, wavelet
    assert wavelet["detail_off"] < wavelet["detail_size"] / 10, wavelet
    assert (none["fact"], wavelet["fact"]) == ("none", "wavelet")


@pytest.mark.parametrize("model", ["diffbir", "supir"])
def test_adain_matches_each_channels_mean_and_spread(measured, model) -> None:
    r = measured[model]
    assert r["none"]["std_off"] > 10  # as sampled, the spread is off too
    adain = r["adain"]
    assert adain["mean_off"] < 1 and adain["std_off"] < 1 and adain["fact"] == "adain", adain


def test_the_fix_alone_on_a_known_cast(measured) -> None:
    r = measured["synthetic"]
    assert r["before"] > 30 and r["after"] < r["before"] / 5, r
    # the one-pixel stripes survive the fix unchanged in size
    assert abs(r["stripes_after"] - r["stripes_before"]) < 0.1 * r["stripes_before"], r
    assert r["none_same"]
    assert "unknown colour fix 'sepia'" in measured["unknown"]
