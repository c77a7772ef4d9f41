"""SelfHVD part 1: sharp-frame selection, flow, occlusion masks, cached labels, `vidrestore analyze`."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import psnr, run_cli, textured_scene
from vidrestore.errors import VidrestoreError
from vidrestore.flow import create_flow, occlusion_mask
from vidrestore.flow.estimators import to_grey_u8
from vidrestore.io import read_frames
from vidrestore.io.npy_rows import NpyRows
from vidrestore.selfhvd import AnalysisSettings, analyze_video, select_sharp
from vidrestore.selfhvd.selection import kept_sharp
from vidrestore.selfhvd import analysis as analysis_mod
from vidrestore.selfhvd.window import warp_onto, window_input
from vidrestore.synth.handheld import load_labels, synth_handheld
from vidrestore.synth.shake import ShakeSettings


@pytest.fixture(scope="module")
def object_video(tmp_path_factory):
    """A sharp pan with a textured square crossing it 6 px per frame: occlusions for the masks to find."""
    from vidrestore.io import EncodeSettings, write_video

    rng = np.random.default_rng(11)
    scene, square = textured_scene(rng, 400, 212), textured_scene(rng, 56, 56)
    frames = []
    for i in range(36):
        f = cv2.warpAffine(scene, np.float32([[1, 0, -1.5 * i], [0, 1, -0.3 * i]]), (320, 192), flags=cv2.INTER_CUBIC)
        x = 20 + 6 * i
        f[60:116, x:x + 56] = square
        frames.append(f)
    path = tmp_path_factory.mktemp("object") / "object.mkv"
    write_video(path, frames, 30, EncodeSettings("ffv1"))
    return path


@pytest.fixture(scope="module")
def shaky(sharp_video, tmp_path_factory):
    """A handheld clip with ground truth made from conftest's sharp pan (blur doubled: the clip is small)."""
    return synth_handheld(sharp_video, tmp_path_factory.mktemp("shaky") / "clip", ShakeSettings(seed=4, blur_strength=2.0),
                          progress=False)


@pytest.fixture(scope="module")
def analysed(shaky, tmp_path_factory):
    return analyze_video(shaky.blurry, work_dir=tmp_path_factory.mktemp("work"), progress=False)


def test_otsu_picks_the_sharp_frames_of_a_bimodal_sequence():
    rng = np.random.default_rng(0)
    sharp = rng.random(60) < 0.35
    sharp[[0, 25, 47]] = True  # at least one per block
    # sharp frames near 1000, blurry ones spread from 100 to 450, a slow change of scene on top
    v = np.where(sharp, rng.uniform(950, 1050, 60), rng.uniform(100, 450, 60)) * np.linspace(1, 1.3, 60)
    s = select_sharp(v)
    assert np.array_equal(s.sharp, sharp)
    assert s.problem is None and all(s.standing_out)
    assert s.longest_gap == max(len(run) for run in "".join("s" if x else "b" for x in sharp).split("s"))


def test_mildly_blurred_frames_are_not_called_sharp():
    """Blurry frames spread widely; plain Otsu would split them and call the mild ones sharp."""
    v = np.array([1000, 990, 1010, 450, 420, 300, 200, 100, 60, 1005, 30, 20, 995, 400, 250, 120, 80, 1000, 40, 10.0])
    s = select_sharp(v)
    assert s.sharp.tolist() == [x > 900 for x in v]


def test_identical_sharpness_is_reported_as_no_clear_sharp_frames():
    s = select_sharp(np.full(45, 500.0))
    assert not s.sharp.any() and not any(s.standing_out)
    assert "no clear sharp frames" in s.problem
    few = select_sharp(np.r_[np.full(59, 100.0), 1000.0], block=60)
    assert few.count == 1 and "too few sharp frames" in few.problem


def test_nearest_sharp_partner_prefers_the_sharper_on_a_tie():
    v = np.array([100, 900, 100, 1000, 100, 100.0])
    s = select_sharp(v, block=6)
    assert s.sharp.tolist() == [False, True, False, True, False, False]
    assert s.nearest_sharp().tolist() == [1, 1, 3, 3, 3, 3]


def test_flow_recovers_a_known_subpixel_shift():
    scene = textured_scene(np.random.default_rng(1), 360, 240)
    shift = (2.3, -1.7)
    moved = cv2.warpAffine(scene, np.float32([[1, 0, -shift[0]], [0, 1, -shift[1]]]), (360, 240), flags=cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REFLECT)
    flow = create_flow("dis")(scene, moved)  # scene(p) ~ moved(p + d) with d = -shift
    inner = flow[20:-20, 20:-20].reshape(-1, 2)
    assert np.allclose(np.median(inner, axis=0), [-shift[0], -shift[1]], atol=0.1)


def test_blur_matched_flow_lands_a_sharp_frame_where_a_motion_blurred_one_is():
    """A frame motion-blurred along a 9-px streak (symmetric, so it moves nothing) and shifted by a known
    amount: DIS from it to the sharp frame underestimates the shift; with the sharp frame first blurred
    to the blurry one's sharpness (`match_blur`) the estimate is within a tenth of a pixel."""
    scene = textured_scene(np.random.default_rng(3), 320, 240)
    shift = (1.6, -0.9)
    moved = cv2.warpAffine(scene, np.float32([[1, 0, -shift[0]], [0, 1, -shift[1]]]), (320, 240), flags=cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REFLECT)
    streak = np.zeros((9, 9), np.float32)
    streak[4] = 1
    streak = cv2.warpAffine(streak, cv2.getRotationMatrix2D((4, 4), 30, 1), (9, 9))
    blurry = cv2.filter2D(moved, -1, streak / streak.sum(), borderType=cv2.BORDER_REFLECT)
    errors = []
    for matched in (False, True):
        flow = create_flow("dis", matched, scale=0.5, preset="medium", finest_level=0)(blurry, scene)
        errors.append(np.abs(np.median(flow[24:-24, 24:-24].reshape(-1, 2), axis=0) - shift).max())
    plain, matched = errors
    assert plain > 0.15 and matched < 0.1


def test_match_blur_makes_a_pair_alike_and_leaves_an_alike_pair_as_it_is():
    from vidrestore.flow.estimators import MATCH_TOLERANCE, gradient_energy, match_blur

    sharp = to_grey_u8(textured_scene(np.random.default_rng(4), 160, 120))
    soft = cv2.GaussianBlur(sharp, (0, 0), 1.5)
    a, b = match_blur(sharp, soft)
    assert gradient_energy(b) < gradient_energy(soft)   # both smoothed further
    assert abs(np.log(gradient_energy(a) / gradient_energy(b))) < 2 * np.log(MATCH_TOLERANCE)
    b2, a2 = match_blur(soft, sharp)
    assert np.array_equal(a2, a) and np.array_equal(b2, b)
    assert all(x is sharp for x in match_blur(sharp, sharp))


def test_flow_pairs_are_the_flows_computed_one_at_a_time(monkeypatch):
    """Pairs spread over worker threads (four here, as many as OpenCV may use, whatever the machine) come
    back in order, each the flow one estimator computes alone."""
    monkeypatch.setattr(cv2, "getNumThreads", lambda: 4)
    scene = textured_scene(np.random.default_rng(2), 200, 160)
    shifted = [cv2.warpAffine(scene, np.float32([[1, 0, -0.7 * k], [0, 1, 0.4 * k]]), (200, 160), flags=cv2.INTER_CUBIC,
                              borderMode=cv2.BORDER_REFLECT) for k in range(4)]
    dis = create_flow("dis", preset="medium")
    prepared = [dis.prepare(f) for f in shifted]
    pairs = [(prepared[a], prepared[b]) for a, b in ((0, 1), (1, 0), (0, 3), (2, 3), (3, 0))]
    alone = [create_flow("dis", preset="medium").flow_prepared(a, b) for a, b in pairs]
    together = dis.flow_pairs(pairs)
    assert len(dis._clones) == 3
    assert len(together) == len(pairs) and all(np.array_equal(x, y) for x, y in zip(together, alone))
    assert np.abs(np.median(together[2][..., 0]) + 2.1) < 0.2  # the pairs differ: order matters


def test_learned_flow_is_a_documented_exception():
    with pytest.raises(VidrestoreError, match="not implemented in this version.*weights"):
        create_flow("sea-raft", weights="spring-M.pth")


def test_occlusion_mask_marks_the_region_a_moving_object_covers():
    rng = np.random.default_rng(2)
    background = textured_scene(rng, 240, 160)
    square = textured_scene(rng, 60, 60)
    a, b = background.copy(), background.copy()
    a[50:110, 60:120] = square
    b[50:110, 80:140] = square  # the square moves 20 px right and covers a strip of background
    flow = create_flow("dis")
    occ = occlusion_mask(flow(a, b), flow(b, a))
    covered = occ[60:100, 124:136]   # background in a, hidden under the square in b
    far = occ[10:40, 160:230]        # background seen in both
    assert covered.mean() < 0.5 < 0.9 < far.mean(), (covered.mean(), far.mean())


def test_selection_matches_the_synthesizers_labels(shaky, analysed):
    truth = np.array([f["sharp"] for f in load_labels(shaky.dir)["frames"]])
    acc = (analysed.selection.sharp == truth).mean()
    assert acc >= 0.85, (acc, analysed.selection.sharp.astype(int), truth.astype(int))


def test_masks_keep_aligned_pixels_and_drop_misaligned_ones(object_video, tmp_path):
    """Inside the final mask the warped sharp frame is much closer to the ground truth than overall."""
    clip = synth_handheld(object_video, tmp_path / "clip", ShakeSettings(seed=4, blur_strength=2.0), progress=False)
    analysed = analyze_video(clip.blurry, work_dir=tmp_path / "work", progress=False)
    gt = [f.rgb for f in read_frames(clip.gt)]
    inside, everywhere = [], []
    for i in range(analysed.count):
        j = analysed.partner[i]
        if j < 0 or j == i:
            continue
        label, mask = analysed.label(i)
        err = ((label - gt[i]) ** 2).mean(-1)[8:-8, 8:-8]
        m = mask[8:-8, 8:-8]
        inside.append((err * m).sum() / m.sum())
        everywhere.append(err.mean())
    assert inside, "no blurry frame got a label"
    masked, unmasked = (10 * np.log10(1 / np.mean(e)) for e in (inside, everywhere))
    assert masked > unmasked + 1.0, (masked, unmasked)
    sharp = np.flatnonzero(analysed.partner == np.arange(analysed.count))
    label, mask = analysed.label(int(sharp[0]))
    assert mask.min() == 1 and psnr(label, analysed.frame(int(sharp[0]))) == float("inf")


def test_analysis_is_cached_and_keyed_by_its_settings(shaky, tmp_path, monkeypatch):
    calls = []
    real = analysis_mod._decode_pass
    monkeypatch.setattr(analysis_mod, "_decode_pass", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    first = analyze_video(shaky.blurry, work_dir=tmp_path, progress=False)
    again = analyze_video(shaky.blurry, work_dir=tmp_path, progress=False)
    assert len(calls) == 1 and again.dir == first.dir
    other = analyze_video(shaky.blurry, AnalysisSettings(block=10), work_dir=tmp_path, progress=False)
    assert len(calls) == 2 and other.dir != first.dir
    assert isinstance(first.frames, NpyRows) and first.frames.shape == (first.count, first.height, first.width, 3)


@pytest.mark.parametrize("damage", ["analysis.json", "frames.npy", "marker"])
def test_damaged_analysis_is_discarded_and_built_again(clip_factory, tmp_path, caplog, damage):
    """Issue 22, defect 5: garbage in analysis.json, a truncated frames.npy or a garbage marker is
    noticed on the next run, which says so in one line and rebuilds instead of failing."""
    src, _, _ = clip_factory("analysis12.mkv", frames=12)
    first = analyze_video(src, work_dir=tmp_path, progress=False)
    sharpness, frames = first.selection.sharpness.copy(), np.array(first.frames)
    target = first.dir / (".complete" if damage == "marker" else damage)
    if damage == "frames.npy":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    else:
        target.write_text("{garbage")
    again = analyze_video(src, work_dir=tmp_path, progress=False)
    assert "cache entry damaged or of another version: discarded" in caplog.text
    assert np.array_equal(again.selection.sharpness, sharpness) and np.array_equal(np.array(again.frames), frames)


def test_aligned_neighbour_lands_on_the_centre_frame(analysed):
    """Frame t warped onto frame i with the composed consecutive flows matches frame i better than t itself."""
    i, t = 10, 12
    box = (16, analysed.height - 16, 16, analysed.width - 16)
    centre = analysed.frame(i, box)
    aligned = warp_onto(analysed, i, t, analysed.frames[t], box)
    assert psnr(aligned, centre) > psnr(analysed.frame(t, box), centre) + 3


def test_window_aligned_on_worker_threads_is_the_window_aligned_one_frame_at_a_time(analysed, monkeypatch):
    """The neighbours are warped and their round trips measured on worker threads (four here, whatever the
    machine): the window, its fusion prior and the kept round trips are those computed one at a time."""
    i = 4 + int(np.argmin(analysed.laplacian[4:analysed.count - 4]))  # the blurriest: its neighbours join the fusion
    sources = list(range(i - 4, i + 5))
    box = (8, analysed.height - 8, 4, analysed.width - 12)

    def window(threads: int) -> tuple[np.ndarray, np.ndarray, dict]:
        monkeypatch.setattr(cv2, "getNumThreads", lambda: threads)
        trips: dict = {}
        aligned, prior = window_input(analysed, i, sources, 4, box, analysed.frames.item, trips)
        return aligned, prior, trips

    alone, together = window(1), window(4)
    assert alone[2] and sorted(alone[2]) == sorted(together[2])  # sharper neighbours' round trips
    assert all(np.array_equal(alone[2][t], together[2][t]) for t in alone[2])
    assert np.array_equal(alone[0], together[0]) and np.array_equal(alone[1], together[1])
    assert not np.array_equal(together[0][0], together[0][-1])  # each position holds its own frame


def test_analyze_cli_writes_timeline_panel_and_json(shaky, tmp_path):
    out = tmp_path / "report"
    r = run_cli("analyze", shaky.blurry, "-o", out, "--panel", "5", "-q", "--work-dir", tmp_path / "w")
    assert r.returncode == 0, r.stderr
    assert "frames sharp" in r.stdout
    for name in ("sharpness.png", "sharpness.csv", "analysis.json", "panel_00005.png"):
        assert (out / name).stat().st_size > 0
    panel = cv2.imread(str(out / "panel_00005.png"))
    assert panel.shape[0] > 2 * 150 and panel.shape[1] > 3 * 250
    r = run_cli("analyze", shaky.blurry, "-o", out, "--json", "-q")
    data = json.loads(r.stdout)
    assert len(data["per_frame"]) == 36 and {"sharpness", "sharp"} <= set(data["per_frame"][0])
    r = run_cli("analyze", tmp_path / "missing.mp4")
    assert r.returncode == 1 and "missing.mp4" in r.stderr and "Traceback" not in r.stderr


def test_analysis_of_too_short_a_video_is_a_clear_error(tmp_path):
    from vidrestore.io import write_video

    one = tmp_path / "one.mkv"
    write_video(one, [np.zeros((32, 32, 3), np.float32)], 25)
    with pytest.raises(VidrestoreError, match="at least 2 frames"):
        analyze_video(one, work_dir=tmp_path, progress=False)


def test_relative_sharpness_sees_a_pixel_of_blur_whatever_the_content():
    """A pan from busy to plain scenery, every third frame smeared by one pixel vertically.

    The Laplacian variance follows the content (it falls by more than half along the pan);
    relative sharpness compares each frame with its neighbours on the same content, in its worst
    direction, so the smeared frames and only they come out clearly less sharp.
    """
    from vidrestore.selfhvd.relative_sharpness import RelativeSharpness
    from vidrestore.selfhvd.selection import frame_sharpness

    rng = np.random.default_rng(5)
    busy, plain = textured_scene(rng, 450, 240, rects=400), textured_scene(rng, 450, 240, rects=40)
    scene = np.concatenate([busy, plain], axis=1)
    smear = np.array([[0.5], [0.5]], np.float32)
    blurred = np.arange(40) % 3 == 1
    meter, laplacian = RelativeSharpness(), []
    for i in range(40):
        f = np.ascontiguousarray(scene[20:212, 12 * i:12 * i + 320])
        if blurred[i]:
            f = cv2.filter2D(f, -1, smear, borderType=cv2.BORDER_REFLECT)
        meter.add(f)
        laplacian.append(frame_sharpness(f))
    rel = meter.solve()
    sharp_lap = np.array(laplacian)[~blurred]
    assert sharp_lap[:3].mean() > 2 * sharp_lap[-3:].mean()
    assert rel[~blurred].min() > 2 * rel[blurred].max(), (rel[~blurred].min(), rel[blurred].max())
    assert np.array_equal(select_sharp(rel).sharp, ~blurred)
    assert (select_sharp(np.array(laplacian)).sharp == ~blurred).mean() < 0.9


def test_analysis_can_select_on_relative_sharpness(shaky, analysed, tmp_path):
    rel = analyze_video(shaky.blurry, AnalysisSettings(sharpness_measure="relative"), work_dir=tmp_path, progress=False)
    assert rel.selection.params["measure"] == "relative" and analysed.selection.params["measure"] == "laplacian"
    assert np.allclose(rel.laplacian, analysed.laplacian)  # the fusion prior's measure does not change
    assert 0.5 < rel.selection.sharpness.max() <= 1.0 and rel.selection.count >= 2
    assert all(rel.partner >= 0)


def test_alignment_flows_are_stored_as_dis_estimates_them(shaky, analysed):
    """The stored alignment flows are half size: DIS MEDIUM estimated down to that size (the field the
    preset gives at full size), on each pair blur-matched, as the analysis asks. Nothing is lost in
    storing, and on this handheld clip the matching changes the flows."""
    from vidrestore.flow import resize_field

    a = analysed
    assert a._next[2].shape[1:3] == (a.height // 2, a.width // 2)
    matched = create_flow("dis", True, scale=0.5, preset="medium", finest_level=0)
    plain = create_flow("dis", scale=0.5, preset="medium", finest_level=0)
    luma = [matched.prepare(f.rgb) for f in read_frames(shaky.blurry)]
    full = lambda field: resize_field(np.asarray(field, np.float32), a.size, is_flow=True)  # noqa: E731
    changed = 0.0
    for k in (1, 2):
        for i in range(0, len(luma) - k, 3):
            stored = full(a._next[k][i])
            assert np.abs(stored - matched.flow_prepared(luma[i], luma[i + k], a.size)).max() < 0.01
            assert np.abs(full(a._prev[k][i]) - matched.flow_prepared(luma[i + k], luma[i], a.size)).max() < 0.01
            changed = max(changed, np.abs(stored - plain.flow_prepared(luma[i], luma[i + k], a.size)).max())
    assert changed > 0.1
    frames = [f.rgb for f in read_frames(shaky.blurry)][7:9]
    assert np.abs(plain(*frames) - create_flow("dis", scale=1.0, preset="medium")(*frames)).max() < 0.01


def test_flows_within_the_reach_are_direct_and_further_ones_chained(object_video, tmp_path):
    """With align_reach 3, frame i -> i+3 is one stored flow (i -> i+3), i -> i+5 is that flow
    followed by i+3 -> i+5, and both find the background's pan (-1.5, -0.3 px per frame)."""
    from vidrestore.flow import resize_field

    chained = analyze_video(object_video, AnalysisSettings(align_reach=1), work_dir=tmp_path, progress=False)
    direct = analyze_video(object_video, AnalysisSettings(align_reach=3), work_dir=tmp_path, progress=False)
    assert direct.dir != chained.dir and direct.reach == 3 and chained.reach == 1
    assert direct._next[3].shape[0] == direct.count - 3 and direct._prev[2].shape[0] == direct.count - 2
    i = 12
    stored = resize_field(np.asarray(direct._next[3][i], np.float32), direct.size, (0, direct.height, 0, direct.width), is_flow=True)
    assert np.allclose(direct.flow_to(i, i + 3), stored, atol=1e-3)
    assert not np.allclose(chained.flow_to(i, i + 3), stored, atol=0.05)
    background = (slice(130, 180), slice(16, 300))  # below the square's rows
    for t in (i + 3, i + 5, i - 4):
        for a in (direct, chained):
            found = np.median(a.flow_to(i, t)[background].reshape(-1, 2), axis=0)
            assert np.allclose(found, [-1.5 * (t - i), -0.3 * (t - i)], atol=0.15), (t, a.reach, found)
    err = direct.round_trip_error(i, i + 3)[background]
    assert np.median(err) < 0.1


def test_a_selected_frame_with_a_clearly_sharper_neighbour_is_not_kept():
    sharpness = np.array([100, 30, 100, 75, 30, 30, 30, 100, 95, 30], np.float32)
    selected = np.array([1, 0, 1, 1, 0, 0, 0, 1, 1, 0], bool)
    kept = kept_sharp(selected, sharpness, radius=1)
    # frame 3 (75) has frame 2 (100) beside it: 1.33x sharper; frame 8 (95) is within 1.25x of frame 7
    assert kept.tolist() == [True, False, True, False, False, False, False, True, True, False]
    assert kept_sharp(selected, sharpness, radius=1, ratio=1.4).tolist() == selected.tolist()
    # with a wider window frame 3 still sees frame 2; frame 0 sees nothing sharper
    assert kept_sharp(selected, sharpness, radius=4)[[0, 3, 7]].tolist() == [True, False, True]
