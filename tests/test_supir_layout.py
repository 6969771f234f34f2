"""SUPIR's released layout: the twelve connectors of XL-base checked by name and shape from a
safetensors header (no weights read), and files that are something else refused with a
sentence. Pure Python: apps/restorer/supir.py needs no torch for this."""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
from pathlib import Path

import pytest

from manager.bundled import apps_dir

_spec = importlib.util.spec_from_file_location("supir", apps_dir() / "restorer" / "supir.py")
supir = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("supir", supir)  # dataclasses look their module up by name
_spec.loader.exec_module(supir)

PREFIX = "model.diffusion_model.project_modules."


def sparse_safetensors(path: Path, shapes: dict[str, list[int]]) -> Path:
    """A safetensors file with these fp16 entries whose data is a sparse hole (no disk used)."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        n = 2
        for d in shape:
            n *= d
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)
    return path


def released(**changes) -> dict[str, list[int]]:
    shapes = {PREFIX + k: v for k, v in supir.expected_connectors().items()}
    shapes["model.control_model.input_hint_block.0.weight"] = [16, 4, 3, 3]
    shapes["model.control_model.input_blocks.0.0.weight"] = [320, 4, 3, 3]
    shapes["first_stage_model.denoise_encoder.conv_in.weight"] = [128, 3, 3, 3]
    shapes.update(changes)
    return {k: v for k, v in shapes.items() if v is not None}


def test_the_connectors_of_xl_base() -> None:
    want = supir.expected_connectors()
    blocks = {k.split(".")[0] for k in want}
    assert blocks == {str(n) for n in range(12)}
    crosses = sorted(int(k.split(".")[0]) for k in want if k.endswith("attn.to_q.weight"))
    assert crosses == [3, 7]  # the two cross-attention connectors
    assert want["3.attn.to_k.weight"] == [640, 320] and want["7.attn.to_k.weight"] == [1280, 640]
    # first ZeroSFT: control 160 x 2 channels into 320 UNet channels + a 320-channel skip
    assert want["0.mlp_shared.0.weight"] == [128, 320, 3, 3]
    assert want["0.zero_mul.weight"] == [640, 128, 3, 3] and want["0.zero_conv.weight"] == [
        320,
        320,
        1,
        1,
    ]
    # the last one has no skip to concatenate
    assert want["11.param_free_norm.weight"] == [1280]


def test_a_released_layout_is_recognised_from_its_header(tmp_path: Path) -> None:
    path = sparse_safetensors(tmp_path / "SUPIR-v0Q_fp16.safetensors", released())
    layout = supir.inspect(path)
    assert layout.prefix == "model.diffusion_model."
    assert (layout.connectors, layout.control, layout.denoise_encoder, layout.other) == (
        len(supir.expected_connectors()),
        2,
        1,
        0,
    )


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({PREFIX + "5.zero_add.weight": [640, 128, 3, 3]}, "other shapes than SUPIR XL-base's"),
        ({PREFIX + "3.attn.to_v.weight": None}, "1 missing, first 3.attn.to_v.weight"),
        ({PREFIX + "12.zero_conv.weight": [8, 8, 1, 1]}, "1 unknown, first 12.zero_conv.weight"),
        ({"first_stage_model.denoise_encoder.conv_in.weight": None}, "no denoise_encoder"),
    ],
)
def test_other_layouts_are_refused_with_a_sentence(tmp_path: Path, changes, said) -> None:
    path = sparse_safetensors(tmp_path / "SUPIR-v0Q_fp16.safetensors", released(**changes))
    with pytest.raises(supir.NotSUPIR) as err:
        supir.inspect(path)
    text = str(err.value)
    assert said in text and text.startswith("SUPIR-v0Q_fp16.safetensors:") and text.endswith(".")


def test_files_that_are_not_supir(tmp_path: Path) -> None:
    irnet = sparse_safetensors(
        tmp_path / "v2.safetensors", {"input_blocks.0.0.weight": [320, 8, 3, 3]}
    )
    with pytest.raises(supir.NotSUPIR, match="no SUPIR connectors"):
        supir.inspect(irnet)
    pickle = tmp_path / "SUPIR-v0Q.ckpt"
    pickle.write_bytes(b"PK\x03\x04 not a header")
    with pytest.raises(supir.NotSUPIR, match="is not a safetensors file"):
        supir.inspect(pickle)
