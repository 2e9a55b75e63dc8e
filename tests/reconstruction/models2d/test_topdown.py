"""Top-down architectures: published parameter counts, checkpoint key mapping (HRNet authors'
and mmpose 0.x/1.x names) on random weights, safe loading, and the model interface."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from capture.errors import FileFormatError  # noqa: E402
from reconstruction.models2d.codecs import GaussianHeatmap  # noqa: E402
from reconstruction.models2d.topdown import (  # noqa: E402
    TopDownHeatmapModel, build_topdown, load_checkpoint, load_topdown,
)


# Parameter counts in the papers / model zoos (COCO, 17 joints), in millions.
PUBLISHED_MPARAMS = {"simplebaseline-res50": 34.0, "simplebaseline-res101": 53.0,
                     "simplebaseline-res152": 68.6, "hrnet-w32": 28.5, "hrnet-w48": 63.6}


# Keys and shapes as they appear in the public checkpoints (pose_resnet_50_256x192.pth,
# pose_hrnet_w32_256x192.pth of the HRNet authors).
AUTHOR_KEYS = {
    "simplebaseline-res50": {"conv1.weight": (64, 3, 7, 7), "layer1.0.downsample.0.weight": (256, 64, 1, 1),
                             "layer4.2.conv3.weight": (2048, 512, 1, 1), "deconv_layers.0.weight": (2048, 256, 4, 4),
                             "deconv_layers.7.running_var": (256,), "final_layer.weight": (17, 256, 1, 1)},
    "hrnet-w32": {"conv2.weight": (64, 64, 3, 3), "transition1.1.0.0.weight": (64, 256, 3, 3),
                  "transition3.3.0.0.weight": (256, 128, 3, 3), "stage2.0.branches.1.3.conv2.weight": (64, 64, 3, 3),
                  "stage3.3.fuse_layers.2.0.1.0.weight": (128, 32, 3, 3),
                  "stage4.2.fuse_layers.0.3.0.weight": (32, 256, 1, 1), "final_layer.weight": (17, 32, 1, 1)},
}


@pytest.mark.parametrize("arch", list(PUBLISHED_MPARAMS))
def test_published_parameter_counts(arch):
    with torch.device("meta"):  # no memory, no init time
        net = build_topdown(arch)
    assert sum(p.numel() for p in net.parameters()) / 1e6 == pytest.approx(PUBLISHED_MPARAMS[arch], abs=0.05)


def _randomized(arch):
    torch.manual_seed(0)
    net = build_topdown(arch).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return net


def _as_authors(state, arch):
    if arch.startswith("simplebaseline"):
        return {k.replace("backbone.", "", 1).replace("head.", "", 1): v for k, v in state.items()}
    return dict(state)


@pytest.mark.parametrize("arch", list(AUTHOR_KEYS))
def test_our_names_are_the_checkpoints_names(arch):
    with torch.device("meta"):
        authors = _as_authors(build_topdown(arch).state_dict(), arch)
    for k, shape in AUTHOR_KEYS[arch].items():
        assert tuple(authors[k].shape) == shape, k


# the same naming at a small size (a fast test): ResNet-18 blocks / HRNet-W8 branches
@pytest.mark.parametrize("arch", ["simplebaseline-res18", pytest.param("hrnet-w8", marks=pytest.mark.slow)])
def test_key_mapping_round_trip(tmp_path, arch):
    net = _randomized(arch)
    authors = _as_authors(net.state_dict(), arch)
    mmpose0 = {"backbone." + k if not k.startswith(("deconv_layers", "final_layer")) else "keypoint_head." + k: v
               for k, v in authors.items()}
    mmpose1 = {"state_dict": {k.replace("keypoint_head.", "head.", 1): v for k, v in mmpose0.items()},
               "meta": {"epoch": 210}}
    dataparallel = {"module." + k: v for k, v in authors.items()}
    want = net.state_dict()
    for i, ckpt in enumerate((authors, mmpose0, mmpose1, dataparallel)):
        path = tmp_path / f"c{i}.pth"
        torch.save(ckpt, path)
        loaded = load_topdown(arch, path)
        got = loaded.state_dict()
        for k, v in want.items():
            if not k.endswith("num_batches_tracked"):
                assert torch.equal(got[k], v), k
    # and the network computes the same function
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)


def test_wrong_checkpoint_and_unsafe_pickle(tmp_path):
    net = build_topdown("simplebaseline-res50")
    path = tmp_path / "c.pth"
    torch.save(net.state_dict(), path)
    with pytest.raises(FileFormatError, match="not a hrnet-w32 checkpoint.*missing keys"):
        load_topdown("hrnet-w32", path)
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": _Evil()}, bad)  # a pickled object: refused
    with pytest.raises(FileFormatError, match="weights_only"):
        load_checkpoint(bad)
    with pytest.raises(FileFormatError, match="not found"):
        load_checkpoint(tmp_path / "none.pth")


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


class _FakeHeatmapNet(torch.nn.Module):
    """Outputs Gaussian heatmaps at fixed cells whatever the input: the decoding chain's answer is known."""

    def __init__(self, cells):
        super().__init__()
        self.register_buffer("hm", torch.from_numpy(GaussianHeatmap(size=(64, 48), sigma=2.0).encode(cells[None])))

    def forward(self, x):
        return self.hm.expand(x.shape[0], -1, -1, -1)


def test_interface_decodes_to_image_pixels(rng):
    cells = np.stack([rng.uniform(5, 42, 17), rng.uniform(5, 58, 17)], axis=-1)
    model = TopDownHeatmapModel(_FakeHeatmapNet(cells), "fake")
    frame = np.zeros((480, 640, 3), np.uint8)
    box = np.array([[100.0, 50.0, 150.0, 200.0]])  # already 3:4 = 192:256
    out = model.predict([frame], box)
    # cell centre c -> crop px (c + 0.5) * 4 -> image px box_x + crop_px * 150 / 192
    np.testing.assert_allclose(out.keypoints[0, :, 0], 100 + (cells[:, 0] + 0.5) * 4 * 150 / 192, atol=0.02)
    np.testing.assert_allclose(out.keypoints[0, :, 1], 50 + (cells[:, 1] + 0.5) * 4 * 200 / 256, atol=0.02)
    # a wide box is grown in height to 3:4 around its centre
    out = model.predict([frame], np.array([[100.0, 100.0, 300.0, 100.0]]))
    np.testing.assert_allclose(out.crop_boxes[0], [100, 150 - 200, 300, 400])
