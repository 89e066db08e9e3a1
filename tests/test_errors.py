"""AMIF's errors: a message is a literal template filled with named params, so a front end can translate it."""
from __future__ import annotations

from pathlib import Path

import pytest
from error_templates import error_sites, placeholders

from amif_core.errors import AMIFError, InputError, KeyFormatError


def test_every_core_error_is_built_from_one_literal_template_whose_placeholders_are_its_params():
    sites = error_sites()
    assert len(sites) > 100  # the scan finds the raises (and the errors built without raising)
    assert {"KeyFormatError", "ImageModifiedError", "MemoryLimitError", "CancelledError"} <= {s.error for s in sites}
    problems = [site.problem() for site in sites if site.problem() is not None]
    assert not problems, "\n".join(problems)


def test_the_scan_names_each_error_built_another_way(tmp_path: Path):
    package = tmp_path / "core"
    package.mkdir()
    (package / "errors.py").write_text("class AMIFError(Exception): ...\nclass InputError(AMIFError, ValueError): ...\n"
                                       "class Deeper(errors.InputError): ...\n")
    (package / "use.py").write_text(
        "raise InputError(f'{path} is gone.')\n"
        "raise InputError('The ' + 'end.')\n"
        "raise InputError('{path} is gone.' if gone else '{path} is here.', path=path)\n"
        "error = Deeper('{path} is {size} bytes.', path=path)\n"
        "raise errors.InputError('{path} is gone.', path=path, setting='axis', **more)\n"
        "raise InputError('The ' 'end.', setting='axis', value=3)\n"
        "raise ValueError(f'{path} is not an AMIF error.')\n")
    problems = [site.problem() for site in error_sites(package)]
    assert problems == [
        "core/use.py:1: InputError's first argument is not one literal string",
        "core/use.py:2: InputError's first argument is not one literal string",
        "core/use.py:3: InputError's first argument is not one literal string",
        "core/use.py:4: template fields ['path', 'size'] but params ['path']",
        "core/use.py:5: InputError takes its params from a ** mapping",
        None,
    ]


def test_placeholders_are_the_field_names_of_a_format_template():
    assert placeholders("The key file {path} is {size:.1f} MB ({name!r}).") == {"path", "size", "name"}
    assert placeholders("No parameters.") == set()


def test_an_error_keeps_its_template_and_params_and_formats_its_message():
    error = InputError("The key file {path} holds {size:.1f} MB.", path=Path("/keys/k.amifkey"), size=1.25,
                       setting="overwrite", value="k")
    assert str(error) == "The key file /keys/k.amifkey holds 1.2 MB."
    assert error.template == "The key file {path} holds {size:.1f} MB."
    assert error.params == {"path": Path("/keys/k.amifkey"), "size": 1.25}
    assert (error.setting, error.value) == ("overwrite", "k")
    assert error.hint({"overwrite": "Choose another key file."}) == (
        "The key file /keys/k.amifkey holds 1.2 MB. Choose another key file.")
    assert error.hint({}) == str(error) and isinstance(error, ValueError)
    plain = KeyFormatError("Not a key.")
    assert (str(plain), plain.template, plain.params, plain.setting, plain.hint({"axis": "x"})) == (
        "Not a key.", "Not a key.", {}, None, "Not a key.")


def test_an_unknown_setting_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown setting 'size'"):
        AMIFError("Too big.", setting="size")


def test_shared_advice_follows_the_message_and_travels_to_a_front_end():
    import json

    from amif_core.cli.worker import error_from_message, error_message
    from amif_core.key.file import INTACT_COPY

    error = KeyFormatError("The key file {path} is truncated ({size} bytes).", advice=INTACT_COPY, path="k", size=3)
    assert str(error) == f"The key file k is truncated (3 bytes). {INTACT_COPY}"
    assert (error.template, error.params, error.advice) == ("The key file {path} is truncated ({size} bytes).",
                                                             {"path": "k", "size": 3}, INTACT_COPY)
    again = error_from_message(json.loads(json.dumps(error_message(error))))
    assert type(again) is KeyFormatError and str(again) == str(error) and again.advice == INTACT_COPY
    sites = [site for site in error_sites() if site.place.startswith("amif_core/key/file.py")]
    assert sum(site.advice == INTACT_COPY for site in sites) >= 13
    assert not any(INTACT_COPY in (site.template or "") for site in sites), "the advice is written once"
