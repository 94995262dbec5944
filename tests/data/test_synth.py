from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from lightning_depth.data.diode import synthesize_diode
from lightning_depth.data.synth import render_scene
from lightning_depth.data.synth_diode import diode_samples


def _render(seed: int, **kwargs) -> dict:
    return render_scene(np.random.default_rng(seed), 64, 48, **kwargs)


def test_render_outputs_shapes_and_dtypes():
    out = _render(0, baseline=0.2)
    assert out["image"].shape == (48, 64, 3) and out["image"].dtype == np.uint8
    assert out["right"].shape == (48, 64, 3) and out["right"].dtype == np.uint8
    assert out["depth"].shape == (48, 64) and out["depth"].dtype == np.float32
    assert out["disparity"].shape == (48, 64) and out["disparity"].dtype == np.float32
    assert out["mask"].shape == (48, 64) and out["mask"].dtype == np.bool_
    assert isinstance(out["focal"], float) and out["focal"] > 0
    assert "right" not in _render(0)


def test_render_is_deterministic_per_seed():
    a, b, c = _render(3, baseline=0.1), _render(3, baseline=0.1), _render(4, baseline=0.1)
    for key in ("image", "depth", "mask", "right", "disparity"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["image"], c["image"])


def test_scene_does_not_depend_on_resolution():
    small = render_scene(np.random.default_rng(5), 32, 24)
    large = render_scene(np.random.default_rng(5), 64, 48)
    assert small["kind"] == large["kind"]
    assert small["focal"] == pytest.approx(large["focal"] / 2)
    # Same geometry: each small pixel sees what the 2x2 large pixels it covers see.
    pooled = large["depth"].reshape(24, 2, 32, 2).mean(axis=(1, 3))
    both = (small["depth"] > 0) & (pooled > 0)
    rel = np.abs(small["depth"][both] - pooled[both]) / pooled[both]
    assert np.median(rel) < 0.01 and (rel < 0.05).mean() > 0.9


@pytest.mark.parametrize("kind,low,high", [("indoors", 0.3, 11.5), ("outdoor", 0.3, 75.0)])
def test_depth_ranges_per_kind(kind, low, high):
    depths = [render_scene(np.random.default_rng(s), 48, 32, kind=kind)["depth"] for s in range(4)]
    hits = np.concatenate([d[d > 0] for d in depths])
    assert hits.min() >= low and hits.max() <= high
    if kind == "indoors":
        assert all((d > 0).all() for d in depths)  # closed rooms: no sky
    else:
        assert all((d == 0).any() for d in depths)  # sky: no hit
        assert hits.max() > 20


def test_mask_has_dropouts_but_disparity_does_not():
    out = _render(1, baseline=0.1, kind="indoors")
    hit = out["depth"] > 0
    assert not (out["mask"] & ~hit).any()  # no valid depth without a hit
    holes = hit & ~out["mask"]
    assert holes.any()
    assert (out["disparity"][holes] > 0).all()


def test_disparity_is_focal_baseline_over_depth():
    out = _render(2, baseline=0.25)
    hit = out["depth"] > 0
    np.testing.assert_allclose(
        out["disparity"][hit], out["focal"] * 0.25 / out["depth"][hit], rtol=1e-5
    )
    assert (out["disparity"][~hit] == 0).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stereo_views_agree_along_disparity(seed):
    out = render_scene(np.random.default_rng(seed), 96, 64, baseline=0.3)
    left = out["image"].astype(np.float32)
    right = out["right"].astype(np.float32)
    v, u = np.nonzero(out["disparity"] > 0)
    ur = np.round(u - out["disparity"][v, u]).astype(int)
    inside = ur >= 0
    v, u, ur = v[inside], u[inside], ur[inside]
    matched = np.abs(left[v, u] - right[v, ur]).max(axis=1)
    unshifted = np.abs(left[v, u] - right[v, u]).max(axis=1)
    # Most pixels (all but occlusions and texture edges) find their colour in the right view,
    # and far more often than without the disparity shift.
    assert (matched < 25).mean() > 0.85
    assert (matched < 25).mean() > (unshifted < 25).mean() + 0.05


def test_render_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="baseline"):
        render_scene(rng, 8, 8, baseline=-1)
    with pytest.raises(ValueError, match="kind"):
        render_scene(rng, 8, 8, kind="space")
    with pytest.raises(ValueError, match="width and height"):
        render_scene(rng, 0, 8)


_STEM = re.compile(r"^(\d{5})_(\d{5})_(indoors|outdoor)_(\d{3})_(\d{3})$")


def test_synthesize_diode_layout(tmp_path):
    paths = synthesize_diode(
        tmp_path, n=6, size=(30, 40), seed=1, scenes_per_type=2, scans_per_scene=1
    )
    assert len(paths) == 6 and len(set(paths)) == 6
    types = set()
    for png in paths:
        rel = png.relative_to(tmp_path).parts
        assert rel[0] == "val" and rel[1] in ("indoors", "outdoor")
        match = _STEM.match(png.stem)
        assert match, png.stem
        scene, scan, kind = match.group(1), match.group(2), match.group(3)
        assert rel[1] == kind and rel[2] == f"scene_{scene}" and rel[3] == f"scan_{scan}"
        types.add(kind)
        with Image.open(png) as img:
            assert img.mode == "RGB" and img.size == (40, 30)
        depth = np.load(png.with_name(png.stem + "_depth.npy"))
        mask = np.load(png.with_name(png.stem + "_depth_mask.npy"))
        assert depth.dtype == np.float32 and depth.shape == (30, 40, 1)
        assert mask.dtype == np.float32 and mask.shape == (30, 40)
        assert set(np.unique(mask)) <= {0.0, 1.0}
        assert (depth[..., 0][mask == 0] == 0).all() and (depth[..., 0][mask == 1] > 0).all()
    assert types == {"indoors", "outdoor"}
    # Scene and scan numbers are unique across types.
    scenes = {(p.parts[-4], p.parts[-3]) for p in paths}
    assert len({s for _, s in scenes}) == len(scenes)


def test_synthesize_diode_is_deterministic_and_prefix_stable(tmp_path):
    a = synthesize_diode(tmp_path / "a", n=3, size=(16, 24), seed=7, scene_types=("indoors",))
    b = synthesize_diode(tmp_path / "b", n=5, size=(16, 24), seed=7, scene_types=("indoors",))
    for pa, pb in zip(a, b):
        assert pa.relative_to(tmp_path / "a") == pb.relative_to(tmp_path / "b")
        assert pa.read_bytes() == pb.read_bytes()
    c = synthesize_diode(tmp_path / "c", n=1, size=(16, 24), seed=8, scene_types=("indoors",))
    assert c[0].read_bytes() != a[0].read_bytes()


def test_synthesize_diode_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="n must be"):
        synthesize_diode(tmp_path, n=0)
    with pytest.raises(ValueError, match="scene_types"):
        synthesize_diode(tmp_path, n=1, scene_types=("underwater",))


# -- lightning_depth synth: never over other data ---------------------------------------------


def _sizes(root) -> set[tuple[int, ...]]:
    return {np.load(p).shape for p in root.rglob("*_depth.npy")}


def test_synth_refuses_a_non_empty_folder_and_overwrite_replaces_its_set(tmp_path, capsys):
    from lightning_depth.data.synth_command import main

    out = tmp_path / "set"
    assert main(["diode", "--out", str(out), "--n", "6", "--size", "24x32"]) == 0
    before = sorted((str(p), p.stat().st_mtime_ns) for p in out.rglob("*"))
    assert main(["diode", "--out", str(out), "--n", "4", "--size", "12x16"]) == 1
    err = capsys.readouterr().err
    assert f"output folder {out} is not empty (it holds a generated set)" in err
    assert "pass --overwrite" in err
    assert sorted((str(p), p.stat().st_mtime_ns) for p in out.rglob("*")) == before
    assert main(["diode", "--out", str(out), "--n", "4", "--size", "12x16", "--overwrite"]) == 0
    assert len(list(out.rglob("*.png"))) == 4 and _sizes(out) == {(12, 16, 1)}  # nothing mixed


def test_synth_overwrite_deletes_nothing_it_did_not_write(tmp_path, capsys):
    from lightning_depth.data.synth_command import main

    out = tmp_path / "mine"
    synthesize_diode(out, n=3, size=(12, 16))  # a set written without the command: no marker
    before = sorted(p.name for p in out.rglob("*"))
    assert main(["monkaa", "--out", str(out), "--scenes", "1", "--frames", "2", "--overwrite"]) == 1
    assert "deletes nothing else" in capsys.readouterr().err
    assert sorted(p.name for p in out.rglob("*")) == before


def test_photo_style_keeps_the_geometry_and_maps_photographs():
    for seed, kind in ((0, "indoors"), (1, "outdoor")):
        plain = render_scene(np.random.default_rng(seed), 96, 64, baseline=0.2, kind=kind)
        photo = render_scene(
            np.random.default_rng(seed), 96, 64, baseline=0.2, kind=kind, photos=True
        )
        np.testing.assert_array_equal(photo["depth"], plain["depth"])
        np.testing.assert_array_equal(photo["disparity"], plain["disparity"])
        assert not np.array_equal(photo["image"], plain["image"])
        # photographs are world-sized like the patterns: the right view still sees the left's
        # colours at x - d (a stereo pair of photo rooms is consistent)
        left, right = photo["image"].astype(np.float32), photo["right"].astype(np.float32)
        v, u = np.nonzero(photo["disparity"] > 0)
        ur = np.round(u - photo["disparity"][v, u]).astype(int)
        inside = ur >= 0
        matched = np.abs(left[v[inside], u[inside]] - right[v[inside], ur[inside]]).max(axis=1)
        assert (matched < 25).mean() > 0.8


def test_diode_samples_photo_style():
    plain = next(diode_samples(1, size=(32, 48), seed=2))
    photo = next(diode_samples(1, size=(32, 48), seed=2, style="photo"))
    np.testing.assert_array_equal(photo["depth"], plain["depth"])
    assert not np.array_equal(photo["image"], plain["image"])
    with pytest.raises(ValueError, match="style must be one of"):
        diode_samples(1, style="oil")


def _clutter_pair(seed: int, kind: str, size=(48, 64)) -> tuple[dict, dict]:
    h, w = size
    plain = render_scene(np.random.default_rng(seed), w, h, kind=kind)
    things = render_scene(np.random.default_rng(seed), w, h, kind=kind, clutter=True)
    return plain, things


@pytest.mark.parametrize("kind", ["indoors", "outdoor"])
def test_clutter_only_adds_objects_to_the_same_layout(kind):
    changed = []
    for seed in range(6):
        plain, things = _clutter_pair(seed, kind)
        hit = plain["depth"] > 0
        # the room or street is drawn first and kept: objects can only hide it, never move it
        assert (things["depth"][hit] > 0).all()
        assert (things["depth"][hit] <= plain["depth"][hit] * (1 + 1e-6)).all()
        changed.append(np.mean(things["depth"] < plain["depth"] * 0.999))
    assert np.mean(changed) > 0.05, changed


def test_clutter_puts_objects_near_the_camera_in_most_indoor_scenes():
    near = []
    for seed in range(20):
        plain, things = _clutter_pair(seed, "indoors")
        # pixels an object within 3 m now covers where the room was at least 1.5x farther
        covered = (things["depth"] < 3.0) & (plain["depth"] > 1.5 * things["depth"])
        near.append(covered.mean() > 0.05)
    # a foreground group in 70% of scenes (small clutter rarely covers 5% of the view)
    assert 0.4 <= np.mean(near) <= 0.95, near  # (0.15 with no foreground group)


def test_diode_samples_things_style():
    photo = next(diode_samples(1, size=(32, 48), seed=3, style="photo"))
    things = next(diode_samples(1, size=(32, 48), seed=3, style="things"))
    plain = render_scene(np.random.default_rng([3, 0]), 48, 32, kind="indoors", clutter=True)
    np.testing.assert_array_equal(things["depth"], plain["depth"])  # the cluttered geometry
    assert not np.array_equal(things["depth"], photo["depth"])
    assert not np.array_equal(things["image"], plain["image"])  # with photographs


def test_synth_diode_style_things_writes_the_cluttered_samples(tmp_path):
    from lightning_depth.data.synth_command import main

    out = tmp_path / "things"
    assert (
        main(["diode", "--out", str(out), "--n", "2", "--size", "32x48", "--style", "things"]) == 0
    )
    expected = list(diode_samples(2, size=(32, 48), seed=0, style="things"))
    written = sorted(out.rglob("*_depth.npy"))
    assert len(written) == 2
    got = sorted(np.load(p)[..., 0].tobytes() for p in written)
    # DIODE's depth files hold 0 where the mask is invalid
    assert got == sorted(np.where(s["mask"], s["depth"], 0).tobytes() for s in expected)
