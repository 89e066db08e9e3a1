"""The AMIF core's error messages in the panel's language.

:class:`amif_core.errors.AMIFError` carries an English ``template`` with named
``{placeholders}`` and the ``params`` that fill them; the core never
translates. This module lists every template as a literal ``_()`` call
(:func:`catalogue`, the source Qt's lupdate extracts them from) and translates
an error's template at the time it is shown (:func:`coreMessage`). Slicer's
``tr`` takes the translation context from the file that calls it, so both the
literals and the runtime ``_()`` call must stay in this file. Qt-free.
"""
from __future__ import annotations

from amif_core.errors import AMIFError
from AMIFSlicerLib.i18n import tr as _


def coreMessage(error: Exception) -> str:
    """``error``'s message for the panel: an AMIF core error's template translated (here, so in this file's
    context) and filled with its params, then its advice translated; any other error's text as it is."""
    if isinstance(error, AMIFError):
        try:
            message = _(error.template).format(**error.params)
            return f"{message} {_(error.advice)}" if error.advice else message
        except (KeyError, IndexError, ValueError):  # a translation that broke a {placeholder}: the English text
            return str(error)
    return str(error)


def catalogue() -> tuple[str, ...]:
    """Every template of the core's errors that the panel can show, translated; a test checks the list matches
    amif_core's source (all but the command line's and the model owner's evaluation and training, which Slicer never
    runs).

    Each is a literal ``_()`` call so that lupdate finds it in this file's context, the one :func:`coreMessage`
    translates in.
    """
    return (
        # amif_core.tracing.secret (the owner secret of $AMIF_OWNER_SECRET)
        _("An owner secret is {expected} bytes, got {got}."),
        _("The owner secret file {path} can be read by other users; restrict it with `chmod 600 {path}`."),
        _("The owner secret file {path} does not exist. Create one with `amif owner init -o {path}`."),
        _("{path} is not an AMIF owner secret file (made by `amif owner init`)."),
        # amif_core.runtime.devices
        _("Unknown device {device!r}; devices are auto, cpu, cuda, cuda:N or mps."),
        _("Device {device!r} is not available: this machine has {count} CUDA device(s)."),
        _("Device 'mps' is not available on this machine."),
        _("Unsupported device {device!r}; devices are auto, cpu, cuda, cuda:N or mps."),
        # amif_core.inference.model
        _("Cancelled by the user; nothing was written."),
        _("Image shape {shape} differs from the key's {key_shape}."),
        _("The key holds {held} codes, but its identifier placement needs {needed}. Use the key that was written "
          "with this protected image."),
        _("The key holds {held} chroma codes, but its identifier placement needs {needed}. Use the key that was "
          "written with this protected image."),
        # amif_core.inference.pair
        _("The {name} must be a real-valued array, got dtype {dtype}."),
        _("The {name} must be a 2D slice (H, W) or a 3D volume (D, H, W), got shape {shape}."),
        _("The {name} is empty (shape {shape})."),
        _("The MRI must be greyscale, got an RGB array of shape {shape}; give its single-channel intensities (colour "
          "goes with the PET or SPECT)."),
        _("The second scan is already RGB {shape}; a colour table ({table!r}) maps a scalar PET/SPECT only. Drop the "
          "colour table, or give the scalar scan."),
        _("The second scan has 4 channels {shape}; AMIF takes RGB (3 channels) or a scalar scan. Drop the alpha "
          "channel first."),
        _("The MRI {shape} and the second scan {other_shape} must have the same shape; resample the second scan onto "
          "the MRI grid first (amif_core.inference.pipeline.protect_volume does this)."),
        # amif_core.inference.pipeline
        _("The {name} contains NaN or infinite voxels; replace them (for example with 0) before protecting."),
        _("The protected volume has {size} voxels but the key is for {key_size}; even a forced unlock needs the same "
          "size."),
        # amif_core.runtime.runner
        _("{device} has {free:.1f} GB of memory free, but one slice needs about {needed:.1f} GB. Run on the CPU, or "
          "free GPU memory, and try again."),
        _("This volume needs about {needed:.1f} GB of memory, but only {free:.1f} GB is free. Close other "
          "applications, or crop the volumes to the region of interest, and try again."),
        _("This computer ran out of memory even with one slice at a time on the CPU. Close other applications or "
          "crop the volumes, and try again."),
        # amif_core.inference.weights
        _("AMIF weights not found at {path}. Reinstall amif-core or pass the weights path."),
        _("{path} is not a readable AMIF weights file: {reason}"),
        _("{path} is not an AMIF weights file."),
        # amif_core.atomic
        _("The same output file is given twice: {path}. Give each output its own name."),
        _("The output {path} is one of the input files; AMIF never overwrites its inputs. Choose another output name."),
        _("The folder {folder} does not exist; create it first or choose another output path."),
        _("The folder {folder} is not writable (read-only, or not yours); choose another output path."),
        _("The output folder {path} holds input files; AMIF never overwrites its inputs. Choose a new folder."),
        _("The output {path} is a file; give a new folder for the DICOM series."),
        _("The output {path} is a folder; give a file name."),
        # amif_core.io.dicom
        _("Writing or reading DICOM with AMIF needs the Python package pydicom: pip install pydicom"),
        _("AMIF writes DICOM for its protected volumes only (uint16 grey or 8-bit RGB), not for '{pixel_type}'."),
        _("The folder {folder} holds no .dcm files."),
        # amif_core.io.geometry
        _("The second scan and the MRI do not overlap in physical space (their origins, spacings and directions "
          "place them in different regions). Check that both scans are of the same patient and were registered to "
          "each other; AMIF needs registered scans."),
        _("The slice axis must be 0, 1 or 2 (a numpy axis of the (z, y, x) array), got {axis}."),
        _("Slicing along axis {axis} gives {rows}x{cols} slices; AMIF needs slices of at least {side}x{side} voxels. "
          "No axis does: the volume ({volume}) is too small for AMIF."),
        _("Slicing along axis {axis} gives {rows}x{cols} slices; AMIF needs slices of at least {side}x{side} voxels. "
          "Slicing along axis {other} ({other_size} slices) would do."),
        # amif_core.io.volumes
        _("The {name} is {dimension}D; AMIF needs a 3D volume. Give a 3D scan (for a 4D series, extract one 3D frame "
          "first)."),
        _("The {name} holds voxels of type '{pixel_type}' ({components} values each); AMIF needs one real value per "
          "voxel. Convert colour, vector, complex or label-map images to a single-channel (greyscale) volume first."),
        _("The folder {folder} contains no DICOM series. Give a folder with one DICOM series, or a volume file "
          "({suffixes})."),
        _("The folder {folder} contains {count} DICOM series: {listed}. Put the series you want into a folder of its "
          "own."),
        _("{path} does not exist."),
        _("{path} is not a supported volume: use {suffixes} or a folder holding one DICOM series."),
        _("Could not read {path}: {reason}"),
        _("The volume in {path} contains NaN or infinite voxels (NIfTI readers silently read them as 0); replace "
          "them (for example with 0) first."),
        _("Cannot write {path}: use one of {suffixes} (.nhdr and .mhd keep their voxels in a second file, so they "
          "are not offered)."),
        # amif_core.key.check
        _("This key was made by AMIF weights {key_model}, but the loaded weights are {model}: another model version. "
          "Unlock with the weights that protected the volume."),
        _("This key was made by AMIF weights {key_model}, but the loaded weights are {model}: another model version. "
          "Unlock with the weights that protected the image."),
        _("This key is for an image of shape {key_shape}, but the image has shape {shape}. Use the key that was "
          "written with this protected image."),
        _("The protected image was modified after it was protected (fingerprint {fingerprint}, the key expects "
          "{expected}): it was edited, filtered, resampled or re-saved at lower precision. Unlock the original "
          "protected file (or a lossless copy: DICOM, NRRD, NIfTI or MHA)."),
        _("This key belongs to another image (fingerprint {fingerprint}, the key expects {expected}). Use the key "
          "written together with this protected image."),
        _("The protected volume's voxels are intact, but its {changes} changed since it was protected (volume "
          "fingerprint {fingerprint}, the key expects {expected}). Unlock the original protected file, or restore "
          "its geometry."),
        _("The protected volume contains NaN or infinite voxels, which AMIF never writes: it was modified after it "
          "was protected (volume fingerprint {fingerprint}, the key expects {expected}). Unlock the original "
          "protected file."),
        _("The protected volume was modified after it was protected (volume fingerprint {fingerprint}, the key "
          "expects {expected}): it was edited, filtered, resampled or re-saved at lower precision. Unlock the "
          "original protected file (or a lossless copy: DICOM, NRRD, NIfTI or MHA)."),
        _("This key belongs to another volume (volume fingerprint {fingerprint}, the key expects {expected}). Use "
          "the key written together with this protected volume."),
        _("This key is for a grey fusion, but the volume is RGB (a colour fusion): the key was written with another "
          "volume. Use the key written together with this protected volume."),
        _("This key is for a colour fusion, but the volume is grey (one value per voxel): the key was written with "
          "another volume. Use the key written together with this protected volume."),
        _("The protected volume was cropped after it was protected (volume fingerprint {fingerprint}, the key "
          "expects {expected}): the key is for {key_size} voxels, this volume has {size}. Unlock the original "
          "protected file."),
        _("The protected volume was resampled after it was protected (volume fingerprint {fingerprint}, the key "
          "expects {expected}): the key is for {key_size} voxels, this volume has {size}. Unlock the original "
          "protected file."),
        _("This key belongs to another volume (volume fingerprint {fingerprint}, the key expects {expected}): the "
          "key is for {key_size} voxels, this volume has {size}. Use the key written together with this protected "
          "volume."),
        _("The protected volume is stored as '{pixel_type}', but AMIF wrote it as 32-bit float: it was re-saved at "
          "lower precision (volume fingerprint {fingerprint}, the key expects {expected}). Unlock the original "
          "float32 protected file."),
        _("The protected volume is stored as '{pixel_type}' ({bits}-bit), but AMIF wrote it as 16-bit integers: it "
          "was down-cast, which loses the precision the key needs (volume fingerprint {fingerprint}, the key expects "
          "{expected}). Unlock the original 16-bit protected file or series."),
        # amif_core.key.file
        _("Use an intact copy of the key (the one written together with the protected volume)."),
        _("The passphrase is empty; give a non-empty passphrase, or none to write an unencrypted key."),
        _("The key file {path} does not exist."),
        _("{path} is not a file."),
        _("{path} is not an AMIF key file (it does not start with the AMIF key signature)."),
        _("{path} uses key format version {version}, but this AMIF ({amif}) reads versions {earlier} and {latest} "
          "only. It was written by a newer AMIF; update amif-core to read it."),
        _("{path} uses key format version {version}, but this AMIF ({amif}) reads versions {earlier} and {latest} "
          "only. Keys of version 1 were made with the amif_v1 weights of amif-core 0.1; unlock it with amif-core 0.1."),
        _("The key file {path} is truncated ({size} bytes)."),
        _("The key file {path} is corrupted (its header length {length} is out of bounds)."),
        _("The key file {path} is truncated ({size} bytes, but its lengths say {expected})."),
        _("The key file {path} is corrupted ({extra} bytes more than its lengths say)."),
        _("The key file {path} is truncated (it changed while being read)."),
        _("The key file {path} is corrupted (its SHA-256 integrity check fails)."),
        _("The key file {path} is damaged (its header is not valid JSON: {reason})."),
        _("The key file {path} is damaged (invalid header: {reason})."),
        _("The key file {path} is encrypted with a passphrase, and none was given."),
        _("The passphrase does not open the key file {path}. Check it and try again (passphrases are case-sensitive)."),
        _("The key file {path} is damaged (data after the end of its payload)."),
        _("The key file {path} is damaged (its payload is longer than its header says)."),
        _("The key file {path} is damaged (its payload does not decompress: {reason})."),
        _("The key file {path} is damaged (its compressed payload stops before its end)."),
        _("The key file {path} is damaged (its payload is shorter than its header says)."),
        _("The key file {path} is damaged (its code scales are not finite and non-negative)."),
        # amif_core.transforms.colour
        _("Unknown colour table {name!r}; choose one of {tables}."),
        _("The {name} must be RGB with 3 channels last, got shape {shape} (RGBA? drop the alpha channel first)."),
        _("The {name} must be RGB with 3 channels last, got shape {shape}."),
        _("The {name} must be uint8 (0..255) or float (0..1) RGB, got dtype {dtype}."),
        _("The float RGB {name} must lie in [0, 1] (got {low:.4g} to {high:.4g}); divide 0..255 values by 255 first."),
        # amif_core.transforms.identifier
        _("The identifier text is empty; give a short text such as 'AMIF \u00a9'."),
        _("The identifier text is {length} characters long; use at most 64."),
        _("The identifier text contains characters the built-in font cannot draw: {characters!r}. Use ASCII letters, "
          "digits, punctuation or the \u00a9 sign."),
        # amif_core.transforms.intensity
        _("Cannot normalise an empty volume."),
        _("The volume contains NaN or infinite voxels; replace them (for example with 0) first."),
    )
