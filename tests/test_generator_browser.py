"""The generator's web page driven like a person would: headless Chromium (Debian's package)
through Playwright, type a prompt, press Generate, see the picture appear."""

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
