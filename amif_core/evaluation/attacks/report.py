"""Markdown tables of ``amif attack-eval`` and its picture (protected | best attack | unlocked)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from amif_core.evaluation.attacks.runner import REFERENCES, AttackEval
from amif_core.evaluation.attacks.scoring import KEY_ONLY_CONTROLS, SOLVE_ROW
from amif_core.evaluation.fusion import TABLE_METRICS

SCALE = 2
GAP = 8
TITLE_PX = 24


def best_attack(result: dict, rows: Iterable[str] | None = None) -> str:
    """Row id of the attack (not a reference row; among ``rows`` if given) with the highest mean in-mask PSNR."""
    attacks = [row for row in (result["summary"] if rows is None else rows) if row not in REFERENCES]
    return max(attacks, key=lambda row: result["summary"][row]["psnr_mask"])


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def format_report(result: dict) -> str:
    """The benchmark as Markdown: setup, in-mask and whole-image tables, and the 15 dB bar per attack."""
    summary, gaps, names = result["summary"], result["gaps"], result["labels"]
    rows = [row for row in names if row in summary]
    remover = result["remover"]
    slices = ", ".join(f"{pair} {count}" for pair, count in result["slices"].items())
    estimate = result["mask_estimate"]
    cap, bar = result["psnr_cap_db"], result["bar_db"]
    lines = [
        "## Attacks on the visible identifier (validation patients"
        + (", protected in colour, scored in RGB)" if result.get("colour") else ")"), "",
        f"{sum(result['slices'].values())} slices ({slices}); model {result['model_id'][:12]}; seed {result['seed']}; "
        + (f"U-Net remover: {remover['steps']} steps of {remover['batch']} {remover['crop']}x{remover['crop']} crops "
           f"per budget ({', '.join(f'{count} pairs' for count in result['leaked'].values())})."
           if result["leaked"] else "no U-Net removers."),
        f"Every image is compared with the clean fusion f; means over slices; PSNR capped at {cap:.0f} dB per slice.",
        f"Estimated mask vs true mask: precision {estimate['precision']:.3f}, recall {estimate['recall']:.3f} "
        "(mean over slices).", "",
        "### Inside the identifier mask", "",
    ]
    lines += _table(["attack", "PSNR (dB)", "SSIM", "gap to unlock (dB)"],
                    [[names[r], f"{summary[r]['psnr_mask']:.2f}", f"{summary[r]['ssim_mask']:.4f}",
                      f"{gaps[r]['mean_gap_db']:.2f}" if r in gaps else "(reference)"] for r in rows])
    lines += ["", "### Whole image", "",
              "PSNR and SSIM against f; EN ... SSIM: the fusion metrics of the image against the normalised sources, "
              "as `amif evaluate` reports them.", ""]
    lines += _table(["attack", "PSNR (dB)", "SSIM vs f", *TABLE_METRICS],
                    [[names[r], f"{summary[r]['psnr_whole']:.2f}", f"{summary[r]['ssim_whole']:.4f}",
                      *(f"{summary[r][m]:.2f}" for m in TABLE_METRICS)] for r in rows])
    attacks = [r for r in rows if r not in REFERENCES]
    lines += ["", f"### Bar: every attack stays at least {bar:.0f} dB below the authorized unlock inside the mask", "",
              f"(authorized unlock in-mask PSNR {summary['unlocked']['psnr_mask']:.2f} dB, capped at {cap:.0f} dB "
              "per slice; the bar is judged on the mean over slices, the worst slice is shown for information)", ""]
    for r in attacks:
        verdict = "meets the bar" if gaps[r]["meets_bar"] else "FAILS the bar"
        lines.append(f"- {names[r]}: in-mask PSNR gap to authorized unlock (dB) {gaps[r]['mean_gap_db']:.2f} "
                     f"(worst slice {gaps[r]['worst_slice_gap_db']:.2f}): {verdict}")
    passed = sum(gaps[r]["meets_bar"] for r in attacks)
    lines += ["", f"{passed}/{len(attacks)} attacks stay at least {bar:.0f} dB below the authorized unlock inside "
              f"the mask; strongest attack: {names[best_attack(result)]}."]
    return "\n".join(lines + _inpainting_section(result))


def _inpainting_section(result: dict) -> list[str]:
    bars, names = result["bars"], result["labels"]
    best = bars["best_inpainting"]
    recovery = result["mask_recovery"]
    lines = ["", "### Bar: no attack does better inside the mask than inpainting", "",
             f"Best true-mask inpainting: {names[best['row']]}, {best['psnr_db']:.2f} dB. White-box mask recovery "
             f"(estimated strokes, then FFT cross-correlation with the public identifier canvas): exact on "
             f"{recovery['exact']}/{recovery['slices']} slices. " + _judging(result["white_box_evaluations"], bars), ""]
    lines += _table(["attack", "in-mask PSNR (dB)", "limit (dB)", "verdict"],
                    [[names[r], f"{b['psnr_db']:.2f}", f"{b['limit_db']:.2f}", "meets" if b["meets"] else "FAILS"]
                     for r, b in bars["rows"].items()])
    passed = sum(b["meets"] for b in bars["rows"].values())
    return lines + ["", f"{passed}/{len(bars['rows'])} attacks do no better than inpainting."]


def _judging(evaluations: int, bars: dict) -> str:
    """How each row of the inpainting bar is judged, naming only the kinds of rows present."""
    clauses = []
    if SOLVE_ROW in bars["rows"]:
        clauses.append(f"the forward solve ({evaluations} evaluations per slice) is judged on its median against "
                       "Telea's median on the same slices (+1 dB)")
    if any(row in bars["rows"] for row in KEY_ONLY_CONTROLS):
        clauses.append("key-only attacks against their control, the same attack on random codes of the key's "
                       "support (+1 dB)")
    clauses += ["wrong keys against the best inpainting", "every other attack against the best inpainting + 1 dB."]
    text = "; ".join(clauses)
    return text[0].upper() + text[1:]


def _white(mode: str) -> int | tuple[int, int, int]:
    return 255 if mode == "L" else (255, 255, 255)


def _panel(image: np.ndarray, title: str) -> Image.Image:
    picture = Image.fromarray(np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8))
    picture = picture.resize((picture.width * SCALE, picture.height * SCALE), Image.Resampling.NEAREST)
    panel = Image.new(picture.mode, (picture.width, picture.height + TITLE_PX))
    ImageDraw.Draw(panel).text((4, 3), title, fill=_white(picture.mode), font=ImageFont.load_default(size=TITLE_PX - 8))
    panel.paste(picture, (0, TITLE_PX))
    return panel


def save_picture(evaluation: AttackEval, path: Path) -> None:
    """Write a PNG: protected | strongest attack | authorized unlock of ``evaluation.picture_slice``.

    Each panel is the (H, W) grey or (H, W, 3) RGB slice upscaled ``SCALE`` times (nearest neighbour)
    under a one-line title.
    """
    result, images = evaluation.result, evaluation.picture
    best = best_attack(result, images)
    panels = [_panel(images["protected"], f"protected ({evaluation.picture_slice})"),
              _panel(images[best], f"best attack: {result['labels'][best]}"),
              _panel(images["unlocked"], "authorized unlock")]
    mode = panels[0].mode
    canvas = Image.new(mode, (sum(p.width for p in panels) + GAP * (len(panels) - 1), panels[0].height),
                       _white(mode))
    for index, panel in enumerate(panels):
        canvas.paste(panel, (index * (panel.width + GAP), 0))
    canvas.save(path, format="PNG")
