"""amif_core.key.file: the .amifkey format, its passphrase and its bounded, fail-fast parser."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from volume_factory import rotation

from amif_core.errors import InputError, KeyFormatError, WrongPassphraseError
from amif_core.key.codec import dequantise, quantise
from amif_core.key.codec import scale_words
from amif_core.key.core import Key
from amif_core.key.file import (
    FORMAT_VERSION,
    MAGIC,
    key_needs_passphrase,
    read_key,
    read_key_header,
    write_key,
)

HEADER_FIELDS = {
    "format_version", "format", "amif_version", "created_utc", "model_id", "volume_fingerprint", "image_fingerprint",
    "axis", "shape", "geometry", "normalisation", "identifier", "identifier_style", "mask_offsets", "identifier_lattice", "payload",
    "encryption", "colour", "levels",
}


def synthetic_key(size=(10, 13, 3), axis=0, codes=70, seed=0) -> Key:
    """A key with random arrays of the right shapes (no model needed)."""
    rng = np.random.default_rng(seed)
    zyx = list(size[::-1])
    depth = zyx.pop(axis)
    h, w = zyx
    core = Key(
        codes=rng.integers(-32768, 32768, size=codes).astype(np.int16),
        code_origin=rng.integers(0, 2**32, size=(depth, 4), dtype=np.uint32),
        code_step=rng.integers(0, 2**32, size=(depth, 4), dtype=np.uint32),
        shape=(depth, h, w),
        fingerprint="a" * 64,
        signature=rng.random((depth, 8, 8), dtype=np.float32),
        model_id="b" * 64,
        identifier="Clinic \u00a9 2025",
        identifier_style={"font_fraction": 0.1, "angle_deg": 30.0, "coverage": 0.14, "transpose": False,
                          "flip_rows": True, "flip_cols": True},
        normalisation={"mri": {"low": 1.5, "high": 812.25}, "other": {"low": 0.0, "high": 7.125}},
        mask_offsets=np.stack([rng.integers(0, h + 1, depth), rng.integers(0, w + 1, depth)], axis=1),
    )
    return dataclasses.replace(core, axis=axis, size=tuple(size), spacing=(0.5, 0.7, 2.0), origin=(1.5, -2.25, 30.0),
                     direction=rotation(about_x=10), volume_fingerprint="c" * 64)


def assert_same_key(a: Key, b: Key) -> None:
    for name in ("codes", "code_origin", "code_step", "signature", "mask_offsets"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype or name == "mask_offsets"
        np.testing.assert_array_equal(x, y)
    for name in ("shape", "fingerprint", "model_id", "identifier", "identifier_style", "normalisation", "created_utc"):
        assert tuple(getattr(a, name)) == tuple(getattr(b, name)) if name == "shape" else \
            getattr(a, name) == getattr(b, name)
    assert (a.axis, a.size, a.spacing, a.origin, a.direction, a.volume_fingerprint) == \
        (b.axis, b.size, b.spacing, b.origin, b.direction, b.volume_fingerprint)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_round_trip(tmp_path: Path, axis: int) -> None:
    key = synthetic_key(size=(10, 13, 9), axis=axis)
    write_key(tmp_path / "k.amifkey", key)
    assert_same_key(read_key(tmp_path / "k.amifkey"), key)
    assert read_key(tmp_path / "k.amifkey", passphrase="ignored when not encrypted").axis == axis
    assert not key_needs_passphrase(tmp_path / "k.amifkey")


def test_passphrase_round_trip_and_wrong_passphrase(tmp_path: Path) -> None:
    key = synthetic_key()
    path = tmp_path / "k.amifkey"
    write_key(path, key, passphrase="correct horse \u00e9")
    assert key_needs_passphrase(path)
    assert_same_key(read_key(path, "correct horse \u00e9"), key)
    assert_same_key(read_key(path, "correct horse e\u0301"), key)  # the same text, decomposed (NFC-normalised)
    with pytest.raises(WrongPassphraseError, match="does not open"):
        read_key(path, "Correct horse \u00e9")
    with pytest.raises(WrongPassphraseError, match="none was given"):
        read_key(path)
    with pytest.raises(InputError, match="empty"):
        write_key(tmp_path / "other.amifkey", key, passphrase="")
    assert not (tmp_path / "other.amifkey").exists()
    header = read_key_header(path)  # no passphrase needed
    assert header["encryption"]["kdf"] == "scrypt" and header["encryption"]["cipher"] == "AES-256-GCM"


def test_header_describes_the_volume_and_holds_no_key_material(tmp_path: Path) -> None:
    key = synthetic_key(size=(10, 13, 9), axis=1)
    write_key(tmp_path / "k.amifkey", key)
    header = read_key_header(tmp_path / "k.amifkey")
    assert set(header) == HEADER_FIELDS
    assert header["volume_fingerprint"] == key.volume_fingerprint and header["model_id"] == key.model_id
    assert header["geometry"] == key.geometry() and header["axis"] == 1 and header["shape"] == [13, 9, 10]
    assert header["identifier"] == key.identifier and header["encryption"] is None
    assert header["mask_offsets"] == key.mask_offsets.tolist()
    assert header["payload"] == {"compression": "zlib", "filter": "byteshuffle", "code_count": 70, "chroma_count": 0}
    text = json.dumps(header)
    for secret in (key.code_origin, key.code_step):
        assert str(int(secret.ravel()[0])) not in text
    assert str(int(key.codes[0])) not in json.dumps(header["payload"])


def test_never_overwrites_without_force_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "k.amifkey"
    write_key(path, synthetic_key(seed=1))
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="already exists; nothing was overwritten"):
        write_key(path, synthetic_key(seed=2))
    assert path.read_bytes() == before
    write_key(path, synthetic_key(seed=2), force=True)
    assert path.read_bytes() != before and os.listdir(tmp_path) == ["k.amifkey"]
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


# ---------------------------------------------------------------- damaged files


def key_bytes(tmp_path: Path, passphrase: str | None = None) -> bytes:
    path = tmp_path / "source.amifkey"
    write_key(path, synthetic_key(), passphrase=passphrase, force=True)
    return path.read_bytes()


def parts(data: bytes) -> tuple[int, bytes, bytes]:
    """(version, header, payload) of a key file."""
    _, version, length, _ = struct.unpack("<12sHIQ", data[:26])
    return version, data[26 : 26 + length], data[26 + length : -32]


def rebuild(header: bytes, payload: bytes, version: int = FORMAT_VERSION) -> bytes:
    """A key file with a valid digest around any header and payload (a crafted, not a damaged, file)."""
    body = struct.pack("<12sHIQ", MAGIC, version, len(header), len(payload)) + header + payload
    return body + hashlib.sha256(body).digest()


def expect_format_error(tmp_path: Path, data: bytes, words: str | None = None, in_header: bool = True) -> str:
    """read_key (and, for damage outside the payload's contents, read_key_header) fail fast and small."""
    path = tmp_path / "damaged.amifkey"
    path.write_bytes(data)
    start = time.perf_counter()
    tracemalloc.start()
    try:
        with pytest.raises(KeyFormatError, match=words) as caught:
            read_key(path)
        if in_header:
            with pytest.raises(KeyFormatError):
                read_key_header(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0
    assert peak < 64 << 20
    return str(caught.value)


def test_damaged_files_fail_fast_with_key_format_error(tmp_path: Path) -> None:
    good = key_bytes(tmp_path)
    _, header, payload = parts(good)
    n = len(good)
    cases = {
        "empty": (b"", "not an AMIF key file"),
        "short": (good[:10], "not an AMIF key file"),
        "wrong magic": (b"PK\x03\x04" + good[4:], "not an AMIF key file"),
        "version 8": (good[:12] + struct.pack("<H", 8) + good[14:], "version 8.*newer AMIF"),
        "version 1": (good[:12] + struct.pack("<H", 1) + good[14:],
                      "version 1.*reads versions 2, 3, 4, 5, 6 and 7 only"),
        "version 0": (good[:12] + struct.pack("<H", 0) + good[14:], "version 0"),
        "cut in the lengths": (good[:20], "truncated"),
        "huge header length": (good[:14] + struct.pack("<I", 0xFFFFFFFF) + good[18:], "out of bounds"),
        "header past the end": (good[:14] + struct.pack("<I", n) + good[18:], "truncated"),
        "huge payload length": (good[:18] + struct.pack("<Q", 1 << 62) + good[26:], "truncated"),
        "cut in the header": (good[: 26 + len(header) // 2], "truncated"),
        "cut in the payload": (good[: n - 32 - len(payload) // 2], "truncated"),
        "last byte missing": (good[:-1], "truncated"),
        "flipped header byte": (good[:40] + bytes([good[40] ^ 0x01]) + good[41:], "integrity check"),
        "flipped payload byte": (good[: n - 40] + bytes([good[n - 40] ^ 0x80]) + good[n - 39 :], "integrity check"),
        "flipped digest byte": (good[:-1] + bytes([good[-1] ^ 0x01]), "integrity check"),
        "junk appended": (good + b"\x00", "1 bytes more than its lengths say"),
    }
    for name, (data, words) in cases.items():
        expect_format_error(tmp_path, data, words)


def test_crafted_files_with_valid_digests_are_still_checked(tmp_path: Path) -> None:
    good = key_bytes(tmp_path)
    _, header_bytes, payload = parts(good)
    header = json.loads(header_bytes)

    def variant(**changes) -> bytes:
        return rebuild(json.dumps({**header, **changes}).encode(), payload)

    huge = {**header, "shape": [65535, 65535, 65535], "geometry": {**header["geometry"], "size": [65535] * 3}}
    cases = [
        (rebuild(b"{not json", payload), "not valid JSON"),
        (rebuild(b"[1, 2]", payload), "invalid header"),
        (rebuild(b"[" * 100000 + b"]" * 100000, payload), "header"),
        (rebuild(json.dumps(huge).encode(), payload), "invalid header"),
        (variant(shape=[3, 13, 11]), "does not give shape"),
        (variant(levels=1000), "levels must be null or one of 32767, 255"),
        (variant(mask_offsets=header["mask_offsets"][:-1]), "mask_offsets"),
        (variant(model_id="not hex"), "model_id"),
        (variant(axis=True), "axis"),
        (variant(normalisation={"mri": {"low": 0, "high": float("inf")}, "other": {"low": 0, "high": 1}}),
         "finite"),
        (variant(payload={**header["payload"], "compression": "lzma"}), "zlib"),
        (variant(encryption={"kdf": "scrypt", "n": 1 << 30, "r": 8, "p": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA==",
                             "cipher": "AES-256-GCM", "nonce": "AAAAAAAAAAAAAAAA"}), "encryption.n"),
    ]
    for data, words in cases:
        expect_format_error(tmp_path, data, words)
    payload_cases = [  # a sound header over a payload that does not match it
        (variant(payload={**header["payload"], "code_count": 71}), "shorter than its header says"),
        (variant(payload={**header["payload"], "code_count": 69}), "longer than its header says"),
        (rebuild(header_bytes, payload + b"\x00\x01"), "after the end"),
        (rebuild(header_bytes, zlib.compress(b"\x00" * 10)), "shorter than its header says"),
        (rebuild(header_bytes, b"\x78\x9c" + b"\xff" * 40), "does not decompress"),
    ]
    for data, words in payload_cases:
        expect_format_error(tmp_path, data, words, in_header=False)


def test_negative_or_infinite_clear_code_scales_are_refused(tmp_path: Path) -> None:
    """A key of format 4 holds its scales as plain float32 and round-trips as format 4; unsound scales are refused
    there, while a padded key's words may be any bits."""
    depth = len(synthetic_key().code_origin)
    sound = dataclasses.replace(synthetic_key(), scale_padded=False)
    sound.code_origin, sound.code_step = scale_words(np.full((depth, 4), -0.5, np.float32),
                                                     np.full((depth, 4), 1e-3, np.float32))
    write_key(tmp_path / "sound.amifkey", sound, passphrase="pw")
    reread = read_key(tmp_path / "sound.amifkey", "pw")
    assert not reread.scale_padded and read_key_header(tmp_path / "sound.amifkey")["format_version"] == 4
    assert_same_key(reread, sound)
    for field, value in (("code_step", -1.0), ("code_origin", np.inf)):
        plain = {name: np.full((depth, 4), 1e-3, np.float32) for name in ("code_origin", "code_step")}
        plain[field][0, 0] = value
        origin_words, step_words = scale_words(plain["code_origin"], plain["code_step"])
        key = dataclasses.replace(sound, code_origin=origin_words, code_step=step_words)
        write_key(tmp_path / f"{field}.amifkey", key)
        assert read_key_header(tmp_path / f"{field}.amifkey")["format_version"] == 4
        with pytest.raises(KeyFormatError, match="code scales"):
            read_key(tmp_path / f"{field}.amifkey")


def test_damaged_encrypted_key_is_corrupted_not_a_wrong_passphrase(tmp_path: Path) -> None:
    good = key_bytes(tmp_path, passphrase="pw")
    flipped = good[:-50] + bytes([good[-50] ^ 0x04]) + good[-49:]
    (tmp_path / "k.amifkey").write_bytes(flipped)
    with pytest.raises(KeyFormatError, match="integrity check"):
        read_key(tmp_path / "k.amifkey", "pw")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_damage_never_escapes_key_format_error(tmp_path: Path, data: st.DataObject) -> None:
    good = key_bytes(tmp_path) if not (tmp_path / "source.amifkey").exists() else \
        (tmp_path / "source.amifkey").read_bytes()
    kind = data.draw(st.sampled_from(["truncate", "flip", "insert"]))
    position = data.draw(st.integers(0, len(good) - 1))
    if kind == "truncate":
        damaged = good[:position]
    elif kind == "flip":
        damaged = good[:position] + bytes([good[position] ^ data.draw(st.integers(1, 255))]) + good[position + 1 :]
    else:
        damaged = good[:position] + data.draw(st.binary(min_size=1, max_size=16)) + good[position:]
    expect_format_error(tmp_path, damaged)


def test_codes_are_within_half_a_step_whatever_the_magnitude() -> None:
    rng = np.random.default_rng(3)
    for offset in (0.0, 200.0, -150.0, 1e4):
        values = (rng.normal(scale=60, size=500) + offset).astype(np.float32)
        codes, origin, step = quantise(values)
        assert codes.dtype == np.int16 and np.abs(codes).max() == 32767
        restored = dequantise(codes, origin, step)
        assert np.all(np.abs(restored - values) <= 0.5 * step + 1e-6 * np.abs(values) + 1e-6)
        assert step < 2 * 6 * 60 / 65534 + 1e-3  # the range of a Gaussian sample is ~12 sigma at most here
    codes, origin, step = quantise(np.full(9, 7.25))
    assert step == 0 and (dequantise(codes, origin, step) == 7.25).all()
    codes, origin, step = quantise(np.zeros(0))
    assert codes.size == 0 and dequantise(codes, origin, step).size == 0


def test_a_key_holds_its_style_windows_and_colour_as_types_and_writes_them_back_unchanged(tmp_path: Path) -> None:
    from amif_core.key.core import IntensityWindows, KeyColour
    from amif_core.transforms.identifier import IdentifierStyle
    from amif_core.transforms.intensity import Normalisation

    grey = synthetic_key()
    key = dataclasses.replace(grey, shape=tuple(grey.shape) + (3,), colour={
        "space": "BT.601 YCbCr", "table": "pet", "uptake": {"low": 0, "high": 2.5}})
    assert isinstance(key.identifier_style, IdentifierStyle) and isinstance(key.normalisation, IntensityWindows)
    assert key.colour == KeyColour("BT.601 YCbCr", "pet", Normalisation(0, 2.5))
    write_key(tmp_path / "k.amifkey", key)
    header = read_key_header(tmp_path / "k.amifkey")
    assert header["colour"] == {"space": "BT.601 YCbCr", "table": "pet", "uptake": {"low": 0, "high": 2.5}}
    assert header["identifier_style"] == dataclasses.asdict(key.identifier_style)
    again = read_key(tmp_path / "k.amifkey")
    assert (again.identifier_style, again.normalisation, again.colour) == (key.identifier_style, key.normalisation,
                                                                           key.colour)
    write_key(tmp_path / "again.amifkey", again)  # the same key written again: the same bytes (the clock is the key's)
    assert (tmp_path / "again.amifkey").read_bytes() == (tmp_path / "k.amifkey").read_bytes()
