"""The ``.amifkey`` file: one volume's :class:`~amif_core.key.core.Key` on disk (spec: docs/key-format.md).

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
import os
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

from amif_core.constants import VERSION
from amif_core.errors import InputError, KeyFormatError, WrongPassphraseError
from amif_core.atomic import PRIVATE_MODE, Output, write_atomically
from amif_core.key.core import Key
from amif_core.key.header import (
    NONCE_SIZE,
    TAG_SIZE,
    arrays_layout,
    build_header,
    raw_length,
    validate_header,
)

MAGIC = b"\x89AMIFKEY\r\n\x1a\n"
FORMAT_VERSION = 7
CLEAR_SCALE_VERSION = 4  # what a key read from a file of version 4 or earlier is written as again
# version 2 is version 3 without colour, version 3 is version 4 without levels, version 4 is version 5 with the
# codes' scales in the clear, version 5 is version 6 without the 3D identifier, version 6 is version 7 without its
# diagonal tile (a text-plate lattice or the 2D identifier only)
READABLE_VERSIONS = (2, 3, 4, 5, 6, 7)
_PREFIX = struct.Struct("<12sHIQ")
DIGEST_SIZE = 32
MAX_HEADER_BYTES = 1 << 20  # the largest header AMIF writes (65535 slices) is ~0.9 MiB; json.loads needs ~25x this
CHUNK = 8 << 20
ZLIB_LEVEL = 6
SCRYPT = {"n": 1 << 15, "r": 8, "p": 1}
SALT_SIZE = 16
INTACT_COPY = "Use an intact copy of the key (the one written together with the protected volume)."  # damage's advice
# ---------------------------------------------------------------- writing


def _payload_arrays(key: Key) -> list[np.ndarray]:
    arrays = [key.codes, key.code_origin, key.code_step, key.signature, key.chroma_codes]
    out = []
    layout = arrays_layout(tuple(key.spatial_shape), int(key.codes.size), int(key.chroma_codes.size))
    for array, (name, dtype, shape) in zip(arrays, layout):
        array = np.ascontiguousarray(array, dtype=dtype)
        if array.shape != shape:
            raise ValueError(f"Key array {name} has shape {array.shape}, expected {shape} for an image of {key.shape}.")
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


def key_output(path: str | Path, key: Key, passphrase: str | None = None) -> Output:
    """An :class:`~amif_core.atomic.Output` that writes ``key`` (owner-only file mode) to ``path``."""
    _check_passphrase(passphrase)

    def write(temp: Path) -> None:
        encryption = None
        if passphrase is not None:
            encryption = {"kdf": "scrypt", **SCRYPT, "salt": base64.b64encode(os.urandom(SALT_SIZE)).decode(),
                          "cipher": "AES-256-GCM", "nonce": base64.b64encode(os.urandom(NONCE_SIZE)).decode()}
        header = json.dumps(build_header(key, encryption), ensure_ascii=False, separators=(",", ":")).encode()
        payload = _compress(_payload_arrays(key))
        length = sum(len(piece) for piece in payload) + (TAG_SIZE if encryption is not None else 0)
        version = FORMAT_VERSION if key.scale_padded else CLEAR_SCALE_VERSION
        prefix = _PREFIX.pack(MAGIC, version, len(header), length) + header
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


def write_key(path: str | Path, key: Key, passphrase: str | None = None, force: bool = False) -> None:
    """Write ``key`` to ``path`` atomically; never replaces an existing file unless ``force``.

    ``passphrase``: when given, the key arrays are encrypted (scrypt +
    AES-256-GCM); the header stays readable. The file is created owner-only.
    """
    write_atomically([key_output(path, key, passphrase)], force)


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class KeyFile:
    """A key file read, digest-checked and parsed in one read (:func:`open_key_file`); nothing else opens it.

    ``header``: the validated header plus ``format_version`` (what
    :func:`read_key_header` returns); ``prefix``: the magic, version, lengths
    and header bytes (AES-GCM's associated data); ``payload``: the payload
    bytes as they are on disk (compressed, and encrypted when
    :attr:`needs_passphrase`).
    """

    path: Path
    header: dict[str, Any]
    prefix: bytes
    payload: memoryview

    @property
    def version(self) -> int:
        """The key format version of the file (2 to :data:`FORMAT_VERSION`)."""
        return int(self.header["format_version"])

    @property
    def needs_passphrase(self) -> bool:
        """True when the key arrays are encrypted, so :meth:`key` needs the passphrase."""
        return self.header["encryption"] is not None

    def key(self, passphrase: str | None = None) -> Key:
        """The :class:`~amif_core.key.core.Key` the file holds; ``passphrase``: needed when
        :attr:`needs_passphrase`, ignored otherwise. Raises :class:`KeyFormatError` for a damaged payload and
        :class:`WrongPassphraseError` for a wrong or missing passphrase."""
        return _parse_key(self, passphrase)


def open_key_file(path: str | Path) -> KeyFile:
    """Read the key file at ``path`` once: check magic, version, lengths and the SHA-256 digest of the bytes read,
    then parse and validate the header.

    Raises :class:`InputError` for a missing path or a folder and
    :class:`KeyFormatError` for a damaged or unknown file. Every length is
    checked against the file's size and a fixed maximum before the rest is read.
    """
    path = Path(path)
    if not path.is_file():
        if not path.exists():
            raise InputError("The key file {path} does not exist.", path=path)
        raise InputError("{path} is not a file.", path=path)
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        start = file.read(_PREFIX.size)
        if len(start) < len(MAGIC) + 2 or not start.startswith(MAGIC):
            raise KeyFormatError("{path} is not an AMIF key file (it does not start with the AMIF key signature).",
                                 path=path)
        version = int.from_bytes(start[len(MAGIC) : len(MAGIC) + 2], "little")
        if version not in READABLE_VERSIONS:
            earlier, latest = ", ".join(map(str, READABLE_VERSIONS[:-1])), READABLE_VERSIONS[-1]
            if version > FORMAT_VERSION:
                raise KeyFormatError("{path} uses key format version {version}, but this AMIF ({amif}) reads "
                                     "versions {earlier} and {latest} only. It was written by a newer AMIF; update "
                                     "amif-core to read it.", path=path, version=version, amif=VERSION,
                                     earlier=earlier, latest=latest)
            raise KeyFormatError("{path} uses key format version {version}, but this AMIF ({amif}) reads versions "
                                 "{earlier} and {latest} only. Keys of version 1 were made with the amif_v1 weights "
                                 "of amif-core 0.1; unlock it with amif-core 0.1.", path=path, version=version,
                                 amif=VERSION, earlier=earlier, latest=latest)
        if len(start) < _PREFIX.size:
            raise KeyFormatError("The key file {path} is truncated ({size} bytes).",
                                 advice=INTACT_COPY, path=path, size=size)
        _, _, header_length, payload_length = _PREFIX.unpack(start)
        if not 2 <= header_length <= MAX_HEADER_BYTES:
            raise KeyFormatError("The key file {path} is corrupted (its header length {length} is out of bounds).",
                                 advice=INTACT_COPY, path=path, length=header_length)
        expected = _PREFIX.size + header_length + payload_length + DIGEST_SIZE
        if size < expected:
            raise KeyFormatError("The key file {path} is truncated ({size} bytes, but its lengths say {expected}).",
                                 advice=INTACT_COPY, path=path, size=size, expected=expected)
        if size > expected:
            raise KeyFormatError("The key file {path} is corrupted ({extra} bytes more than its lengths say).",
                                 advice=INTACT_COPY, path=path, extra=size - expected)
        rest = file.read(expected - _PREFIX.size + 1)  # one byte more: a file that grew is caught too
    if len(rest) != expected - _PREFIX.size:
        raise KeyFormatError("The key file {path} is truncated (it changed while being read).",
                             advice=INTACT_COPY, path=path)
    body = memoryview(rest)
    header_bytes = bytes(body[:header_length])
    payload = body[header_length : header_length + payload_length]
    digest = hashlib.sha256(start)
    digest.update(body[: header_length + payload_length])
    if body[header_length + payload_length :] != digest.digest():
        raise KeyFormatError("The key file {path} is corrupted (its SHA-256 integrity check fails).",
                             advice=INTACT_COPY, path=path)
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise KeyFormatError("The key file {path} is damaged (its header is not valid JSON: {reason}).",
                             advice=INTACT_COPY, path=path, reason=error) from error
    try:
        validate_header(header, payload_length, version)
    except (KeyError, TypeError, ValueError, OverflowError) as error:
        raise KeyFormatError("The key file {path} is damaged (invalid header: {reason}).",
                             advice=INTACT_COPY, path=path, reason=error) from error
    if version < 3:
        header = {**header, "colour": None, "payload": {**header["payload"], "chroma_count": 0}}
    if version < 4:
        header = {**header, "levels": None}
    if version < 6:
        header = {**header, "identifier_lattice": None}
    header = {"format_version": version, **{k: v for k, v in header.items() if k != "format_version"}}
    return KeyFile(path, header, start + header_bytes, payload)


def is_key_file(path: str | Path) -> bool:
    """True when ``path`` is a file that starts with the AMIF key signature, intact or not (nothing is verified)."""
    try:
        with open(path, "rb") as file:
            return file.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def read_key_header(path: str | Path) -> dict[str, Any]:
    """The verified header of a key file, plus ``format_version``; needs no passphrase (:func:`open_key_file`).

    The header describes the volume the key fits (``volume_fingerprint``,
    ``geometry``, ``axis``, ``shape``), the model (``model_id``), the
    identifier and its placement, ``normalisation``, ``created_utc`` and
    ``encryption`` (None or the scrypt/AES-GCM parameters). It holds no key
    material. Raises :class:`KeyFormatError` for a damaged file.
    """
    return dict(open_key_file(path).header)


def key_needs_passphrase(path: str | Path) -> bool:
    """True when the key file's arrays are encrypted, so :func:`read_key` needs the passphrase."""
    return open_key_file(path).needs_passphrase


def _pieces(data: memoryview) -> Iterator[memoryview]:
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]


def _decrypt(keyfile: KeyFile, passphrase: str | None) -> list[bytes]:
    encryption = keyfile.header["encryption"]
    if passphrase is None:
        raise WrongPassphraseError("The key file {path} is encrypted with a passphrase, and none was given.",
                                   path=keyfile.path)
    _check_passphrase(passphrase)
    secret = _derive(passphrase, base64.b64decode(encryption["salt"]), encryption["n"], encryption["r"],
                     encryption["p"])
    payload = keyfile.payload
    tag = bytes(payload[-TAG_SIZE:])
    decryptor = Cipher(algorithms.AES(secret), modes.GCM(base64.b64decode(encryption["nonce"]), tag)).decryptor()
    decryptor.authenticate_additional_data(keyfile.prefix)
    plain = [decryptor.update(piece) for piece in _pieces(payload[:-TAG_SIZE])]
    try:
        decryptor.finalize()
    except InvalidTag:
        raise WrongPassphraseError("The passphrase does not open the key file {path}. Check it and try again "
                                   "(passphrases are case-sensitive).", path=keyfile.path) from None
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
                    raise KeyFormatError("The key file {path} is damaged (data after the end of its payload).",
                                         advice=INTACT_COPY, path=self._path)
                while piece:
                    out = inflater.decompress(piece, CHUNK)
                    produced += len(out)
                    if produced > expected:
                        raise KeyFormatError("The key file {path} is damaged (its payload is longer than its header "
                                             "says).", advice=INTACT_COPY, path=self._path)
                    yield out
                    piece = inflater.unconsumed_tail
            tail = inflater.flush()
            if produced + len(tail) > expected:
                raise KeyFormatError("The key file {path} is damaged (its payload is longer than its header says).",
                                     advice=INTACT_COPY, path=self._path)
            yield tail
        except zlib.error as error:
            raise KeyFormatError("The key file {path} is damaged (its payload does not decompress: {reason}).",
                                 advice=INTACT_COPY, path=self._path, reason=error) from error
        if not inflater.eof:
            raise KeyFormatError("The key file {path} is damaged (its compressed payload stops before its end).",
                                 advice=INTACT_COPY, path=self._path)
        if inflater.unused_data:
            raise KeyFormatError("The key file {path} is damaged (data after the end of its payload).",
                                 advice=INTACT_COPY, path=self._path)

    def read_into(self, target: np.ndarray) -> None:
        """Fill a 1-D uint8 array (may be strided) from the stream."""
        done = 0
        while done < target.size:
            if not len(self._current):
                piece = next(self._output, None)
                if piece is None:
                    raise KeyFormatError("The key file {path} is damaged (its payload is shorter than its header "
                                         "says).", advice=INTACT_COPY, path=self._path)
                self._current = memoryview(piece)
            take = min(target.size - done, len(self._current))
            target[done : done + take] = np.frombuffer(self._current[:take], dtype=np.uint8)
            self._current = self._current[take:]
            done += take

    def finish(self) -> None:
        """Check that the stream ends exactly here."""
        if len(self._current) or any(len(piece) for piece in self._output):
            raise KeyFormatError("The key file {path} is damaged (its payload is longer than its header says).",
                                 advice=INTACT_COPY, path=self._path)


def read_key(path: str | Path, passphrase: str | None = None) -> Key:
    """Read a key file written by :func:`write_key` (one read: :func:`open_key_file`, then :meth:`KeyFile.key`).

    ``passphrase``: needed when :func:`key_needs_passphrase`; ignored otherwise.
    Raises :class:`KeyFormatError` for a damaged or unknown file,
    :class:`WrongPassphraseError` for a wrong or missing passphrase, and
    :class:`InputError` for a missing file.
    """
    return open_key_file(path).key(passphrase)


def _parse_key(keyfile: KeyFile, passphrase: str | None) -> Key:
    path, header = keyfile.path, keyfile.header
    if header["encryption"] is None:
        pieces: Iterable[bytes] = _pieces(keyfile.payload)
    else:
        pieces = _decrypt(keyfile, passphrase)
    shape = tuple(header["shape"])
    scale_padded = keyfile.version >= 5
    layout = arrays_layout(shape, header["payload"]["code_count"], header["payload"]["chroma_count"])
    stream = _Inflated(path, pieces, raw_length(layout))
    arrays = {}
    for name, dtype, array_shape in layout:
        array = np.empty(array_shape, dtype=dtype)
        planes = array.reshape(-1).view(np.uint8).reshape(-1, array.itemsize)
        for plane in range(array.itemsize):
            stream.read_into(planes[:, plane])
        arrays[name] = array
    stream.finish()
    clear_origin, clear_step = (arrays[name].view("<f4") for name in ("origin", "step"))
    if not scale_padded and not (np.isfinite(clear_origin).all() and np.isfinite(clear_step).all()
                                 and (clear_step >= 0).all()):
        raise KeyFormatError("The key file {path} is damaged (its code scales are not finite and non-negative).",
                             advice=INTACT_COPY, path=path)
    geometry = header["geometry"]
    return Key(
        codes=arrays["codes"], code_origin=arrays["origin"].astype(np.uint32),
        code_step=arrays["step"].astype(np.uint32), scale_padded=scale_padded,
        shape=shape + ((3,) if header["colour"] is not None else ()),
        fingerprint=header["image_fingerprint"], signature=arrays["signature"], model_id=header["model_id"],
        identifier=header["identifier"], identifier_style=header["identifier_style"],
        normalisation=header["normalisation"], mask_offsets=np.asarray(header["mask_offsets"], dtype=np.int64).reshape(-1, 2),
        created_utc=header["created_utc"], axis=header["axis"], size=tuple(geometry["size"]),
        spacing=tuple(geometry["spacing"]), origin=tuple(geometry["origin"]), direction=tuple(geometry["direction"]),
        volume_fingerprint=header["volume_fingerprint"], colour=header["colour"],
        chroma_codes=arrays.get("chroma", np.zeros(0, np.int16)), levels=header["levels"],
        identifier_lattice=header["identifier_lattice"],
    )
