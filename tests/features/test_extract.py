"""gzsl features extract: bad files skipped and reported, odd modes converted, resume exact."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from vision_helpers import draw, save_tiny_resnet

from gzsl.data.errors import GZSLError
from gzsl.features.backbones import Transform, load_backbone
from gzsl.features.extract import (
    extract_features,
    list_images,
    load_image,
    read_features_file,
    to_rgb,
)

SMALL = Transform(resize=40, crop=32)

@pytest.fixture(scope="module")
def tiny_resnet(tmp_path_factory):
    return save_tiny_resnet(tmp_path_factory.mktemp("models") / "resnet")


@pytest.fixture
def backbone(tiny_resnet):
    return load_backbone(str(tiny_resnet), transform=SMALL)


def _awkward_folder(root):
    """Class 'good' holds readable images of every awkward kind; class 'bad' holds files
    that are not usable images, and two good ones."""
    good, bad = root / "good", root / "bad"
    good.mkdir(parents=True)
    bad.mkdir()
    draw("circle", "red").save(good / "rgb.jpg")
    draw("square", "blue").convert("CMYK").save(good / "cmyk.jpg")
    palette = draw("triangle", "green").convert("P", palette=Image.Palette.ADAPTIVE)
    palette.info["transparency"] = 0
    palette.save(good / "palette_alpha.png", transparency=0)
    draw("circle", "blue").convert("L").save(good / "gray.png")
    draw("circle", "green").convert("RGBA").save(good / "rgba.png")
    Image.new("RGB", (1, 1), (10, 200, 30)).save(good / "one_pixel.png")
    Image.new("RGB", (4000, 3000), (90, 20, 200)).save(good / "large.jpg", quality=60)
    draw("square", "red").save(bad / "fine_1.png")
    draw("square", "green").save(bad / "fine_2.png")
    (bad / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    (bad / "empty.png").write_bytes(b"")
    whole = (good / "rgb.jpg").read_bytes()
    (bad / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (bad / "notes.txt").write_text("not an image\n")
    return root


def test_awkward_images_are_converted_and_bad_files_skipped_and_reported(tmp_path, backbone):
    root = _awkward_folder(tmp_path / "images")
    images = list_images(root)
    assert len(images.paths) == 13 and images.class_names == ("bad", "good")
    result = extract_features(images, backbone, tmp_path / "f.npz", progress=False,
                              batch_size=4)
    skipped = {item["path"]: item["reason"] for item in result.skipped}
    assert set(skipped) == {"bad/corrupt.jpg", "bad/empty.png", "bad/truncated.jpg",
                            "bad/notes.txt"}
    assert "empty" in skipped["bad/empty.png"] and "not an image" in skipped["bad/notes.txt"]
    assert "truncated" in skipped["bad/truncated.jpg"]
    stored = read_features_file(tmp_path / "f.npz")
    assert stored.features.shape == (9, 16) and np.isfinite(stored.features).all()
    assert sorted(stored.paths) == sorted(p for p in images.paths if p not in skipped)
    assert [stored.class_names[label] for label in stored.labels] == [
        p.split("/")[0] for p in stored.paths]
    recorded = {item["path"] for item in stored.provenance["skipped"]}
    assert recorded == set(skipped)
    record = stored.provenance["backbone"]
    assert record["backbone"] == str(backbone.name) and record["transform"]["crop"] == 32
    assert record["weights"]["sha256"]["model.safetensors"]
    assert "transformers" in record["versions"] and "torch" in record["versions"]
    assert stored.provenance["image_list"]["sha256"] == images.checksum()
    assert not (tmp_path / "f.npz.parts").exists()


def test_conversions_to_rgb(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert to_rgb(rgba).getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    cmyk = Image.new("CMYK", (2, 2), (0, 255, 255, 0))
    assert to_rgb(cmyk).mode == "RGB" and to_rgb(cmyk).getpixel((0, 0))[0] > 200
    deep = Image.fromarray(np.full((3, 3), 65535, dtype=np.uint16))
    assert to_rgb(deep).getpixel((1, 1)) == (255, 255, 255)
    palette = Image.new("P", (2, 2), 0)
    palette.putpalette([0, 0, 255] + [0] * 765)
    palette.info["transparency"] = 0
    assert to_rgb(palette).getpixel((0, 0)) == (255, 255, 255)
    draw("circle", "red").convert("LA").save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png").mode == "RGB"


def test_killed_extraction_resumes_to_the_uninterrupted_result(tmp_path, backbone):
    root = tmp_path / "images"
    for c, colour in enumerate(("red", "green", "blue")):
        (root / colour).mkdir(parents=True)
        for i in range(5):
            draw("circle", colour, seed=10 * c + i).save(root / colour / f"{i}.png")
    (root / "green" / "broken.png").write_bytes(b"\x89PNG\r\n")
    images = list_images(root)
    whole = extract_features(images, backbone, tmp_path / "whole.npz", progress=False,
                             batch_size=2, chunk_size=4)

    def kill_after_two(chunk):
        if chunk == 1:
            raise KeyboardInterrupt

    out = tmp_path / "resumed.npz"
    with pytest.raises(KeyboardInterrupt):
        extract_features(images, backbone, out, progress=False, batch_size=2, chunk_size=4,
                         on_chunk=kill_after_two)
    assert not out.exists() and len(list((tmp_path / "resumed.npz.parts").glob("chunk-*"))) == 2
    seen = []
    resumed = extract_features(images, backbone, out, progress=False, batch_size=2,
                               chunk_size=4, on_chunk=seen.append)
    assert resumed.resumed_chunks == 2 and seen == [2, 3]
    first, second = read_features_file(tmp_path / "whole.npz"), read_features_file(out)
    assert np.array_equal(first.features, second.features)
    assert first.paths == second.paths and np.array_equal(first.labels, second.labels)
    assert whole.skipped == resumed.skipped == [
        {"path": "green/broken.png", "reason": resumed.skipped[0]["reason"]}]


def test_parts_of_another_extraction_are_refused(tmp_path, backbone):
    root = tmp_path / "images"
    (root / "a").mkdir(parents=True)
    for i in range(4):
        draw("square", "red", seed=i).save(root / "a" / f"{i}.png")

    def stop(chunk):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_features(list_images(root), backbone, tmp_path / "f.npz", progress=False,
                         batch_size=2, chunk_size=2, on_chunk=stop)
    draw("square", "red", seed=9).save(root / "a" / "new.png")
    with pytest.raises(GZSLError, match="unfinished extraction of other images"):
        extract_features(list_images(root), backbone, tmp_path / "f.npz", progress=False,
                         batch_size=2, chunk_size=2)


def test_csv_list_and_its_errors(tmp_path, backbone):
    (tmp_path / "pics").mkdir()
    draw("circle", "red").save(tmp_path / "pics" / "x.png")
    draw("circle", "blue").save(tmp_path / "pics" / "y.png")
    listing = tmp_path / "list.csv"
    with open(listing, "w", newline="") as handle:
        csv.writer(handle).writerows([["path", "class"], ["pics/x.png", "red circle"],
                                      ["pics/y.png", "blue circle"],
                                      ["pics/gone.png", "red circle"]])
    result = extract_features(list_images(listing), backbone, tmp_path / "f.npz",
                              progress=False)
    assert result.images == 2 and result.skipped[0]["path"] == "pics/gone.png"
    assert "cannot open" in result.skipped[0]["reason"]
    stored = read_features_file(tmp_path / "f.npz")
    assert stored.class_names == ("blue circle", "red circle")
    (tmp_path / "bad.csv").write_text("file,label\na.png,x\n")
    with pytest.raises(GZSLError, match="header row with columns 'path' and 'class'"):
        list_images(tmp_path / "bad.csv")


def test_existing_output_needs_force_and_no_readable_image_is_an_error(tmp_path, backbone):
    root = tmp_path / "images"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.png").write_bytes(b"nothing")
    with pytest.raises(GZSLError, match="none of the 1 files could be read"):
        extract_features(list_images(root), backbone, tmp_path / "f.npz", progress=False)
    (tmp_path / "g.npz").write_bytes(b"old")
    with pytest.raises(GZSLError, match="pass --force"):
        extract_features(list_images(root), backbone, tmp_path / "g.npz", progress=False)


def test_provenance_is_json_and_names_the_transform(tmp_path, backbone):
    root = tmp_path / "images"
    (root / "a").mkdir(parents=True)
    draw("square", "red").save(root / "a" / "x.png")
    extract_features(list_images(root), backbone, tmp_path / "f.npz", progress=False)
    with np.load(tmp_path / "f.npz", allow_pickle=False) as stored:
        provenance = json.loads(str(stored["source"]))
    assert provenance["backbone"]["transform"] == SMALL.describe()
    assert provenance["kind"] == "features" and provenance["images"] == 1


def test_damaged_features_and_semantics_files_are_one_clear_error(tmp_path):
    """A zip that is not one (BadZipFile, which escaped the old except clause) or a
    truncated archive is a GZSLError naming the file and what to pass instead."""
    from gzsl.data.errors import GZSLError
    from gzsl.features.extract import read_features_file
    from gzsl.features.semantics import read_semantics_file

    for content in (b"PK\x03\x04broken", b"\x93NUMPY\x01\x00junk"):
        damaged = tmp_path / "damaged.npz"
        damaged.write_bytes(content)
        for read, what in ((read_features_file, "features file"),
                           (read_semantics_file, "class semantics file")):
            with pytest.raises(GZSLError, match=f"cannot read .*damaged.npz as a .npz {what}"):
                read(damaged)
