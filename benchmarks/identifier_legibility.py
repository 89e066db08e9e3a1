#!/usr/bin/env python3
"""Legibility of the identifier in every plane: OCR reads "AMIF" on the protected demo volume, per plane.

The bundled demo pair is protected as ``amif demo`` does (colour, the PET
through the "pet" table). Each axial, coronal and sagittal slice of the
protected volume that crosses the head (the normalised MRI above 0.1 on at
least 10 % of the slice) is shown as a viewer shows it (radiological
convention, :func:`amif_core.montage.plane_slice`, square pixels at the
voxels' physical aspect, the longest side ``--display-px`` pixels, bilinear),
and read by two OCRs that packages ship: Tesseract (Debian's
``tesseract-ocr`` through ``pytesseract``, ``--psm 11``: sparse text, no
layout), a page reader, and RapidOCR (``rapidocr`` on ``onnxruntime``: PP-OCR's
text detection and recognition, its models inside the wheel), a scene-text
reader that finds words anywhere in a picture. A slice counts as legible to
an OCR when the text it reads holds "AMIF". Bar: >= 50 % per plane.

With ``--mask-only`` it reads the mask itself, white on black, which
separates the glyphs' and the layout's legibility from the ink's; with
``--clean`` the unlocked (identifier-free) fusion, a control: no slice may
read "AMIF" there. With
``--windows`` it also reads 9 overlapping windows of each shown slice (two
thirds of its height and width, at 0, 1/6 and 1/3 of each side) and prints a
second rate: the slices where the whole slice or any window reads "AMIF".
Tesseract's page layout analysis misses words that it reads in a crop of the
same picture, so the second rate tells the words' legibility from that.

Per plane it also prints the identifier's coverage of the slices (bar: 8 to
25 % of every slice) and how often Tesseract read a copyright sign.

Usage::

    python benchmarks/identifier_legibility.py                 # every slice
    python benchmarks/identifier_legibility.py --every 4       # every 4th slice, while iterating
    python benchmarks/identifier_legibility.py --save DIR      # also write the slices read as PNGs
    python benchmarks/identifier_legibility.py --windows       # also read each slice in 9 windows (about 5x slower)

Needs the ``ocr`` extra (``pytesseract``, ``rapidocr``, ``onnxruntime``) and the
``tesseract`` program (``apt-get install tesseract-ocr``).
"""
from __future__ import annotations

import argparse
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout, installed or not

import pytesseract  # noqa: E402
from rapidocr import RapidOCR  # noqa: E402

from amif_core import load_model  # noqa: E402
from amif_core.data.demo_files import DEMO_MRI, DEMO_PET  # noqa: E402
from amif_core.demo import DEMO_TABLE  # noqa: E402
from amif_core.inference.pipeline import protect_volume, unlock_volume  # noqa: E402
from amif_core.io.volumes import read_volume  # noqa: E402
from amif_core.montage import PLANES, oriented, plane_slice  # noqa: E402
from amif_core.transforms.intensity import fit_normalisation  # noqa: E402

HEAD_LEVEL = 0.1  # normalised MRI above this is head
HEAD_FRACTION = 0.10  # a slice crosses the head when this much of it is head
OCR_CONFIG = "--psm 11"


def displayed(values: np.ndarray, spacing: tuple[float, float], longest_px: int) -> Image.Image:
    """An (H, W) or (H, W, 3) uint8 slice resized to square screen pixels, its longest physical side ``longest_px``."""
    extent = (values.shape[0] * spacing[0], values.shape[1] * spacing[1])
    scale = longest_px / max(extent)
    size = (max(1, round(extent[1] * scale)), max(1, round(extent[0] * scale)))
    return Image.fromarray(np.ascontiguousarray(values)).resize(size, Image.Resampling.BILINEAR)


def windows(picture: Image.Image) -> list[Image.Image]:
    """9 overlapping crops of ``picture``: two thirds of its width and height, at 0, 1/6 and 1/3 of each side."""
    width, height = picture.size
    size = (round(width * 2 / 3), round(height * 2 / 3))
    return [picture.crop((round(width * i / 6), round(height * j / 6), round(width * i / 6) + size[0],
                          round(height * j / 6) + size[1])) for j in range(3) for i in range(3)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1, help="read every Nth slice (default 1: all)")
    parser.add_argument("--display-px", type=int, default=512, help="longest side of a shown slice (default 512)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--save", type=Path, help="write the slices read into this folder, as PNG")
    parser.add_argument("--windows", action="store_true",
                        help="also read 9 overlapping windows of each slice and print the rate of slices read in "
                             "the whole or in any window")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--mask-only", action="store_true",
                       help="read the mask itself (white strokes on black) instead of the protected slices: "
                            "the legibility of the glyphs and their layout, without the ink and the anatomy")
    shown.add_argument("--clean", action="store_true",
                       help="read the unlocked fusion, which holds no identifier (a control: nothing may read AMIF)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("cpu")
    mri, pet = read_volume(DEMO_MRI), read_volume(DEMO_PET)
    protected, key = protect_volume(model, mri, pet, colour_table=DEMO_TABLE, notice=lambda _: None)
    mask = sitk.GetImageFromArray(np.moveaxis(model.identifier_mask(key), 0, key.axis))
    mask.CopyInformation(mri)
    images = {"protected": protected, "mask": mask, "mri": mri}
    if args.clean:  # the unlocked fusion, stored as the protected volume is (8-bit RGB), so both are shown alike
        unlocked = sitk.GetArrayFromImage(unlock_volume(model, protected, key))
        images["clean"] = sitk.GetImageFromArray(np.round(np.clip(unlocked, 0, 1) * 255).astype(np.uint8),
                                                 isVector=True)
        images["clean"].CopyInformation(protected)
    views = {name: oriented(image) for name, image in images.items()}
    scene_reader = RapidOCR(params={"Global.log_level": "critical"})
    shown_view = "mask" if args.mask_only else "clean" if args.clean else "protected"
    head = fit_normalisation(views["mri"][0]).apply(np.asarray(views["mri"][0])) > HEAD_LEVEL
    s_si, s_ap, s_lr = views["protected"][1]
    spacings = {"axial": (s_ap, s_lr), "coronal": (s_si, s_lr), "sagittal": (s_si, s_ap)}
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    print(f"Demo volume {'x'.join(map(str, mri.GetSize()))} voxels, protected along numpy axis {key.axis}; "
          f"identifier {key.identifier!r}; Tesseract {pytesseract.get_tesseract_version()} {OCR_CONFIG} and "
          f"RapidOCR {version('rapidocr')}; slices shown {args.display_px} px on their longest side; every "
          f"{args.every} slice(s){'; the mask alone' if args.mask_only else ''}"
          f"{'; the unlocked fusion (control)' if args.clean else ''}")
    print(f"{'plane':9s} {'slices':>6s} {'Tesseract':>10s} {'rate':>6s} {'(c) read':>9s} {'RapidOCR':>9s} {'rate':>6s} "
          f"{'coverage min':>12s} {'max':>6s}" + (f" {'in windows':>10s} {'rate':>6s}" if args.windows else ""))
    for axis, plane in enumerate(PLANES):
        read = copyright = windowed = scene = 0
        indices = [i for i in range(0, head.shape[axis], args.every)
                   if plane_slice(head, plane, i).mean() >= HEAD_FRACTION]
        cover = [float(plane_slice(views["mask"][0], plane, i).mean()) for i in range(head.shape[axis])]
        for i in indices:
            values = plane_slice(views[shown_view][0], plane, i)
            picture = displayed(values * np.uint8(255) if args.mask_only else values, spacings[plane], args.display_px)
            text = pytesseract.image_to_string(picture, config=OCR_CONFIG)
            read += "AMIF" in text.upper()
            bgr = np.ascontiguousarray(np.asarray(picture.convert("RGB"))[..., ::-1])  # RapidOCR takes OpenCV's order
            scene_text = " ".join(scene_reader(bgr).txts or ())
            scene += "AMIF" in scene_text.upper()
            copyright += "\u00a9" in text
            if args.windows:
                windowed += "AMIF" in text.upper() or any(
                    "AMIF" in pytesseract.image_to_string(window, config=OCR_CONFIG).upper()
                    for window in windows(picture))
            if args.save:
                picture.save(args.save / f"{plane}-{i:03d}-tesseract-{'read' if 'AMIF' in text.upper() else 'missed'}"
                                         f"-rapidocr-{'read' if 'AMIF' in scene_text.upper() else 'missed'}.png")
        rate = read / max(1, len(indices))
        print(f"{plane:9s} {len(indices):6d} {read:10d} {rate:6.0%} {copyright:9d} {scene:9d} "
              f"{scene / max(1, len(indices)):6.0%} {min(cover):12.1%} "
              f"{max(cover):6.1%}"
              + (f" {windowed:10d} {windowed / max(1, len(indices)):6.0%}" if args.windows else ""))


if __name__ == "__main__":
    main()
