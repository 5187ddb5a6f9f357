"""The pure-numpy TF checkpoint reader: a bundle written here byte by byte (multiple blocks,
prefix-compressed keys, several dtypes), the real musicnn checkpoint, and bad input."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from genre_core.models.musicnn.tf_checkpoint import CheckpointError, _crc32c, read_checkpoint

# ---------------------------------------------------------------- a minimal bundle writer


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


def _block(items: list[tuple[bytes, bytes]], restart_every: int = 2) -> bytes:
    """A LevelDB block; keys after a restart point share their prefix with the previous key."""
    buf, restarts, prev = bytearray(), [], b""
    for i, (key, value) in enumerate(items):
        shared = 0
        if i % restart_every == 0:
            restarts.append(len(buf))
        else:
            while shared < min(len(prev), len(key)) and prev[shared] == key[shared]:
                shared += 1
        buf += _varint(shared) + _varint(len(key) - shared) + _varint(len(value))
        buf += key[shared:] + value
        prev = key
    restarts = restarts or [0]
    trailer = struct.pack(f"<{len(restarts)}I", *restarts) + struct.pack("<I", len(restarts))
    return bytes(buf) + trailer


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _append(table: bytearray, contents: bytes) -> bytes:
    handle = _varint(len(table)) + _varint(len(contents))
    table += contents + b"\x00" + struct.pack("<I", _masked_crc(contents + b"\x00"))
    return handle


def _write_bundle(prefix: Path | str, tensors: dict[str, np.ndarray]) -> None:
    dtypes = {np.dtype("float32"): 1, np.dtype("float64"): 2, np.dtype("int32"): 3,
              np.dtype("int64"): 9}
    data, items = bytearray(), [(b"", _field(1, 1) + _field(3, _field(1, 1)))]  # header
    for name in sorted(tensors):
        array = tensors[name]
        shape = b"".join(_field(2, _field(1, d)) for d in array.shape)
        crc = _varint(6 << 3 | 5) + struct.pack("<I", 0)  # a fixed32 field, as TF writes
        entry = (_field(1, dtypes[array.dtype]) + _field(2, shape) + _field(4, len(data))
                 + _field(5, array.nbytes) + crc)
        items.append((name.encode(), entry))
        data += array.astype(array.dtype.newbyteorder("<")).tobytes()
    table = bytearray()
    half = len(items) // 2  # two data blocks, so the index block has two entries
    index = [(items[half - 1][0], _append(table, _block(items[:half]))),
             (items[-1][0], _append(table, _block(items[half:])))]
    meta = _append(table, _block([]))
    index_handle = _append(table, _block(index, restart_every=1))
    footer = (meta + index_handle).ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)
    Path(f"{prefix}.index").write_bytes(bytes(table + footer))
    Path(f"{prefix}.data-00000-of-00001").write_bytes(bytes(data))


# ---------------------------------------------------------------- tests


def test_crc32c_known_answer():
    assert _crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value


def test_reads_written_bundle_with_dtypes_and_shapes(tmp_path):
    tensors = {
        "dense/kernel": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
        "dense/kernel/Adam": np.full((2, 3), -1.5, dtype=np.float32),
        "dense/bias": np.array([0.25, -2.0], dtype=np.float64),
        "global_step": np.array(-123456789012, dtype=np.int64),
        "counts": np.array([[1, -2], [3, 2**31 - 1]], dtype=np.int32),
    }
    _write_bundle(tmp_path / "model.ckpt", tensors)
    got = read_checkpoint(tmp_path / "model.ckpt")
    assert set(got) == set(tensors)
    for name, expected in tensors.items():
        assert got[name].dtype == expected.dtype and got[name].shape == expected.shape
        np.testing.assert_array_equal(got[name], expected)


def test_directory_prefix_and_index_path(tmp_path):
    # musicnn saved with a prefix ending in "/": files are named ".index" inside a folder.
    _write_bundle(f"{tmp_path}/", {"w": np.ones(3, dtype=np.float32)})
    assert read_checkpoint(tmp_path)["w"].shape == (3,)
    assert read_checkpoint(tmp_path / ".index")["w"].shape == (3,)


def test_not_a_checkpoint_names_the_file(tmp_path):
    junk = tmp_path / "junk.index"
    junk.write_bytes(b"this is not an sstable, just some bytes " * 4)
    with pytest.raises(CheckpointError, match="not a TensorFlow v2 checkpoint index") as err:
        read_checkpoint(tmp_path / "junk")
    assert str(junk) in str(err.value)


def test_missing_files_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found") as err:
        read_checkpoint(tmp_path / "nothing")
    assert "nothing.index" in str(err.value)
    _write_bundle(tmp_path / "m", {"w": np.ones(3, dtype=np.float32)})
    Path(f"{tmp_path / 'm'}.data-00000-of-00001").unlink()
    with pytest.raises(CheckpointError, match="data shard not found"):
        read_checkpoint(tmp_path / "m")


def test_corrupt_block_is_reported(tmp_path):
    _write_bundle(tmp_path / "m", {"w": np.ones(3, dtype=np.float32)})
    index = Path(f"{tmp_path / 'm'}.index")
    raw = bytearray(index.read_bytes())
    raw[3] ^= 0xFF  # inside the first data block: its checksum no longer matches
    index.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum"):
        read_checkpoint(tmp_path / "m")


def test_reads_musicnn_msd_checkpoint():
    from genre_core.models.musicnn.weights import MusicnnWeightsMissing, checkpoint_dir

    try:
        folder = checkpoint_dir("MSD_musicnn")
    except MusicnnWeightsMissing as exc:
        pytest.skip(str(exc))
    tensors = read_checkpoint(folder)
    expected = {
        "batch_normalization/moving_mean": (1,),
        "conv2d/kernel": (7, 38, 1, 204),  # timbral 7 x 38 (0.4 * 96 bands)
        "conv2d_1/kernel": (7, 67, 1, 204),
        "conv2d_2/kernel": (128, 1, 1, 51),  # temporal 128 x 1
        "conv2d_4/bias": (51,),
        "conv2d_5/kernel": (7, 561, 1, 64),  # mid end over the 561 front-end channels
        "batch_normalization_9/moving_variance": (1506,),
        "dense/kernel": (1506, 200),
        "dense_1/kernel": (200, 50),
        "beta1_power": (),
    }
    for name, shape in expected.items():
        assert tensors[name].shape == shape, name
        assert tensors[name].dtype == np.float32
    assert np.all(tensors["batch_normalization_10/moving_variance"] > 0)
    assert all(np.isfinite(a).all() for a in tensors.values())
