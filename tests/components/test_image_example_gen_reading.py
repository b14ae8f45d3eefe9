"""One unit at a time, without Beam: pairing, splits, patching and every set-aside rule."""
from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from phone2dslr import features as F
from phone2dslr.components.image_example_gen.layout import (IngestError, IngestOptions, Unit, check_layout, list_source,
                                                  make_unit, sources)
from phone2dslr.components.image_example_gen.reading import process_unit
from phone2dslr.components.image_example_gen.splitting import percent_cutoff, split_of
from tests.components.image_example_gen_helpers import decode, dped_dirs, encode, make_dataset, rgb, write


def _opts(root: Path, **kw) -> IngestOptions:
    kw.setdefault("patch_size", 0)
    return IngestOptions(input_base=str(root), **kw)


def _parse(serialized: bytes) -> dict:
    ex = tf.train.Example.FromString(serialized).features.feature
    return {k: (ex[k].int64_list.value[0] if k in F.INT_KEYS else ex[k].bytes_list.value[0]) for k in F.ALL_KEYS}


def _unit(group: str, stem: str, phone=(), dslr=(), prefix="iphone/training_data") -> Unit:
    return Unit(group, f"{prefix}/{stem}", tuple(phone), tuple(dslr))


P, D = "iphone/training_data/iphone", "iphone/training_data/canon"


def _pair_files(root: Path, stem: str, phone, dslr, ext=".png", **kw) -> Unit:
    dirs = dped_dirs(root)
    write(dirs["train_phone"] / f"{stem}{ext}", phone, **kw)
    write(dirs["train_dslr"] / f"{stem}{ext}", dslr, **kw)
    return _unit("train", stem, [f"{P}/{stem}{ext}"], [f"{D}/{stem}{ext}"])


def _reasons(result) -> dict[str, str]:
    return {Path(r["path"]).parent.name + "/" + Path(r["path"]).name: r["reason"] for r in result.rejects}


def test_clean_pair_keeps_original_bytes_and_all_keys(tmp_path):
    unit = _pair_files(tmp_path, "0", rgb(1), rgb(2), ext=".jpg")
    result = process_unit(unit, _opts(tmp_path))
    (split, ex), = result.examples
    e = _parse(ex)
    assert e[F.PHONE] == (tmp_path / P / "0.jpg").read_bytes() and e[F.DSLR] == (tmp_path / D / "0.jpg").read_bytes()
    assert (e[F.DOMAIN], e[F.SOURCE], e[F.PATCH_INDEX], e[F.HEIGHT], e[F.WIDTH]) == (b"paired", b"iphone", -1, 24, 24)
    assert (e[F.PAIR_ID], e[F.PHONE_FILE], e[F.DSLR_FILE]) == (b"iphone/training_data/0", f"{P}/0.jpg".encode(),
                                                                f"{D}/0.jpg".encode())
    assert split in (F.TRAIN, F.EVAL) and not result.rejects
    assert result.counts["files.kept"] == 2 and result.counts[f"pairs_kept.{split}"] == 1


def test_grid_patches_cut_both_sides_at_the_same_positions(tmp_path):
    src = rgb(3)
    unit = _pair_files(tmp_path, "0", src, src)
    result = process_unit(unit, _opts(tmp_path, patch_size=8))
    assert len(result.examples) == 9
    full = np.asarray(src)
    for _, ex in result.examples:
        e = _parse(ex)
        y, x = divmod(e[F.PATCH_INDEX], 3)
        np.testing.assert_array_equal(decode(e[F.PHONE]), full[8 * y:8 * y + 8, 8 * x:8 * x + 8])
        np.testing.assert_array_equal(decode(e[F.PHONE]), decode(e[F.DSLR]))
        assert (e[F.HEIGHT], e[F.WIDTH]) == (8, 8)
    assert len(process_unit(unit, _opts(tmp_path, patch_size=8, patch_stride=4)).examples) == 25


def test_random_patches_are_seeded_and_aligned(tmp_path):
    src = rgb(4)
    unit = _pair_files(tmp_path, "0", src, src)
    opts = _opts(tmp_path, patch_size=8, patches_per_image=4, seed=7)
    first = [_parse(ex) for _, ex in process_unit(unit, opts).examples]
    again = [_parse(ex) for _, ex in process_unit(unit, opts).examples]
    other = [_parse(ex) for _, ex in process_unit(unit, _opts(tmp_path, patch_size=8, patches_per_image=4, seed=8)).examples]
    assert len(first) == 4 and [e[F.PHONE] for e in first] == [e[F.PHONE] for e in again]
    assert [e[F.PHONE] for e in first] != [e[F.PHONE] for e in other]
    full = np.asarray(src)
    for e in first:
        patch = decode(e[F.PHONE])
        np.testing.assert_array_equal(patch, decode(e[F.DSLR]))
        assert any((full[y:y + 8, x:x + 8] == patch).all() for y in range(17) for x in range(17))


def test_test_split_is_cut_on_a_non_overlapping_grid(tmp_path):
    dirs = make_dataset(tmp_path, train_pairs=0, test_pairs=1)
    unit = _unit("test", "0", ["iphone/test_data/patches/iphone/0.png"], ["iphone/test_data/patches/canon/0.png"],
                 prefix="iphone/test_data")
    # stride and random count apply to training patches only: the test grid never overlaps
    result = process_unit(unit, _opts(tmp_path, patch_size=8, patch_stride=4, patches_per_image=5))
    assert [split for split, _ in result.examples] == [F.TEST] * 9
    assert sorted(_parse(ex)[F.PATCH_INDEX] for _, ex in result.examples) == list(range(9))
    whole = process_unit(unit, _opts(tmp_path, patch_size=0))
    (split, ex), = whole.examples
    assert split == F.TEST and _parse(ex)[F.PATCH_INDEX] == -1
    assert _parse(ex)[F.PHONE] == (dirs["test_phone"] / "0.png").read_bytes()


def test_fixable_inputs_are_normalised_and_counted(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    cases = {
        "gray": (rgb(1).convert("L"), rgb(2), "grayscale"),
        "rgba": (rgb(1).convert("RGBA"), rgb(2), "rgba"),
        "pal": (rgb(1).convert("P"), rgb(2), "palette"),
        "cmyk": (rgb(1), rgb(2).convert("CMYK"), "cmyk"),
        "i16": (Image.fromarray(np.full((24, 24), 40000, np.uint16)), rgb(2), "16bit"),
    }
    for stem, (phone, dslr, kind) in cases.items():
        ext = ".jpg" if kind == "cmyk" else ".png"
        result = process_unit(_pair_files(tmp_path, stem, phone, dslr, ext=ext), _opts(tmp_path))
        assert not result.rejects and len(result.examples) == 1, stem
        assert result.counts[f"normalised.{kind}"] == 1, (stem, result.counts)
        e = _parse(result.examples[0][1])
        assert decode(e[F.PHONE]).shape == decode(e[F.DSLR]).shape == (24, 24, 3)
    # A phone photo stored sideways with an EXIF tag pairs with a DSLR photo stored upright.
    dirs = dped_dirs(tmp_path)
    write(dirs["train_phone"] / "rot.jpg", rgb(5, (24, 16)), exif=exif)
    write(dirs["train_dslr"] / "rot.jpg", rgb(6, (16, 24)))
    result = process_unit(_unit("train", "rot", [f"{P}/rot.jpg"], [f"{D}/rot.jpg"]), _opts(tmp_path))
    assert not result.rejects and result.counts["normalised.exif_rotated"] == 1
    assert (_parse(result.examples[0][1])[F.WIDTH], _parse(result.examples[0][1])[F.HEIGHT]) == (16, 24)


def test_bad_pairs_are_set_aside_with_their_reasons(tmp_path):
    dirs = dped_dirs(tmp_path)
    jpeg = encode(rgb(1, (64, 64)), "JPEG", quality=95)
    cases = {
        "trunc": (jpeg[: len(jpeg) // 2], rgb(2, (64, 64)), {"iphone/trunc.jpg": "truncated",
                                                              "canon/trunc.jpg": "partner_rejected"}),
        "text": (rgb(2), b"hello, not a photo", {"iphone/text.jpg": "partner_rejected", "canon/text.jpg": "not_an_image"}),
        "size": (rgb(1, (24, 24)), rgb(2, (24, 16)), {"iphone/size.jpg": "size_mismatch", "canon/size.jpg": "size_mismatch"}),
        "small": (rgb(1, (6, 6)), rgb(2, (6, 6)), {"iphone/small.jpg": "too_small", "canon/small.jpg": "too_small"}),
    }
    for stem, (phone, dslr, expected) in cases.items():
        for side, data in (("phone", phone), ("dslr", dslr)):
            write(dirs[f"train_{side}"] / f"{stem}.jpg", data, fmt="PNG")
        result = process_unit(_unit("train", stem, [f"{P}/{stem}.jpg"], [f"{D}/{stem}.jpg"]), _opts(tmp_path, patch_size=8))
        assert not result.examples and _reasons(result) == expected, stem
        assert result.counts["files.rejected"] == 2 and result.counts["files.kept"] == 0
        assert all(r["split"] in (F.TRAIN, F.EVAL) and "\n" not in r["detail"] for r in result.rejects)


def test_missing_partner_and_ambiguous_names(tmp_path):
    dirs = dped_dirs(tmp_path)
    write(dirs["train_phone"] / "alone.png", rgb(1))
    write(dirs["train_dslr"] / "lonely.png", rgb(1))
    for name in ("dup.png", "dup.jpg"):
        write(dirs["train_phone"] / name, rgb(2))
    write(dirs["train_dslr"] / "dup.png", rgb(3))
    units = {}
    for src in sources(_opts(tmp_path))[:2]:
        for key, member in list_source(str(tmp_path), src)[0]:
            units.setdefault(key, []).append(member)
    reasons = {}
    for key, members in units.items():
        reasons.update(_reasons(process_unit(make_unit(key, members), _opts(tmp_path))))
    assert reasons == {"iphone/alone.png": "no_partner", "canon/lonely.png": "no_partner", "iphone/dup.jpg": "ambiguous_pair",
                       "iphone/dup.png": "ambiguous_pair", "canon/dup.png": "ambiguous_pair"}
    # In unpaired mode every image stands alone, so none of these is a problem.
    kept = collections.Counter()
    for key, members in units.items():
        result = process_unit(make_unit(key, members), _opts(tmp_path, pairing="unpaired"))
        assert not result.rejects
        kept.update(_parse(ex)[F.DOMAIN] for _, ex in result.examples)
    assert kept == {b"A": 3, b"B": 2}


def test_unpaired_examples_have_one_side(tmp_path):
    _pair_files(tmp_path, "0", rgb(1), rgb(2))
    unit = _unit("train", "0", [f"{P}/0.png"], [f"{D}/0.png"])
    result = process_unit(unit, _opts(tmp_path, pairing="unpaired", patch_size=8))
    assert len(result.examples) == 18 and len({s for s, _ in result.examples}) == 1  # a pair never straddles splits
    by_domain = collections.defaultdict(list)
    for _, ex in result.examples:
        by_domain[_parse(ex)[F.DOMAIN]].append(_parse(ex))
    a, b = by_domain[b"A"][0], by_domain[b"B"][0]
    assert a[F.DSLR] == b"" and a[F.DSLR_FILE] == b"" and a[F.SOURCE] == b"iphone" and a[F.PHONE]
    assert b[F.PHONE] == b"" and b[F.PHONE_FILE] == b"" and b[F.SOURCE] == b"dslr" and b[F.DSLR]
    assert result.counts["singles_kept.A"] == result.counts["singles_kept.B"] == 1


def test_test_split_stays_paired_when_pairs_exist(tmp_path):
    make_dataset(tmp_path, layout="unpaired", train_pairs=0, test_pairs=1)
    unit = _unit("test", "0", ["testA/0.png"], ["testB/0.png"], prefix="test")
    opts = _opts(tmp_path, layout="unpaired", pairing="unpaired")
    paired = process_unit(unit, opts, test_has_pairs=True)
    assert [_parse(ex)[F.DOMAIN] for _, ex in paired.examples] == [b"paired"]
    lone = process_unit(_unit("test", "0", ["testA/0.png"], [], prefix="test"), opts, test_has_pairs=True)
    assert _reasons(lone) == {"testA/0.png": "no_partner"}
    singles = process_unit(unit, opts, test_has_pairs=False)
    assert sorted(_parse(ex)[F.DOMAIN] for _, ex in singles.examples) == [b"A", b"B"]


def test_split_without_a_manifest_is_a_stable_hash_of_the_pair_id():
    units = [Unit("train", f"iphone/training_data/{i}", (f"{i}.jpg",), (f"{i}.jpg",)) for i in range(2000)]
    splits = [split_of(u, percent_cutoff(10)) for u in units]
    assert splits == [split_of(u, percent_cutoff(10)) for u in units]
    assert 0.07 < splits.count(F.EVAL) / len(splits) < 0.13
    assert all(split_of(u, percent_cutoff(0)) == F.TRAIN for u in units[:100])
    assert split_of(Unit("test", "x", (), ()), percent_cutoff(50)) == F.TEST


def test_layout_errors_are_one_line_and_name_the_path(tmp_path):
    with pytest.raises(IngestError, match=f"data root {tmp_path / 'nope'} does not exist") as e:
        check_layout(_opts(tmp_path / "nope"))
    assert "\n" not in str(e.value)
    (tmp_path / "sony").mkdir()
    with pytest.raises(IngestError) as e:
        check_layout(_opts(tmp_path))
    assert str(tmp_path / "iphone/training_data/iphone") in str(e.value) and "present: sony" in str(e.value)
    assert "\n" not in str(e.value)
    (tmp_path / "trainA").mkdir()
    with pytest.raises(IngestError, match="testA") as e:
        check_layout(_opts(tmp_path, layout="unpaired"))
    with pytest.raises(IngestError, match="layout 'flat' is not one of"):
        _opts(tmp_path, layout="flat")


def test_example_bytes_do_not_depend_on_the_process_hash_seed(tmp_path):
    """The shuffled shards are keyed by the serialized example: the same input must give the same
    bytes in every process (a feature map serialized in hash order would not)."""
    import os
    import subprocess
    import sys

    code = ("import hashlib, phone2dslr\n"
            "from phone2dslr.components.image_example_gen.reading import make_example\n"
            "e = make_example(phone=b'p', dslr=b'd', pair_id='iphone/training_data/1', patch_index=0,\n"
            "                 domain=b'paired', source='iphone', height=8, width=8,\n"
            "                 phone_file='iphone/1.jpg', dslr_file='canon/1.jpg')\n"
            "print(hashlib.sha256(e).hexdigest())\n")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout.strip()
               for seed in (1, 2, 3)}
    assert len(digests) == 1, digests
