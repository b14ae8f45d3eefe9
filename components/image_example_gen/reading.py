"""One unit (the files sharing a name stem) in, examples or set-aside records out, with counts.

Pure apart from reading the files, so every rule (pairing, size checks, patching, which bytes
are kept) is tested without Beam; the executor only wires this function into a pipeline.
"""
from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field
from typing import Callable

import tensorflow as tf

from phone2dslr import features as F
from phone2dslr.components.image_example_gen import listing
from phone2dslr.components.image_example_gen.images import (Decoded, Rejected, crop_bytes, decode, one_line,
                                                  patch_positions, whole_bytes)
from phone2dslr.components.image_example_gen.layout import (DSLR_SIDE, PHONE_SIDE, TEST_GROUP, IngestOptions, Unit,
                                                  stable_int)
from phone2dslr.components.image_example_gen.splitting import (percent_cutoff, photo_id, split_by, split_key,
                                                     split_of)

Reader = Callable[[str], bytes]


@dataclass
class UnitResult:
    """(split, serialized tf.Example) pairs, reject records (dicts) and counts keyed "group.name".

    distinct: (count name, id) pairs counted once across all units (photos and scenes per split
    and source span many units), so the executor deduplicates them before summing.
    """

    examples: list[tuple[str, bytes]] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)
    counts: collections.Counter = field(default_factory=collections.Counter)
    distinct: set[tuple[str, str]] = field(default_factory=set)

    def reject(self, root: str, rel: str, split: str, reason: str, detail: str) -> None:
        self.rejects.append({"path": os.path.join(root, rel), "split": split, "reason": reason, "detail": detail})
        self.counts["files.rejected"] += 1
        self.counts[f"rejects.{reason}"] += 1

    def kept(self, *decoded: Decoded) -> None:
        for d in decoded:
            self.counts["files.kept"] += 1
            for kind in d.kinds:
                self.counts[f"normalised.{kind}"] += 1

    def per_source(self, unit: Unit, source: str, split: str, examples: int) -> None:
        """Examples, photos and scenes per (camera source, split): "by_source.<source>.<split>.<what>"."""
        prefix = f"by_source.{source}.{split}"
        self.counts[f"{prefix}.examples"] += examples
        self.distinct.add((f"{prefix}.photos", photo_id(unit)))
        self.distinct.add((f"{prefix}.scenes", unit.scene or photo_id(unit)))


def read_file(root: str, rel: str) -> bytes:
    """The file's bytes (local names escaped by listing.walk are undone; gs:// and other TF file
    systems through tf.io.gfile); raises Rejected("unreadable") when it cannot be read."""
    try:
        return listing.read_bytes(os.path.join(root, rel))
    except Exception as e:  # noqa: BLE001
        raise Rejected("unreadable", one_line(e)) from None


def make_example(*, phone: bytes, dslr: bytes, pair_id: str, patch_index: int, domain: bytes, source: str | bytes,
                 height: int, width: int, phone_file: str, dslr_file: str) -> bytes:
    """A serialized tf.Example with every key of features.ALL_KEYS."""
    def b(v: str | bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() if isinstance(v, str) else v]))

    def i(v: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))

    feature = {F.PHONE: b(phone), F.DSLR: b(dslr), F.PAIR_ID: b(pair_id), F.PATCH_INDEX: i(patch_index),
               F.DOMAIN: b(domain), F.SOURCE: b(source), F.HEIGHT: i(height), F.WIDTH: i(width),
               F.PHONE_FILE: b(phone_file), F.DSLR_FILE: b(dslr_file)}
    # deterministic: the feature map's order would otherwise follow Python's per-process string hash
    # seed, and the shuffled shards are keyed by these bytes (same input + seed -> same files).
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def process_unit(unit: Unit, options: IngestOptions, test_has_pairs: bool = True,
                 read: Reader | None = None, eval_cutoff: int | None = None) -> UnitResult:
    """Examples for one unit. The test split stays paired whenever the test folders hold pairs.

    eval_cutoff: the hash below which the unit's scene / photo goes to eval (splitting.eval_cutoff,
    computed over all groups); None falls back to plain hash bucketing at options.eval_percent.
    A unit holding only a manifest row (no file of that name) is counted as "manifest.unmatched".
    """
    read = read or (lambda rel: read_file(options.input_base, rel))
    out = UnitResult()
    if not unit.phone and not unit.dslr:
        out.counts["manifest.unmatched"] += 1
        return out
    out.counts["files.seen"] += len(unit.phone) + len(unit.dslr)
    split = split_of(unit, percent_cutoff(options.eval_percent) if eval_cutoff is None else eval_cutoff)
    if unit.group != TEST_GROUP:
        out.counts[f"split_by.{split_by(unit)}"] += 1
        out.distinct.add((f"split_groups.{split}", split_key(unit)))
    if options.pairing == "paired" or (unit.group == TEST_GROUP and test_has_pairs):
        _pair(unit, split, options, read, out)
    else:
        for rel in unit.phone:
            _single(unit, rel, PHONE_SIDE, split, options, read, out)
        for rel in unit.dslr:
            _single(unit, rel, DSLR_SIDE, split, options, read, out)
    return out


def _positions(options: IngestOptions, split: str, size: tuple[int, int], key: str) -> list[tuple[int, int]] | None:
    """None keeps the image whole. The test split is cut too (the Transform graph and the Evaluator
    batch one patch size), but on a non-overlapping grid, so each test pixel counts once."""
    if options.patch_size <= 0:
        return None
    if split == F.TEST:
        return patch_positions(size[0], size[1], options.patch_size, options.patch_size, 0, 0)
    return patch_positions(size[0], size[1], options.patch_size, options.stride, options.patches_per_image,
                           stable_int(f"{options.seed}:{key}"))


def _pair(unit: Unit, split: str, options: IngestOptions, read: Reader, out: UnitResult) -> None:
    root = options.input_base
    if len(unit.phone) != 1 or len(unit.dslr) != 1:
        for rel in unit.phone + unit.dslr:
            if unit.phone and unit.dslr:
                out.reject(root, rel, split, "ambiguous_pair", f"{len(unit.phone)} phone and {len(unit.dslr)} "
                           f"DSLR files share the name stem of {unit.pair_id}")
            else:
                other = "DSLR" if unit.phone else "phone"
                out.reject(root, rel, split, "no_partner", f"no {other} file with the same name stem")
        return
    rels = (unit.phone[0], unit.dslr[0])
    decoded: dict[str, Decoded] = {}
    errors: dict[str, Rejected] = {}
    for rel in rels:
        try:
            decoded[rel] = decode(read(rel))
        except Rejected as r:
            errors[rel] = r
    if errors:
        for rel, partner in (rels, rels[::-1]):
            if rel in errors:
                out.reject(root, rel, split, errors[rel].reason, errors[rel].detail)
            else:
                out.reject(root, rel, split, "partner_rejected", f"{partner} was set aside ({errors[partner].reason})")
        return
    phone, dslr = decoded[rels[0]], decoded[rels[1]]
    (w, h), (dw, dh) = phone.size, dslr.size
    if (w, h) != (dw, dh):
        for rel in rels:
            out.reject(root, rel, split, "size_mismatch", f"phone {w}x{h} vs DSLR {dw}x{dh}")
        return
    positions = _positions(options, split, phone.size, unit.pair_id)
    if positions == []:
        for rel in rels:
            out.reject(root, rel, split, "too_small", f"{w}x{h} is smaller than patch_size {options.patch_size}")
        return
    common = dict(pair_id=unit.pair_id, domain=F.DOMAIN_PAIRED, source=options.phone,
                  phone_file=rels[0], dslr_file=rels[1])
    if positions is None:
        out.examples.append((split, make_example(phone=whole_bytes(phone), dslr=whole_bytes(dslr),
                                                 patch_index=F.WHOLE_IMAGE, height=h, width=w, **common)))
    else:
        s = options.patch_size
        for index, (x, y) in enumerate(positions):
            out.examples.append((split, make_example(phone=crop_bytes(phone, x, y, s), dslr=crop_bytes(dslr, x, y, s),
                                                     patch_index=index, height=s, width=s, **common)))
    out.kept(phone, dslr)
    out.counts[f"pairs_kept.{split}"] += 1
    out.counts[f"examples.{split}"] += len(positions or [None])
    out.per_source(unit, options.phone, split, len(positions or [None]))


def _single(unit: Unit, rel: str, side: str, split: str, options: IngestOptions, read: Reader,
            out: UnitResult) -> None:
    root = options.input_base
    try:
        image = decode(read(rel))
    except Rejected as r:
        out.reject(root, rel, split, r.reason, r.detail)
        return
    domain = F.DOMAIN_A if side == PHONE_SIDE else F.DOMAIN_B
    w, h = image.size
    positions = _positions(options, split, image.size, f"{unit.pair_id}:{domain.decode()}")
    if positions == []:
        out.reject(root, rel, split, "too_small", f"{w}x{h} is smaller than patch_size {options.patch_size}")
        return
    is_a = side == PHONE_SIDE
    if positions is None:
        crops = [(F.WHOLE_IMAGE, whole_bytes(image), h, w)]
    else:
        s = options.patch_size
        crops = [(i, crop_bytes(image, x, y, s), s, s) for i, (x, y) in enumerate(positions)]
    for index, data, height, width in crops:
        out.examples.append((split, make_example(
            phone=data if is_a else b"", dslr=b"" if is_a else data, pair_id=unit.pair_id, patch_index=index,
            domain=domain, source=options.phone if is_a else F.DSLR_SOURCE, height=height, width=width,
            phone_file=rel if is_a else "", dslr_file="" if is_a else rel)))
    out.kept(image)
    out.counts[f"singles_kept.{domain.decode()}"] += 1
    out.counts[f"examples.{split}"] += len(crops)
    out.per_source(unit, options.phone if is_a else F.DSLR_SOURCE.decode(), split, len(crops))
