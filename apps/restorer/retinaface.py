"""RetinaFace (ResNet-50) face detector that loads facexlib's `detection_Resnet50_Final.pth`.

spandrel has no face detector, so the network is written here, module for module in the
layout of that file (body = torchvision ResNet-50 up to layer4, fpn, ssh1-3, ClassHead,
BboxHead, LandmarkHead), and the weights are loaded strictly: a file of another shape is
refused with a sentence rather than run with half its weights. Boxes and the five
landmarks (eyes, nose, mouth corners) come out in image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from math import ceil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MIN_SIZES = ((16, 32), (64, 128), (256, 512))
STEPS = (8, 16, 32)
VARIANCE = (0.1, 0.2)
MEAN_BGR = (104.0, 117.0, 123.0)


def _conv_bn(cin: int, cout: int, k: int = 3, leaky: float | None = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, 1, k // 2, bias=False), nn.BatchNorm2d(cout)]
    if leaky is not None:
        layers.append(nn.LeakyReLU(negative_slope=leaky, inplace=True))
    return nn.Sequential(*layers)


class FPN(nn.Module):
    def __init__(self, in_channels: list[int], out: int) -> None:
        super().__init__()
        leaky = 0.1 if out <= 64 else 0.0
        self.output1 = _conv_bn(in_channels[0], out, 1, leaky)
        self.output2 = _conv_bn(in_channels[1], out, 1, leaky)
        self.output3 = _conv_bn(in_channels[2], out, 1, leaky)
        self.merge1 = _conv_bn(out, out, 3, leaky)
        self.merge2 = _conv_bn(out, out, 3, leaky)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        o1, o2, o3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[2:], mode="nearest"))
        return [o1, o2, o3]


class SSH(nn.Module):
    """Context module: 3x3, 5x5 and 7x7 receptive fields side by side."""

    def __init__(self, cin: int, out: int) -> None:
        super().__init__()
        leaky = 0.1 if out <= 64 else 0.0
        self.conv3X3 = _conv_bn(cin, out // 2, 3, None)
        self.conv5X5_1 = _conv_bn(cin, out // 4, 3, leaky)
        self.conv5X5_2 = _conv_bn(out // 4, out // 4, 3, None)
        self.conv7X7_2 = _conv_bn(out // 4, out // 4, 3, leaky)
        self.conv7x7_3 = _conv_bn(out // 4, out // 4, 3, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c5_1 = self.conv5X5_1(x)
        out = torch.cat(
            [self.conv3X3(x), self.conv5X5_2(c5_1), self.conv7x7_3(self.conv7X7_2(c5_1))], 1
        )
        return F.relu(out)


class _Head(nn.Module):
    def __init__(self, cin: int, per_anchor: int, anchors: int = 2) -> None:
        super().__init__()
        self.per_anchor = per_anchor
        self.conv1x1 = nn.Conv2d(cin, anchors * per_anchor, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1).contiguous()
        return out.view(out.shape[0], -1, self.per_anchor)


class RetinaFace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import resnet50
        from torchvision.models._utils import IntermediateLayerGetter

        self.body = IntermediateLayerGetter(
            resnet50(weights=None), {"layer2": 1, "layer3": 2, "layer4": 3}
        )
        self.fpn = FPN([512, 1024, 2048], 256)
        self.ssh1, self.ssh2, self.ssh3 = SSH(256, 256), SSH(256, 256), SSH(256, 256)
        self.ClassHead = nn.ModuleList([_Head(256, 2) for _ in range(3)])
        self.BboxHead = nn.ModuleList([_Head(256, 4) for _ in range(3)])
        self.LandmarkHead = nn.ModuleList([_Head(256, 10) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fpn = self.fpn(list(self.body(x).values()))
        feats = [self.ssh1(fpn[0]), self.ssh2(fpn[1]), self.ssh3(fpn[2])]
        loc = torch.cat([h(f) for h, f in zip(self.BboxHead, feats, strict=True)], 1)
        conf = torch.cat([h(f) for h, f in zip(self.ClassHead, feats, strict=True)], 1)
        landm = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats, strict=True)], 1)
        return loc, F.softmax(conf, dim=-1), landm


def priors(height: int, width: int) -> torch.Tensor:
    """Anchor boxes (cx, cy, w, h), relative to the image, in the order the heads emit them."""
    out: list[float] = []
    for sizes, step in zip(MIN_SIZES, STEPS, strict=True):
        for i, j in product(range(ceil(height / step)), range(ceil(width / step))):
            for s in sizes:
                out += [(j + 0.5) * step / width, (i + 0.5) * step / height, s / width, s / height]
    return torch.tensor(out, dtype=torch.float32).view(-1, 4)


@dataclass
class Detection:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    landmarks: np.ndarray  # (5, 2) in pixels
    score: float


class FaceDetector:
    """RetinaFace on a device; `detect` takes an RGB uint8 array."""

    def __init__(self, path: Path, device: str) -> None:
        net = RetinaFace()
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        state = {k.removeprefix("module."): v for k, v in state.items()}
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{path.name} is not a RetinaFace ResNet-50 file ({len(missing)} weights "
                f"missing, {len(unexpected)} unexpected, e.g. {(missing + unexpected)[:2]})"
            )
        self.net = net.eval().to(device)
        self.device = device

    @torch.inference_mode()
    def detect(
        self, rgb: np.ndarray, threshold: float = 0.9, nms: float = 0.4, max_side: int = 1280
    ) -> list[Detection]:
        import torchvision

        h, w = rgb.shape[:2]
        scale = min(1.0, max_side / max(h, w))
        x = torch.from_numpy(np.ascontiguousarray(rgb[:, :, ::-1])).to(self.device)
        x = x.permute(2, 0, 1).unsqueeze(0).float()
        if scale < 1.0:
            x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        x = x - torch.tensor(MEAN_BGR, device=self.device).view(1, 3, 1, 1)
        sh, sw = x.shape[2:]
        loc, conf, landm = self.net(x)
        p = priors(sh, sw).to(self.device)
        loc, landm, scores = loc[0], landm[0], conf[0, :, 1]
        centers = p[:, :2] + loc[:, :2] * VARIANCE[0] * p[:, 2:]
        sizes = p[:, 2:] * torch.exp(loc[:, 2:] * VARIANCE[1])
        boxes = torch.cat([centers - sizes / 2, centers + sizes / 2], 1)
        points = torch.cat(
            [p[:, :2] + landm[:, 2 * k : 2 * k + 2] * VARIANCE[0] * p[:, 2:] for k in range(5)], 1
        )
        keep = scores > threshold
        boxes, points, scores = boxes[keep], points[keep], scores[keep]
        size = torch.tensor([sw, sh], device=self.device, dtype=torch.float32) / scale
        boxes = boxes * size.repeat(2)
        points = points * size.repeat(5)
        order = torchvision.ops.nms(boxes.float(), scores.float(), nms)[:100]
        return [
            Detection(
                box=tuple(float(v) for v in boxes[i].tolist()),
                landmarks=points[i].view(5, 2).cpu().numpy().astype(np.float32),
                score=float(scores[i]),
            )
            for i in order.tolist()
        ]
