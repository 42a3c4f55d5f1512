import io
import shutil
import tarfile
from pathlib import Path

import pytest

from facelib.core import config
from facelib.core.errors import ChecksumError, CorruptArchiveError, DataUnavailableError, UnsafeArchiveError
from facelib.data import datasets


def test_view1_and_view2_protocols_parse(mirror):
    train, test = datasets.view1_pairs("train"), datasets.view1_pairs("test")
    assert (len(train), len(test)) == (2200, 1000)
    assert [p.same for p in test] == [True] * 500 + [False] * 500
    assert test[0].left == datasets.ImageRef("Abdullah_Gul", 13)
    assert test[0].right.relpath == "Abdullah_Gul/Abdullah_Gul_0014.jpg"

    view2 = datasets.view2_pairs()
    assert len(view2) == 6000
    assert sorted({p.fold for p in view2}) == list(range(10))
    assert sum(p.same for p in view2 if p.fold == 3) == 300

    people_train, people_test = datasets.view1_people("train"), datasets.view1_people("test")
    assert (len(people_train), len(people_test)) == (4038, 1711)
    assert not set(people_train) & set(people_test)  # View 1 is identity-disjoint
    assert len(datasets.view2_people()) == 10


def test_census_matches_published_figures(lfw_root):
    c = datasets.census(lfw_root)
    assert (c.people, c.images) == (5749, 13233)
    assert (c.people_with_pairs, c.images_of_people_with_pairs) == (1680, 9164)


def test_every_pair_resolves_to_an_image(lfw_root):
    for pair in datasets.view1_pairs("test") + datasets.view2_pairs():
        assert pair.left.path(lfw_root).is_file(), pair.left
        assert pair.right.path(lfw_root).is_file(), pair.right


def test_fetch_is_idempotent(lfw_root):
    before = lfw_root.stat().st_mtime_ns
    assert datasets.fetch_lfw() == lfw_root
    assert lfw_root.stat().st_mtime_ns == before


def test_checksum_mismatch_is_rejected(tmp_path, monkeypatch):
    fake_mirror = tmp_path / "mirror"
    (fake_mirror / "lfw").mkdir(parents=True)
    (fake_mirror / "lfw" / "pairs.txt").write_text("10\t300\nnot the real file\n")
    monkeypatch.setenv("FACELIB_MIRROR", str(fake_mirror))
    monkeypatch.setenv("FACELIB_HOME", str(tmp_path / "home"))
    with pytest.raises(ChecksumError, match="sha256"):
        datasets.fetch_protocol_file("pairs.txt")
    assert not (config.raw_dir() / "lfw" / "pairs.txt").exists()


def test_offline_without_mirror_gives_one_clear_error(tmp_path, monkeypatch):
    import pooch

    def no_network(*args, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.delenv("FACELIB_MIRROR", raising=False)
    monkeypatch.setenv("FACELIB_HOME", str(tmp_path))
    monkeypatch.setattr(pooch, "retrieve", no_network)
    with pytest.raises(DataUnavailableError, match="FACELIB_MIRROR"):
        datasets.fetch_protocol_file("pairsDevTest.txt")


def _tar_with(tmp_path: Path, add) -> Path:
    path = tmp_path / "evil.tgz"
    with tarfile.open(path, "w:gz") as tar:
        add(tar)
    return path


def _add_file(tar: tarfile.TarFile, name: str, data: bytes = b"x") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    "member",
    ["top/../../escaped.txt", "/etc/evil.txt", "top/../outside.txt"],
)
def test_archive_with_path_traversal_is_refused(tmp_path, member):
    archive = _tar_with(tmp_path, lambda tar: (_add_file(tar, "top/ok.txt"), _add_file(tar, member)))
    target = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError):
        datasets.safe_extract(archive, target, "top")
    assert not (target / "top").exists()
    assert not (tmp_path / "escaped.txt").exists()
    assert not list(target.glob(".extract-*"))  # no half-extracted leftovers


@pytest.mark.parametrize("link_type", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_archive_with_a_link_is_refused(tmp_path, link_type):
    def add(tar):
        _add_file(tar, "top/ok.txt")
        info = tarfile.TarInfo("top/link")
        info.type, info.linkname = link_type, "/etc/passwd"
        tar.addfile(info)

    archive = _tar_with(tmp_path, add)
    with pytest.raises(UnsafeArchiveError, match="link"):
        datasets.safe_extract(archive, tmp_path / "out", "top")
    assert not (tmp_path / "out" / "top").exists()


def test_interrupted_extraction_leaves_nothing_complete(tmp_path, monkeypatch, mirror):
    """A truncated archive (as from an interrupted copy) fails, and the next fetch
    neither sees a finished folder nor a marker."""
    truncated = tmp_path / "mirror" / "lfw" / "lfw-deepfunneled.tgz"
    truncated.parent.mkdir(parents=True)
    with open(mirror / "lfw" / "lfw-deepfunneled.tgz", "rb") as src:
        truncated.write_bytes(src.read(3_000_000))
    monkeypatch.setenv("FACELIB_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("FACELIB_HOME", str(tmp_path / "home"))
    with pytest.raises(CorruptArchiveError, match="incomplete"):
        datasets.fetch_lfw()
    lfw = config.raw_dir() / "lfw"
    assert not (lfw / "lfw-deepfunneled").exists()
    assert not list(lfw.glob(".lfw-deepfunneled.complete"))
    assert not list(lfw.glob(".extract-*"))


def test_images_that_differ_from_the_official_set_are_rejected(tmp_path, monkeypatch, lfw_root):
    """An archive whose images were altered fails the pinned content checksum."""
    staged = tmp_path / "stage" / "lfw-deepfunneled"
    shutil.copytree(lfw_root / "AJ_Cook", staged / "AJ_Cook")
    fake = tmp_path / "mirror" / "lfw" / "lfw-deepfunneled.tgz"
    fake.parent.mkdir(parents=True)
    with tarfile.open(fake, "w:gz") as tar:
        tar.add(staged, arcname="lfw-deepfunneled")
    monkeypatch.setenv("FACELIB_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("FACELIB_HOME", str(tmp_path / "home"))
    with pytest.raises(ChecksumError, match="official"):
        datasets.fetch_lfw()
    assert not (config.raw_dir() / "lfw" / "lfw-deepfunneled").exists()
