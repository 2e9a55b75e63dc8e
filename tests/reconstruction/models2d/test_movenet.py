"""reconstruction/models2d/movenet.py: MoveNet in torch: parity with an independent conversion (../shared
reference), decoding on synthetic heads with known answers, the flip test, the MultiPose detector."""
import functools
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reconstruction.models2d.interface import flip_keypoints  # noqa: E402
from reconstruction.models2d.movenet import (  # noqa: E402
    COCO17_FLIP_PAIRS, MoveNetHeads, MoveNetMultiPose, decode_singlepose, load_movenet,
)


@functools.lru_cache(maxsize=None)
def _model(path: Path):
    return load_movenet(path)  # loaded once per test session: parsing the graph takes a second


def _weights(shared_dir: Path, name: str) -> Path:
    path = shared_dir / "weights" / "movenet" / f"movenet-{name}.json"
    if not path.is_file():
        pytest.skip(f"MoveNet weights not found at {path} (`mocap models fetch movenet-{name}`)")
    return path


def _reference(shared_dir: Path):
    path = shared_dir / "reference" / "movenet_reference_pose2sim_f60.npz"
    if not path.is_file():
        pytest.skip(f"reference outputs not found at {path}")
    return np.load(path)


@pytest.mark.parametrize("name,size", [("lightning", 192), pytest.param("thunder", 256, marks=pytest.mark.slow)])
def test_parity_with_reference(shared_dir, name, size):
    ref = _reference(shared_dir)
    model = _model(_weights(shared_dir, name))
    assert model.input_size == size
    crops = ref[f"{name}_crops_rgb_uint8"]
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float()
    with torch.inference_mode():
        heads = model.net(x)
        kp = model.net.decode(heads).numpy()
    G = size // 4
    for head in ("heatmaps", "center", "regress", "offset"):
        got = getattr(heads, head).numpy()
        assert got.shape[-2:] == (G, G)
        err = np.abs(got - ref[f"{name}_{head}"]).max()
        assert err < 1e-3, f"{name} {head}: max abs difference {err:.2e}"
    want = ref[f"{name}_keypoints_yx_score"]
    px = np.hypot(kp[..., 0] - want[..., 1] * size, kp[..., 1] - want[..., 0] * size)
    assert px.max() < 0.5, f"{name} keypoints: max {px.max():.3f} px at crop scale"
    np.testing.assert_allclose(kp[..., 2], want[..., 2], atol=1e-3)
    # the interface (channels-last, batched, back to image pixels) gives the same joints
    _, kp2 = model.predict_crops(crops)
    np.testing.assert_allclose(kp2, kp, atol=1e-3)


def test_interface_maps_back_to_image_pixels(shared_dir):
    ref = _reference(shared_dir)
    model = _model(_weights(shared_dir, "lightning"))
    boxes = ref["boxes_xywh_px"]
    # paste the reference crops back into frames at their boxes' scale: predicting with those
    # boxes must give the reference joints in frame pixels
    crops = ref["lightning_crops_rgb_uint8"]
    frames, fboxes = [], []
    for crop in crops:
        frame = np.zeros((400, 300, 3), np.uint8)
        frame[50:242, 60:252] = crop
        frames.append(frame)
        fboxes.append([59.5, 49.5, 192, 192])  # edges of the pasted pixels (centres at integers)
    model.batch_size = 3  # 4 crops: two model calls
    try:
        out = model.predict(frames, np.array(fboxes))
    finally:
        model.batch_size = 16
    want = ref["lightning_keypoints_yx_score"]
    np.testing.assert_allclose(out.keypoints[..., 0], 59.5 + want[..., 1] * 192, atol=0.5)
    np.testing.assert_allclose(out.keypoints[..., 1], 49.5 + want[..., 0] * 192, atol=0.5)
    assert out.heatmaps.shape == (4, 17, 48, 48) and np.isfinite(boxes).all()
    # a NaN box gives NaN joints, not an exception
    out = model.predict(frames[:2], np.array([fboxes[0], [np.nan] * 4]))
    assert np.isfinite(out.keypoints[0]).all() and np.isnan(out.keypoints[1]).all()


def test_flip_test_on_mirrored_crop(shared_dir):
    ref = _reference(shared_dir)
    model = _model(_weights(shared_dir, "lightning"))
    crops = ref["lightning_crops_rgb_uint8"][:2]
    _, kp = model.predict_crops(crops, flip_test=True)
    _, kpm = model.predict_crops(np.ascontiguousarray(crops[:, :, ::-1]), flip_test=True)
    # the flip test is symmetric: on the mirrored crop it gives the mirrored joints
    back = flip_keypoints(kpm, COCO17_FLIP_PAIRS, 192)
    good = kp[..., 2] > 0.3
    assert np.abs(back[..., :2] - kp[..., :2])[good].max() < 1.0


def _synthetic_heads(G, centre, joints, offsets):
    """Heads with a centre peak at ``centre`` (cy, cx), regression to ``joints`` (J, 2) grid cells
    (rounded), heatmap peaks at the rounded joints and ``offsets`` (J, 2) sub-cell there."""
    J = len(joints)
    hm = np.full((1, J, G, G), 0.01, np.float32)
    ctr = np.full((1, 1, G, G), 0.01, np.float32)
    reg = np.zeros((1, 2 * J, G, G), np.float32)
    off = np.zeros((1, 2 * J, G, G), np.float32)
    cy, cx = centre
    ctr[0, 0, cy, cx] = 0.9
    cells = np.round(joints).astype(int)
    for j, (y, x) in enumerate(cells):
        reg[0, 2 * j, cy, cx] = joints[j, 0] - cy
        reg[0, 2 * j + 1, cy, cx] = joints[j, 1] - cx
        hm[0, j, y, x] = 0.8
        off[0, 2 * j:2 * j + 2, y, x] = offsets[j]
    return MoveNetHeads(*(torch.from_numpy(a) for a in (hm, ctr, reg, off))), cells


def test_singlepose_decoding_known_answer(rng):
    G, J = 48, 17
    joints = rng.uniform(5, 42, size=(J, 2))
    offsets = rng.uniform(-0.5, 0.5, size=(J, 2)).astype(np.float32)
    heads, cells = _synthetic_heads(G, (24, 23), joints, offsets)
    # a distractor peak far from the regressed joint 0 must lose to the near one, despite a higher score
    far = (int(cells[0, 0] + 20) % G, int(cells[0, 1] + 20) % G)
    heads.heatmaps[0, 0, far[0], far[1]] = 0.95
    prior = torch.ones(1, 1, G, G)
    kp = decode_singlepose(heads, prior, 1.8, 192).numpy()[0]
    want = (cells + offsets) * 4  # (y, x) in 192-px input
    np.testing.assert_allclose(kp[:, 1], want[:, 0], atol=1e-4)
    np.testing.assert_allclose(kp[:, 0], want[:, 1], atol=1e-4)
    np.testing.assert_allclose(kp[:, 2], 0.8, atol=1e-6)


def test_multipose_decoding_two_people(rng):
    G, J = 64, 17
    net = MoveNetMultiPose.__new__(MoveNetMultiPose)
    torch.nn.Module.__init__(net)
    net.max_people, net.distance_eps = 6, 1.8
    a = rng.uniform(5, 25, size=(J, 2))
    b = rng.uniform(38, 58, size=(J, 2))
    ha, ca = _synthetic_heads(G, (15, 15), a, np.zeros((J, 2), np.float32))
    hb, cb = _synthetic_heads(G, (48, 48), b, np.zeros((J, 2), np.float32))
    merged = MoveNetHeads(torch.maximum(ha.heatmaps, hb.heatmaps), torch.maximum(ha.center, hb.center),
                          ha.regress + hb.regress, ha.offset + hb.offset)
    res = net.decode(merged, stride=4.0)
    boxes = res.boxes.numpy()[0]
    assert (boxes[:, 4] > 0).sum() == 2
    found = sorted(boxes[boxes[:, 4] > 0].tolist(), key=lambda r: r[0])
    for box, cells in zip(found, (ca, cb)):
        np.testing.assert_allclose(box[:4], [cells[:, 1].min() * 4, cells[:, 0].min() * 4,
                                             cells[:, 1].max() * 4, cells[:, 0].max() * 4], atol=1e-4)


@pytest.mark.slow
def test_multipose_detector_finds_the_person(shared_dir):
    import cv2

    from reconstruction.models2d.movenet import MultiPoseDetector

    ref = _reference(shared_dir)
    video = shared_dir / "data" / "pose2sim_demo" / "videos_BalancingTrial" / "cam02.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not found")
    cap = cv2.VideoCapture(str(video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, int(ref["frame_index"]))
    ok, frame = cap.read()
    assert ok
    det = MultiPoseDetector(_weights(shared_dir, "multipose"))
    box = det.detect([frame[:, :, ::-1]], margin=0.1)[0]
    # the reference Thunder joints of that view (good ones) lie inside the box
    b = ref["boxes_xywh_px"][1]
    kp = ref["thunder_keypoints_yx_score"][1]
    good = kp[:, 2] > 0.3
    x = b[0] + kp[good, 1] * b[2]
    y = b[1] + kp[good, 0] * b[3]
    assert np.all((x > box[0]) & (x < box[0] + box[2]) & (y > box[1]) & (y < box[1] + box[3]))
    assert box[3] < 1920 * 0.8  # a person box, not the whole frame


@pytest.mark.gpu
@pytest.mark.parametrize("name,size", [("lightning", 192), ("thunder", 256)])
def test_cuda_float16_close_to_reference(shared_dir, name, size):
    ref = _reference(shared_dir)
    model = load_movenet(_weights(shared_dir, name), device="cuda")  # float16 by default on CUDA
    assert model.half
    hm, kp = model.predict_crops(ref[f"{name}_crops_rgb_uint8"])
    want = ref[f"{name}_keypoints_yx_score"]
    px = np.hypot(kp[..., 0] - want[..., 1] * size, kp[..., 1] - want[..., 0] * size)
    good = want[..., 2] > 0.3
    assert np.median(px[good]) < 0.5 and px[good].max() < 4.0  # float16: a few 1e-3 on the heads
    assert np.abs(hm - ref[f"{name}_heatmaps"]).max() < 0.02
