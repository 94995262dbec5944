import numpy as np
import pytest

from lightning_depth.io.errors import DataError
from lightning_depth.io.ply import PLYError, read_ply, write_ply


@pytest.mark.parametrize("binary", [True, False])
def test_roundtrip_with_colors(tmp_path, binary):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 3)).astype(np.float32)
    colors = rng.integers(0, 256, size=(50, 3), dtype=np.uint8)
    write_ply(tmp_path / "c.ply", points, colors, binary=binary)
    data = read_ply(tmp_path / "c.ply")
    np.testing.assert_allclose(data["points"], points, rtol=1e-6)
    np.testing.assert_array_equal(data["colors"], colors)
    header = (tmp_path / "c.ply").read_bytes().split(b"end_header")[0].decode()
    assert "element vertex 50" in header
    assert ("binary_little_endian" in header) == binary


def test_roundtrip_without_colors_and_empty(tmp_path):
    write_ply(tmp_path / "p.ply", np.ones((3, 3)))
    data = read_ply(tmp_path / "p.ply")
    assert data["points"].shape == (3, 3) and "colors" not in data
    write_ply(tmp_path / "e.ply", np.zeros((0, 3)), np.zeros((0, 3), np.uint8))
    assert read_ply(tmp_path / "e.ply")["points"].shape == (0, 3)


def test_reads_big_endian(tmp_path):
    header = b"ply\nformat binary_big_endian 1.0\nelement vertex 2\nproperty double x\n"
    header += b"property double y\nproperty double z\nend_header\n"
    body = np.arange(6, dtype=">f8").tobytes()
    (tmp_path / "b.ply").write_bytes(header + body)
    np.testing.assert_array_equal(read_ply(tmp_path / "b.ply")["points"], [[0, 1, 2], [3, 4, 5]])


def test_write_errors(tmp_path):
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        write_ply(tmp_path / "x.ply", np.ones((4, 2)))
    with pytest.raises(TypeError, match="uint8"):
        write_ply(tmp_path / "x.ply", np.ones((4, 3)), np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"colors of shape"):
        write_ply(tmp_path / "x.ply", np.ones((4, 3)), np.ones((3, 3), np.uint8))


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(PLYError, match="does not exist"):
        read_ply(tmp_path / "missing.ply")
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"not a ply\n")
    with pytest.raises(DataError, match=f"{bad}.*not a PLY"):
        read_ply(bad)
    write_ply(tmp_path / "t.ply", np.ones((10, 3)))
    data = (tmp_path / "t.ply").read_bytes()
    (tmp_path / "t.ply").write_bytes(data[:-5])
    with pytest.raises(PLYError, match="truncated"):
        read_ply(tmp_path / "t.ply")
    (tmp_path / "h.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\n")
    with pytest.raises(PLYError, match="end_header"):
        read_ply(tmp_path / "h.ply")
