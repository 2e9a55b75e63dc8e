"""Top-down heatmap networks that load the public COCO checkpoints users download themselves.

- SimpleBaseline (Xiao et al. ECCV 2018): ResNet-50/101/152 + 3 deconvolutions + 1x1 conv.
- HRNet-W32/W48 (Sun et al. CVPR 2019), pose variant (only the highest-resolution output).

Checkpoints: those of the HRNet authors (``deep-high-resolution-net.pytorch``: ``pose_resnet_50_256x192.pth``,
``pose_hrnet_w32_256x192.pth``; keys ``conv1.weight``, ``deconv_layers.0.weight``, ``final_layer.weight``,
...) and of mmpose (0.x ``backbone.*`` + ``keypoint_head.*``, 1.x ``backbone.*`` + ``head.*``, inside
``state_dict``). Read with ``torch.load(weights_only=True)`` (plain tensors only, nothing unpickled
runs) or from ``.safetensors``. Input: RGB crops ``(B, 3, 256, 192)`` normalised with the ImageNet
mean/std; output heatmaps ``(B, J, 64, 48)`` decoded by :mod:`reconstruction.models2d.codecs`.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from capture.errors import FileFormatError
from reconstruction.models2d.codecs import GaussianHeatmap
from reconstruction.models2d.interface import KeypointModel2D, flip_heatmaps
from reconstruction.models2d.movenet import COCO17_FLIP_PAIRS, COCO17_JOINTS

log = logging.getLogger(__name__)

BN_MOMENTUM = 0.1


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + idt)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        # stride on the 3x3 conv (torchvision / HRNet authors / mmpose 'pytorch' style)
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + idt)


def _make_layer(block, inplanes, planes, blocks, stride=1):
    down = None
    if stride != 1 or inplanes != planes * block.expansion:
        down = nn.Sequential(nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
                             nn.BatchNorm2d(planes * block.expansion, momentum=BN_MOMENTUM))
    layers = [block(inplanes, planes, stride, down)]
    layers += [block(planes * block.expansion, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


RESNET_LAYERS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3)),
                 101: (Bottleneck, (3, 4, 23, 3)), 152: (Bottleneck, (3, 8, 36, 3))}


class ResNetBackbone(nn.Module):
    def __init__(self, depth: int):
        super().__init__()
        block, layers = RESNET_LAYERS[depth]
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = _make_layer(block, 64, 64, layers[0])
        self.layer2 = _make_layer(block, 64 * block.expansion, 128, layers[1], 2)
        self.layer3 = _make_layer(block, 128 * block.expansion, 256, layers[2], 2)
        self.layer4 = _make_layer(block, 256 * block.expansion, 512, layers[3], 2)
        self.out_channels = 512 * block.expansion

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class DeconvHead(nn.Module):
    """SimpleBaseline head: 3 x (ConvTranspose 4x4 s2, BN, ReLU) then a 1x1 conv to J heatmaps."""

    def __init__(self, in_channels: int, num_joints: int, channels: int = 256):
        super().__init__()
        layers = []
        for _ in range(3):
            layers += [nn.ConvTranspose2d(in_channels, channels, 4, 2, 1, output_padding=0, bias=False),
                       nn.BatchNorm2d(channels, momentum=BN_MOMENTUM), nn.ReLU(inplace=True)]
            in_channels = channels
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(channels, num_joints, 1)

    def forward(self, x):
        return self.final_layer(self.deconv_layers(x))


class SimpleBaseline(nn.Module):
    def __init__(self, depth: int = 50, num_joints: int = 17):
        super().__init__()
        self.backbone = ResNetBackbone(depth)
        self.head = DeconvHead(self.backbone.out_channels, num_joints)

    def forward(self, x):
        return self.head(self.backbone(x))


class HighResolutionModule(nn.Module):
    def __init__(self, num_branches, block, num_blocks, channels, multi_scale_output=True):
        super().__init__()
        self.num_branches = num_branches
        self.multi_scale_output = multi_scale_output
        self.branches = nn.ModuleList(
            nn.Sequential(*[block(channels[i], channels[i]) for _ in range(num_blocks[i])]) for i in range(num_branches)
        )
        self.fuse_layers = self._make_fuse_layers(channels) if num_branches > 1 else None
        self.relu = nn.ReLU(inplace=True)

    def _make_fuse_layers(self, ch):
        n = self.num_branches
        fuse = []
        for i in range(n if self.multi_scale_output else 1):
            row = []
            for j in range(n):
                if j > i:  # lower resolution -> 1x1 conv, BN, nearest upsample
                    row.append(nn.Sequential(nn.Conv2d(ch[j], ch[i], 1, bias=False), nn.BatchNorm2d(ch[i]),
                                             nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")))
                elif j == i:
                    row.append(None)
                else:  # higher resolution -> (i - j) stride-2 3x3 convs
                    convs = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        out = ch[i] if last else ch[j]
                        mods = [nn.Conv2d(ch[j], out, 3, 2, 1, bias=False), nn.BatchNorm2d(out)]
                        if not last:
                            mods.append(nn.ReLU(inplace=True))
                        convs.append(nn.Sequential(*mods))
                    row.append(nn.Sequential(*convs))
            fuse.append(nn.ModuleList(row))
        return nn.ModuleList(fuse)

    def forward(self, xs):
        xs = [b(x) for b, x in zip(self.branches, xs)]
        if self.fuse_layers is None:
            return xs
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[i]
            for j, layer in enumerate(row):
                if j != i:
                    y = y + layer(xs[j])
            out.append(self.relu(y))
        return out


class HRNet(nn.Module):
    """Pose HRNet-W{width}: stem, layer1 (4 bottlenecks), stages 2-4 with 1/4/3 modules of 4 basic
    blocks per branch, final 1x1 conv on the highest-resolution branch (``final_layer``)."""

    def __init__(self, width: int = 32, num_joints: int = 17):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _make_layer(Bottleneck, 64, 64, 4)
        chans = [width * 2 ** i for i in range(4)]
        self.transition1 = self._transition([256], chans[:2])
        self.stage2 = self._stage(1, 2, chans[:2])
        self.transition2 = self._transition(chans[:2], chans[:3])
        self.stage3 = self._stage(4, 3, chans[:3])
        self.transition3 = self._transition(chans[:3], chans)
        self.stage4 = self._stage(3, 4, chans, multi_scale_output=False)
        self.final_layer = nn.Conv2d(width, num_joints, 1)

    @staticmethod
    def _transition(pre, cur):
        layers = []
        for i, c in enumerate(cur):
            if i < len(pre):
                layers.append(None if pre[i] == c else nn.Sequential(
                    nn.Conv2d(pre[i], c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)))
            else:
                convs = []
                for k in range(i + 1 - len(pre)):
                    inc = pre[-1]
                    outc = c if k == i - len(pre) else inc
                    convs.append(nn.Sequential(nn.Conv2d(inc, outc, 3, 2, 1, bias=False), nn.BatchNorm2d(outc),
                                               nn.ReLU(inplace=True)))
                layers.append(nn.Sequential(*convs))
        return nn.ModuleList(layers)

    @staticmethod
    def _stage(num_modules, num_branches, chans, multi_scale_output=True):
        return nn.Sequential(*[
            HighResolutionModule(num_branches, BasicBlock, [4] * num_branches, chans,
                                 multi_scale_output or m < num_modules - 1)
            for m in range(num_modules)
        ])

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        xs = [t(x) if t is not None else x for t in self.transition1]
        xs = self.stage2(xs)
        xs = [t(xs[min(i, len(xs) - 1)]) if t is not None else xs[i] for i, t in enumerate(self.transition2)]
        xs = self.stage3(xs)
        xs = [t(xs[min(i, len(xs) - 1)]) if t is not None else xs[i] for i, t in enumerate(self.transition3)]
        xs = self.stage4(xs)
        return self.final_layer(xs[0])


ARCHITECTURES = {
    "simplebaseline-res50": lambda j: SimpleBaseline(50, j),
    "simplebaseline-res101": lambda j: SimpleBaseline(101, j),
    "simplebaseline-res152": lambda j: SimpleBaseline(152, j),
    "hrnet-w32": lambda j: HRNet(32, j),
    "hrnet-w48": lambda j: HRNet(48, j),
}


def build_topdown(arch: str, num_joints: int = 17) -> nn.Module:
    """``simplebaseline-res{18,34,50,101,152}`` or ``hrnet-w{N}`` (the published COCO ones are
    listed in ``ARCHITECTURES``)."""
    m = re.fullmatch(r"simplebaseline-res(\d+)|hrnet-w(\d+)", arch)
    if not m or (m.group(1) and int(m.group(1)) not in RESNET_LAYERS):
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    return SimpleBaseline(int(m.group(1)), num_joints) if m.group(1) else HRNet(int(m.group(2)), num_joints)


def map_state_dict_keys(state: dict, arch: str) -> dict:
    """Checkpoint keys (HRNet authors' or mmpose 0.x/1.x, optional ``module.`` from DataParallel)
    -> ours. SimpleBaseline: ``backbone.*`` + ``head.{deconv_layers,final_layer}.*``; HRNet: the
    authors' names (``conv1``, ``stage2.0.branches...``, ``final_layer``)."""
    out = {}
    simple = arch.startswith("simplebaseline")
    for k, v in state.items():
        k = re.sub(r"^(module\.)+", "", k)
        if k.endswith("num_batches_tracked"):
            continue
        k = re.sub(r"^(keypoint_head|head)\.", "head.", k)
        if simple:
            if k.startswith(("deconv_layers.", "final_layer.")):
                k = "head." + k
            elif not k.startswith(("backbone.", "head.")):
                k = "backbone." + k
        else:
            k = re.sub(r"^backbone\.", "", k)
            k = re.sub(r"^head\.", "", k)
        out[k] = v
    return out


def load_checkpoint(path: str | Path) -> dict:
    """Tensors of a ``.pth``/``.pt`` (``torch.load(weights_only=True)``) or ``.safetensors`` file;
    an mmpose/OpenMMLab ``{"state_dict": ...}`` wrapper is unwrapped."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: checkpoint not found")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise FileFormatError(f"{path}: reading .safetensors needs the 'safetensors' package (pip install safetensors)") from None
        return dict(load_file(str(path)))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # an unpickling refusal or a corrupt file: one message
        raise FileFormatError(f"{path}: not a plain-tensor checkpoint torch.load(weights_only=True) can read ({exc})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise FileFormatError(f"{path}: expected a state dict of tensors")
    return obj


def load_topdown(arch: str, path: str | Path, num_joints: int | None = None) -> nn.Module:
    """Build ``arch`` and load the checkpoint at ``path``; every key must match (names and shapes)."""
    state = map_state_dict_keys(load_checkpoint(path), arch)
    if num_joints is None:
        final = [v for k, v in state.items() if k.endswith("final_layer.weight")]
        num_joints = int(final[0].shape[0]) if final else 17
    net = build_topdown(arch, num_joints)
    # num_batches_tracked only matters for training; old checkpoints (PyTorch < 0.4.1) lack it
    own = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        raise FileFormatError(
            f"{path}: not a {arch} checkpoint: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}), {len(bad)} with other shapes (e.g. {bad[:3]})"
        )
    net.load_state_dict(state, strict=False)
    return net.eval()


class TopDownHeatmapModel(KeypointModel2D):
    """A top-down heatmap network behind the 2D model interface. Crops ``(w, h) = input_size``
    (192 x 256 for the COCO checkpoints), ImageNet normalisation, DARK decoding by default; the
    flip test averages the heatmaps of the crop and of its mirror (left/right swapped)."""

    MEAN = np.array([0.485, 0.456, 0.406]) * 255
    STD = np.array([0.229, 0.224, 0.225]) * 255

    def __init__(self, net: nn.Module, name: str, input_size=(192, 256), joint_names=COCO17_JOINTS,
                 flip_pairs=COCO17_FLIP_PAIRS, refine: str = "dark", device: str = "cpu", half: bool | None = None,
                 batch_size: int = 16):
        super().__init__(device=device, half=half, batch_size=batch_size)
        self.name = name
        self.input_size = tuple(input_size)
        self.joint_names = tuple(joint_names)
        self.flip_pairs = tuple(flip_pairs)
        self.refine = refine
        net = net.to(self.device).eval()
        self.net = net.half() if self.half else net
        dt = torch.float16 if self.half else torch.float32
        self._mean = torch.tensor(self.MEAN, dtype=dt, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.STD, dtype=dt, device=self.device).view(1, 3, 1, 1)

    def _heatmaps(self, crops: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device).permute(0, 3, 1, 2)
        x = (x.to(self._mean.dtype) - self._mean) / self._std
        with torch.inference_mode():
            return self.net(x).float().cpu().numpy()

    def predict_crops(self, crops: np.ndarray, flip_test: bool = False):
        hm = self._heatmaps(crops)
        if flip_test:
            hm = (hm + flip_heatmaps(self._heatmaps(crops[:, :, ::-1]), self.flip_pairs)) / 2
        h, w = hm.shape[-2:]
        kp = GaussianHeatmap(size=(h, w), refine=self.refine).decode(hm)
        sx, sy = self.input_size[0] / w, self.input_size[1] / h
        kp[..., 0] = (kp[..., 0] + 0.5) * sx  # cell centres -> crop pixels, edge origin
        kp[..., 1] = (kp[..., 1] + 0.5) * sy
        return hm, kp
