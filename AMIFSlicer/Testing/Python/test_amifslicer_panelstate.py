"""Panel state decisions (AMIFSlicerLib.panelstate), headless: saved devices, the dependency line, translated messages."""
from __future__ import annotations

from amifslicer_testing import coreErrorTemplates
from AMIFSlicerLib import coremessages, panelstate

from amif_core.runtime import runner


def test_a_saved_gpu_that_is_not_here_becomes_automatic_in_the_parameter_node_too():
    assert panelstate.deviceSelection("cpu", ["auto", "cpu"], True) == ("cpu", None)
    chosen, message = panelstate.deviceSelection("cuda:0", ["auto", "cpu"], torchInstalled=False)
    assert chosen == runner.AUTO and "GPUs are listed once PyTorch is installed" in message
    chosen, message = panelstate.deviceSelection("cuda:3", ["auto", "cuda:0", "cpu"], torchInstalled=True)
    assert chosen == runner.AUTO and "'cuda:3' is not available on this computer" in message


def test_the_dependency_line_and_the_device_list_never_import_torch(monkeypatch):
    def importsTorch():
        raise AssertionError("the panel imported torch")

    monkeypatch.setattr(runner, "torch_import_problem", importsTorch)  # the one place that imports it to look
    assert panelstate.dependencyStatus("PyTorch 2.13 runs on cpu.") == "PyTorch 2.13 runs on cpu."
    assert panelstate.deviceItems(None) == [("Automatic (GPU when available, else CPU)", "auto"), ("CPU", "cpu")]
    reported = [["Automatic (GPU when available, else CPU)", "auto"], ["GPU 0: X (8.0 GB)", "cuda:0"], ["CPU", "cpu"]]
    assert panelstate.deviceItems(reported)[1] == ("GPU 0: X (8.0 GB)", "cuda:0")
    monkeypatch.setattr(runner, "torch_installed", lambda: False)
    assert "not installed yet" in panelstate.dependencyStatus()


def test_the_key_passphrase_must_be_typed_twice_and_the_result_says_encrypted():
    assert panelstate.passphraseProblem("", "") is None  # no passphrase: an unencrypted key
    assert panelstate.passphraseProblem("correct horse", "correct horse") is None
    assert "differ" in panelstate.passphraseProblem("correct horse", "correct hrose")
    assert "differ" in panelstate.passphraseProblem("correct horse", "")
    assert "(encrypted with your passphrase)" in panelstate.keyResultLine("/k.amifkey", True)
    assert "(not encrypted)" in panelstate.keyResultLine("/k.amifkey", False)


def test_expected_errors_go_to_the_panel_and_bugs_to_the_error_dialog():
    import amif_core
    from AMIFSlicerLib.errors import DependencyError, InvalidInputError

    for error in (amif_core.KeyMismatchError("another volume"), amif_core.WrongPassphraseError("wrong"),
                  amif_core.InputError("bad"), InvalidInputError("choose"), DependencyError("declined"),
                  OSError(28, "No space left on device")):
        assert panelstate.isExpectedError(error), type(error).__name__
    for error in (TypeError("bug"), KeyError("bug"), ZeroDivisionError()):
        assert not panelstate.isExpectedError(error), type(error).__name__


def test_owner_text_that_looks_like_patient_data_gets_a_warning():
    for text in ("AMIF \u00a9", "Clinic X \u00a9 2026", "Radiology Dept, University Hospital"):
        assert panelstate.identifierWarning(text) is None, text
    assert "a person's name" in panelstate.identifierWarning("Jane Doe")
    assert "a person's name" in panelstate.identifierWarning("DOE^JANE")
    assert "a date" in panelstate.identifierWarning("scan 2026-03-14")
    assert "an ID number" in panelstate.identifierWarning("MRN 00123456")


def test_slicer_older_than_5_10_is_refused_with_a_reason():
    assert panelstate.slicerVersionProblem(5, 10) is None and panelstate.slicerVersionProblem(6, 0) is None
    problem = panelstate.slicerVersionProblem(5, 8)
    assert "needs 3D Slicer 5.10 or later" in problem and "this is Slicer 5.8" in problem


def test_progress_shows_the_time_left():
    assert panelstate.progressText(0, 180, 0.0) == "0 of 180 slices"
    assert panelstate.progressText(30, 180, 10.0) == "30 of 180 slices, about 50 s left"
    assert panelstate.progressText(10, 180, 60.0) == "10 of 180 slices, about 17 min left"
    assert panelstate.progressText(180, 180, 60.0) == "180 of 180 slices"


def test_the_demo_pair_loads_from_the_extension_as_sample_data():
    from AMIFSlicerLib import sampledata

    mri, pet = sampledata.demoVolumePaths()
    assert mri.is_file() and pet.is_file()
    loaded = []
    nodes = sampledata.loadDemo(lambda path, properties: loaded.append((path, properties)) or properties["name"])
    assert nodes == ["AMIF demo MRI", "AMIF demo PET"]
    assert [path for path, _ in loaded] == [str(mri), str(pet)]


def test_the_panels_words_go_through_slicers_translation_function(tmp_path):
    """With a stand-in for ``slicer.i18n.tr`` that shouts, the words of AMIFSlicerLib come out translated, and the
    names and numbers put into them do not."""
    import subprocess
    import sys
    from pathlib import Path

    module = Path(__file__).resolve().parents[2]
    code = (
        "import re, sys, types, slicer\n"
        "fake = types.ModuleType('slicer.i18n')\n"  # shouts everything but the {placeholders}, as a translator keeps them
        "fake.tr = lambda text: re.sub(r'(\\{[^}]*\\})|([^{]+)', lambda m: m.group(1) or m.group(2).upper(), text)\n"
        "sys.modules['slicer.i18n'] = fake; slicer.i18n = fake\n"
        f"sys.path.insert(0, {str(module)!r})\n"
        "from AMIFSlicerLib import panelstate, readiness\n"
        "print(readiness.protectBlocker(None, None, 'x', None))\n"
        "print(readiness.keyPathProblem(None, mustExist=True))\n"
        "print(panelstate.passphraseProblem('a', 'b'))\n"
        "print(panelstate.progressText(2, 5, 10.0))\n"
        "print(panelstate.keyResultLine('/keys/k.amifkey', True))\n"
        "from amif_core.runtime import runner\n"
        "from amif_core.key.file import read_key\n"
        "from amif_core.transforms.colour import colour_table\n"
        "for fail in (lambda: read_key('/keys/missing.amifkey'), lambda: colour_table('nope'),\n"
        "             lambda: runner.plan_run(10**9, (256, 256), 'cpu', False, 2**30, None)):\n"
        "    try:\n"
        "        fail()\n"
        "    except Exception as error:\n"
        "        print(panelstate.panelMessage(error))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, encoding="utf-8", check=True)
    lines = done.stdout.splitlines()
    assert lines[0] == "SELECT THE MRI."
    assert lines[1] == "CHOOSE THE KEY FILE."
    assert lines[2].startswith("THE TWO PASSPHRASE FIELDS DIFFER")
    assert lines[3] == "2 OF 5 SLICES, ABOUT 15 S LEFT"
    assert lines[4].startswith("KEY WRITTEN TO /keys/k.amifkey (ENCRYPTED WITH YOUR PASSPHRASE)")
    # the core's errors: their templates translated, the path, names and numbers put into them not; then the advice
    assert lines[5] == "THE KEY FILE /keys/missing.amifkey DOES NOT EXIST."
    assert lines[6] == "UNKNOWN COLOUR TABLE 'nope'; CHOOSE ONE OF pet, spect. CHANGE THE COLOUR CHOICE."
    assert lines[7].startswith("THIS VOLUME NEEDS ABOUT 44.8 GB OF MEMORY, BUT ONLY 1.0 GB IS FREE. CLOSE OTHER")


def test_the_catalogue_of_core_messages_lists_exactly_the_templates_of_amif_core():
    """lupdate finds the core's templates in coremessages.catalogue(): each one amif_core raises, and no other."""
    listed = coremessages.catalogue()
    assert len(listed) == len(set(listed)), "a template is listed twice"
    templates = coreErrorTemplates()
    assert sorted(templates - set(listed)) == [], "templates amif_core raises that the catalogue lacks"
    assert sorted(set(listed) - templates) == [], "catalogue entries that amif_core no longer raises"


def test_a_core_error_reaches_the_panel_with_its_advice_and_other_errors_as_they_are():
    import amif_core

    error = amif_core.InputError("Slicing along axis {axis} gives {rows}x{cols} slices.", axis=2, rows=4, cols=9,
                                 setting="axis", value=2)
    assert coremessages.coreMessage(error) == "Slicing along axis 2 gives 4x9 slices."
    assert panelstate.panelMessage(error) == ("Slicing along axis 2 gives 4x9 slices. The slice axis follows the MRI's "
                                         "orientation; reorient or crop the MRI.")
    assert panelstate.panelMessage(OSError(28, "No space left on device")) == "[Errno 28] No space left on device"


def test_a_translation_that_breaks_a_placeholder_falls_back_to_the_english_text(monkeypatch):
    import amif_core

    monkeypatch.setattr(coremessages, "_", lambda text: text.replace("{path}", "{chemin}"))
    error = amif_core.InputError("The key file {path} does not exist.", path="/keys/a.amifkey")
    assert coremessages.coreMessage(error) == "The key file /keys/a.amifkey does not exist."


def test_the_colour_list_is_amif_cores_colour_tables_between_automatic_and_grey():
    from AMIFSlicerLib import readiness

    from amif_core.transforms.colour import COLOUR_TABLES, TABLE_LOOKS

    assert readiness.COLOUR_CHOICES == (readiness.COLOUR_AUTO, *COLOUR_TABLES, readiness.COLOUR_GREY)
    items = panelstate.colourItems()
    assert [choice for _, choice in items] == list(readiness.COLOUR_CHOICES)
    for label, choice in items[1:-1]:
        assert label == f"{choice.upper()} colours ({TABLE_LOOKS[choice]})"
    assert set(readiness.AUTO_TABLES.values()) <= set(COLOUR_TABLES)
