"""The colorizer over real HTTP: a random-weight DDColor (convnext-t) file loaded through
spandrel_extra_arches in the app's own env; and, inside that env, the promise that the
photo's luminance is kept and `strength` blends chroma."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from tests.fixtures.browser import CHROMIUM
from tests.fixtures.browser import launch as launch_chromium
from tests.fixtures.pngbytes import chunks, huge_png, ihdr
from tests.fixtures.tinymodels import AppProcess, models_json, running_app
from tests.fixtures.tinyrestore import restore_models


@pytest.fixture(scope="module")
def app(colorizer_env, tiny_restore, tmp_path_factory) -> Iterator[AppProcess]:
    models = restore_models(tiny_restore, ["ddcolor-tiny"])
    models["ddcolor-tiny"]["variant"] = "tiny"
    with running_app(
        colorizer_env, "colorizer", tmp_path_factory.mktemp("colorizer"), models_json(models)
    ) as proc:
        yield proc


def test_info_says_ddcolor_tiny(app: AppProcess) -> None:
    code, info, _ = app.get("/api/info")
    assert code == 200
    assert info["arch"] == "DDColor" and info["encoder"] == "convnext-t" and info["size"] == "tiny"
    assert info["variant"] == "tiny"


def test_grey_photo_becomes_colour_same_size(app: AppProcess, restore_photos) -> None:
    body = {
        "image": base64.b64encode(restore_photos["grey"].read_bytes()).decode(),
        "render_size": 128,
        "strength": 0.8,
    }
    code, job, _ = app.post("/api/colorize?wait=true", body, timeout=120)
    assert code == 200, job
    code, _, data = app.get(f"/api/jobs/{job['id']}/result")
    assert ihdr(data) == (128, 96, 8, 2)  # 8-bit RGB
    params = json.loads(
        next(v for v in chunks(data)[b"tEXt"] if v.startswith(b"parameters\0")).split(b"\0", 1)[1]
    )
    assert params["strength"] == 0.8 and params["variant"] == "tiny"


def test_output_keeps_the_photo_name_and_progress_moves_through_the_model(
    app: AppProcess, restore_photos
) -> None:
    body = {
        "image": base64.b64encode(restore_photos["grey"].read_bytes()).decode(),
        "render_size": 128,
        "filename": "grandma.jpg",
    }
    names = []
    for _ in range(2):
        code, job, _ = app.post("/api/colorize?wait=true", body, timeout=120)
        assert code == 200, job
        names.append(job["result"]["files"][0].rsplit("/", 1)[-1])
    # The person's own name, and a second result beside the first instead of over it.
    assert names[0] in ("grandma-colorized.png", "grandma-colorized-2.png") and names[1].startswith(
        "grandma-colorized-"
    )
    assert names[0] != names[1]
    # DDColor's one pass reported layer by layer: many figures between "preparing" and "saving".
    inside = [p for p in job["trail"] if 0.1 < p < 0.9]
    assert len(inside) >= 5 and job["trail"] == sorted(job["trail"]), job["trail"]


@pytest.mark.parametrize(
    "name, words",
    [
        ("cmyk", "CMYK"),
        ("animated", "animated"),
        ("truncated", "truncated"),
        ("deep", "16 or 32 bits"),
        ("empty", "empty"),
        ("text", "not a picture"),
        ("huge", "megapixels"),
    ],
)
def test_bad_images_are_400(app: AppProcess, restore_photos, name: str, words: str) -> None:
    payload = {
        "empty": "",
        "text": base64.b64encode(b"hello, not a picture").decode(),
        "huge": base64.b64encode(huge_png()).decode(),
    }.get(name)
    if payload is None:
        payload = base64.b64encode(restore_photos[name].read_bytes()).decode()
    code, body, _ = app.post("/api/colorize?wait=true", {"image": payload})
    assert code == 400 and words.lower() in body["error"].lower() and body["error"].endswith("."), (
        body
    )
    assert app.get("/api/health")[0] == 200


CHECK = r"""
import json, sys
import numpy as np
from PIL import Image
import spandrel, spandrel_extra_arches
from colorizer import lab
from colorizer.colorize import colorize
spandrel_extra_arches.install()
d = spandrel.ModelLoader().load_from_file(sys.argv[1]).eval()
faded = np.asarray(Image.open(sys.argv[2]).convert("RGB"))
L = lab.rgb_to_lab(faded)
full = colorize(d, faded, 1.0, 128)
none = colorize(d, faded, 0.0, 128)
half = colorize(d, faded, 0.5, 128)
low = colorize(d, faded, 0.15, 128)  # random weights push full-strength chroma out of gamut
inside = ((low > 0) & (low < 255)).all(-1)
ab = lambda x: lab.rgb_to_lab(x)[..., 1:]
print(json.dumps({
    "l_err": float(np.abs(lab.rgb_to_lab(low)[..., 0] - L[..., 0])[inside].mean()),
    "inside": float(inside.mean()),
    "none_err": float(np.abs(none.astype(int) - faded.astype(int)).mean()),
    "moved_low": float(np.abs(ab(low) - ab(none)).mean()),
    "moved_half": float(np.abs(ab(half) - ab(none)).mean()),
    "chroma_moved": float(np.abs(ab(full) - ab(none)).mean()),
    "roundtrip": float(np.abs(lab.lab_to_rgb(L).astype(int) - faded.astype(int)).max()),
}))
"""


def test_luminance_kept_and_strength_blends(colorizer_env, tiny_restore, restore_photos) -> None:
    proc = colorizer_env.run(
        ["-c", CHECK, tiny_restore["ddcolor-tiny"]["path"], str(restore_photos["faded"])]
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["roundtrip"] <= 1  # the Lab conversion itself is exact to a level
    assert r["none_err"] <= 1  # strength 0: the photo's own colour
    assert r["inside"] > 0.1
    assert r["l_err"] < 1.0  # luminance kept (where the colour is in gamut)
    assert r["chroma_moved"] > 0.5  # ... and the chroma is the model's
    assert r["moved_low"] < r["moved_half"] < r["chroma_moved"]  # strength moves chroma further


def test_web_page_result_keeps_the_uploaded_name(app: AppProcess, restore_photos, tmp_path) -> None:
    """A person's upload through the page (headless Chromium): the result is named after it."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    photo = tmp_path / "Oma Lise.png"
    photo.write_bytes(restore_photos["grey"].read_bytes())
    with sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page()
            page.goto(app.url + "/", wait_until="domcontentloaded", timeout=60_000)
            page.locator("#photo input[type=file]").set_input_files(str(photo))
            page.locator("#photo img").first.wait_for(state="visible", timeout=60_000)
            page.locator("#colorize").click()
            page.locator("#result img").first.wait_for(state="visible", timeout=120_000)
        finally:
            browser.close()
    assert list(app.outputs.rglob("Oma-Lise-colorized*.png")), sorted(
        p.name for p in app.outputs.rglob("*.png")
    )
