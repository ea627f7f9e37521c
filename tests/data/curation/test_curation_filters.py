"""The filters on plain batch dicts, without Ray."""

from __future__ import annotations

import io

import imagehash
import numpy as np
import pytest
from curation_corpus import (
    CAPTION,
    animated_gif,
    cmyk_jpeg,
    exif_rotated_jpeg,
    gray16_png,
    jpeg_bytes,
    near_uniform_png,
    palette_transparent_png,
    png_bomb_header,
    png_bytes,
    solid_png,
    textured,
)
from PIL import Image, ImageFile, ImageOps

from qwen_image2.data.curation.broken import BrokenFilter, decode_image
from qwen_image2.data.curation.config import NsfwThresholds, TokenThresholds
from qwen_image2.data.curation.duplicate import DuplicateFilter, _pairs_within, find_duplicates, phash_images
from qwen_image2.data.curation.entropy import EntropyFilter
from qwen_image2.data.curation.nsfw import NsfwFilter, NudeNetModel
from qwen_image2.data.curation.orientation import OrientationFilter
from qwen_image2.data.curation.resolution import ResolutionFilter
from qwen_image2.data.curation.sources import RawItem
from qwen_image2.data.curation.tokens import TokenFilter
from qwen_image2.data.curation.worker import items_to_batch
from qwen_image2.errors import UserError


def decoded_batch(files: list[bytes], captions: list[str | None] | None = None) -> dict[str, np.ndarray]:
    captions = captions or [CAPTION] * len(files)
    items = [RawItem(f"img{i}", c, data=d) for i, (d, c) in enumerate(zip(files, captions, strict=True))]
    return OrientationFilter()(BrokenFilter()(items_to_batch(items)))


def test_broken_rejects_undecodable_files_with_a_reason():
    good = jpeg_bytes(textured(1))
    files = {
        "good": good,
        "truncated_jpeg": jpeg_bytes(textured(2))[:5000],
        "truncated_large_jpeg_draft_decoded": jpeg_bytes(textured(3, 1600, 1200))[:60000],
        "truncated_png": png_bytes(textured(4))[:8000],
        "zero": b"",
        "text": b"plain text, named like a jpeg\n" * 10,
    }
    out = BrokenFilter()(items_to_batch([RawItem(k, CAPTION, data=v) for k, v in files.items()]))
    assert len(out["broken_keep"]) == len(files)  # never drops rows
    assert out["broken_keep"].tolist() == [True, False, False, False, False, False]
    details = dict(zip(files, out["broken_detail"], strict=True))
    assert details["good"] is None
    assert (
        "truncated" in details["truncated_jpeg"]
        and "truncated" in details["truncated_large_jpeg_draft_decoded"]
    )
    assert details["zero"] == "empty file"
    assert "not an image" in details["text"]


def test_pixel_cap_rejects_before_any_pixel_is_decoded(monkeypatch):
    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    out = BrokenFilter(max_pixels=10_000)(
        items_to_batch(
            [
                RawItem("bomb", None, data=png_bomb_header()),
                RawItem("over-cap", None, data=png_bytes(textured(1, 120, 100))),
            ]
        )
    )
    assert not out["broken_keep"].any()
    assert all("decompression bomb" in d for d in out["broken_detail"])
    assert "12000" not in out["broken_detail"][0] and "120x100" in out["broken_detail"][1]


def test_odd_modes_are_converted_not_rejected():
    reference = np.asarray(textured(6), dtype=np.float64)
    cmyk = decode_image(cmyk_jpeg(6), 10**8, 4096)
    assert cmyk.mode == "CMYK" and cmyk.image.shape == reference.shape
    assert np.abs(cmyk.image - reference).mean() < 6  # colours survive CMYK -> RGB

    grey16 = decode_image(gray16_png(7), 10**8, 4096)
    expected = np.asarray(textured(7).convert("L"), dtype=np.float64)
    assert grey16.mode == "I;16"
    assert np.abs(grey16.image[..., 0] - expected).max() <= 1  # scaled by 1/257, not clipped at 255

    palette = decode_image(palette_transparent_png(8), 10**8, 4096)
    transparent = np.asarray(Image.open(io.BytesIO(palette_transparent_png(8)))) == 0
    assert palette.mode == "P" and transparent.any()
    assert (palette.image[transparent] == 255).all()  # composited on white

    gif = decode_image(animated_gif(9), 10**8, 4096)
    assert gif.frames == 3 and gif.image.shape == (360, 400, 3)


def test_orientation_applies_exif_and_reports_corrected_size():
    data = exif_rotated_jpeg(10)
    out = decoded_batch([data, jpeg_bytes(textured(11, 400, 300))])
    assert out["width"].tolist() == [300, 400] and out["height"].tolist() == [400, 300]
    assert out["rotated"].tolist() == [True, False]
    assert out["orientation_keep"].all()
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    np.testing.assert_array_equal(out["image"][0], expected)


def test_resolution_score_is_the_shorter_side_after_correction():
    out = ResolutionFilter()(decoded_batch([exif_rotated_jpeg(1), png_bytes(textured(2, 300, 200))]))
    assert out["resolution_score"].tolist() == [300, 200]
    assert out["resolution_keep"].tolist() == [True, False]


def test_phash_matches_imagehash_bit_for_bit():
    images = [np.asarray(textured(s, 300 + 7 * s, 260)) for s in range(6)]
    ours = phash_images(images)
    theirs = [str(imagehash.phash(Image.fromarray(img))) for img in images]
    assert ours == theirs


def test_flat_images_get_no_phash_so_they_never_near_match():
    out = DuplicateFilter()(
        decoded_batch([solid_png(), solid_png((200, 10, 10)), near_uniform_png(3), jpeg_bytes(textured(1))])
    )
    assert out["phash"].tolist()[:3] == [None, None, None] and out["phash"][3] is not None


@pytest.mark.parametrize("radius", [0, 3, 6, 11])
def test_multi_index_search_finds_exactly_the_pairs_within_radius(radius):
    rng = np.random.default_rng(radius)
    codes = rng.integers(0, 256, (1500, 8), dtype=np.uint8)
    for k in range(0, 600, 2):  # plant neighbours at every distance 0..13
        flips = rng.choice(64, size=k % 14, replace=False)
        bits = np.unpackbits(codes[k])
        bits[flips] ^= 1
        codes[k + 1] = np.packbits(bits)
    found = {tuple(p) for p in _pairs_within(codes, radius).tolist()}
    bits = np.unpackbits(codes, axis=1).astype(np.int16)
    distances = (bits[:, None, :] != bits[None, :, :]).sum(-1)
    i, j = np.nonzero(np.triu(distances <= radius, k=1))
    assert found == set(zip(i.tolist(), j.tolist(), strict=True))
    assert len(found) >= radius + 1  # the planted pairs are there


def test_duplicate_groups_keep_the_best_ranked_member():
    sha = np.array(["a", "a", "b", "c", "d"], dtype=object)
    phash = np.array(
        ["ffff0000ffff0000", "ffff0000ffff0000", "ffff0000ffff0001", "0123456789abcdef", None], dtype=object
    )
    eligible = np.array([True, True, True, True, False])
    rank = np.array([5, 1, 3, 0, 0])
    groups = find_duplicates(sha, phash, np.ones(5, bool), eligible, rank, phash_distance=2)
    assert groups.duplicate_of.tolist() == [1, -1, 1, -1, -1]
    assert groups.kind.tolist() == ["exact", None, "near", None, None]


def test_entropy_separates_flat_from_textured_images():
    out = EntropyFilter()(decoded_batch([solid_png(), near_uniform_png(1), png_bytes(textured(2))]))
    solid, near, photo = out["entropy_score"]
    assert solid == 0.0 and 0.5 < near < 3.0 and photo > 6.0
    assert out["entropy_keep"].tolist() == [False, False, True]


def test_token_filter_counts_and_bounds(tokenizer_dir):
    batch = {"caption": np.array(["", None, CAPTION, "word " * 2000], dtype=object)}
    out = TokenFilter(str(tokenizer_dir), TokenThresholds(min_tokens=1, max_tokens=1024))(batch)
    counts = out["tokens_score"]
    assert counts[0] == 0 and counts[1] == 0 and 0 < counts[2] < 40 and counts[3] > 1024
    assert out["tokens_keep"].tolist() == [False, False, True, False]


def test_token_filter_without_tokenizer_names_the_fix():
    with pytest.raises(UserError, match="--tokenizer.*--filters"):
        TokenFilter(None)


class FixedScores:
    """Another NSFW model behind the same interface."""

    def __init__(self, scores):
        self.scores = list(scores)
        self.seen = 0

    def score(self, images):
        self.seen += len(images)
        return np.array([self.scores.pop(0) for _ in images])


def test_nsfw_filter_takes_another_model_and_scores_pairs_by_their_worst_image():
    batch = decoded_batch([jpeg_bytes(textured(1)), jpeg_bytes(textured(2)), b""])
    batch["condition_images"][1] = [batch["image"][0]]  # an edit pair: worst image counts
    model = FixedScores([0.1, 0.2, 0.9])
    out = NsfwFilter(model, NsfwThresholds(max_score=0.5))(batch)
    assert model.seen == 3
    np.testing.assert_allclose(out["nsfw_score"][:2], [0.1, 0.9])
    assert np.isnan(out["nsfw_score"][2])
    assert out["nsfw_keep"].tolist() == [True, False, True]


def test_bundled_nudenet_model_scores_benign_images_low():
    scores = NudeNetModel().score([np.asarray(textured(s)) for s in range(3)])
    assert scores.shape == (3,) and (scores < 0.2).all()


def test_semantic_dedup_groups_close_embeddings_only_when_enabled():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(4, 16)).astype(np.float32)
    emb[1] = emb[0] + 0.01 * rng.normal(size=16)
    emb[3] = np.nan  # no embedding (e.g. an edit pair)
    sha = np.array(["a", "b", "c", "d"], dtype=object)
    phash = np.array([None] * 4, dtype=object)
    args = (sha, phash, np.ones(4, bool), np.ones(4, bool), np.array([0, 1, 2, 3]), 6)
    assert (find_duplicates(*args).duplicate_of == -1).all()
    groups = find_duplicates(*args, embeddings=emb, semantic_similarity=0.95)
    assert groups.duplicate_of.tolist() == [-1, 0, -1, -1] and groups.kind[1] == "semantic"


def test_entropy_is_skimage_shannon_entropy_of_the_grey_image():
    from skimage.measure import shannon_entropy

    from qwen_image2.data.curation.entropy import grey_entropy

    pixels = np.asarray(textured(4))
    expected = shannon_entropy(np.asarray(Image.fromarray(pixels).convert("L")), base=2)
    assert grey_entropy(pixels) == pytest.approx(expected, abs=1e-12)
    assert grey_entropy(np.zeros((8, 8, 3), np.uint8)) == 0.0


def test_rotated_and_mirrored_copies_are_near_duplicates_and_different_images_are_not():
    original = textured(21, 320, 240)
    copies = [
        original.transpose(Image.Transpose.ROTATE_90),
        original.transpose(Image.Transpose.ROTATE_180),
        original.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        Image.open(io.BytesIO(jpeg_bytes(original.transpose(Image.Transpose.ROTATE_270), quality=80))),
    ]
    others = [textured(22, 320, 240), textured(23, 240, 320)]
    images = [original, *copies, *others]
    out = DuplicateFilter()(
        {"image": np.array([np.asarray(i.convert("RGB")) for i in images] + [None], object)}
    )
    assert out["phash_dihedral"][-1] is None and all(len(h) == 7 * 16 for h in out["phash_dihedral"][:-1])
    n = len(images)
    sha = np.array([f"s{i}" for i in range(n)], dtype=object)
    rank = np.arange(n)
    args = (sha, out["phash"][:n], np.ones(n, bool), np.ones(n, bool), rank, 6)
    groups = find_duplicates(*args, phash_dihedral=out["phash_dihedral"][:n])
    assert groups.duplicate_of.tolist() == [-1, 0, 0, 0, 0, -1, -1]
    assert groups.kind.tolist() == [None, "near", "near", "near", "near", None, None]
    # Without the other orientations only the plain pHash is compared: the copies are missed.
    assert (find_duplicates(*args).duplicate_of[1:4] == -1).all()
