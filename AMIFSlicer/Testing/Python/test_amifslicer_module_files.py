"""The files Slicer loads, checked without Qt: the .ui against the module code, CMake lists, catalog entry, icon.

The panel itself needs Slicer's Qt; what can be checked here is that every
widget the module touches exists in the .ui with the right type, that every
parameter-node field is bound to a fitting widget, that the build lists every
file, and that importing the module's library has no side effects.
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
from PIL import Image

MODULE_DIR = Path(__file__).resolve().parents[2]
REPO_ROOT = MODULE_DIR.parent
MODULE_SCRIPT = MODULE_DIR / "AMIFSlicer.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "AMIFSlicer.ui"
SCALAR_VOLUME_TYPES = ["vtkMRMLScalarVolumeNode"]
RGB_VOLUME_TYPES = ["vtkMRMLScalarVolumeNode", "vtkMRMLVectorVolumeNode"]  # colour PET/SPECT and colour fusions
WIDGET_FOR_TYPE = {"vtkMRMLScalarVolumeNode": {"qMRMLNodeComboBox"}, "ScalarOrColourVolumeNode": {"qMRMLNodeComboBox"},
                   "Path": {"ctkPathLineEdit"},
                   "str": {"QLineEdit"}}
UNBOUND_FIELDS = {"device", "colourMode",  # combos filled and synchronised by the widget code
                  "keyPath", "unlockKeyPath"}  # text ("" when unset), synchronised with their ctkPathLineEdit


def uiWidgets() -> dict[str, ElementTree.Element]:
    return {widget.get("name"): widget for widget in ElementTree.parse(UI_FILE).iter("widget")}


def stringList(widget: ElementTree.Element, propertyName: str) -> list[str]:
    return [s.text for p in widget.findall("property") if p.get("name") == propertyName for s in p.iter("string")]


def propertyText(widget: ElementTree.Element, propertyName: str) -> str | None:
    for p in widget.findall("property"):
        if p.get("name") == propertyName:
            return "".join(p.itertext()).strip()
    return None


def parameterNodeFields() -> dict[str, str]:
    tree = ast.parse(MODULE_SCRIPT.read_text(encoding="utf-8"))
    wrapper = next(node for node in tree.body if isinstance(node, ast.ClassDef)
                   and any(getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list))
    return {statement.target.id: ast.unparse(statement.annotation) for statement in wrapper.body
            if isinstance(statement, ast.AnnAssign)}


def test_every_widget_the_module_uses_exists_in_the_ui():
    used = set()
    for script in (MODULE_SCRIPT, MODULE_DIR / "AMIFSlicerLib" / "panelbuttons.py"):  # the widget and its actions
        tree = ast.parse(script.read_text(encoding="utf-8"))
        used |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and (
            (isinstance(node.value, ast.Attribute) and node.value.attr == "ui")
            or (isinstance(node.value, ast.Name) and node.value.id == "ui"))}
    assert {"protectButton", "unlockButton", "deviceComboBox", "passphraseLineEdit", "keyPathHintLabel"} <= used
    missing = used - set(uiWidgets())
    assert not missing, f"AMIFSlicer.py or panelbuttons.py uses widgets that the .ui lacks: {sorted(missing)}"


def test_node_selectors_list_scalar_volumes_and_get_the_scene():
    widgets = uiWidgets()
    selectors = {name: w for name, w in widgets.items() if w.get("class") == "qMRMLNodeComboBox"}
    assert set(selectors) == {"mriSelector", "otherSelector", "protectedSelector"}
    connections = {(c.findtext("sender"), c.findtext("signal"), c.findtext("receiver"), c.findtext("slot"))
                   for c in ElementTree.parse(UI_FILE).iter("connection")}
    for name, selector in selectors.items():
        expected = SCALAR_VOLUME_TYPES if name == "mriSelector" else RGB_VOLUME_TYPES
        assert stringList(selector, "nodeTypes") == expected, name
        assert propertyText(selector, "showChildNodeTypes") == "false", f"{name} would list label maps"
        assert propertyText(selector, "addEnabled") == "false" and propertyText(selector, "removeEnabled") == "false"
        assert ("AMIFSlicer", "mrmlSceneChanged(vtkMRMLScene*)", name, "setMRMLScene(vtkMRMLScene*)") in connections
    root = ElementTree.parse(UI_FILE).find("widget")
    assert root.get("class") == "qMRMLWidget" and root.get("name") == "AMIFSlicer"
    sections = [w for w in widgets.values() if w.get("class") == "ctkCollapsibleButton"]
    assert [propertyText(w, "text") for w in sections] == ["Inputs", "Protect and fuse", "Show", "Unlock", "Advanced"]


def test_parameter_node_fields_are_bound_to_fitting_widgets():
    fields = parameterNodeFields()
    assert set(fields) == {"mriVolume", "otherVolume", "identifierText", "device", "keyPath", "protectedVolume",
                           "unlockKeyPath", "colourMode"}
    assert not any("passphrase" in name.lower() for name in fields), "passphrases must never be saved"
    bound = {propertyText(w, "SlicerParameterName"): w for w in uiWidgets().values()
             if propertyText(w, "SlicerParameterName")}
    assert set(bound) == set(fields) - UNBOUND_FIELDS
    for name, widget in bound.items():
        assert widget.get("class") in WIDGET_FOR_TYPE[fields[name]], f"{name} is bound to a {widget.get('class')}"
    protectSection = {w.get("name") for w in ElementTree.parse(UI_FILE).iter("widget")
                      if w.get("name") == "protectCollapsibleButton"
                      for w in w.iter("widget")}
    assert {"keyPassphraseLineEdit", "keyPassphraseConfirmLineEdit"} <= protectSection, \
        "the key passphrase and its confirmation belong in the Protect section, where they are seen"
    for name in ("passphraseLineEdit", "keyPassphraseLineEdit", "keyPassphraseConfirmLineEdit"):
        widget = uiWidgets()[name]
        assert propertyText(widget, "SlicerParameterName") is None
        assert propertyText(widget, "echoMode") == "QLineEdit::Password"
    keyPaths = {name: propertyText(uiWidgets()[name], "filters")
                for name in ("keyPathLineEdit", "unlockKeyPathLineEdit")}
    assert "Writable" in keyPaths["keyPathLineEdit"] and "Readable" in keyPaths["unlockKeyPathLineEdit"]


def test_module_follows_the_scripted_module_template():
    source = MODULE_SCRIPT.read_text(encoding="utf-8")
    tree = ast.parse(source)
    classes = {node.name: [ast.unparse(base) for base in node.bases] for node in tree.body
               if isinstance(node, ast.ClassDef)}
    assert classes["AMIFSlicer"] == ["ScriptedLoadableModule"]
    assert classes["AMIFSlicerWidget"] == ["ScriptedLoadableModuleWidget", "VTKObservationMixin"]
    assert classes["AMIFSlicerLogic"] == ["ScriptedLoadableModuleLogic"]
    assert classes["AMIFSlicerTest"] == ["ScriptedLoadableModuleTest"]
    for required in ("slicer.util.tryWithErrorDisplay", "self.resourcePath(\"UI/AMIFSlicer.ui\")", "connectGui",
                     "slicer.app.processEvents()", "slicer.util.launchConsoleProcess", "slicer.app.testingEnabled()"):
        assert required in source, required
    for text in ("helpText", "acknowledgementText"):
        match = re.search(rf"self\.parent\.{text} = _\(\"\"\"(.*?)\"\"\"\)", source, re.DOTALL)
        assert match and len(match.group(1).split()) > 30, f"{text} must be filled in"
    testMethods = [f.name for c in tree.body if isinstance(c, ast.ClassDef) and c.name == "AMIFSlicerTest"
                   for f in c.body if isinstance(f, ast.FunctionDef)]
    assert "runTest" in testMethods and sum(name.startswith("test_") for name in testMethods) >= 2


def cmakeList(text: str, variable: str) -> list[str]:
    match = re.search(rf"set\({variable}\s+(.*?)\)", text, re.DOTALL)
    return [item.replace("${MODULE_NAME}", "AMIFSlicer") for item in match.group(1).split()]


def test_cmake_lists_every_script_and_resource():
    text = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    scripts = set(cmakeList(text, "MODULE_PYTHON_SCRIPTS"))
    onDisk = {"AMIFSlicer.py"} | {str(p.relative_to(MODULE_DIR)) for p in (MODULE_DIR / "AMIFSlicerLib").glob("*.py")}
    assert scripts == onDisk
    resources = set(cmakeList(text, "MODULE_PYTHON_RESOURCES"))
    assert resources == {str(p.relative_to(MODULE_DIR)) for p in (MODULE_DIR / "Resources").rglob("*") if p.is_file()}
    assert "WITH_GENERIC_TESTS" in text and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text
    dataFiles = cmakeList(text, "AMIF_CORE_DATA_FILES")
    for dataFile in dataFiles:
        assert dataFile.startswith(("weights/", "data/demo/"))
        assert (REPO_ROOT / "amif_core" / dataFile).is_file(), dataFile
    # Every shipped weights file goes into the extension: keys made by earlier weights must still unlock there.
    shipped = {f"weights/{p.name}" for p in (REPO_ROOT / "amif_core" / "weights").glob("*.pt")}
    assert shipped == {f for f in dataFiles if f.startswith("weights/")} and "weights/amif_v3.pt" in shipped


def test_extension_metadata_and_catalog_entry_agree():
    text = (REPO_ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    metadata = dict(re.findall(r'set\((EXTENSION_\w+) "([^"]*)"\)', text))
    for name in ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "DEPENDS"):
        assert metadata.get(f"EXTENSION_{name}"), f"EXTENSION_{name} is not set"
    assert "add_subdirectory(AMIFSlicer)" in text and re.search(r"project\(AMIFSlicer\)", text)
    for url in metadata["EXTENSION_SCREENSHOTURLS"].split():
        assert (REPO_ROOT / url.split("/main/", 1)[1]).is_file(), url
    assert (REPO_ROOT / metadata["EXTENSION_ICONURL"].split("/main/", 1)[1]).is_file()

    entry = json.loads((REPO_ROOT / "AMIFSlicer.json").read_text(encoding="utf-8"))
    allowed = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
               "dicom_support_rule", "build_subdirectory", "enabled", "tier"}  # schema v1.0.2, no extra keys
    assert set(entry) <= allowed and {"$schema", "category", "scm_url"} <= set(entry)
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.2.json#")
    assert entry["category"] == metadata["EXTENSION_CATEGORY"]
    assert entry["build_dependencies"] == metadata["EXTENSION_DEPENDS"].split()
    assert 1 <= entry["tier"] <= 5
    repository = re.fullmatch(r"https://github\.com/([^/]+/[^/]+)\.git", entry["scm_url"]).group(1)
    assert metadata["EXTENSION_HOMEPAGE"].startswith(f"https://github.com/{repository}#")
    for url in (metadata["EXTENSION_ICONURL"], *metadata["EXTENSION_SCREENSHOTURLS"].split()):
        assert url.startswith(f"https://raw.githubusercontent.com/{repository}/main/"), url
    license_text = (REPO_ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text


def test_icon_is_the_committed_drawing(tmp_path):
    committed = MODULE_DIR / "Resources" / "Icons" / "AMIFSlicer.png"
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "make_slicer_icon.py"), "--out",
                    str(tmp_path / "icon.png")], check=True, capture_output=True)
    icon = Image.open(committed)
    assert icon.size == (128, 128) and icon.mode == "RGBA"
    assert np.array_equal(np.asarray(icon), np.asarray(Image.open(tmp_path / "icon.png")))


def test_importing_the_library_installs_and_imports_nothing_heavy():
    code = (
        "import sys, importlib\n"
        "before = set(sys.modules)\n"
        "for name in ('AMIFSlicerLib.bootstrap', 'AMIFSlicerLib.dependencies',\n"
        "             'AMIFSlicerLib.display', 'AMIFSlicerLib.errors', 'AMIFSlicerLib.logic',\n"
        "             'AMIFSlicerLib.testdata', 'AMIFSlicerLib.volumenodes',\n"
        "             'AMIFSlicerLib.engines', 'AMIFSlicerLib.worker', 'AMIFSlicerLib.panelbuttons'):\n"
        "    importlib.import_module(name)\n"
        "loaded = set(sys.modules) - before\n"
        "light = {'amif_core', 'amif_core.constants', 'amif_core.errors', 'amif_core.runtime', 'amif_core.transforms',\n"
        "         'amif_core.transforms.colour', 'amif_core.runtime.heap', 'amif_core.runtime.runner', 'amif_core.cli',\n"
        "         'amif_core.cli.worker', 'amif_core.runtime.callbacks'}\n"
        "heavy = sorted(m for m in loaded - light if m.split('.')[0] in ('torch', 'amif_core', 'pip', 'ptwt', 'PIL'))\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=MODULE_DIR, capture_output=True, text=True,
                            check=True, env={"PYTHONPATH": str(MODULE_DIR), "PATH": "/usr/bin:/bin"})
    assert result.stdout.strip() == "[]"


def test_source_checkout_finds_amif_core_next_to_the_module(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "AMIFSlicer" / "AMIFSlicerLib").mkdir(parents=True)
    (checkout / "amif_core").mkdir()
    (checkout / "amif_core" / "__init__.py").write_text("MARK = 'checkout copy'\n")
    (checkout / "AMIFSlicer" / "AMIFSlicerLib" / "__init__.py").write_text("")
    bootstrap = (MODULE_DIR / "AMIFSlicerLib" / "bootstrap.py").read_text(encoding="utf-8")
    (checkout / "AMIFSlicer" / "AMIFSlicerLib" / "bootstrap.py").write_text(bootstrap)
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(checkout / 'AMIFSlicer')!r})\n"
        "from AMIFSlicerLib.bootstrap import ensureAmifCoreImportable\n"
        f"added = ensureAmifCoreImportable({str(checkout / 'AMIFSlicer')!r})\n"
        "import amif_core\n"
        "again = ensureAmifCoreImportable(sys.path[0])\n"
        "print(added, amif_core.MARK, again, sep='|')\n"
    )
    # -I -S: no site-packages, so an installed amif-core (e.g. an editable install) cannot answer instead
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"{checkout}|checkout copy|None"


def test_the_extensions_index_reads_literal_urls_from_the_cmake_file():
    text = (REPO_ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    for name in ("HOMEPAGE", "ICONURL", "SCREENSHOTURLS"):
        # the index validator's own expression: the text between the quotes is what it downloads
        value = re.search(rf'set\s*\(EXTENSION_{name}\s*"([^"]+)"', text).group(1)
        for url in value.split():
            assert url.startswith("https://") and "${" not in url and "$" not in url, f"EXTENSION_{name}: {url}"
            if "/main/" in url:
                assert (REPO_ROOT / url.split("/main/", 1)[1]).is_file(), url


def test_contributors_are_a_placeholder_the_release_checklist_names_and_the_readme_names_the_license():
    text = (REPO_ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    contributors = re.search(r'set\(EXTENSION_CONTRIBUTORS "([^"]*)"\)', text).group(1)
    assert "contributors" not in contributors.lower() and "AMIF" not in contributors, \
        "a project name is not a person"
    assert re.fullmatch(r"[^(),]+ \([^()]+\)", contributors), "the index's form: Name (Affiliation)"
    module = MODULE_SCRIPT.read_text(encoding="utf-8")
    assert f'self.parent.contributors = ["{contributors}"]' in module
    slicer_docs = (REPO_ROOT / "docs" / "slicer.md").read_text(encoding="utf-8")
    checklist = slicer_docs[slicer_docs.index("## Release checklist"):]
    assert contributors in checklist.split("\n#", 1)[0], "the checklist says to replace the placeholder"
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(r"^## License\n+.*Apache License 2\.0.*\(LICENSE\)", readme, re.MULTILINE)


def test_the_backend_tooltip_says_what_each_route_installs():
    tip = propertyText(uiWidgets()["torchBackendComboBox"], "toolTip")
    assert "installs torchvision with it" in tip and "A chosen build installs PyTorch alone, without torchvision" in tip
    assert "Only PyTorch is installed, not torchvision" not in tip  # wrong for the extension's automatic route
