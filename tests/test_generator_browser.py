"""The generator's web page driven like a person would: headless Chromium (Debian's package)
through Playwright, type a prompt, press Generate, see the picture appear; upload a photo,
paint over part of it and press Repaint (FLUX.1 Fill)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.browser import CHROMIUM
from tests.fixtures.browser import launch as launch_chromium
from tests.fixtures.tinymodels import AppProcess, choice_from_folder, models_json, start_app

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def page_app(generator_env, tiny_flux, tmp_path_factory) -> Iterator[AppProcess]:
    app = start_app(
        generator_env,
        "generator",
        tmp_path_factory.mktemp("gen-web"),
        models_json({"flux-schnell": choice_from_folder(tiny_flux, "fp32")}),
    )
    try:
        app.wait_ready()
        yield app
    finally:
        app.stop()


def test_generate_from_the_web_page(page_app: AppProcess) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page()
            page.goto(page_app.url + "/", wait_until="domcontentloaded", timeout=60_000)
            page.locator("#prompt textarea").fill("a red apple on a table")
            page.locator("#generate").click()
            image = page.locator("#gallery img").first
            image.wait_for(state="visible", timeout=120_000)
            status = page.locator("#status")
            status.filter(has_text="Done").wait_for(timeout=30_000)
            assert "1 image(s)" in status.inner_text()
            src = image.get_attribute("src") or ""
            assert src  # the picture the app made, served back to the page
        finally:
            browser.close()
    pngs = list(page_app.outputs.rglob("*.png"))
    assert pngs, "the page's image was not written to the outputs folder"


@pytest.fixture(scope="module")
def fill_page_app(generator_env, tiny_fill, tmp_path_factory) -> Iterator[AppProcess]:
    app = start_app(
        generator_env,
        "generator",
        tmp_path_factory.mktemp("gen-web-fill"),
        models_json({"flux-fill": choice_from_folder(tiny_fill, "fp32")}),
    )
    try:
        app.wait_ready()
        yield app
    finally:
        app.stop()


def test_repaint_what_was_painted_on_the_page(fill_page_app: AppProcess, tmp_path) -> None:
    """Only a Fill model is installed, so the page opens on the Repaint tab; a brush stroke
    across the middle of the picture is the mask: the middle changes, the corners do not."""
    from tests.fixtures.pngbytes import PHOTO, read_rgb

    sync_api = pytest.importorskip("playwright.sync_api")
    photo = tmp_path / "photo.png"
    photo.write_bytes(PHOTO)
    with sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page()
            page.goto(fill_page_app.url + "/", wait_until="domcontentloaded", timeout=60_000)
            # Through the file chooser, as a person would: it opens only once the editor's
            # handlers are live (setting the hidden input earlier can be lost).
            with page.expect_file_chooser(timeout=60_000) as chooser:
                page.locator("#inpaint-editor [aria-label='Click to upload or drop files']").click()
            chooser.value.set_files(str(photo))
            # the editor has taken the picture: its "Upload an image" placeholder is gone
            page.locator("#inpaint-editor .empty").wait_for(state="hidden", timeout=60_000)
            canvas = page.locator("#inpaint-editor canvas").first
            canvas.wait_for(state="visible", timeout=60_000)
            box = canvas.bounding_box()
            assert box is not None
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x - 15, y)
            page.mouse.down()
            page.mouse.move(x + 15, y, steps=8)
            page.mouse.up()
            page.locator("#inpaint-prompt textarea").fill("a blue window")
            page.locator("#inpaint").click()
            # the result, or the page's error message (said in the failure, not a timeout)
            page.locator("#inpaint-gallery img, .toast-body").first.wait_for(
                state="visible", timeout=240_000
            )
            toast = page.locator(".toast-body")
            assert toast.count() == 0, toast.first.inner_text()
            page.locator("#inpaint-status").filter(has_text="Done").wait_for(timeout=30_000)
        finally:
            browser.close()
    (png,) = fill_page_app.outputs.rglob("*.png")
    out, source = read_rgb(png.read_bytes()), read_rgb(PHOTO)
    assert out[32][32] != source[32][32]  # under the stroke: repainted
    for cx, cy in ((0, 0), (63, 0), (0, 63), (63, 63)):
        assert out[cy][cx] == source[cy][cx]  # far from it: the photo's own pixels
