"""``amif attack-eval``: run every attack on the validation patients and score it.

1. Every validation slice (at most ``limit`` per pair) is protected exactly
   as a user's 2D slice would be.
2. Leaked pairs: a seeded random order of the training slices; for each
   budget (10, 100, all) the first that many are protected the same way and
   paired with their clean fusion, and one U-Net remover is trained per budget
   (same steps and seed for each).
3. The key-only attackers: one U-Net fed each training slice's key (its
   stored codes laid out as an image), its control fed the same layout of
   random codes on the same support, and one fed only its mask (inpainting
   from a blank image), all trained on all the leaked pairs with the
   removers' steps and seed (:mod:`~amif_core.evaluation.attacks.key_only`).
   The random codes are drawn from their own generators seeded by ``seed``.
4. On every validation slice, the protected image, the authorized unlock and
   every attack's output are scored against the clean fusion
   (:mod:`~amif_core.evaluation.attacks.scoring`). The white-box forward solve
   (:mod:`~amif_core.evaluation.attacks.white_box`, slow) runs on the first
   ``white_box_limit`` slices per pair only.

The "other slice" wrong key is the key of the nearest other evaluated slice of
the same patient; the "other volume" key is that of a randomly drawn evaluated
slice of another patient. A slice without such a neighbour skips that row.

In colour (``colour=True``) the MRI-PET and MRI-SPECT slices are protected in
colour from the Harvard RGB as it is, and scored in RGB against the clean
colour fusion. The attacks that see the image (inpainting, the estimated
mask, filters and JPEG, now on RGB) and the wrong keys (luma and chroma codes
forged alike) run as in grey. The U-Nets, the forward solve and the flow
attacks do not: they act on the luma, and the luma of a colour-protected
slice is a grey-protected image made by the same network, so the grey run
already measures them; the chroma under the strokes is only in the key.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from amif_core.data.harvard import (
    PAIRS,
    PairRecord,
    read_pair,
    read_records,
    read_rgb,
    source_paths,
    split_records,
)
from amif_core.errors import InputError
from amif_core.evaluation.attacks import (
    filters,
    inpainting,
    key_only,
    mask_estimation,
    scoring,
    white_box,
    wrong_keys,
)
from amif_core.evaluation.attacks.remover import (
    RemoverConfig,
    UNet,
    remove,
    train_remover,
)
from amif_core.evaluation.attacks.wrong_keys import wrong_key
from amif_core.evaluation.fusion import COLOUR_PAIRS
from amif_core.inference.model import AMIFModel
from amif_core.key.core import Key
from amif_core.transforms.colour import slice_luma
from amif_core.transforms.intensity import fit_normalisation

REFERENCES = {"protected": "protected image (no attack)", "unlocked": "authorized unlock (true key)"}
INPAINTING = {"telea_true": "Telea inpainting, true mask", "ns_true": "Navier-Stokes inpainting, true mask",
              "biharmonic_true": "biharmonic inpainting, true mask",
              "telea_estimated": "Telea inpainting, estimated mask"}
WHITE_BOX = {"white_box_solve": "white box: forward-map solve through the public weights, exact mask",
             "white_box_flow_mean": "white box: pad from p, flow inverse at y2 = 0"}
KEY_ONLY = {"key_only_flow": "key only: flow inverse from a blank image",
            "random_flow": "control: flow inverse from a blank image, random codes on the key's support",
            "key_only_unet": "key only: U-Net fed the key, all leaked pairs",
            "random_unet": "control: U-Net fed random codes on the key's support, all leaked pairs",
            "blank_unet": "no key, no image: U-Net fed the mask only (blank-image inpainting)"}
TISSUE = 0.1  # clean-fusion level counted as tissue when choosing the picture's slice
TRAIN_CONTROL, ATTACK_CONTROL = 1, 2  # streams of the random-code controls' generators, beside the seed


@dataclass
class Case:
    """One protected validation slice: normalised sources ``a``, ``b`` (the second scan's luma), (H, W),
    ``clean`` and ``protected``, (H, W) or (H, W, 3) RGB in colour, all float32 in [0, 1], and its ``key``."""

    record: PairRecord
    a: np.ndarray
    b: np.ndarray
    clean: np.ndarray
    protected: np.ndarray
    key: Key


@dataclass
class AttackEval:
    """What :func:`run_attack_eval` returns.

    ``result``: JSON-ready dict (see :func:`run_attack_eval`); ``picture``:
    ``{row: (H, W) float32 image}`` for the slice ``picture_slice``, the
    evaluated slice with the most tissue.
    """

    result: dict
    picture: dict[str, np.ndarray]
    picture_slice: str


def labels(budgets: dict[str, int]) -> dict[str, str]:
    """Row id -> table label, in table order, for remover ``budgets`` ({row id: leaked pairs})."""
    rows = dict(REFERENCES)
    rows.update(INPAINTING)
    rows.update(WHITE_BOX)
    rows.update({row: f"U-Net remover, {count} leaked pairs" for row, count in budgets.items()})
    rows.update(KEY_ONLY)
    rows.update({f"key_{kind}": f"wrong key: {wrong_keys.LABELS[kind]}" for kind in wrong_keys.KINDS})
    rows.update({f"median{size}": f"median filter {size}x{size}" for size in filters.MEDIAN_SIZES})
    rows.update({f"jpeg{quality}": f"JPEG quality {quality}" for quality in filters.JPEG_QUALITIES})
    return rows


def resolve_budgets(leaked: Sequence[int | str], available: int) -> dict[str, int]:
    """Map budgets (counts or "all") to ``{row id: pair count}``; InputError if a count exceeds ``available``."""
    budgets = {}
    for budget in leaked:
        count = available if budget == "all" else int(budget)
        if not 0 < count <= available:
            raise InputError("A leaked-pairs budget must be between 1 and {available} (the training slices), "
                             "got {budget}.", available=available, budget=budget)
        budgets[f"unet_{budget}"] = count
    return budgets


def leaked_pairs(model: AMIFModel, data: Path, records: list[PairRecord], quiet: bool
                 ) -> tuple[np.ndarray, np.ndarray, list[Key]]:
    """Protect each training slice in ``records``; returns (protected, clean, keys), images (N, H, W) float32 in [0, 1]."""
    protected, clean, keys = [], [], []
    for record in tqdm(records, desc="attack-eval/leaked pairs", disable=quiet, dynamic_ncols=True):
        mri, other = read_pair(data, record)
        result = model.protect(mri, other)
        protected.append(result.image)
        keys.append(result.key)
        clean.append(model.fuse_clean(mri, other))
    return np.stack(protected), np.stack(clean), keys


def train_removers(model: AMIFModel, data: Path, budgets: dict[str, int], config: RemoverConfig, seed: int,
                   quiet: bool) -> dict[str, UNet]:
    """One U-Net per budget, trained on the first ``count`` slices of a seeded order of the training patients,
    plus the key-only U-Nets ("key_only_unet", its control "random_unet", and "blank_unet") trained on all of them."""
    if not budgets:
        return {}
    train = split_records(read_records(data), "train")
    order = np.random.default_rng(seed).permutation(len(train))
    protected, clean, keys = leaked_pairs(model, data, [train[i] for i in order[: max(budgets.values())]], quiet)
    inputs = dict.fromkeys(budgets, protected)
    inputs["key_only_unet"] = np.stack([key_only.key_view(model, key) for key in keys])
    control = np.random.default_rng([seed, TRAIN_CONTROL])
    inputs["random_unet"] = np.stack([key_only.key_view(model, wrong_key(key, "random", None, control))
                                      for key in keys])
    inputs["blank_unet"] = np.stack([key_only.blank_view(model, key) for key in keys])
    removers = {}
    for row, images in tqdm(inputs.items(), desc="attack-eval/removers", disable=quiet, dynamic_ncols=True):
        count = budgets.get(row, len(images))
        removers[row] = train_remover(images[:count], clean[:count], config, seed, model.device)
    return removers


def protect_cases(model: AMIFModel, data: Path, limit: int | None, quiet: bool, colour: bool = False) -> list[Case]:
    """Protect at most ``limit`` validation slices per pair (all when None); in colour, the MRI-PET and
    MRI-SPECT slices from their Harvard RGB."""
    records = split_records(read_records(data), "val")
    chosen = [r for pair in (COLOUR_PAIRS if colour else PAIRS) for r in [r for r in records if r.pair == pair][:limit]]
    cases = []
    for record in tqdm(chosen, desc="attack-eval/protect", disable=quiet, dynamic_ncols=True):
        mri, other = read_pair(data, record)
        partner = read_rgb(source_paths(data, record)[1]) if colour else other
        protected = model.protect(mri, partner)
        cases.append(Case(record, fit_normalisation(mri).apply(mri), fit_normalisation(other).apply(other),
                          model.fuse_clean(mri, partner), protected.image, protected.key))
    return cases


def other_keys(cases: list[Case], index: int, rng: np.random.Generator) -> dict[str, Key | None]:
    """The "other_slice" and "other_volume" keys for ``cases[index]`` (None when there is none)."""
    volume = (cases[index].record.pair, cases[index].record.patient)
    same = [i for i, c in enumerate(cases) if i != index and (c.record.pair, c.record.patient) == volume]
    others = [i for i, c in enumerate(cases) if c.record.patient != volume[1]]
    nearest = min(same, key=lambda i: abs(i - index)) if same else None
    return {"other_slice": cases[nearest].key if nearest is not None else None,
            "other_volume": cases[int(rng.choice(others))].key if others else None}


def attack(model: AMIFModel, case: Case, mask: np.ndarray, estimated: np.ndarray, removers: dict[str, UNet],
           others: dict[str, Key | None], rng: np.random.Generator, evaluations: int,
           control: np.random.Generator) -> dict[str, np.ndarray]:
    """Every row's image for one case: ``{row id: (H, W) float32 in [0, 1]}``.

    ``mask``: the true identifier mask, ``estimated``: the estimated one, (H, W) uint8 {0, 1};
    ``evaluations``: of the (slow) white-box forward solve; 0 skips it; ``control`` draws the random codes
    of the key-only controls. A colour case (RGB ``case.protected``) gets the image attacks and the wrong
    keys only, each (H, W, 3) (see the module notes).
    """
    p, key = case.protected, case.key
    out = {"protected": p, "unlocked": model.unlock(p, key),
           "telea_true": inpainting.inpaint_telea(p, mask), "ns_true": inpainting.inpaint_navier_stokes(p, mask),
           "biharmonic_true": inpainting.inpaint_biharmonic(p, mask),
           "telea_estimated": inpainting.inpaint_telea(p, estimated)}
    if p.ndim == 2:
        random_key = wrong_key(key, "random", None, control)
        out.update({"white_box_flow_mean": white_box.flow_mean_unlock(model, p, key),
                    "key_only_flow": key_only.blank_flow_inverse(model, key),
                    "random_flow": key_only.blank_flow_inverse(model, random_key)})
        if evaluations > 0:
            out["white_box_solve"] = white_box.solve_forward(model.net, p, mask, evaluations)[0]
        views = {"key_only_unet": key_only.key_view(model, key), "random_unet": key_only.key_view(model, random_key),
                 "blank_unet": key_only.blank_view(model, key)}
        out.update({row: remove(net, views.get(row, p)) for row, net in removers.items()})
    for kind in wrong_keys.KINDS:
        if not kind.startswith("other_") or others[kind] is not None:
            out[f"key_{kind}"] = wrong_keys.forced_unlock(model, p, key, kind, others.get(kind), rng)
    out.update({f"median{size}": filters.median(p, size) for size in filters.MEDIAN_SIZES})
    out.update({f"jpeg{quality}": filters.jpeg(p, quality) for quality in filters.JPEG_QUALITIES})
    return out


def run_attack_eval(model: AMIFModel, data: Path, limit: int | None = None,
                    leaked: Sequence[int | str] = (10, 100, "all"), config: RemoverConfig = RemoverConfig(),
                    seed: int = 0, quiet: bool = False, white_box_limit: int = 10,
                    evaluations: int = white_box.EVALUATIONS, colour: bool = False) -> AttackEval:
    """Run the whole benchmark on the validation patients.

    ``limit``: at most that many validation slices per pair; ``leaked``: remover
    budgets (pair counts or "all"); ``config``: remover training; ``seed``
    seeds every random choice; ``quiet`` hides the progress bars;
    ``white_box_limit``: the forward solve runs on the first that many slices per pair,
    ``evaluations`` forward-backward passes each; ``colour``: attack the
    MRI-PET and MRI-SPECT slices protected in colour (no removers, forward
    solve or flow attacks; see the module notes), so ``leaked`` must be empty.

    ``result`` holds: labels ({row: label}), summary ({row: {figure: mean}}),
    gaps (see :func:`scoring.gaps`), mask_estimate (mean precision and recall
    of the estimated mask), mask_recovery (slices whose mask the white-box
    attacker recovered exactly, of how many), bars (see
    :func:`scoring.inpainting_bars`), slices ({pair: count}), leaked ({row: pairs}),
    remover (the config), seed, model_id, psnr_cap_db, bar_db and per_slice
    (one {pair, file, figures: {row: {figure: value}}} per slice).
    """
    if colour and leaked:
        raise InputError("In colour, attack-eval trains no U-Net removers (they act on the luma, which the grey "
                         "run measures); pass --leaked '' with --colour.")
    budgets = resolve_budgets(leaked, len(split_records(read_records(data), "train")))
    cases = protect_cases(model, data, limit, quiet, colour)
    if not cases:
        raise InputError("No validation slices to attack (check --data and --limit).")
    removers = train_removers(model, data, budgets, config, seed, quiet)
    rng, control = np.random.default_rng(seed), np.random.default_rng([seed, ATTACK_CONTROL])
    per_slice, precision, recall, exact = [], [], [], []
    solved: dict[str, int] = {}
    picture, picture_slice, most_tissue = {}, "", -1.0
    for index, case in enumerate(tqdm(cases, desc="attack-eval/attack", disable=quiet, dynamic_ncols=True)):
        mask = model.identifier_mask(case.key).reshape(case.protected.shape[:2])
        seen = slice_luma(case.protected)
        estimated = mask_estimation.estimate_mask(seen)
        style = case.key.identifier_style
        exact.append(bool(np.array_equal(white_box.recover_mask(seen, case.key.identifier, style), mask)))
        solve = solved.get(case.record.pair, 0) < white_box_limit
        solved[case.record.pair] = solved.get(case.record.pair, 0) + solve
        images = attack(model, case, mask, estimated, removers, other_keys(cases, index, rng), rng,
                        evaluations if solve else 0, control)
        per_slice.append({row: scoring.score(image, case.clean, mask, case.a, case.b) for row, image in images.items()})
        found, caught = mask_estimation.precision_recall(estimated, mask)
        precision.append(found)
        recall.append(caught)
        tissue = float((slice_luma(case.clean) > TISSUE).mean())
        if tissue > most_tissue:
            picture, picture_slice, most_tissue = images, f"{case.record.pair}/{case.record.file}", tissue
    result = {
        "labels": labels(budgets),
        "summary": scoring.summarise(per_slice),
        "gaps": scoring.gaps(per_slice),
        "mask_estimate": {"precision": float(np.nanmean(precision)), "recall": float(np.nanmean(recall))},
        "mask_recovery": {"exact": int(sum(exact)), "slices": len(exact)},
        "bars": scoring.inpainting_bars(per_slice),
        "slices": {pair: sum(c.record.pair == pair for c in cases) for pair in (COLOUR_PAIRS if colour else PAIRS)},
        "leaked": budgets,
        "remover": asdict(config),
        "seed": seed,
        "colour": colour,
        "model_id": model.model_id,
        "psnr_cap_db": scoring.PSNR_CAP,
        "bar_db": scoring.BAR_DB,
        "white_box_evaluations": evaluations,
        "picture_slice": picture_slice,
        "per_slice": [{"pair": c.record.pair, "file": c.record.file, "figures": figures}
                      for c, figures in zip(cases, per_slice)],
    }
    return AttackEval(result, picture, picture_slice)
