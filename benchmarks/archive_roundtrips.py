"""Archive round trips of a protected fusion: PSNR of the unlock after each lossless store, the refusals of real
modifications, the DICOM validation and a byte search of the series for key material.

The bundled demo pair (MNI152 MRI, synthetic PET) is written as a scanner's
DICOM series first (patient and study made up), so the DICOM output copies
real source attributes. Grey and colour (PET through the hot-iron table).

    python benchmarks/archive_roundtrips.py [--threads 2] [--keep DIR]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pydicom
import SimpleITK as sitk
import torch

import amif_core
from amif_core.data.demo_files import DEMO_MRI, DEMO_PET
from amif_core.evaluation import archive
from amif_core.inference.pipeline import protect_volume
from amif_core.io.dicom import source_attributes
from amif_core.io.volumes import read_volume
from amif_core.key.file import read_key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--keep", type=Path, help="write into this new folder and keep it (default: a temp folder)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = amif_core.load_model("cpu")
    with tempfile.TemporaryDirectory() as temp:
        work = args.keep or Path(temp)
        work.mkdir(parents=True, exist_ok=args.keep is None)
        series = work / "mri-series"
        archive.write_source_series(read_volume(DEMO_MRI), series, {
            **archive.SOURCE_PATIENT, "StudyInstanceUID": pydicom.uid.generate_uid(),
            "FrameOfReferenceUID": pydicom.uid.generate_uid()})
        mri, pet = read_volume(series), read_volume(DEMO_PET)
        source = source_attributes(series)
        print(f"MRI: the demo MRI as a DICOM series, {'x'.join(map(str, mri.GetSize()))} voxels; model "
              f"{model.model_id[:12]}; {args.threads} CPU threads")
        for kind, table in (("grey", None), ("colour (pet table)", "pet")):
            folder = work / kind.split()[0]
            folder.mkdir()
            print(f"\n== {kind}: unlock after each store, PSNR against the clean fusion (bar >= 50 dB)")
            for survival in archive.survivals(model, mri, pet, folder, "AMIF \u00a9", table, source):
                print(f"  {survival.name:42s} {survival.psnr_db:7.1f} dB")
            key_file = folder / "protected.amifkey"
            key = read_key(key_file)
            float32_bytes = 4 * mri.GetNumberOfPixels() * (3 if key.colour else 1)
            print(f"  key file {key_file.stat().st_size} bytes = {key_file.stat().st_size / float32_bytes:.3f} of "
                  "the float32 volume (bar <= 0.6)")
            validator, errors = archive.check_dicom(folder / "protected-dicom")
            found = archive.key_material_found(folder / "protected-dicom", key_file, key)
            print(f"  DICOM series: {validator} validation, {len(errors)} errors{': ' + errors[0] if errors else ''}; "
                  f"key payload bytes found in {len(found)} files")
            stored = read_volume(folder / "protected.nrrd")
            print("  modified copies (r: the signature's Pearson r against the key's; >= 0.85 reads 'modified'):")
            other, _ = protect_volume(model, mri, sitk.Cast(sitk.Abs(pet - 2.0), sitk.sitkFloat32), "AMIF \u00a9",
                                      colour_table=table, notice=lambda _: None)
            rows = archive.refusals(model, stored, key) + archive.other_volumes(model, stored, key, other)
            for refusal in rows:
                r = "  n/a" if refusal.correlation is None else f"{refusal.correlation:5.3f}"
                print(f"    {refusal.name:34s} r {r}  {refusal.error or 'UNLOCKED'}: {refusal.message[:70]}")


if __name__ == "__main__":
    main()
