"""Draw the trace mark at 4x zoom in a narrow window: unmarked | marked | difference, on the bundled demo pair.

    python benchmarks/trace_picture.py docs/images/trace-mark-zoom.png

The crop is 64 x 64 pixels of the middle axial slice, shown at 4x (nearest
neighbour) in a window of 40 grey levels (of 255) centred on the crop's
median, the narrowest a reader would use; the third panel is the difference
stretched so that +-1.25 grey levels (the mark's bound) span black to white.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image, ImageDraw

import amif_core
from amif_core.data.demo_files import DEMO_MRI, DEMO_PET
from amif_core.io.geometry import resample_to_reference
from amif_core.tracing.mark import AMPLITUDE

CROP, ZOOM, WINDOW = 64, 4, 40 / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    mri_image = sitk.ReadImage(str(DEMO_MRI))
    pet = sitk.GetArrayFromImage(resample_to_reference(sitk.ReadImage(str(DEMO_PET)), mri_image)[0])
    mri = sitk.GetArrayFromImage(mri_image).astype(np.float32)
    centre = mri.shape[0] // 2
    model = amif_core.load_model("cpu")
    marked = model.fuse_clean(mri[centre], pet[centre])
    plain = model.fuse_clean(mri[centre], pet[centre], owner=None)
    h, w = plain.shape
    y, x = (h - CROP) // 2, (w - CROP) // 2
    crops = [image[y : y + CROP, x : x + CROP] for image in (plain, marked)]
    low = float(np.median(crops[0])) - WINDOW / 2
    panels = [np.clip((c - low) / WINDOW, 0, 1) for c in crops]
    panels.append(np.clip((crops[1] - crops[0]) / (2 * AMPLITUDE) + 0.5, 0, 1))
    titles = ["unmarked (window 40/255)", "marked (same window)", "marked - unmarked (+-1.25/255)"]
    size = CROP * ZOOM
    sheet = Image.new("L", (3 * size + 20, size + 18), 255)
    draw = ImageDraw.Draw(sheet)
    for index, (panel, title) in enumerate(zip(panels, titles)):
        tile = Image.fromarray(np.round(panel * 255).astype(np.uint8)).resize((size, size), Image.NEAREST)
        sheet.paste(tile, (index * (size + 10), 18))
        draw.text((index * (size + 10), 2), title, fill=0)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output)
    print(f"PSNR(marked, unmarked) on this slice: "
          f"{10 * np.log10(1 / np.mean((marked - plain) ** 2)):.1f} dB; wrote {args.output}")


if __name__ == "__main__":
    main()
