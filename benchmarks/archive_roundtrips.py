"""Archive round trips of a protected fusion: PSNR of the unlock after each lossless store, the refusals of real
modifications, the DICOM validation and a byte search of the series for key material.

The bundled demo pair (MNI152 MRI, synthetic PET) is written as a scanner's
DICOM series first (patient and study made up), so the DICOM output copies
real source attributes. Grey and colour (PET through the hot-iron table).

    python benchmarks/archive_roundtrips.py [--threads 2] [--keep DIR]

With the slicer-core wheel installed (the test extras), it also runs the
Slicer module's logic on real MRML: the demo pair as nodes, protected, the
protected node saved (archetype storage node, as Slicer's Save) or written as
a DICOM series and loaded back as Slicer's DICOM module loads one, unlocked.
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
        try:
            import slicer  # noqa: F401 - only to learn whether the slicer-core wheel is installed
        except ImportError:
            print("\n(slicer-core is not installed: the Slicer logic's round trips were skipped)")
        else:
            slicer_round_trips(model, work)


def slicer_round_trips(model: amif_core.AMIFModel, work: Path) -> None:
    """The Slicer logic's round trips on the demo pair (needs slicer-core), PSNR against the clean fusion."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "AMIFSlicer"))
    import slicer
    from AMIFSlicerLib.logic import AMIFSceneLogic
    from AMIFSlicerLib.selftest import cleanFusion
    from AMIFSlicerLib.testdata import loadWithStorageNode
    from AMIFSlicerLib.volumenodes import localIjkToRas, sitkImageFromArray, voxelArray

    from amif_core.evaluation.psnr import psnr
    from amif_core.atomic import write_atomically
    from amif_core.io.dicom import dicom_series_output

    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    logic = AMIFSceneLogic(scene)

    mri = loadWithStorageNode(scene, [DEMO_MRI], "vtkMRMLScalarVolumeNode")
    pet = loadWithStorageNode(scene, [DEMO_PET], "vtkMRMLScalarVolumeNode")
    pet.SetName("demo PET")
    print("\n== Slicer logic on real MRML (slicer-core): unlock after each store, PSNR (bar >= 50 dB)")
    for colour, table in (("grey", None), ("auto", "pet")):
        key_path = work / f"slicer-{colour}.amifkey"
        protected = logic.protect(mri, pet, key_path, device="cpu", colour=colour)
        clean = cleanFusion(model, mri, pet, table)
        series = work / f"slicer-{colour}-dicom"
        write_atomically([dicom_series_output(sitkImageFromArray(voxelArray(protected), localIjkToRas(protected)),
                                              series, protected.GetAttribute("AMIF.identifier"))])
        saved = work / f"slicer-{colour}.nrrd"
        storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
        scene.AddNode(storage)
        storage.SetFileName(str(saved))
        storage.WriteData(protected)
        for name, files in (("saved as NRRD (Save)", [saved]), ("DICOM series, loaded as the DICOM module does",
                                                                 sorted(series.glob("*.dcm")))):
            unlocked = logic.unlock(loadWithStorageNode(scene, files, protected.GetClassName()), key_path, device="cpu")
            print(f"  {colour:5s} {voxelArray(protected).dtype} node, {name:46s} "
                  f"{psnr(voxelArray(unlocked), clean):7.1f} dB")


if __name__ == "__main__":
    main()
