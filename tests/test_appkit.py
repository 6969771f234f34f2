"""The app kit's pure parts, in the dev venv: the DARKROOM_MODELS shape and the settings an
app reads from the protocol variables (server, jobs and outputs run in tests/test_generator*)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from manager import protocol
from manager.bundled import apps_dir

sys.path.insert(0, str(apps_dir()))

from appkit.models import ModelsError, ModelsSpec  # noqa: E402
from appkit.settings import AppSettings, SettingsError  # noqa: E402

FULL = {
    "models": {
        "flux-schnell": {
            "variant": "gguf-q4",
            "precision": "gguf-q4",
            "offload": "model",
            "files": [
                {
                    "repo": "black-forest-labs/FLUX.1-schnell",
                    "revision": "abc",
                    "path": "model_index.json",
                    "local": "/store/flux/snapshots/abc/model_index.json",
                },
                {
                    "repo": "black-forest-labs/FLUX.1-schnell",
                    "revision": "abc",
                    "path": "vae/config.json",
                    "local": "/store/flux/snapshots/abc/vae/config.json",
                },
                {
                    "repo": "city96/FLUX.1-schnell-gguf",
                    "revision": "def",
                    "path": "flux1-schnell-Q4_K_S.gguf",
                    "local": "/store/gguf/snapshots/def/flux1-schnell-Q4_K_S.gguf",
                },
            ],
            "snapshots": {"black-forest-labs/FLUX.1-schnell": "/store/flux/snapshots/abc"},
        },
        "flux-dev": {"variant": "nf4", "files": []},
    },
    "default": "flux-schnell",
}


def test_full_shape_parses() -> None:
    spec = ModelsSpec.from_json(json.dumps(FULL))
    assert spec.default_id == "flux-schnell"
    key, choice = spec.get(None)
    assert key == "flux-schnell" and choice.offload == "model" and choice.precision == "gguf-q4"
    assert choice.snapshot() == Path("/store/flux/snapshots/abc")
    assert choice.snapshot("city96/FLUX.1-schnell-gguf") == Path("/store/gguf/snapshots/def")
    assert [f.path for f in choice.find("*.gguf")] == ["flux1-schnell-Q4_K_S.gguf"]
    assert spec.get("flux-dev")[1].precision == "nf4"  # defaults to the variant id


def test_older_shapes_still_read() -> None:
    spec = ModelsSpec.from_json(
        json.dumps(
            {
                "m": {
                    "variant": "bf16",
                    "offload": None,
                    "files": {"model_index.json": "/s/model_index.json"},
                }
            }
        )
    )
    _key, choice = spec.get("m")
    assert choice.offload == "none" and choice.snapshot() == Path("/s")
    assert ModelsSpec.from_json("").models == {}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{nope", "not valid JSON"),
        (json.dumps({"models": {"m": {"files": []}}}), "models.m.variant"),
        (json.dumps({"models": {"m": {"variant": "x", "offload": "half"}}}), "offload"),
        (json.dumps({"models": {"m": {"variant": "x"}}, "default": "n"}), "default model 'n'"),
    ],
)
def test_bad_models_json_names_the_problem(text: str, words: str) -> None:
    with pytest.raises(ModelsError, match="DARKROOM_MODELS") as err:
        ModelsSpec.from_json(text)
    assert words in str(err.value)


def test_unknown_model_is_a_sentence() -> None:
    spec = ModelsSpec.from_json(json.dumps(FULL))
    with pytest.raises(KeyError) as err:
        spec.get("sdxl")
    assert err.value.args[0] == "Unknown model 'sdxl'. Installed models: flux-dev, flux-schnell."
    with pytest.raises(KeyError, match="No model is installed"):
        ModelsSpec().get(None)


def test_settings_from_the_protocol_variables(tmp_path: Path) -> None:
    env = {
        protocol.PORT: "7999",
        protocol.DEVICE: "CUDA:1",
        protocol.HOME: str(tmp_path),
        protocol.MODELS: json.dumps(FULL),
        protocol.IDLE_UNLOAD: "2.5",
    }
    s = AppSettings.from_env("generator", environ=env)
    assert (s.host, s.port, s.device, s.app) == ("127.0.0.1", 7999, "cuda:1", "generator")
    assert s.outputs == tmp_path / "outputs" / "generator" and s.idle_unload_s == 150
    assert s.models.default_id == "flux-schnell"
    assert AppSettings.from_env("x", environ={}).port == 7860


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({protocol.PORT: "http"}, "DARKROOM_PORT"),
        ({protocol.PORT: "70000"}, "between 1 and 65535"),
        ({protocol.IDLE_UNLOAD: "soon"}, "DARKROOM_IDLE_UNLOAD_MINUTES"),
        ({protocol.MODELS: "[1]"}, "DARKROOM_MODELS"),
    ],
)
def test_bad_settings_are_sentences(env: dict[str, str], words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        AppSettings.from_env("x", environ=env)


@pytest.mark.parametrize(
    "filename, stem",
    [
        ("grandma.jpg", "grandma-restored"),
        ("C:\\Users\\me\\Oma Lise (1950).JPEG", "Oma-Lise-1950-restored"),
        ("../../etc/passwd", "passwd-restored"),
        ("Ölgemälde.tif", "Olgemalde-restored"),
        ("archive.tar.gz", "archive.tar-restored"),
    ],
)
def test_output_names_keep_the_input_name(filename: str, stem: str) -> None:
    from appkit.outputs import _SAFE, output_stem

    assert output_stem(filename, "restored") == stem
    assert _SAFE.match(output_stem(filename, "restored") + ".png")  # servable by /outputs/


def test_output_without_a_name_gets_the_time_and_collisions_a_suffix(tmp_path: Path) -> None:
    from appkit.outputs import _claim, output_stem

    assert output_stem(None, "colorized").endswith("-colorized")
    assert output_stem("写真.jpg", "colorized")[:6].isdigit()
    names = [_claim(tmp_path, "grandma-restored").name for _ in range(3)]
    assert names == ["grandma-restored.png", "grandma-restored-2.png", "grandma-restored-3.png"]
