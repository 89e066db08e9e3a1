"""Hostile .amifkey files: property-based tests of the parser's promise (docs/key-format.md, "Reading").

Whatever the bytes, read_key_header, key_needs_passphrase and read_key end
with a KeyFormatError naming the file (or WrongPassphraseError for an intact,
encrypted key opened with another passphrase), never another exception, in
bounded time and traced memory. Unlike damage, a crafted file carries a valid
SHA-256 digest (anyone can recompute it), so every later check is exercised
too. The nastiest files are also read in a child interpreter, which must
survive them and stay within a bound on its resident memory.
"""
from __future__ import annotations

import dataclasses
import json
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_keyfile import assert_same_key, parts, rebuild, synthetic_key

from amif_core.key import file as keyfile
from amif_core.errors import InputError, KeyFormatError, WrongPassphraseError
from amif_core.key.core import Key
from amif_core.key.file import (
    FORMAT_VERSION,
    READABLE_VERSIONS,
    MAGIC,
    MAX_HEADER_BYTES,
    key_needs_passphrase,
    read_key,
    read_key_header,
    write_key,
)
from amif_core.key.header import MAX_SCRYPT_COST, build_header

REPO = Path(__file__).resolve().parents[1]
PASSPHRASE = "correct horse \u00e9"
MAX_SECONDS = 2.0
MAX_TRACED_BYTES = 64 << 20
PREFIX_SIZE = 26
# Fixed examples (derandomize) so CI sees the same cases every run; no example database on disk.
FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None)
FEW = settings(max_examples=12, deadline=None, derandomize=True, database=None)  # each pays for scrypt


@dataclass(frozen=True)
class Keys:
    folder: Path
    plain: bytes
    encrypted: bytes
    key: Key

    def path(self) -> Path:
        """The one scratch file every example overwrites (hypothesis examples cannot use tmp_path)."""
        return self.folder / "hostile.amifkey"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("hostile_keys")
    key = synthetic_key()
    write_key(folder / "plain.amifkey", key)
    write_key(folder / "encrypted.amifkey", key, passphrase=PASSPHRASE)
    return Keys(folder, (folder / "plain.amifkey").read_bytes(), (folder / "encrypted.amifkey").read_bytes(), key)


@dataclass(frozen=True)
class Outcome:
    value: Any
    error: Exception | None
    seconds: float
    peak_bytes: int


def measured(call: Callable[[], Any]) -> Outcome:
    """Run ``call`` under tracemalloc and a clock; an exception is returned, not raised."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        value, error = call(), None
    except Exception as caught:  # the caller asserts its type
        value, error = None, caught
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return Outcome(value, error, seconds, peak)


def readers(path: Path, passphrase: str | None) -> dict[str, Callable[[], Any]]:
    return {"read_key_header": lambda: read_key_header(path), "key_needs_passphrase": lambda: key_needs_passphrase(path),
            "read_key": lambda: read_key(path, passphrase)}


def check_bounded(name: str, outcome: Outcome) -> None:
    assert outcome.seconds < MAX_SECONDS, f"{name} took {outcome.seconds:.2f} s"
    assert outcome.peak_bytes < MAX_TRACED_BYTES, f"{name} traced {outcome.peak_bytes / 2**20:.1f} MiB"


def assert_refused(path: Path, data: bytes, passphrase: str | None = None, words: str | None = None) -> None:
    """Every reader refuses ``data`` with a KeyFormatError that names the file, quickly and in little memory."""
    path.write_bytes(data)
    for name, call in readers(path, passphrase).items():
        outcome = measured(call)
        assert type(outcome.error) is KeyFormatError, (name, repr(outcome.error))
        assert str(path) in str(outcome.error), (name, str(outcome.error))
        if words is not None:
            assert words in str(outcome.error), (name, str(outcome.error))
        check_bounded(name, outcome)


def encoded(header: dict) -> bytes:
    return json.dumps(header, ensure_ascii=False).encode()


def crafted(header: dict, payload: bytes) -> bytes:
    """A file around any header object with a valid digest: what an attacker, not a bad disk, produces."""
    return rebuild(encoded(header), payload)


# ---------------------------------------------------------------- damage: the digest catches it


@FUZZ
@given(data=st.data(), encrypted=st.booleans())
def test_any_truncation_or_bit_flip_is_a_format_error_never_a_wrong_passphrase(keys: Keys, data: st.DataObject,
                                                                               encrypted: bool) -> None:
    good = keys.encrypted if encrypted else keys.plain
    if data.draw(st.booleans(), label="truncate"):
        damaged = good[: data.draw(st.integers(0, len(good) - 1), label="length")]
    else:
        position = data.draw(st.integers(0, len(good) - 1), label="position")
        bit = data.draw(st.integers(0, 7), label="bit")
        damaged = good[:position] + bytes([good[position] ^ (1 << bit)]) + good[position + 1 :]
    # With the right passphrase: damage must read as damage, not as a mistyped passphrase.
    assert_refused(keys.path(), damaged, PASSPHRASE)


@FUZZ
@given(header_length=st.integers(0, 2**32 - 1), payload_length=st.integers(0, 2**64 - 1))
def test_any_length_fields_that_disagree_with_the_file_are_refused_before_reading_on(
        keys: Keys, header_length: int, payload_length: int) -> None:
    _, header, payload = parts(keys.plain)
    assume((header_length, payload_length) != (len(header), len(payload)))
    prefix = struct.pack("<12sHIQ", MAGIC, FORMAT_VERSION, header_length, payload_length)
    data = prefix + keys.plain[PREFIX_SIZE:]
    path = keys.path()
    assert_refused(path, data)
    message = str(measured(lambda: read_key_header(path)).error)
    assert any(words in message for words in ("out of bounds", "truncated", "more than its lengths say",
                                              "integrity check")), message


@FUZZ
@given(magic=st.binary(min_size=12, max_size=12).filter(lambda m: m != MAGIC))
def test_any_other_signature_is_not_an_amif_key(keys: Keys, magic: bytes) -> None:
    assert_refused(keys.path(), magic + keys.plain[12:], words="not an AMIF key file")


@FUZZ
@given(noise=st.binary(max_size=400))
def test_arbitrary_bytes_are_not_an_amif_key(keys: Keys, noise: bytes) -> None:
    assert_refused(keys.path(), noise)


@FUZZ
@given(version=st.integers(0, 2**16 - 1).filter(lambda v: v not in READABLE_VERSIONS))
def test_any_unknown_version_is_named(keys: Keys, version: int) -> None:
    data = MAGIC + struct.pack("<H", version) + keys.plain[14:]
    newer = "written by a newer AMIF" if version > FORMAT_VERSION else "reads versions 2, 3, 4, 5, 6 and 7 only"
    assert_refused(keys.path(), data, words=f"key format version {version}")
    assert newer in str(measured(lambda: read_key_header(keys.path())).error)


# ---------------------------------------------------------------- crafted files: a valid digest around anything

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats() | st.text(max_size=80)
    | st.integers(-(2**70), 2**70) | st.sampled_from([-1, 0, 1, 2, 7, 8, 65535, 65536, 2**33, 2**64]),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=12,
)
# Where a crafted value goes: every field, and the nested ones the parser indexes into.
FIELD_PATHS = [
    ("format",), ("amif_version",), ("created_utc",), ("model_id",), ("volume_fingerprint",), ("image_fingerprint",),
    ("axis",), ("shape",), ("shape", 0), ("geometry",), ("geometry", "size"), ("geometry", "size", 2),
    ("geometry", "spacing"), ("geometry", "spacing", 1), ("geometry", "origin"), ("geometry", "direction"),
    ("normalisation",), ("normalisation", "mri"), ("normalisation", "other", "high"), ("identifier",),
    ("identifier_style",), ("identifier_style", "angle_deg"), ("mask_offsets",), ("mask_offsets", 0),
    ("mask_offsets", 0, 1), ("payload",), ("payload", "code_count"), ("payload", "compression"), ("encryption",),
]


def with_value(header: dict, path: tuple, value: Any, delete: bool) -> dict:
    """A deep copy of ``header`` with the field at ``path`` replaced by ``value`` (or deleted)."""
    copy = json.loads(json.dumps(header))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return copy


@FUZZ
@given(path=st.sampled_from(FIELD_PATHS), value=JSON_VALUES, delete=st.booleans())
def test_any_crafted_header_field_is_refused_or_read_back_faithfully(keys: Keys, path: tuple, value: Any,
                                                                     delete: bool) -> None:
    _, header_bytes, payload = parts(keys.plain)
    header = with_value(json.loads(header_bytes), path, value, delete)
    file = keys.path()
    file.write_bytes(crafted(header, payload))
    for name, call in readers(file, None).items():
        outcome = measured(call)
        check_bounded(name, outcome)
        if outcome.error is None:  # the crafted value happens to be valid: it must come back as written
            if name == "read_key_header":  # compared as JSON text: NaN is not equal to itself
                assert json.dumps(outcome.value, sort_keys=True) == \
                    json.dumps({"format_version": FORMAT_VERSION, **header}, sort_keys=True)
            if name == "read_key":
                assert outcome.value.identifier == header["identifier"]
        else:  # read_key, given no passphrase, may also meet a well-formed "encryption" object
            allowed = (KeyFormatError, WrongPassphraseError) if name == "read_key" else (KeyFormatError,)
            assert type(outcome.error) in allowed and str(file) in str(outcome.error), (name, repr(outcome.error))


@FUZZ
@given(data=st.data())
def test_any_crafted_payload_under_a_sound_header_is_refused_or_read(keys: Keys, data: st.DataObject) -> None:
    _, header_bytes, payload = parts(keys.plain)
    header = json.loads(header_bytes)
    code_count = data.draw(st.sampled_from([0, header["payload"]["code_count"]]), label="code_count")
    raw_length = len(zlib.decompress(payload)) - 2 * (header["payload"]["code_count"] - code_count)  # int16 codes
    header["payload"]["code_count"] = code_count
    kind = data.draw(st.sampled_from(["bytes", "zlib of bytes", "zlib of the right length"]), label="kind")
    if kind == "bytes":
        hostile = data.draw(st.binary(min_size=8, max_size=2 * len(payload)), label="payload")
    elif kind == "zlib of bytes":
        hostile = zlib.compress(data.draw(st.binary(max_size=2 * raw_length), label="raw"))
    else:  # the right amount of arbitrary key data: codes, scales and all
        hostile = zlib.compress(data.draw(st.binary(min_size=raw_length, max_size=raw_length), label="raw"))
    file = keys.path()
    file.write_bytes(crafted(header, hostile))
    for name, call in readers(file, None).items():
        outcome = measured(call)
        check_bounded(name, outcome)
        if outcome.error is not None:
            assert type(outcome.error) is KeyFormatError and str(file) in str(outcome.error), (name, outcome.error)
        elif name == "read_key":  # sound arrays of garbage: the shapes the header says, finite scales
            key = outcome.value
            assert key.codes.shape == (code_count,) and key.code_origin.shape == keys.key.code_origin.shape
            origin, step = key.scales(bytes(32))
            assert np.isfinite(origin).all() and np.isfinite(step).all()


# ---------------------------------------------------------------- passphrases


@FEW
@given(attempt=st.text(min_size=1, max_size=40).filter(
    lambda text: unicodedata.normalize("NFC", text) != unicodedata.normalize("NFC", PASSPHRASE)))
def test_an_intact_encrypted_key_with_any_other_passphrase_is_a_wrong_passphrase(keys: Keys, attempt: str) -> None:
    path = keys.path()
    path.write_bytes(keys.encrypted)
    outcome = measured(lambda: read_key(path, attempt))
    assert type(outcome.error) is WrongPassphraseError and "does not open" in str(outcome.error)
    check_bounded("read_key", outcome)


def test_no_or_an_empty_passphrase_on_an_encrypted_key(keys: Keys) -> None:
    path = keys.path()
    path.write_bytes(keys.encrypted)
    with pytest.raises(WrongPassphraseError, match="none was given"):
        read_key(path)
    with pytest.raises(InputError, match="passphrase is empty"):
        read_key(path, "")
    assert_same_key(read_key(path, PASSPHRASE), keys.key)


@FEW
@given(path=st.sampled_from([("identifier",), ("created_utc",), ("volume_fingerprint",), ("axis",),
                             ("normalisation", "mri", "high"), ("encryption", "salt")]), data=st.data())
def test_an_edited_header_of_an_encrypted_key_never_opens(keys: Keys, path: tuple, data: st.DataObject) -> None:
    """The header is AES-GCM associated data: an edit with a recomputed digest cannot slip through."""
    _, header_bytes, payload = parts(keys.encrypted)
    header = json.loads(header_bytes)
    replacements = {
        ("identifier",): st.text(alphabet="ABCxyz019 ", min_size=1, max_size=20).filter(lambda t: t.strip()),
        ("created_utc",): st.just("2000-01-01T00:00:00Z"), ("volume_fingerprint",): st.just("d" * 64),
        ("axis",): st.just(1), ("normalisation", "mri", "high"): st.floats(1, 1e6).filter(lambda v: v != 812.25),
        ("encryption", "salt"): st.just("AAAAAAAAAAAAAAAAAAAAAA=="),
    }
    edited = with_value(header, path, data.draw(replacements[path]), delete=False)
    assert edited != header
    file = keys.path()
    file.write_bytes(crafted(edited, payload))
    outcome = measured(lambda: read_key(file, PASSPHRASE))
    check_bounded("read_key", outcome)
    assert type(outcome.error) in (WrongPassphraseError, KeyFormatError), repr(outcome.error)


@pytest.mark.parametrize(("n", "r", "p", "accepted"), [
    (1 << 16, 8, 1, True),  # the most the reader accepts: 64 MiB, twice what AMIF writes
    (1 << 15, 8, 2, True),
    (1 << 20, 2, 1, False),  # 256 MiB of scrypt memory
    (1 << 20, 2, 16, False),  # ~17 s of CPU before the fix
    (1 << 14, 16, 16, False),
])
def test_crafted_scrypt_parameters_cost_little(keys: Keys, n: int, r: int, p: int, accepted: bool) -> None:
    _, header_bytes, payload = parts(keys.encrypted)
    header = json.loads(header_bytes)
    header["encryption"].update(n=n, r=r, p=p)
    file = keys.path()
    file.write_bytes(crafted(header, payload))
    assert (128 * n * r * p <= MAX_SCRYPT_COST) == accepted
    outcome = measured(lambda: read_key(file, PASSPHRASE))
    check_bounded("read_key", outcome)
    if accepted:  # the scrypt key differs from the writer's: the tag fails
        assert type(outcome.error) is WrongPassphraseError
    else:
        assert type(outcome.error) is KeyFormatError and "at most 64 MiB" in str(outcome.error)


# ---------------------------------------------------------------- huge headers, claimed and real


def header_bomb(kind: str, size: int) -> bytes:
    """``size`` bytes of JSON built to cost json.loads the most memory or recursion per byte."""
    unit = {"empty objects": b"{},", "empty lists": b"[],", "floats": b"0.5,", "strings": b'"ab",'}.get(kind)
    if kind == "deep nesting":
        return b"[" * size
    count = (size - 2) // len(unit)
    body = b"[" + unit * count
    return body[:-1] + b"]" + b" " * (size - len(body))


@pytest.mark.parametrize("kind", ["empty objects", "empty lists", "floats", "strings", "deep nesting"])
def test_the_largest_real_header_is_parsed_in_bounded_memory(keys: Keys, kind: str) -> None:
    _, _, payload = parts(keys.plain)
    header = header_bomb(kind, MAX_HEADER_BYTES)
    assert len(header) == MAX_HEADER_BYTES
    assert_refused(keys.path(), rebuild(header, payload), words="header")


def test_a_header_one_byte_over_the_limit_is_refused_unread(keys: Keys) -> None:
    _, header_bytes, payload = parts(keys.plain)
    header = json.loads(header_bytes)
    header["future_field"] = ""
    padding = MAX_HEADER_BYTES + 1 - len(encoded(header))
    header["future_field"] = "x" * padding
    data = crafted(header, payload)
    assert len(parts(data)[1]) == MAX_HEADER_BYTES + 1
    assert_refused(keys.path(), data, words=f"header length {MAX_HEADER_BYTES + 1} is out of bounds")
    header["future_field"] = "x" * (padding - 1)  # at the limit, an unknown field is ignored
    keys.path().write_bytes(crafted(header, payload))
    outcome = measured(lambda: read_key(keys.path()))
    check_bounded("read_key", outcome)
    assert_same_key(outcome.value, keys.key)


def test_the_largest_header_amif_writes_fits_the_limit() -> None:
    """The 1 MiB limit is no stricter than the writer: 65535 slices of 65535 x 65535 with 5-digit offsets."""
    side = 65535
    core = Key(codes=np.zeros(0, np.int16), code_origin=np.zeros(0, np.uint32), code_step=np.zeros(0, np.uint32),
               shape=(side, side, side), fingerprint="a" * 64,
               signature=np.zeros(0, np.float32), model_id="b" * 64, identifier="\u00a9" * 64,
               identifier_style={"font_fraction": 0.123456789012345, "angle_deg": -30.123456789012345,
                                 "coverage": 0.123456789012345, "transpose": False, "flip_rows": False,
                                 "flip_cols": False},
               normalisation={part: {"low": -1.2345678901234567e300, "high": 1.2345678901234567e300}
                              for part in ("mri", "other")},
               mask_offsets=np.full((side, 2), side, dtype=np.int64))
    key = dataclasses.replace(core, axis=0, size=(side, side, side), spacing=(1.2345678901234567e-300,) * 3,
                    origin=(-1.2345678901234567e300,) * 3, direction=(-0.12345678901234567,) * 9,
                    volume_fingerprint="c" * 64)
    encryption = {"kdf": "scrypt", **keyfile.SCRYPT, "salt": "A" * 88, "cipher": "AES-256-GCM", "nonce": "A" * 16}
    header = json.dumps(build_header(key, encryption), ensure_ascii=False, separators=(",", ":")).encode()
    assert len(header) < MAX_HEADER_BYTES


# ---------------------------------------------------------------- in a child interpreter

CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from amif_core.key.file import read_key

    def kib(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])

    for name in sys.argv[2:]:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # reset the peak resident size (VmHWM) to the current one
        before = kib("VmRSS")
        try:
            read_key(Path(sys.argv[1]) / name, "correct horse \\u00e9")
            outcome = "read"
        except Exception as error:
            outcome = type(error).__name__
        print(name, outcome, (kib("VmHWM") - before) // 1024, flush=True)
""")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures peak resident memory through Linux /proc")
def test_the_nastiest_files_do_not_crash_or_bloat_a_fresh_interpreter(keys: Keys, tmp_path: Path) -> None:
    _, header_bytes, payload = parts(keys.encrypted)
    costly = json.loads(header_bytes)
    costly["encryption"].update(n=1 << 16, r=8, p=1)
    files = {
        "objects.amifkey": rebuild(header_bomb("empty objects", MAX_HEADER_BYTES), payload),
        "nesting.amifkey": rebuild(header_bomb("deep nesting", MAX_HEADER_BYTES), payload),
        "scrypt.amifkey": crafted(costly, payload),
        "inflate.amifkey": rebuild(parts(keys.plain)[1], zlib.compress(b"\x00" * (64 << 20))),
        "lengths.amifkey": keys.plain[:14] + struct.pack("<IQ", 2**32 - 1, 2**64 - 1) + keys.plain[26:],
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    child = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), *files], capture_output=True, cwd=REPO,
                           timeout=120)
    report = child.stdout.decode("utf-8", "replace")
    assert child.returncode == 0, child.stderr.decode("utf-8", "replace")[-2000:]
    outcomes = {line.split()[0]: (line.split()[1], int(line.split()[2])) for line in report.splitlines()}
    assert {name: outcome for name, (outcome, _) in outcomes.items()} == {
        "objects.amifkey": "KeyFormatError", "nesting.amifkey": "KeyFormatError",
        "scrypt.amifkey": "WrongPassphraseError", "inflate.amifkey": "KeyFormatError",
        "lengths.amifkey": "KeyFormatError"}
    # Peak resident growth per file, allocations outside Python included: scrypt's cap (64 MiB) is the largest.
    assert max(mib for _, mib in outcomes.values()) < 80, report
