"""Tables 5-7 over every frame window, with 300VW annotations as the landmark ground truth
(issue 17): window layout, the fixture's annotations, and the oracle row no longer perfect by
construction."""
import numpy as np
import pytest

from paper2_identity_cgan import evaluate
from tests.data import fixtures


def test_window_centres_tile_pravg_and_cover_every_frame():
    assert evaluate.window_centres(21, "pravg7") == [3, 10, 17]          # non-overlapping, as 17,125
    assert evaluate.window_centres(120000, "pravg7")[-1] == 119990      # 3 + 7 * 17141: 17,142 windows
    assert len(evaluate.window_centres(120000, "pravg7")) == 17142
    assert evaluate.window_centres(9, "pravg7", stride=1) == [3, 4, 5]
    assert evaluate.window_centres(4, "vla") == [0, 1, 2, 3]
    assert evaluate.window_centres(5, "pravg7") == []
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate.window_centres(5, "pravg")


def test_every_window_pairs_are_window_means_with_annotations(tmp_path):
    root = fixtures.vw300(str(tmp_path / "300vw"), n_frames=16)
    from paper2_identity_cgan import data as p2data
    seqs = list(p2data.collect_sequences(f"{root}/*/frames", "", 32))
    lms = evaluate.video_landmarks(f"{root}/*/frames", 32)
    assert sorted(lms) == ["001", "002"] and lms["001"].shape == (16, 68, 2)
    # fixture: frame i (1-based) has points (k, k/2 + i); 32x32 frames: no crop, no scale
    np.testing.assert_allclose(lms["001"][4][:, 1], np.arange(68) * 0.5 + 5)
    wp = evaluate.make_window_pairs(seqs, "pravg7", landmarks=lms)
    assert wp["names"] == ["001#3", "001#10", "002#3", "002#10"]          # 2 windows per video
    frames = seqs[0][1].astype(np.float64) / 255
    np.testing.assert_allclose(wp["blurred"][1], frames[7:14].mean(0), atol=1e-6)
    np.testing.assert_allclose(wp["gt"][1], lms["001"][10])
    assert len(evaluate.make_window_pairs(seqs, "vla")["names"]) == 32       # every frame


class _Tools:
    """A landmarker that finds the true points shifted by 1 px (box: the whole frame)."""
    identity = None
    landmarker = True

    def __init__(self, lms):
        self.lms, self.calls = lms, 0

    def box(self, key, img):
        from common.face.base import Box
        return Box(0.0, 0.0, float(img.shape[1]), float(img.shape[0]), 1.0)

    def landmarks_many(self, imgs, boxes):
        return np.repeat(self.lms[None], len(imgs), 0) + 1.0


def test_oracle_scored_against_300vw_annotations(tmp_path):
    root = fixtures.vw300(str(tmp_path / "300vw"), n_frames=9, videos=("001",))
    from paper2_identity_cgan import data as p2data
    seqs = list(p2data.collect_sequences(f"{root}/*/frames", "", 32))
    lms = evaluate.video_landmarks(f"{root}/*/frames", 32)
    tools = _Tools(lms["001"][4])          # the landmarks of frame 5 (index 4) found on every image
    res = evaluate.evaluate_protocols({"final": lambda x: x}, seqs, ["pravg7"], tools,
                                      windows=dict(stride=1, landmarks=lms))["pravg7"]
    assert res["oracle"]["n"] == 3 and res["oracle"]["landmarks_gt"] == "300VW annotations"
    # found = annotated frame 5 + 1 px; ground truth frames 4, 5, 6 (centres 3, 4, 5): NME > 0
    assert 0.0 < res["oracle"]["auc"] < 1.0
    t = evaluate.tables(res and {"pravg7": res}, None, 0, ["final"])[1]
    assert "ours 3 pairs" in str(t) and "17,125" in str(t) and "300VW annotations" in str(t)


def test_stills_keep_their_middle_window_when_videos_are_windowed():
    rng = np.random.default_rng(0)
    seqs = [("still", (rng.random((21, 8, 8, 3)) * 255).astype(np.uint8)),
            ("video", (rng.random((21, 8, 8, 3)) * 255).astype(np.uint8))]
    wp = evaluate.make_window_pairs(seqs, "pravg7", only={"video"})
    assert wp["names"] == ["still#10", "video#3", "video#10", "video#17"]
    b, _ = evaluate.make_protocol_pairs(seqs[:1], "pravg7")
    np.testing.assert_allclose(wp["blurred"][0], b[0])
    assert np.isnan(wp["gt"]).all()
