"""Checks on the real Harvard pairs (../shared/data/harvard); they skip, saying so, where it is absent."""
from __future__ import annotations

from pathlib import Path

import numpy as np

import amif_core
from amif_core.data.harvard import (
    PAIRS,
    VALIDATION_PATIENTS,
    read_pair,
    read_records,
    split_records,
)
from amif_core.evaluation.attacks.wrong_keys import SAME_SHAPE_KINDS
from amif_core.evaluation.fusion import protection_figures


def test_the_split_holds_out_whole_patients(harvard: Path) -> None:
    records = read_records(harvard)
    assert {pair: sum(r.pair == pair for r in records) for pair in PAIRS} == {
        "CT-MRI": 149, "PET-MRI": 269, "SPECT-MRI": 322}
    train, val = split_records(records, "train"), split_records(records, "val")
    assert (len(train), len(val)) == (534, 206)
    for pair in PAIRS:
        train_patients = {r.patient for r in train if r.pair == pair}
        val_patients = {r.patient for r in val if r.pair == pair}
        assert val_patients == set(VALIDATION_PATIENTS[pair]) and not train_patients & val_patients


def test_shipped_weights_meet_the_protection_criteria_on_real_validation_slices(
        harvard: Path, model: amif_core.AMIFModel) -> None:
    """The middle validation slice of each pair, with the shipped weights (the full run: `amif evaluate`)."""
    rng = np.random.default_rng(0)
    val = split_records(read_records(harvard), "val")
    for pair in PAIRS:
        chosen = [r for r in val if r.pair == pair]
        first, middle = chosen[0], chosen[len(chosen) // 2]
        _, _, other_key = protection_figures(model, *read_pair(harvard, first), None, rng)
        figures, _, _ = protection_figures(model, *read_pair(harvard, middle), other_key, rng)
        assert figures["unlock_psnr"] >= 50 and figures["unlock_psnr_16bit"] >= 50, (pair, figures)
        assert figures["unlock_psnr_stored"] >= 50, (pair, figures)  # from the 16-bit (8-bit RGB) integers
        assert 0.08 <= figures["mask_coverage"] <= 0.25, (pair, figures)
        assert figures["mask_mean_abs"] >= 0.25 and figures["outside_psnr"] == float("inf"), (pair, figures)
        for kind in SAME_SHAPE_KINDS:
            assert figures[f"mask_psnr_{kind}"] <= figures["mask_psnr_fill"], (pair, kind, figures)
