"""amif_core.montage: orientation, physical scale and colour of the PNG montage."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from volume_factory import grid

from amif_core.montage import (
    GAP,
    TITLE_PX,
    MontageColumn,
    oriented,
    render_montage,
    write_montage,
)

FLIPPED = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)  # index x runs right, y runs anterior (like the demo)


def marked(direction: tuple[float, ...]) -> sitk.Image:
    """A 12x10x8 volume, 1 x 1 x 3 mm, with one bright voxel at a known physical corner."""
    image = grid((12, 10, 8), (1.0, 1.0, 3.0), direction)
    values = np.zeros((8, 10, 12), dtype=np.float32)
    out = sitk.GetImageFromArray(values)
    out.CopyInformation(image)
    # The voxel nearest to the patient's right-anterior-inferior corner.
    corner = np.array([-100.0, -100.0, -100.0])
    points = [(i, j, k) for i in range(12) for j in range(10) for k in range(8)]
    nearest = min(points, key=lambda idx: np.linalg.norm(np.array(out.TransformIndexToPhysicalPoint(idx)) - corner))
    out[nearest] = 1.0
    return out


@pytest.mark.parametrize("direction", [(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), FLIPPED])
def test_oriented_view_is_superior_posterior_left(direction: tuple[float, ...]) -> None:
    image = marked(direction)  # the view reads its memory: keep it alive
    view, spacing = oriented(image)
    assert view.shape == (8, 10, 12) and spacing == (3.0, 1.0, 1.0)
    # Inferior, anterior, right: the first index of every oriented axis.
    assert view[0, 0, 0] == 1.0 and view.sum() == 1.0


def test_anisotropic_views_are_drawn_at_one_physical_scale(tmp_path: Path) -> None:
    image = marked(FLIPPED)  # 12 mm (x) by 10 mm (y) by 24 mm (z)
    rgb = render_montage([MontageColumn("A", image), MontageColumn("B", image, "pet", window=(0.0, 1.0))],
                         tile_px=120)
    # 5 mm per pixel: axial 10x12 mm -> 50x60 px, coronal 24x12 -> 120x60, sagittal 24x10 -> 120x50.
    assert rgb.shape == (TITLE_PX + GAP + (50 + GAP) + (120 + GAP) + (120 + GAP), 2 * 60 + GAP, 3)
    hot = rgb[TITLE_PX + GAP :, 60 + GAP :].astype(int)
    assert (hot[..., 0] >= hot[..., 1]).all() and (hot[..., 1] >= hot[..., 2]).all()
    write_montage([MontageColumn("A", image)], tmp_path / "m.png")
    assert Image.open(tmp_path / "m.png").mode == "RGB"
    with pytest.raises(FileExistsError):
        write_montage([MontageColumn("A", image)], tmp_path / "m.png")
    with pytest.raises(ValueError, match="share one grid"):
        render_montage([MontageColumn("A", image), MontageColumn("B", grid((5, 5, 5), (1.0, 1.0, 1.0)))])


def test_rgb_volumes_are_drawn_as_they_are() -> None:
    image = marked(FLIPPED)
    values = np.linspace(0.2, 1.0, 8 * 10 * 12, dtype=np.float32).reshape(8, 10, 12)
    rgb_image = sitk.GetImageFromArray(np.stack([values, np.zeros_like(values), 1 - values], axis=-1), isVector=True)
    rgb_image.CopyInformation(image)
    picture = render_montage([MontageColumn("A", image), MontageColumn("RGB", rgb_image, "rgb")], tile_px=120)
    right = picture[TITLE_PX + GAP :, 60 + GAP :].astype(int)
    assert (right[..., 1] == 0).all() and (right[..., 2] > 0).any() and (right[..., 0] > 0).any()
    with pytest.raises(ValueError, match="colormap 'rgb'"):
        render_montage([MontageColumn("RGB", rgb_image)])


def _demo_data_constants():
    """scripts/make_demo_data.py, which made the bundled pair: the lesion's centre and radius are its constants."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "make_demo_data.py"
    spec = importlib.util.spec_from_file_location("make_demo_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demo_montage_planes_cross_the_lesion_and_are_marked() -> None:
    from amif_core.data.demo_files import DEMO_MRI, DEMO_PET
    from amif_core.demo import demo_montage
    from amif_core.io.geometry import resample_to_reference
    from amif_core.io.volumes import read_volume
    from amif_core.montage import MARK, PLANE_AXES, PLANES, hottest_point, oriented_index

    made = _demo_data_constants()
    lesion = np.array(made.ras_to_lps(made.LESION_CENTRE_RAS_MM))
    mri, pet = read_volume(DEMO_MRI), read_volume(DEMO_PET)
    assert np.linalg.norm(np.array(hottest_point(pet)) - lesion) < made.LESION_RADIUS_MM / 2

    # The planes the montage shows, as MRI-grid indices, each within the lesion's radius of its centre.
    view, spacing = oriented(mri)
    shown = oriented_index(mri, hottest_point(pet))
    centre = oriented_index(mri, lesion)
    for axis in range(3):
        assert abs(shown[axis] - centre[axis]) * spacing[axis] < made.LESION_RADIUS_MM / 2, (PLANES[axis], shown)

    # What the picture shows: stand-ins for the fusions (the montage reads only their grid and RGB values).
    pet_on_mri = sitk.GetArrayFromImage(resample_to_reference(pet, mri)[0])
    rgb = sitk.GetImageFromArray(np.repeat((pet_on_mri / pet_on_mri.max())[..., None], 3, axis=-1).astype(np.float32),
                                 isVector=True)
    rgb.CopyInformation(mri)
    picture = demo_montage(mri, pet, rgb, rgb).astype(int)
    extents = {plane: (view.shape[r] * spacing[r], view.shape[c] * spacing[c]) for plane, (r, c) in PLANE_AXES.items()}
    mm_per_px = max(max(e) for e in extents.values()) / 256  # the default tile_px
    cell_w = (picture.shape[1] + GAP) // 4 - GAP
    top = TITLE_PX + GAP
    for plane in PLANES:  # each row: the last column (grey = PET uptake) is hottest where the ticks cross
        h, w = (round(e / mm_per_px) for e in extents[plane])
        left = 3 * (cell_w + GAP) + (cell_w - w) // 2
        tile = picture[top : top + h, left : left + w]
        marked = (tile == MARK).all(axis=-1)
        assert marked[0].any() and marked[-1].any() and marked[:, 0].any() and marked[:, -1].any(), plane
        x = int(np.flatnonzero(marked[0]).mean())  # the vertical ticks' column, the horizontal ones' row
        y = int(np.flatnonzero(marked[:, 0]).mean())
        uptake = np.where(marked, 0, tile[..., 0])
        assert uptake[y - 3 : y + 4, x - 3 : x + 4].max() >= 0.8 * uptake.max(), (plane, x, y)
        top += h + GAP
