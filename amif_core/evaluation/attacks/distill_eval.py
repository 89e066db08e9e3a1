"""``amif attack-eval --distill``: students of AMIF's released images, and whether the owner can trace them.

1. The attacker's data: every training-patient slice protected under the
   owner's secret (and, for the control student, under another secret); the
   strokes recovered from each protected image alone; for the licensee
   setting, the images unlocked with their keys.
2. One student per setting of :data:`~amif_core.evaluation.attacks.distill.SETTINGS`
   and seed, and a control student (setting (a)) of the other secret's images.
3. On the probe slices (a seeded choice of validation slices across the
   three pairs), each student's PSNR against the released fusion, its fusion
   metrics against AMIF's own, and its trace result for the owner's secret;
   the same trace for the independent suspects (pixel-wise max and mean, the
   unmarked network, AMIF under another secret, the control student), and
   every student against random wrong secrets.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from amif_core.data.harvard import PAIRS, read_pair, read_records, split_records
from amif_core.evaluation.attacks.distill import (
    SETTINGS,
    StudentConfig,
    degrade,
    describe,
    loss_weights,
    student_fusion,
    train_student,
)
from amif_core.evaluation.attacks.white_box import recover_mask
from amif_core.evaluation.fusion import TABLE_METRICS
from amif_core.evaluation.metrics import fusion_metrics
from amif_core.evaluation.psnr import psnr
from amif_core.inference.model import AMIFModel
from amif_core.tracing.detect import CLEAR_P, TRACED_P, TraceAccumulator
from amif_core.tracing.mark import TraceMark
from amif_core.tracing.secret import OwnerSecret
from amif_core.transforms.intensity import fit_normalisation

WRONG_SECRETS = 100


@dataclass
class Released:
    """What the attacker holds for N training slices: ``inputs`` (N, 2, H, W) normalised MRI and partner,
    ``protected`` and ``unlocked`` (N, H, W) and the recovered ``strokes`` (N, H, W) {0, 1}."""

    inputs: np.ndarray
    protected: np.ndarray
    unlocked: np.ndarray
    strokes: np.ndarray


def release(model: AMIFModel, data: Path, secret: OwnerSecret, quiet: bool, limit: int | None = None) -> Released:
    """Protect every training-patient slice (at most ``limit`` per pair) under ``secret``; unlock each with its
    key; recover its strokes."""
    inputs, protected, unlocked, strokes = [], [], [], []
    records = split_records(read_records(data), "train")
    records = [r for pair in PAIRS for r in [r for r in records if r.pair == pair][:limit]]
    for record in tqdm(records, desc="distill/release", disable=quiet, dynamic_ncols=True):
        mri, other = read_pair(data, record)
        result = model.protect(mri, other, owner=secret)
        inputs.append([fit_normalisation(mri).apply(mri), fit_normalisation(other).apply(other)])
        protected.append(result.image)
        unlocked.append(model.unlock(result.image, result.key))
        strokes.append(recover_mask(result.image, result.key.identifier,
                                    result.key.identifier_style))
    return Released(np.asarray(inputs, np.float32), np.stack(protected), np.stack(unlocked), np.stack(strokes))


def student(released: Released, config: StudentConfig, seed: int) -> torch.nn.Module:
    """Train one student of ``config`` on the attacker's data (the first ``config.slices`` of a seeded order)."""
    order = np.random.default_rng(seed).permutation(len(released.inputs))[: config.slices]
    if config.target == "unlocked":
        targets, weights = released.unlocked[order], np.ones_like(released.unlocked[order])
    else:
        targets = np.stack([degrade(image, config.degrade) for image in released.protected[order]])
        weights = loss_weights(released.strokes[order], config.degrade)
    return train_student(released.inputs[order], targets, weights, config, seed)


@dataclass
class ProbeSet:
    """The owner's probes: normalised inputs ``a``, ``b`` (P, H, W), the unmarked ``reference`` and the
    ``released`` fusions under the owner's and another secret (P, H, W), and each probe's pair name."""

    a: np.ndarray
    b: np.ndarray
    reference: np.ndarray
    released: np.ndarray
    other_secret: np.ndarray
    pairs: list[str]


def probe_set(model: AMIFModel, data: Path, count: int, secret: OwnerSecret, other: OwnerSecret, seed: int
              ) -> ProbeSet:
    """``count`` validation slices, a seeded choice spread evenly over the three pairs."""
    records = split_records(read_records(data), "val")
    rng = np.random.default_rng(seed)
    chosen = []
    for index, pair in enumerate(PAIRS):
        of_pair = [r for r in records if r.pair == pair]
        share = count // len(PAIRS) + (index < count % len(PAIRS))
        chosen += [of_pair[i] for i in sorted(rng.choice(len(of_pair), size=min(share, len(of_pair)), replace=False))]
    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("a", "b", "reference", "released", "other_secret")}
    for record in chosen:
        mri, partner = read_pair(data, record)
        columns["a"].append(fit_normalisation(mri).apply(mri))
        columns["b"].append(fit_normalisation(partner).apply(partner))
        columns["reference"].append(model.fuse_clean(mri, partner, owner=None))
        columns["released"].append(model.fuse_clean(mri, partner, owner=secret))
        columns["other_secret"].append(model.fuse_clean(mri, partner, owner=other))
    return ProbeSet(**{k: np.stack(v) for k, v in columns.items()}, pairs=[r.pair for r in chosen])


def accumulate(probes: ProbeSet, outputs: np.ndarray) -> TraceAccumulator:
    """The trace sums of a suspect's ``outputs`` (P, H, W) on the probes."""
    accumulator = TraceAccumulator()
    for a, b, reference, output in zip(probes.a, probes.b, probes.reference, outputs):
        accumulator.add(a, b, reference, output)
    return accumulator


def mean_metrics(probes: ProbeSet, outputs: np.ndarray) -> dict[str, dict[str, float]]:
    """The fusion metrics of ``outputs`` per pair, averaged over its probes: {pair: {metric: mean}}."""
    per_pair: dict[str, list[dict[str, float]]] = {}
    for pair, a, b, output in zip(probes.pairs, probes.a, probes.b, outputs):
        per_pair.setdefault(pair, []).append(fusion_metrics(output, a, b))
    return {pair: {m: float(np.mean([row[m] for row in rows])) for m in TABLE_METRICS} for pair, rows in per_pair.items()}


def suspect_row(probes: ProbeSet, outputs: np.ndarray, mark: TraceMark, wrong: list[TraceMark]) -> dict:
    """One suspect's figures: PSNR against the released fusion, the trace for ``mark`` and the wrong secrets."""
    accumulator = accumulate(probes, outputs)
    traced = accumulator.result(mark)
    wrong_p = np.array([accumulator.result(w).p_value for w in wrong])
    return {"psnr_vs_released_db": float(np.mean([psnr(o, r) for o, r in zip(outputs, probes.released)])),
            "trace": traced.to_dict(),
            "wrong_secrets": {"count": len(wrong), "flagged_at_1e-3": int((wrong_p <= CLEAR_P).sum()),
                              "min_p": float(wrong_p.min()) if len(wrong) else None}}


def run_distill(model: AMIFModel, data: Path, secret: OwnerSecret, other: OwnerSecret, probes: int = 40,
                seeds: tuple[int, ...] = (0, 1), settings: dict[str, StudentConfig] = SETTINGS, seed: int = 0,
                quiet: bool = False, log: Callable[[str], None] = print, train_limit: int | None = None) -> dict:
    """The whole distillation evaluation; returns a JSON-ready dict (see the module notes).

    ``secret``: the owner's; ``other``: another owner's (the independent AMIF and the control student);
    ``train_limit``: at most that many training slices per pair (a quick check; None: all).
    """
    owner_mark, other_mark = TraceMark.from_secret(secret), TraceMark.from_secret(other)
    wrong_rng = np.random.default_rng([seed, 7])
    wrong = [TraceMark.from_secret(OwnerSecret(wrong_rng.bytes(32))) for _ in range(WRONG_SECRETS)]
    probe = probe_set(model, data, probes, secret, other, seed)
    released = release(model, data, secret, quiet, train_limit)
    released_other = release(model, data, other, quiet, train_limit)
    rows: dict[str, dict] = {}
    independent = {"pixel_max": np.maximum(probe.a, probe.b), "pixel_mean": (probe.a + probe.b) / 2,
                   "unmarked_network": probe.reference, "amif_other_secret": probe.other_secret}
    for name, outputs in independent.items():
        rows[name] = {"kind": "independent", **suspect_row(probe, outputs, owner_mark, wrong)}
        log(f"{name}: {rows[name]['trace']['verdict']} (p {rows[name]['trace']['p_value']:.3g})")
    jobs = [(f"{name}/seed{s}", config, s, released, "student") for name, config in settings.items() for s in seeds]
    jobs.append(("control_student_other_secret", settings.get("a_unet_l1", StudentConfig()), seeds[0],
                 released_other, "independent"))
    for name, config, student_seed, attacker_data, kind in tqdm(jobs, desc="distill/students", disable=quiet,
                                                                 dynamic_ncols=True):
        net = student(attacker_data, config, student_seed)
        outputs = np.stack([student_fusion(net, a, b) for a, b in zip(probe.a, probe.b)])
        rows[name] = {"kind": kind, "config": describe(config), "seed": student_seed,
                      "metrics": mean_metrics(probe, outputs), **suspect_row(probe, outputs, owner_mark, wrong)}
        if kind == "independent":
            rows[name]["trace_own_secret"] = accumulate(probe, outputs).result(other_mark).to_dict()
        log(f"{name}: PSNR {rows[name]['psnr_vs_released_db']:.2f} dB, {rows[name]['trace']['verdict']} "
            f"(p {rows[name]['trace']['p_value']:.3g})")
    students = [r for r in rows.values() if r["kind"] == "student"]
    others = [r for r in rows.values() if r["kind"] == "independent"]
    return {
        "probes": {"slices": len(probe.pairs), "pairs": {p: probe.pairs.count(p) for p in PAIRS}},
        "seeds": list(seeds),
        "amif_metrics": mean_metrics(probe, probe.released),
        "unmarked_metrics": mean_metrics(probe, probe.reference),
        "suspects": rows,
        "bars": {
            "students_traced": sum(r["trace"]["p_value"] <= TRACED_P for r in students),
            "students": len(students),
            "independent_flagged": sum(r["trace"]["p_value"] <= CLEAR_P for r in others),
            "independent": len(others),
            "wrong_secret_tests": sum(r["wrong_secrets"]["count"] for r in students + others),
            "wrong_secret_flagged_at_1e-3": sum(r["wrong_secrets"]["flagged_at_1e-3"] for r in students + others),
        },
        "thresholds": {"traced_p": TRACED_P, "clear_p": CLEAR_P},
        "demo_secret": secret.demo,
    }


def metric_gap(result: dict, name: str) -> float:
    """The largest relative difference of a suspect's fusion metrics from AMIF's released fusion, over pairs."""
    ours, theirs = result["amif_metrics"], result["suspects"][name]["metrics"]
    return max(abs(theirs[p][m] - ours[p][m]) / abs(ours[p][m]) for p in ours for m in ours[p] if ours[p][m])


def format_distill(result: dict) -> str:
    """The distillation report as text: one row per suspect, then the bars."""
    lines = [f"Distillation and trace on {result['probes']['slices']} validation probe slices "
             f"({', '.join(f'{k} {v}' for k, v in result['probes']['pairs'].items())})",
             f"{'suspect':34s} {'kind':11s} {'PSNR dB':>8s} {'metrics':>8s} {'t':>7s} {'p':>9s}  verdict "
             f"(wrong secrets flagged at 1e-3)"]
    for name, row in result["suspects"].items():
        trace = row["trace"]
        gap = f"{100 * metric_gap(result, name):7.1f}%" if "metrics" in row else f"{'':8s}"
        lines.append(f"{name:34s} {row['kind']:11s} {row['psnr_vs_released_db']:8.2f} {gap} {trace['t']:7.2f} "
                     f"{trace['p_value']:9.2g}  {trace['verdict']} ({row['wrong_secrets']['flagged_at_1e-3']}/"
                     f"{row['wrong_secrets']['count']})")
    bars = result["bars"]
    lines += ["", "metrics: the largest relative difference of the 8 fusion metrics from AMIF's released fusion",
              f"students traced at p <= {result['thresholds']['traced_p']:g}: {bars['students_traced']}/{bars['students']}",
              f"independent suspects flagged at p <= {result['thresholds']['clear_p']:g}: "
              f"{bars['independent_flagged']}/{bars['independent']}",
              f"wrong-secret tests flagged at p <= {result['thresholds']['clear_p']:g}: "
              f"{bars['wrong_secret_flagged_at_1e-3']}/{bars['wrong_secret_tests']} "
              f"(expected by chance: {bars['wrong_secret_tests'] * result['thresholds']['clear_p']:.1f})"]
    return "\n".join(lines)
