"""Read TensorFlow v2-format checkpoints (tensor bundles) with numpy alone.

Pretrained audio models (musicnn) ship their weights as TF checkpoints; reading them here
keeps TensorFlow out of the product. A bundle with prefix P is two files:

- `P.index`: a LevelDB-style SSTable. Keys are tensor names (sorted); the value under the
  empty key is a `BundleHeaderProto`, every other value a `BundleEntryProto` saying where the
  tensor's bytes lie in the data shard, with its dtype and shape.
- `P.data-SSSSS-of-NNNNN`: raw little-endian tensor bytes at the entries' offsets.

Formats: leveldb doc/table_format.md, tensorflow/core/protobuf/tensor_bundle.proto.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The SSTable footer ends with this magic number (leveldb's kTableMagicNumber).
_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_LEN = 48  # two BlockHandles padded to 40 bytes + 8-byte magic
_BLOCK_TRAILER_LEN = 5  # 1 byte compression type + 4 bytes masked crc32c

# tensorflow/core/framework/types.proto DataType -> numpy dtype (little-endian).
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    5: np.dtype("<i2"),  # DT_INT16
    6: np.dtype("i1"),  # DT_INT8
    8: np.dtype("<c8"),  # DT_COMPLEX64
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
    17: np.dtype("<u2"),  # DT_UINT16
    18: np.dtype("<c16"),  # DT_COMPLEX128
    19: np.dtype("<f2"),  # DT_HALF
    22: np.dtype("<u4"),  # DT_UINT32
    23: np.dtype("<u8"),  # DT_UINT64
}
_DT_STRING = 7
_DT_BFLOAT16 = 14


class CheckpointError(ValueError):
    """The files are not a readable TensorFlow v2 checkpoint; the message names the file."""


@dataclass(frozen=True)
class _Entry:
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    has_slices: bool


# ---------------------------------------------------------------------------- primitives


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at `pos`; returns (value, next position)."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise IndexError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _proto_fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """Split a protobuf message into (field number, wire type, value) triples.

    Varints come back as ints, length-delimited fields as bytes, fixed32/64 as ints; this is
    all the bundle protos use, so no schema or protobuf dependency is needed.
    """
    fields: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = bytes(buf[pos : pos + length]), pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.append((number, wire, value))
    return fields


def _crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), table-driven; only used on the small index blocks."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _make_crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _make_crc_table()


def _unmask_crc(masked: int) -> int:
    # LevelDB stores crc rotated and offset so that CRCs of data that embeds CRCs stay sane.
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# ---------------------------------------------------------------------------- SSTable


def _read_block(table: bytes, handle: bytes) -> bytes:
    """The contents of the block a BlockHandle (varint offset, varint size) points to."""
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    end = offset + size
    if end + _BLOCK_TRAILER_LEN > len(table):
        raise ValueError("block runs past the end of the file")
    contents = table[offset:end]
    compression = table[end]
    if compression != 0:
        # TF writes bundle indexes uncompressed; snappy (1) would need another dependency.
        raise ValueError(f"compressed block (type {compression}) not supported")
    (stored,) = struct.unpack_from("<I", table, end + 1)
    if _crc32c(table[offset : end + 1]) != _unmask_crc(stored):
        raise ValueError("block checksum mismatch")
    return contents


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of one block, undoing the prefix compression of keys.

    Each entry stores how many bytes it shares with the previous key; at restart points the
    shared length is 0, so walking every entry in order reconstructs all keys.
    """
    (n_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * n_restarts  # entries end where the restart array begins
    entries: list[tuple[bytes, bytes]] = []
    key = b""
    pos = 0
    while pos < limit:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if shared > len(key):
            raise ValueError("bad key prefix length")
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


def _table_items(table: bytes) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of an SSTable held in memory, in key order."""
    if len(table) < _FOOTER_LEN:
        raise ValueError("file too short for an SSTable footer")
    footer = table[-_FOOTER_LEN:]
    (magic,) = struct.unpack_from("<Q", footer, _FOOTER_LEN - 8)
    if magic != _TABLE_MAGIC:
        raise ValueError("no SSTable magic number at the end")
    _, pos = _varint(footer, 0)  # skip the metaindex handle: bundles have no meta blocks
    _, pos = _varint(footer, pos)
    index_handle = footer[pos:]
    items: list[tuple[bytes, bytes]] = []
    for _, data_handle in _block_entries(_read_block(table, index_handle)):
        items.extend(_block_entries(_read_block(table, data_handle)))
    return items


# ---------------------------------------------------------------------------- bundle protos


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for number, _, value in _proto_fields(buf):
        if number == 2:  # TensorShapeProto.dim
            size = next((v for n, _, v in _proto_fields(value) if n == 1), 0)
            dims.append(int(size))
        elif number == 3 and value:  # unknown_rank
            raise ValueError("tensor of unknown rank")
    return tuple(dims)


def _parse_entry(buf: bytes) -> _Entry:
    fields = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0, "slices": False}
    for number, _, value in _proto_fields(buf):
        if number == 1:
            fields["dtype"] = value
        elif number == 2:
            fields["shape"] = _parse_shape(value)
        elif number in (3, 4, 5):
            fields[("shard_id", "offset", "size")[number - 3]] = value
        elif number == 7:
            fields["slices"] = True
    return _Entry(
        fields["dtype"], fields["shape"], fields["shard_id"], fields["offset"], fields["size"],
        fields["slices"],
    )


def _parse_header(buf: bytes) -> tuple[int, bool]:
    """(number of data shards, big-endian?) from a BundleHeaderProto."""
    n_shards, big_endian = 1, False
    for number, _, value in _proto_fields(buf):
        if number == 1:
            n_shards = int(value)
        elif number == 2:
            big_endian = value == 1
    return n_shards, big_endian


# ---------------------------------------------------------------------------- tensors


def _decode_tensor(name: str, entry: _Entry, raw: bytes, big_endian: bool) -> np.ndarray:
    if entry.dtype == _DT_STRING:
        return _decode_strings(raw, entry.shape)
    if entry.dtype == _DT_BFLOAT16:
        # bfloat16 is the top half of a float32: widen it rather than lose the tensor.
        halves = np.frombuffer(raw, dtype=">u2" if big_endian else "<u2").astype(np.uint32)
        return (halves << 16).view(np.float32).reshape(entry.shape)
    if entry.dtype not in _DTYPES:
        raise ValueError(f"tensor {name!r} has unsupported dtype enum {entry.dtype}")
    dtype = _DTYPES[entry.dtype]
    if big_endian:
        dtype = dtype.newbyteorder(">")
    array = np.frombuffer(raw, dtype=dtype)
    expected = int(np.prod(entry.shape, dtype=np.int64))
    if array.size != expected:
        raise ValueError(f"tensor {name!r}: {array.size} values for shape {entry.shape}")
    return array.astype(dtype.newbyteorder("=")).reshape(entry.shape)


def _decode_strings(raw: bytes, shape: tuple[int, ...]) -> np.ndarray:
    # String tensors: varint lengths, a 4-byte crc of them, then the concatenated bytes.
    count = int(np.prod(shape, dtype=np.int64))
    lengths, pos = [], 0
    for _ in range(count):
        length, pos = _varint(raw, pos)
        lengths.append(length)
    pos += 4
    out = np.empty(count, dtype=object)
    for i, length in enumerate(lengths):
        out[i] = raw[pos : pos + length]
        pos += length
    return out.reshape(shape)


def _index_path(prefix: Path | str) -> tuple[str, Path]:
    """Resolve the bundle prefix; a directory means files named `.index` etc. inside it
    (musicnn saved its checkpoints with a prefix ending in '/')."""
    base = str(prefix)
    if Path(base).is_dir() and not base.endswith(("/", "\\")):
        base += "/"
    if base.endswith(".index"):
        base = base[: -len(".index")]
    return base, Path(base + ".index")


def read_checkpoint(prefix: Path | str) -> dict[str, np.ndarray]:
    """All tensors of a TF v2 checkpoint, by variable name.

    `prefix` is the bundle prefix (the path without `.index`), a directory whose bundle
    files are `.index` / `.data-*` (musicnn's layout), or the `.index` file itself.
    Returns arrays with the stored dtype and shape. Raises CheckpointError naming the file
    when it is missing or is not a tensor bundle.
    """
    base, index_path = _index_path(prefix)
    if not index_path.is_file():
        raise CheckpointError(f"checkpoint index not found: {index_path}")
    try:
        items = _table_items(index_path.read_bytes())
        if not items or items[0][0] != b"":
            raise ValueError("no bundle header entry")
        n_shards, big_endian = _parse_header(items[0][1])
        entries = {k.decode("utf-8"): _parse_entry(v) for k, v in items[1:]}
    except (ValueError, IndexError, struct.error, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"not a TensorFlow v2 checkpoint index: {index_path} ({exc})"
        ) from exc
    shards: dict[int, bytes] = {}
    tensors: dict[str, np.ndarray] = {}
    for name, entry in entries.items():
        if entry.has_slices:
            raise CheckpointError(f"{index_path}: partitioned variable {name!r} not supported")
        if entry.shard_id not in shards:
            shard = Path(f"{base}.data-{entry.shard_id:05d}-of-{n_shards:05d}")
            if not shard.is_file():
                raise CheckpointError(f"checkpoint data shard not found: {shard}")
            shards[entry.shard_id] = shard.read_bytes()
        data = shards[entry.shard_id]
        if entry.offset + entry.size > len(data):
            raise CheckpointError(f"{index_path}: tensor {name!r} runs past its data shard")
        raw = data[entry.offset : entry.offset + entry.size]
        try:
            tensors[name] = _decode_tensor(name, entry, raw, big_endian)
        except (ValueError, IndexError) as exc:
            raise CheckpointError(f"{index_path}: {exc}") from exc
    return tensors
