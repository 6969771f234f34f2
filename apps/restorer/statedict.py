"""Reading and strictly loading the weights of the architectures written in this project.

GPEN, RestoreFormer++ and BOPBTL's global restoration are not spandrel architectures, so
their files are read here without running pickled code, unwrapped from the containers the
original trainers saved them in, and loaded with strict=True into the network built from
the shapes in the file. Anything else is refused with a sentence naming what differs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

WRAPPERS = ("params_ema", "params", "state_dict", "model_state", "model", "net_g")


class WrongFile(ValueError):
    """The file is not (a state dict of) the expected network; the message is a sentence."""


def read(path: Path, hint: str, wrappers: Iterable[str] = WRAPPERS) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint (a trainer's wrapper dict unwrapped); a sentence otherwise."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WrongFile(
            f"{path.name} is not a PyTorch checkpoint that can be read safely "
            f"({first[:200]}), so it is not {hint}."
        ) from None
    for key in wrappers:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)} or obj
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(v, torch.Tensor) for v in obj.values())
    ):
        held = (
            f"the entries {', '.join(repr(k) for k in list(obj)[:3])}"
            if isinstance(obj, dict) and obj
            else f"a {type(obj).__name__}"
        )
        raise WrongFile(f"{path.name} holds {held}, not a set of weights, so it is not {hint}.")
    if all(k.startswith("module.") for k in obj):  # saved from a DataParallel wrapper
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def shape(state: dict[str, torch.Tensor], key: str, name: str, hint: str) -> tuple[int, ...]:
    """The shape of one weight the layout is read from; a sentence when the file lacks it."""
    if key not in state:
        first = next(iter(state), "nothing")
        raise WrongFile(
            f"{name} is not {hint}: it has no weight {key} (its first entry is {first})."
        )
    return tuple(state[key].shape)


def count(state: dict[str, torch.Tensor], prefix: str) -> int:
    """How many numbered children `prefix.0.`, `prefix.1.`, ... the state holds."""
    n = 0
    while any(k.startswith(f"{prefix}.{n}.") for k in state):
        n += 1
    return n


def load_strict(
    net: nn.Module,
    state: dict[str, torch.Tensor],
    name: str,
    hint: str,
    fixed: Iterable[str] = (),
) -> nn.Module:
    """`net` holding exactly these weights, or a sentence naming what is missing or differs.

    `fixed` names constant buffers (blur kernels) that some saves leave out: the net's own
    values stand in for them when absent; when present they must match in shape."""
    expected = net.state_dict()
    fixed = set(fixed)
    state = dict(state)
    for k in fixed:
        if k not in state and k in expected:
            state[k] = expected[k]
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(
                f"{len(missing)} of its {len(expected)} weights are missing (first: {missing[0]})"
            )
        if unexpected:
            parts.append(f"{len(unexpected)} are not part of it (first: {unexpected[0]})")
        if wrong:
            parts.append(f"{len(wrong)} have the wrong shape (first: {wrong[0]})")
        raise WrongFile(f"{name} is not {hint}: {'; '.join(parts)}.")
    net.load_state_dict(state, strict=True)
    return net.eval()
