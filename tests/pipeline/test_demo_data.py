"""The embedded demo dataset: DPED and unpaired layouts, reproducible, held-out, really degraded."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from phone2dslr.pipeline import demo_data

PHONE = "iphone"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The dataset at its defaults, generated once for the tests that only read it."""
    out = tmp_path_factory.mktemp("demo")
    return demo_data.generate(out, seed=0, phone=PHONE)


def _tiny(out, seed=0, phone=PHONE):
    return demo_data.generate(out, seed=seed, phone=phone, patch_size=40, stride=40, full_size=160)


def _jpgs(folder):
    return sorted(p.name for p in folder.glob("*.jpg"))


def _read(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def _best_shift(phone, dslr, search=8):
    """(dy, dx) maximising the normalised cross-correlation, with phone(y, x) ~ dslr(y - dy, x - dx)."""
    def prep(img):
        g = img.astype(np.float64).mean(axis=2)
        return g - g.mean()

    p, d = prep(phone), prep(dslr)
    h, w = p.shape
    m = search
    core = p[m:h - m, m:w - m]
    core = (core - core.mean()) / core.std()
    best, best_score = None, -np.inf
    for dy in range(-search, search + 1):
        for dx in range(-search, search + 1):
            ref = d[m - dy:h - m - dy, m - dx:w - m - dx]
            score = np.mean(core * (ref - ref.mean()) / ref.std())
            if score > best_score:
                best, best_score = (dy, dx), score
    return best


def test_dped_layout_and_counts(demo):
    root = demo.dped_root / PHONE
    train_phone, train_dslr = root / "training_data" / PHONE, root / "training_data" / "canon"
    test_phone, test_dslr = root / "test_data" / "patches" / PHONE, root / "test_data" / "patches" / "canon"
    full = root / "test_data" / "full_size_test_images"

    assert 500 <= demo.train_pairs <= 700  # seven training photos (598 pairs at the default sizes)
    assert 40 <= demo.test_pairs <= 80
    assert demo.full_size_images == len(demo_data.TEST_PHOTOS)
    # DPED names pairs 0.jpg, 1.jpg, ... with no gaps; both sides hold the same names.
    for folder, n in [(train_phone, demo.train_pairs), (train_dslr, demo.train_pairs),
                      (test_phone, demo.test_pairs), (test_dslr, demo.test_pairs),
                      (full, demo.full_size_images)]:
        assert _jpgs(folder) == sorted(f"{i}.jpg" for i in range(n)), folder
    for i in range(demo.full_size_images):
        with Image.open(full / f"{i}.jpg") as im:
            assert 256 <= max(im.size) <= demo_data.MAX_SIDE
    assert str(demo.dped_root) in str(demo) and str(demo.train_pairs) in str(demo)


def test_unpaired_layout_and_counts(demo):
    root = demo.unpaired_root
    assert len(_jpgs(root / "trainA")) == demo.unpaired_a > 100
    assert len(_jpgs(root / "trainB")) == demo.unpaired_b > 100
    assert _jpgs(root / "testA") == _jpgs(root / "testB")
    assert len(_jpgs(root / "testA")) == demo.test_pairs


def test_every_phone_patch_has_a_canon_partner_of_equal_size(demo):
    root = demo.dped_root / PHONE
    pairs = [(root / "training_data" / PHONE, root / "training_data" / "canon"),
             (root / "test_data" / "patches" / PHONE, root / "test_data" / "patches" / "canon"),
             (demo.unpaired_root / "testA", demo.unpaired_root / "testB")]
    for phone_dir, dslr_dir in pairs:
        names = _jpgs(phone_dir)
        assert names and names == _jpgs(dslr_dir)
        for name in names:
            with Image.open(phone_dir / name) as a, Image.open(dslr_dir / name) as b:
                assert a.size == b.size == (100, 100) and a.mode == b.mode == "RGB"


def test_same_seed_same_bytes_other_seed_other_phone_side(tmp_path):
    _tiny(tmp_path / "a", seed=3)
    _tiny(tmp_path / "b", seed=3)
    _tiny(tmp_path / "c", seed=4)
    a, b, c = (demo_data.file_digest(tmp_path / x) for x in "abc")
    assert len(a) > 50 and a == b
    phone_files = [k for k in a if os.path.join("training_data", PHONE, "") in k]
    assert phone_files and all(a[k] != c[k] for k in phone_files)
    canon_files = [k for k in a if os.path.join("training_data", "canon", "") in k]
    assert canon_files and all(a[k] == c[k] for k in canon_files)  # the DSLR side is the photo itself


def test_train_and_test_photos_are_disjoint_and_stereo_views_stay_together():
    train, test = set(demo_data.TRAIN_PHOTOS), set(demo_data.TEST_PHOTOS)
    assert not train & test
    assert train | test == set(demo_data.PHOTO_FILES)
    stereo = {"motorcycle_left", "motorcycle_right"}
    assert stereo <= train or stereo <= test
    a, b = set(demo_data.UNPAIRED_A_PHOTOS), set(demo_data.UNPAIRED_B_PHOTOS)
    assert a <= train and b <= train and not a & b
    assert stereo <= a or stereo <= b


def test_written_files_follow_the_photo_split(demo):
    root = demo.unpaired_root

    def sources(folder):
        return {name.rsplit("_", 1)[0] for name in _jpgs(root / folder)}

    assert sources("trainA") == set(demo_data.UNPAIRED_A_PHOTOS)
    assert sources("trainB") == set(demo_data.UNPAIRED_B_PHOTOS)
    assert sources("testA") == set(demo_data.TEST_PHOTOS)
    marker = json.loads((demo.out / demo_data.MARKER).read_text())
    assert set(marker["test_photos"]) == set(demo_data.TEST_PHOTOS)
    assert marker["counts"]["train_pairs"] == demo.train_pairs


def test_photo_manifests_name_every_patch_photo_and_scene(demo):
    """The manifests the image ExampleGen reads: every training / test patch listed with its photo and scene."""
    from phone2dslr.components.image_example_gen.layout import IngestOptions
    from phone2dslr.components.image_example_gen.splitting import check_manifests, read_manifest

    def listed(root, layout):
        options = IngestOptions(input_base=str(root), layout=layout, phone=PHONE)
        found = check_manifests(options)  # raises on a header the ingest cannot read
        assert len(found) == 2
        return {m.group: {key[1].rsplit("/", 1)[1]: value[1] for key, value in read_manifest(str(root), m)}
                for m in found}

    scene = {p: demo_data.SCENES.get(p, p) for p in demo_data.PHOTO_FILES}
    assert scene["motorcycle_left"] == scene["motorcycle_right"] and len(set(scene.values())) == 9
    dped = listed(demo.dped_root, "dped")
    train_dir = demo.dped_root / PHONE / "training_data" / PHONE
    assert sorted(dped["train"]) == sorted(p.stem for p in train_dir.glob("*.jpg"))
    assert {photo for photo, _ in dped["train"].values()} == set(demo_data.TRAIN_PHOTOS)
    assert {photo for photo, _ in dped["test"].values()} == set(demo_data.TEST_PHOTOS)
    assert all(s == scene[p] for group in dped.values() for p, s in group.values())
    # Pair 0 is the first patch of the first training photo: the rows follow the generation order.
    assert dped["train"]["0"][0] == next(p for p in demo_data.PHOTO_FILES if p in demo_data.TRAIN_PHOTOS)
    unpaired = listed(demo.unpaired_root, "unpaired")
    stems = {p.stem for folder in ("trainA", "trainB") for p in (demo.unpaired_root / folder).glob("*.jpg")}
    assert set(unpaired["train"]) == stems
    assert all(stem.rsplit("_", 1)[0] == photo for stem, (photo, _) in unpaired["train"].items())
    assert set(unpaired["test"]) == {p.stem for p in (demo.unpaired_root / "testA").glob("*.jpg")}


def test_unpaired_domains_share_no_pair(demo):
    """Each trainA file is one pair's phone side, each trainB file one pair's DSLR side; no pair is in both."""
    root = demo.unpaired_root
    train = demo.dped_root / PHONE / "training_data"

    def pair_ids(folder, side):
        by_bytes = {(train / side / f"{i}.jpg").read_bytes(): i for i in range(demo.train_pairs)}
        return [by_bytes[(root / folder / n).read_bytes()] for n in _jpgs(root / folder)]

    a, b = pair_ids("trainA", PHONE), pair_ids("trainB", "canon")
    assert len(set(a)) == len(a) == demo.unpaired_a and len(set(b)) == len(b) == demo.unpaired_b
    assert not set(a) & set(b)


def test_phone_side_is_degraded_but_recognisable(demo):
    root = demo.dped_root / PHONE / "test_data" / "patches"
    scores = [_psnr(_read(root / PHONE / f"{i}.jpg"), _read(root / "canon" / f"{i}.jpg"))
              for i in range(demo.test_pairs)]
    assert np.all(np.isfinite(scores))
    assert 15.0 < np.mean(scores) < 35.0
    assert 12.0 < min(scores) and max(scores) < 40.0


def test_simulate_phone_keeps_shape_and_misaligns_by_a_few_pixels():
    dslr = demo_data.load_photo("astronaut", full_size=256)
    shifts = []
    for seed in range(4):
        params = demo_data.draw_phone_params(np.random.default_rng(seed))
        phone = demo_data.simulate_phone(dslr, np.random.default_rng(seed))
        assert phone.shape == dslr.shape and phone.dtype == np.uint8
        assert 15.0 < _psnr(phone, dslr) < 35.0
        dy, dx = _best_shift(phone, dslr)
        assert abs(dy) <= 4 and abs(dx) <= 4
        assert abs(dy - params.shift[0]) <= 1.0 and abs(dx - params.shift[1]) <= 1.0
        shifts.append((dy, dx))
    assert any(s != (0, 0) for s in shifts)


def test_simulate_phone_rejects_non_rgb_uint8():
    with pytest.raises(demo_data.DemoDataError, match="uint8 HxWx3"):
        demo_data.simulate_phone(np.zeros((8, 8), np.uint8), np.random.default_rng(0))


def test_ensure_skips_complete_data_and_rebuilds_missing_or_different(tmp_path):
    kwargs = dict(patch_size=40, stride=40, full_size=160)
    first = demo_data.ensure(tmp_path, seed=1, phone=PHONE, **kwargs)
    assert first.generated
    probe = tmp_path / "dped" / PHONE / "training_data" / PHONE / "0.jpg"
    probe.write_bytes(b"touched")  # a rebuild would overwrite this; a skip leaves it

    again = demo_data.ensure(tmp_path, seed=1, phone=PHONE, **kwargs)
    assert not again.generated and probe.read_bytes() == b"touched"
    assert again.train_pairs == first.train_pairs

    (tmp_path / demo_data.MARKER).unlink()
    assert demo_data.ensure(tmp_path, seed=1, phone=PHONE, **kwargs).generated
    assert probe.read_bytes() != b"touched"

    (tmp_path / "unpaired" / "testB" / _jpgs(tmp_path / "unpaired" / "testB")[0]).unlink()
    assert demo_data.ensure(tmp_path, seed=1, phone=PHONE, **kwargs).generated

    assert demo_data.ensure(tmp_path, seed=2, phone=PHONE, **kwargs).generated
    marker = json.loads((tmp_path / demo_data.MARKER).read_text())
    assert marker["seed"] == 2


def test_regenerating_replaces_the_old_demo_entirely(tmp_path):
    _tiny(tmp_path, phone="sony")
    small = _tiny(tmp_path, phone=PHONE)
    assert not (tmp_path / "dped" / "sony").exists()
    assert len(_jpgs(tmp_path / "unpaired" / "trainA")) == small.unpaired_a


def test_refuses_to_overwrite_folders_it_did_not_write(tmp_path):
    foreign = tmp_path / "dped" / "iphone" / "training_data"
    foreign.mkdir(parents=True)
    (foreign / "mine.jpg").write_bytes(b"user data")
    with pytest.raises(demo_data.DemoDataError, match="not written by the demo generator"):
        _tiny(tmp_path)
    assert (foreign / "mine.jpg").read_bytes() == b"user data"


@pytest.mark.parametrize("kwargs, message", [
    ({"phone": "canon"}, "phone must be"),
    ({"phone": "a/b"}, "phone must be"),
    ({"seed": -1}, "seed"),
    ({"patch_size": 0}, "patch_size"),
    ({"full_size": 64}, "larger than photo"),
])
def test_bad_parameters_are_clear_errors(tmp_path, kwargs, message):
    with pytest.raises(demo_data.DemoDataError, match=message):
        demo_data.generate(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()  # checked before anything is written
