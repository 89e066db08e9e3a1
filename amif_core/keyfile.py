"""The ``.amifkey`` file: one :class:`~amif_core.volumes.VolumeKey` on disk (spec: docs/key-format.md).

Layout (integers little-endian)::

    magic           12 bytes  89 'AMIFKEY' 0D 0A 1A 0A
    version          2 bytes  uint16, FORMAT_VERSION
    header length    4 bytes  uint32 H, 2 <= H <= MAX_HEADER_BYTES
    payload length   8 bytes  uint64 P
    header           H bytes  UTF-8 JSON object: what the key fits, no key material
    payload          P bytes  zlib stream of the byte-shuffled key arrays,
                              AES-256-GCM encrypted (+16-byte tag) with a passphrase
    digest          32 bytes  SHA-256 of every byte before it

Every length is checked against the file size and a fixed maximum before
anything is allocated, and the digest is verified before the header is
interpreted, so a damaged file fails fast with
:class:`~amif_core.errors.KeyFormatError`.
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import struct
import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from amif_core import __version__
from amif_core.atomic import PRIVATE_MODE, Output, write_atomically
from amif_core.errors import InputError, KeyFormatError, WrongPassphraseError
from amif_core.keys import SIGNATURE_GRID, Key
from amif_core.networks.amif import PAD_MULTIPLE
from amif_core.volumes import VolumeKey

MAGIC = b"\x89AMIFKEY\r\n\x1a\n"
FORMAT_VERSION = 2
FORMAT_NAME = "amif-key"
_PREFIX = struct.Struct("<12sHIQ")
DIGEST_SIZE = 32
TAG_SIZE = 16
MAX_HEADER_BYTES = 1 << 20  # the largest header AMIF writes (65535 slices) is ~0.9 MiB; json.loads needs ~25x this
MAX_SIDE = 65535
MAX_VOXELS = 1 << 33
ZLIB_MAX_RATIO = 1032  # deflate cannot expand data by more than this
CHUNK = 8 << 20
ZLIB_LEVEL = 6
SCRYPT = {"n": 1 << 15, "r": 8, "p": 1}
MAX_SCRYPT_COST = 64 << 20  # bytes of 128 * n * r * p: twice what AMIF writes, so a crafted header costs < 1 s
SALT_SIZE = 16
NONCE_SIZE = 12
_HEX64 = re.compile(r"[0-9a-f]{64}")
STYLE_NUMBERS = ("font_fraction", "angle_deg", "coverage")
STYLE_FLAGS = ("transpose", "flip_rows", "flip_cols")


def _arrays_layout(shape: tuple[int, int, int], code_count: int) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, little-endian dtype, shape) of each payload array, in payload order."""
    depth = shape[0]
    return [
        ("codes", "<i2", (code_count,)),
        ("origin", "<f4", (depth, 4)),
        ("step", "<f4", (depth, 4)),
        ("signature", "<f4", (depth, SIGNATURE_GRID, SIGNATURE_GRID)),
    ]


def max_codes(shape: tuple[int, int, int]) -> int:
    """The most key codes an image of ``shape`` (D, H, W) can have: 4 bands of the whole padded half-size grid."""
    depth, h, w = shape
    return 4 * depth * (-(-h // PAD_MULTIPLE) * PAD_MULTIPLE // 2) * (-(-w // PAD_MULTIPLE) * PAD_MULTIPLE // 2)


def _raw_length(layout: list[tuple[str, str, tuple[int, ...]]]) -> int:
    return sum(np.dtype(dtype).itemsize * math.prod(shape) for _, dtype, shape in layout)


# ---------------------------------------------------------------- writing


def _header(key: VolumeKey, encryption: dict | None) -> dict[str, Any]:
    core = key.key
    return {
        "format": FORMAT_NAME,
        "amif_version": __version__,
        "created_utc": core.created_utc,
        "model_id": core.model_id,
        "volume_fingerprint": key.volume_fingerprint,
        "image_fingerprint": core.fingerprint,
        "axis": int(key.axis),
        "shape": [int(v) for v in core.shape],
        "geometry": key.geometry(),
        "normalisation": core.normalisation,
        "identifier": core.identifier,
        "identifier_style": core.identifier_style,
        "mask_offsets": np.asarray(core.mask_offsets, dtype=np.int64).tolist(),
        "payload": {"compression": "zlib", "filter": "byteshuffle", "code_count": int(core.codes.size)},
        "encryption": encryption,
    }


def _payload_arrays(key: VolumeKey) -> list[np.ndarray]:
    core = key.key
    arrays = [core.codes, core.origin, core.step, core.signature]
    out = []
    for array, (name, dtype, shape) in zip(arrays, _arrays_layout(tuple(core.shape), int(core.codes.size))):
        array = np.ascontiguousarray(array, dtype=dtype)
        if array.shape != shape:
            raise ValueError(f"Key array {name} has shape {array.shape}, expected {shape} for an image of {core.shape}.")
        out.append(array)
    return out


def _compress(arrays: Iterable[np.ndarray]) -> list[bytes]:
    """zlib stream of each array's byte planes (all first bytes, then all second bytes, ...)."""
    compressor = zlib.compressobj(ZLIB_LEVEL)
    out = []
    for array in arrays:
        planes = array.reshape(-1).view(np.uint8).reshape(-1, array.itemsize)
        for plane in range(array.itemsize):
            for start in range(0, planes.shape[0], CHUNK):
                out.append(compressor.compress(np.ascontiguousarray(planes[start : start + CHUNK, plane])))
    out.append(compressor.flush())
    return [piece for piece in out if piece]


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(secret)


def _check_passphrase(passphrase: str | None) -> None:
    if passphrase is not None and (not isinstance(passphrase, str) or not passphrase):
        raise InputError("The passphrase is empty; give a non-empty passphrase, or none to write an unencrypted key.")


def key_output(path: str | Path, key: VolumeKey, passphrase: str | None = None) -> Output:
    """An :class:`~amif_core.atomic.Output` that writes ``key`` (owner-only file mode) to ``path``."""
    _check_passphrase(passphrase)

    def write(temp: Path) -> None:
        encryption = None
        if passphrase is not None:
            encryption = {"kdf": "scrypt", **SCRYPT, "salt": base64.b64encode(os.urandom(SALT_SIZE)).decode(),
                          "cipher": "AES-256-GCM", "nonce": base64.b64encode(os.urandom(NONCE_SIZE)).decode()}
        header = json.dumps(_header(key, encryption), ensure_ascii=False, separators=(",", ":")).encode()
        payload = _compress(_payload_arrays(key))
        length = sum(len(piece) for piece in payload) + (TAG_SIZE if encryption is not None else 0)
        prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header), length) + header
        if encryption is not None:
            secret = _derive(passphrase, base64.b64decode(encryption["salt"]), **SCRYPT)
            encryptor = Cipher(algorithms.AES(secret), modes.GCM(base64.b64decode(encryption["nonce"]))).encryptor()
            encryptor.authenticate_additional_data(prefix)
            for index, piece in enumerate(payload):  # in place: each plain piece is freed as it is replaced
                payload[index] = encryptor.update(piece)
            payload.append(encryptor.finalize() + encryptor.tag)
        digest = hashlib.sha256(prefix)
        with open(temp, "wb") as file:
            file.write(prefix)
            for piece in payload:
                digest.update(piece)
                file.write(piece)
            file.write(digest.digest())

    return Output(Path(path), write, PRIVATE_MODE)


def write_key(path: str | Path, key: VolumeKey, passphrase: str | None = None, force: bool = False) -> None:
    """Write ``key`` to ``path`` atomically; never replaces an existing file unless ``force``.

    ``passphrase``: when given, the key arrays are encrypted (scrypt +
    AES-256-GCM); the header stays readable. The file is created owner-only.
    """
    write_atomically([key_output(path, key, passphrase)], force)


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Verified:
    header: dict[str, Any]
    prefix: bytes  # magic, version, lengths and header: the AES-GCM associated data
    payload_length: int


def _corrupted(path: Path, what: str) -> KeyFormatError:
    return KeyFormatError(f"The key file {path} is {what}. Use an intact copy of the key "
                          "(the one written together with the protected volume).")


def _verify(path: str | Path) -> _Verified:
    """Check magic, version, lengths and the SHA-256 digest; then parse and validate the header."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"The key file {path} does not exist." if not path.exists() else f"{path} is not a file.")
    size = path.stat().st_size
    with open(path, "rb") as file:
        start = file.read(_PREFIX.size)
        if len(start) < len(MAGIC) + 2 or not start.startswith(MAGIC):
            raise KeyFormatError(f"{path} is not an AMIF key file (it does not start with the AMIF key signature).")
        version = int.from_bytes(start[len(MAGIC) : len(MAGIC) + 2], "little")
        if version != FORMAT_VERSION:
            newer = (" It was written by a newer AMIF; update amif-core to read it." if version > FORMAT_VERSION else
                     " Keys of version 1 were made with the amif_v1 weights of amif-core 0.1; unlock it with "
                     "amif-core 0.1.")
            raise KeyFormatError(f"{path} uses key format version {version}, but this AMIF ({__version__}) reads "
                                 f"version {FORMAT_VERSION} only.{newer}")
        if len(start) < _PREFIX.size:
            raise _corrupted(path, f"truncated ({size} bytes)")
        _, _, header_length, payload_length = _PREFIX.unpack(start)
        if not 2 <= header_length <= MAX_HEADER_BYTES:
            raise _corrupted(path, f"corrupted (its header length {header_length} is out of bounds)")
        expected = _PREFIX.size + header_length + payload_length + DIGEST_SIZE
        if size < expected:
            raise _corrupted(path, f"truncated ({size} bytes, but its lengths say {expected})")
        if size > expected:
            raise _corrupted(path, f"corrupted ({size - expected} bytes more than its lengths say)")
        header_bytes = file.read(header_length)
        digest = hashlib.sha256(start + header_bytes)
        remaining = payload_length
        while remaining:
            piece = file.read(min(CHUNK, remaining))
            if not piece:
                raise _corrupted(path, "truncated (it changed while being read)")
            digest.update(piece)
            remaining -= len(piece)
        if file.read(DIGEST_SIZE + 1) != digest.digest():
            raise _corrupted(path, "corrupted (its SHA-256 integrity check fails)")
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise _corrupted(path, f"damaged (its header is not valid JSON: {error})") from error
    try:
        _validate_header(header, payload_length)
    except (KeyError, TypeError, ValueError, OverflowError) as error:
        raise _corrupted(path, f"damaged (invalid header: {error})") from error
    return _Verified(header, start + header_bytes, payload_length)


def _int(value: Any, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {str(value)[:40]}")
    return value


def _float(value: Any, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {str(value)[:40]}")
    return float(value)


def _floats(value: Any, name: str, count: int) -> list[float]:
    if not isinstance(value, list) or len(value) != count:
        raise ValueError(f"{name} must be a list of {count} numbers")
    return [_float(v, name) for v in value]


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise ValueError(f"{name} must be a text of 1 to {limit} characters")
    return value


def _b64(value: Any, name: str, low: int, high: int) -> bytes:
    try:
        raw = base64.b64decode(_text(value, name, 4 * high), validate=True)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{name} must be base64") from error
    if not low <= len(raw) <= high:
        raise ValueError(f"{name} must hold {low} to {high} bytes")
    return raw


def _validate_header(header: Any, payload_length: int) -> None:
    """Raise ValueError/TypeError/KeyError unless ``header`` is a well-formed version-2 header."""
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ValueError("format must be 'amif-key'")
    _text(header["amif_version"], "amif_version", 64)
    _text(header["created_utc"], "created_utc", 64)
    for name in ("model_id", "volume_fingerprint", "image_fingerprint"):
        if not isinstance(header[name], str) or not _HEX64.fullmatch(header[name]):
            raise ValueError(f"{name} must be 64 lowercase hex digits")
    axis = _int(header["axis"], "axis", 0, 2)
    if not isinstance(header["shape"], list) or len(header["shape"]) != 3:
        raise ValueError("shape must list 3 sizes")
    shape = tuple(_int(v, "shape", 1, MAX_SIDE) for v in header["shape"])
    if math.prod(shape) > MAX_VOXELS:
        raise ValueError(f"shape {shape} is larger than {MAX_VOXELS} voxels")
    geometry = header["geometry"]
    if not isinstance(geometry, dict) or not isinstance(geometry["size"], list) or len(geometry["size"]) != 3:
        raise ValueError("geometry.size must list 3 sizes")
    zyx = [_int(v, "geometry.size", 1, MAX_SIDE) for v in geometry["size"]][::-1]
    if tuple([zyx[axis]] + [s for i, s in enumerate(zyx) if i != axis]) != shape:
        raise ValueError(f"geometry.size {geometry['size']} sliced along axis {axis} does not give shape {list(shape)}")
    if min(_floats(geometry["spacing"], "geometry.spacing", 3)) <= 0:
        raise ValueError("geometry.spacing must be positive")
    _floats(geometry["origin"], "geometry.origin", 3)
    _floats(geometry["direction"], "geometry.direction", 9)
    for part in ("mri", "other"):
        _float(header["normalisation"][part]["low"], f"normalisation.{part}.low")
        _float(header["normalisation"][part]["high"], f"normalisation.{part}.high")
    _text(header["identifier"], "identifier", 64)
    style = header["identifier_style"]
    if not isinstance(style, dict) or set(style) != set(STYLE_NUMBERS + STYLE_FLAGS):
        raise ValueError(f"identifier_style must hold {', '.join(STYLE_NUMBERS + STYLE_FLAGS)}")
    for name in STYLE_NUMBERS:
        _float(style[name], f"identifier_style.{name}")
    for name in STYLE_FLAGS:
        if not isinstance(style[name], bool):
            raise ValueError(f"identifier_style.{name} must be true or false")
    offsets = header["mask_offsets"]
    if not isinstance(offsets, list) or len(offsets) != shape[0]:
        raise ValueError(f"mask_offsets must list one (row, column) pair per slice ({shape[0]})")
    for pair in offsets:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError("mask_offsets must hold (row, column) pairs")
        _int(pair[0], "mask_offsets row", 0, shape[1])
        _int(pair[1], "mask_offsets column", 0, shape[2])
    payload = header["payload"]
    if not isinstance(payload, dict) or payload.get("compression") != "zlib" or payload.get("filter") != "byteshuffle":
        raise ValueError("payload must be zlib-compressed and byte-shuffled")
    code_count = _int(payload["code_count"], "payload.code_count", 0, max_codes(shape))
    encryption = header["encryption"]
    overhead = 0
    if encryption is not None:
        if not isinstance(encryption, dict) or encryption.get("kdf") != "scrypt" or encryption.get("cipher") != "AES-256-GCM":
            raise ValueError("encryption must be scrypt + AES-256-GCM")
        n = _int(encryption["n"], "encryption.n", 2, 1 << 20)
        r = _int(encryption["r"], "encryption.r", 1, 32)
        p = _int(encryption["p"], "encryption.p", 1, 16)
        if n & (n - 1) or 128 * n * r * p > MAX_SCRYPT_COST:
            raise ValueError("encryption.n must be a power of 2 and scrypt's cost 128 * n * r * p at most 64 MiB")
        _b64(encryption["salt"], "encryption.salt", 8, 64)
        _b64(encryption["nonce"], "encryption.nonce", NONCE_SIZE, NONCE_SIZE)
        overhead = TAG_SIZE
    raw = _raw_length(_arrays_layout(shape, code_count))
    if payload_length < overhead + 8 or raw > ZLIB_MAX_RATIO * (payload_length - overhead) + (1 << 16):
        raise ValueError(f"the payload ({payload_length} bytes) cannot hold the {raw} bytes of key arrays its header "
                         "describes")


def read_key_header(path: str | Path) -> dict[str, Any]:
    """The verified header of a key file, plus ``format_version``; needs no passphrase.

    The header describes the volume the key fits (``volume_fingerprint``,
    ``geometry``, ``axis``, ``shape``), the model (``model_id``), the
    identifier and its placement, ``normalisation``, ``created_utc`` and
    ``encryption`` (None or the scrypt/AES-GCM parameters). It holds no key
    material. Raises :class:`KeyFormatError` for a damaged file.
    """
    header = _verify(path).header
    return {"format_version": FORMAT_VERSION, **{k: v for k, v in header.items() if k != "format_version"}}


def key_needs_passphrase(path: str | Path) -> bool:
    """True when the key file's arrays are encrypted, so :func:`read_key` needs the passphrase."""
    return _verify(path).header["encryption"] is not None


def _payload_pieces(path: Path, verified: _Verified, length: int) -> Iterator[bytes]:
    with open(path, "rb") as file:
        file.seek(len(verified.prefix))
        while length:
            piece = file.read(min(CHUNK, length))
            if not piece:
                raise _corrupted(path, "truncated (it changed while being read)")
            length -= len(piece)
            yield piece


def _decrypt(path: Path, verified: _Verified, passphrase: str | None) -> list[bytes]:
    encryption = verified.header["encryption"]
    if passphrase is None:
        raise WrongPassphraseError(f"The key file {path} is encrypted with a passphrase, and none was given.")
    _check_passphrase(passphrase)
    secret = _derive(passphrase, base64.b64decode(encryption["salt"]), encryption["n"], encryption["r"],
                     encryption["p"])
    with open(path, "rb") as file:
        file.seek(len(verified.prefix) + verified.payload_length - TAG_SIZE)
        tag = file.read(TAG_SIZE)
    decryptor = Cipher(algorithms.AES(secret), modes.GCM(base64.b64decode(encryption["nonce"]), tag)).decryptor()
    decryptor.authenticate_additional_data(verified.prefix)
    plain = [decryptor.update(piece) for piece in _payload_pieces(path, verified, verified.payload_length - TAG_SIZE)]
    try:
        decryptor.finalize()
    except InvalidTag:
        raise WrongPassphraseError(f"The passphrase does not open the key file {path}. Check it and try again "
                                   "(passphrases are case-sensitive).") from None
    return plain


class _Inflated:
    """Reads exactly the expected number of bytes out of a zlib stream, never more."""

    def __init__(self, path: Path, pieces: Iterable[bytes], expected: int) -> None:
        self._path = path
        self._output = self._inflate(iter(pieces), expected)
        self._current = memoryview(b"")

    def _inflate(self, pieces: Iterator[bytes], expected: int) -> Iterator[bytes]:
        inflater = zlib.decompressobj()
        produced = 0
        try:
            for piece in pieces:
                if inflater.eof:
                    raise _corrupted(self._path, "damaged (data after the end of its payload)")
                while piece:
                    out = inflater.decompress(piece, CHUNK)
                    produced += len(out)
                    if produced > expected:
                        raise _corrupted(self._path, "damaged (its payload is longer than its header says)")
                    yield out
                    piece = inflater.unconsumed_tail
            tail = inflater.flush()
            if produced + len(tail) > expected:
                raise _corrupted(self._path, "damaged (its payload is longer than its header says)")
            yield tail
        except zlib.error as error:
            raise _corrupted(self._path, f"damaged (its payload does not decompress: {error})") from error
        if not inflater.eof:
            raise _corrupted(self._path, "damaged (its compressed payload stops before its end)")
        if inflater.unused_data:
            raise _corrupted(self._path, "damaged (data after the end of its payload)")

    def read_into(self, target: np.ndarray) -> None:
        """Fill a 1-D uint8 array (may be strided) from the stream."""
        done = 0
        while done < target.size:
            if not len(self._current):
                piece = next(self._output, None)
                if piece is None:
                    raise _corrupted(self._path, "damaged (its payload is shorter than its header says)")
                self._current = memoryview(piece)
            take = min(target.size - done, len(self._current))
            target[done : done + take] = np.frombuffer(self._current[:take], dtype=np.uint8)
            self._current = self._current[take:]
            done += take

    def finish(self) -> None:
        """Check that the stream ends exactly here."""
        if len(self._current) or any(len(piece) for piece in self._output):
            raise _corrupted(self._path, "damaged (its payload is longer than its header says)")


def read_key(path: str | Path, passphrase: str | None = None) -> VolumeKey:
    """Read a key file written by :func:`write_key`.

    ``passphrase``: needed when :func:`key_needs_passphrase`; ignored otherwise.
    Raises :class:`KeyFormatError` for a damaged or unknown file,
    :class:`WrongPassphraseError` for a wrong or missing passphrase, and
    :class:`InputError` for a missing file.
    """
    path = Path(path)
    verified = _verify(path)
    header = verified.header
    if header["encryption"] is None:
        pieces: Iterable[bytes] = _payload_pieces(path, verified, verified.payload_length)
    else:
        pieces = _decrypt(path, verified, passphrase)
    shape = tuple(header["shape"])
    layout = _arrays_layout(shape, header["payload"]["code_count"])
    stream = _Inflated(path, pieces, _raw_length(layout))
    arrays = {}
    for name, dtype, array_shape in layout:
        array = np.empty(array_shape, dtype=dtype)
        planes = array.reshape(-1).view(np.uint8).reshape(-1, array.itemsize)
        for plane in range(array.itemsize):
            stream.read_into(planes[:, plane])
        arrays[name] = array
    stream.finish()
    if not (np.isfinite(arrays["origin"]).all() and np.isfinite(arrays["step"]).all() and (arrays["step"] >= 0).all()):
        raise _corrupted(path, "damaged (its code scales are not finite and non-negative)")
    geometry = header["geometry"]
    core = Key(
        codes=arrays["codes"], origin=arrays["origin"], step=arrays["step"], shape=shape,
        fingerprint=header["image_fingerprint"], signature=arrays["signature"], model_id=header["model_id"],
        identifier=header["identifier"], identifier_style=dict(header["identifier_style"]),
        normalisation=header["normalisation"], mask_offsets=np.asarray(header["mask_offsets"], dtype=np.int64),
        created_utc=header["created_utc"],
    )
    return VolumeKey(key=core, axis=header["axis"], size=tuple(geometry["size"]), spacing=tuple(geometry["spacing"]),
                     origin=tuple(geometry["origin"]), direction=tuple(geometry["direction"]),
                     volume_fingerprint=header["volume_fingerprint"])
