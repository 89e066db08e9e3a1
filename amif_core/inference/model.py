"""The inference engine: ``AMIFModel.protect``, ``unlock`` and ``fuse_clean`` on numpy arrays.

Inputs are (H, W) slices or (D, H, W) volumes, processed slice by slice along
axis 0 in batches. The second scan may be RGB, (H, W, 3) or (D, H, W, 3), or
scalar with a colour table: the network fuses its luma and the result is RGB
with its chroma (:mod:`amif_core.inference.pair`). Each slice is padded (edge replication) to a multiple of 8,
run through the network and cropped back, so any size works. Intensities are
normalised per volume with robust percentiles (see
:mod:`amif_core.transforms.intensity`), exactly as in training.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from amif_core.constants import DEFAULT_BATCH_SIZE, DEFAULT_IDENTIFIER, padded
from amif_core.errors import CancelledError, InputError, KeyMismatchError
from amif_core.inference.pair import Pair, as_volume, prepare_pair
from amif_core.key import codec
from amif_core.key.check import check_fits
from amif_core.key.core import Key, image_fingerprint, image_signature
from amif_core.key.storage import quantise
from amif_core.networks.amif import AMIFNet
from amif_core.runtime.callbacks import Cancel, Progress
from amif_core.transforms.colour import chroma, compose, luma, rgb_from
from amif_core.transforms.identifier import IdentifierStyle, validate_identifier
from amif_core.transforms.identifier_masks import identifier_masks
from amif_core.transforms.identifier_volume import VolumePlanes
from amif_core.tracing.mark import TraceMark
from amif_core.tracing.secret import DEMO_SECRET, OwnerSecret
from amif_core.transforms.intensity import Normalisation, fit_normalisation


@dataclass
class Protected:
    """Result of :meth:`AMIFModel.protect`.

    ``image``: float32 in [0, 1], identifier visible: the MRI's shape, plus a
    trailing 3 (RGB) for a colour fusion.
    ``key``: the :class:`~amif_core.key.core.Key` that unlocks it.
    """

    image: np.ndarray
    key: Key


def _batches(count: int, size: int) -> Iterator[slice]:
    for start in range(0, count, size):
        yield slice(start, min(count, start + size))


def _inputs_seed(mri: np.ndarray, other: np.ndarray, identifier: str) -> int:
    digest = hashlib.sha256(identifier.encode())
    for volume in (mri, other):
        digest.update(repr((volume.shape, volume.dtype.str)).encode())
        for plane in volume:
            digest.update(np.ascontiguousarray(plane).tobytes())
    return int.from_bytes(digest.digest()[:8], "little")


class AMIFModel:
    """A loaded AMIF model. Use :func:`amif_core.load_model` to make one.

    Every call takes ``batch_size``, the slices run at once (results do not
    depend on it), so one model can serve runs with different memory plans.
    """

    def __init__(self, net: AMIFNet, device: torch.device, model_id: str, metadata: dict) -> None:
        self.net = net.to(device=device, memory_format=torch.channels_last).eval()
        self.device = device
        self.model_id = model_id
        self.metadata = metadata

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        h, w = array.shape[-2:]
        t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)[:, None]).to(self.device)
        grown = F.pad(t, (0, padded(w) - w, 0, padded(h) - h), mode="replicate")
        return grown.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def _tick(done: int, total: int, progress: Progress | None, cancel: Cancel | None) -> None:
        if cancel is not None and cancel():
            raise CancelledError("Cancelled by the user; nothing was written.")
        if progress is not None:
            progress(done, total)

    def _released_batches(self, pair: Pair, batch_size: int, progress: Progress | None, cancel: Cancel | None,
                          mark: TraceMark | None) -> Iterator[tuple[slice, np.ndarray, Normalisation, Normalisation]]:
        """Per batch of slices: the released fusion, (B, H, W) grey or (B, H, W, 3) RGB float32 in [0, 1]
        (the network's fusion, composed in colour for a colour pair, plus ``mark``), and the two normalisations."""
        norm_a, norm_b = fit_normalisation(pair.mri), fit_normalisation(pair.other)
        depth, h, w = pair.mri.shape
        self._tick(0, depth, progress, cancel)
        for part in _batches(depth, batch_size):
            a, b = norm_a.apply(pair.mri[part]), norm_b.apply(pair.other[part])
            with torch.inference_mode():
                fused = self.net.fuse(self._tensor(a), self._tensor(b))[:, 0, :h, :w].cpu().numpy()
            if pair.cbcr is not None:
                fused = compose(fused, a, pair.other[part], pair.cbcr[part])
            yield part, (fused if mark is None else mark.apply(fused, a, b)), norm_a, norm_b
            self._tick(part.stop, depth, progress, cancel)

    def fuse_clean(self, mri: np.ndarray, other: np.ndarray, colour_table: str | None = None,
                   progress: Progress | None = None, cancel: Cancel | None = None,
                   batch_size: int = DEFAULT_BATCH_SIZE, owner: OwnerSecret | None = DEMO_SECRET) -> np.ndarray:
        """The identifier-free fusion: what :meth:`unlock` returns for :meth:`protect`'s image, for the model
        owner's training and evaluation.

        ``mri`` and ``other`` as in :meth:`protect`. ``owner``: the secret whose
        trace mark the fusion carries (:mod:`amif_core.tracing`), as in
        :meth:`protect`; None gives the network's unmarked fusion, the
        reference that :mod:`amif_core.tracing.detect` compares a suspect with.
        Returns float32 in [0, 1]: the MRI's shape, plus a trailing 3 (RGB) for a colour fusion.
        """
        pair = prepare_pair(mri, other, colour_table)
        out = np.empty(pair.mri.shape + ((3,) if pair.cbcr is not None else ()), dtype=np.float32)
        mark = None if owner is None else TraceMark.from_secret(owner)
        for part, released, _, _ in self._released_batches(pair, batch_size, progress, cancel, mark):
            out[part] = released
        return out.reshape(pair.shape)

    def _mask_tensor(self, masks: np.ndarray, hp: int, wp: int) -> torch.Tensor:
        h, w = masks.shape[-2:]
        mask = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32)[:, None]).to(self.device)
        return F.pad(mask, (0, wp - w, 0, hp - h), mode="replicate")

    def protect(self, mri: np.ndarray, other: np.ndarray, identifier: str = DEFAULT_IDENTIFIER,
                style: IdentifierStyle = IdentifierStyle(), colour_table: str | None = None,
                progress: Progress | None = None, cancel: Cancel | None = None,
                batch_size: int = DEFAULT_BATCH_SIZE, levels: int | None = None,
                owner: OwnerSecret = DEMO_SECRET, planes: VolumePlanes | None = VolumePlanes()) -> Protected:
        """Fuse and protect: returns the image with the identifier burnt in, and its key.

        ``mri``: (H, W) or (D, H, W), greyscale, any real dtype and intensity
        range (normalised here, per volume). ``other``: the same shape (grey
        fusion), or RGB with a trailing 3 (uint8, or float in [0, 1]); with
        ``colour_table`` (a key of ``amif_core.COLOUR_TABLES``) a scalar
        ``other`` is mapped into colour first. A colour fusion is RGB: a luma
        built from the fused luma, ``other``'s luma and the MRI's detail, with
        ``other``'s chroma (:func:`amif_core.transforms.colour.compose`), and grey ink on the strokes, whose
        chroma goes into the key. ``identifier``: the owner's text.
        ``progress(done, total)`` is called per batch of slices; ``cancel()``
        returning True stops with :class:`CancelledError`. The image equals
        the clean fusion outside the strokes and the ink on them; the result
        is deterministic for the same inputs on the same device. ``levels``
        (see :mod:`amif_core.key.storage`): round the image to multiples of
        1 / ``levels`` before its key is made, so integers hold it exactly.
        ``owner``: the secret that chooses the invisible trace mark the fusion
        carries (:mod:`amif_core.tracing`); the public demo secret by default.
        A volume gets the 3D identifier, laid on the voxel grid that
        ``planes`` describes (default: the array's own); a 2D slice, a
        volume too thin for text across it, or ``planes=None`` (a stack of
        unrelated slices), the tiled 2D one on each slice
        (:func:`~amif_core.transforms.identifier_masks.identifier_masks`).
        """
        identifier = validate_identifier(identifier)
        pair = prepare_pair(mri, other, colour_table)
        depth, h, w = pair.mri.shape
        hp, wp = padded(h), padded(w)
        colour = pair.cbcr is not None
        volume = len(pair.shape) == (4 if colour else 3)
        all_masks, offsets, tile = identifier_masks(identifier, pair.mri.shape, style, planes if volume else None,
                                                       _inputs_seed(pair.mri, pair.other, identifier))
        image = np.empty(pair.mri.shape + ((3,) if colour else ()), dtype=np.float32)
        origin = np.zeros((depth, 4), dtype=np.float32)
        step = np.zeros((depth, 4), dtype=np.float32)
        codes, chroma_codes = [], []
        mark = TraceMark.from_secret(owner)
        for part, clean, norm_a, norm_b in self._released_batches(pair, batch_size, progress, cancel, mark):
            masks = all_masks[part]
            if colour:
                chroma_codes.append(codec.encode_chroma(chroma(clean), masks))
            fused = torch.from_numpy(luma(clean)[:, None] if colour else clean[:, None]).to(self.device)
            fused = F.pad(fused, (0, wp - w, 0, hp - h), mode="replicate")
            with torch.inference_mode():
                protected, key, _ = self.net.protect(fused, self._mask_tensor(masks, hp, wp))
            grey = protected[:, 0, :h, :w].cpu().numpy()
            image[part] = np.where(masks[..., None] > 0, grey[..., None], clean) if colour else grey
            part_codes, origin[part], step[part] = codec.encode(key.cpu().numpy(), codec.support_masks(masks, (hp, wp)))
            codes.append(part_codes)
        image = image.reshape(pair.shape)
        if levels is not None:
            image = quantise(image, levels)
        seed = codec.pad_seed(image)
        codes = np.concatenate(codes)
        origin_words, step_words = codec.pad_scale(*codec.scale_words(origin, step), seed, +1)
        key = Key(
            codes=codec.apply_pad(codes, seed, 0, +1),
            code_origin=origin_words,
            code_step=step_words,
            shape=pair.shape,
            fingerprint=image_fingerprint(image),
            signature=image_signature(image, colour),
            model_id=self.model_id,
            identifier=identifier,
            identifier_style=asdict(style),
            normalisation={"mri": norm_a.to_dict(), "other": norm_b.to_dict()},
            mask_offsets=offsets,
            identifier_lattice=tile.to_dict() if tile is not None else None,
            colour=pair.colour,
            chroma_codes=(codec.apply_pad(np.concatenate(chroma_codes), seed, codes.size, +1) if colour
                          else np.zeros(0, np.int16)),
            levels=levels,
        )
        return Protected(image=image, key=key)

    def unlock(self, image: np.ndarray, key: Key, verify: bool = True, progress: Progress | None = None,
               cancel: Cancel | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Recover the clean fusion from a protected image and its key.

        ``image``: array in [0, 1] as returned by :meth:`protect`, grey or RGB.
        Raises :class:`~amif_core.errors.KeyMismatchError` (or a subclass) when
        the key does not belong to the image; ``verify=False`` skips that
        check (for a caller that checked already, and for evaluating wrong
        keys). Returns float32 in [0, 1] of the image's shape.
        """
        if verify:
            check_fits(key, self.model_id, np.asarray(image))
        elif tuple(np.shape(image)) != tuple(key.shape):
            raise InputError("Image shape {shape} differs from the key's {key_shape}.", shape=np.shape(image),
                             key_shape=tuple(key.shape))
        colour = key.colour is not None
        rgb = np.asarray(image, dtype=np.float32).reshape((-1,) + tuple(key.shape[-3:])) if colour else None
        volume = as_volume("protected image", luma(rgb) if colour else image).astype(np.float32, copy=False)
        depth, h, w = volume.shape
        hp, wp = padded(h), padded(w)
        masks = self.identifier_mask(key).reshape(volume.shape)
        supports = codec.support_masks(masks, (hp, wp))
        ends = np.cumsum(codec.code_counts(supports))
        chroma_ends = np.cumsum(2 * masks.reshape(depth, -1).sum(axis=1)) if colour else None
        if key.codes.size != ends[-1]:
            raise KeyMismatchError("The key holds {held} codes, but its identifier placement needs {needed}. Use the "
                                   "key that was written with this protected image.", held=key.codes.size,
                                   needed=int(ends[-1]))
        chroma_needed = int(chroma_ends[-1]) if colour else 0
        if key.chroma_codes.size != chroma_needed:
            raise KeyMismatchError("The key holds {held} chroma codes, but its identifier placement needs {needed}. "
                                   "Use the key that was written with this protected image.",
                                   held=key.chroma_codes.size, needed=chroma_needed)
        seed = codec.pad_seed(np.asarray(image, dtype=np.float32))
        code_origin, code_step = key.scales(seed)
        out = np.empty(volume.shape, dtype=np.float32) if not colour else rgb.copy()
        self._tick(0, depth, progress, cancel)
        for part in _batches(depth, batch_size):
            start = int(ends[part.start - 1]) if part.start else 0
            plain = codec.apply_pad(key.codes[start : int(ends[part.stop - 1])], seed, start, -1)
            bands = codec.decode(plain, code_origin[part], code_step[part], supports[part])
            protected = F.pad(torch.from_numpy(np.array(volume[part][:, None])).to(self.device), (0, wp - w, 0, hp - h),
                              mode="replicate")
            with torch.inference_mode():
                clean = self.net.unlock(protected, torch.from_numpy(bands).to(self.device),
                                        self._mask_tensor(masks[part], hp, wp))
            grey = np.clip(np.nan_to_num(clean[:, 0, :h, :w].cpu().numpy(), nan=0.0), 0.0, 1.0)
            if colour:
                first = int(chroma_ends[part.start - 1]) if part.start else 0
                cbcr = codec.decode_chroma(codec.apply_pad(key.chroma_codes[first : int(chroma_ends[part.stop - 1])],
                                                           seed, key.codes.size + first, -1), masks[part])
                covered = masks[part] > 0
                out[part][covered] = rgb_from(grey[covered], cbcr[covered])
            else:
                out[part] = grey
            self._tick(part.stop, depth, progress, cancel)
        return out.reshape(np.shape(image))

    def identifier_mask(self, key: Key) -> np.ndarray:
        """The identifier mask a key was made with: uint8 {0, 1}, shape ``key.shape`` (see :meth:`Key.identifier_mask`)."""
        return key.identifier_mask()
