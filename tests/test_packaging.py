"""Packaging: ranges in pyproject.toml, pins in requirements*.txt, the lowest versions `make
test-lowest` installs, the metadata and layout of a built wheel, and library code that works
from an installed wheel."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _setup_lists() -> dict[str, list[str]]:
    project = _project()
    extras = project["optional-dependencies"]
    return {
        "INSTALL_REQUIRES": project["dependencies"],
        "ONNX": extras["onnx"],
        "BEAM": extras["beam"],
        "TEST": [r for r in extras["test"] if not r.startswith("panns-keras")],
    }


def _pins(name: str | None = None) -> dict[str, Version]:
    pins = {}
    for file in [name] if name else ["requirements.txt", "requirements-test.txt"]:
        for line in (REPO / file).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line:
                pin, version = line.split("==")
                pins[pin.lower()] = Version(version)
    return pins


def test_requirements_are_ranges_that_hold_the_pins():
    lists = _setup_lists()
    pins = _pins()
    reqs = [
        Requirement(r) for key in ("INSTALL_REQUIRES", "ONNX", "BEAM", "TEST") for r in lists[key]
    ]
    assert len(reqs) == 23
    for req in reqs:
        assert not any(s.operator == "==" for s in req.specifier), req  # a range, not a pin
        assert any(s.operator == ">=" for s in req.specifier), req  # with a tested floor
        assert req.specifier.contains(pins[req.name.lower()]), (req, pins[req.name.lower()])
    # every pinned distribution is required, but protobuf (TensorFlow's own range decides);
    # tensorboard is required: TensorFlow 2.21 no longer installs it, and tf.summary needs it
    # jaxlib comes with jax, h5py with keras (pinned below TensorFlow 2.21's h5py cap)
    # setuptools and wheel: the build backend of the editable installs; execnet comes with
    # pytest-xdist
    assert set(pins) - {r.name.lower() for r in reqs} == {
        "protobuf",
        "execnet",
        "jaxlib",
        "h5py",
        "setuptools",
        "wheel",
    }
    # requirements.txt holds the runtime pins, exactly: one pin per dependency (+ the two
    # TensorFlow's own ranges decide), nothing of the test tools
    runtime = {Requirement(r).name.lower() for r in lists["INSTALL_REQUIRES"]}
    assert set(_pins("requirements.txt")) == runtime | {"protobuf", "h5py"}
    assert not (REPO / "constraints.txt").exists()
    # the test extra pulls the optional extras in, as the old extras_require did
    assert "panns-keras[beam,onnx]" in _project()["optional-dependencies"]["test"]


def test_metadata_is_pep621_and_the_pythons_are_3_11_to_3_13():
    project = _project()
    assert project["requires-python"] == ">=3.11,<3.14"
    pythons = {
        c.rsplit(" ", 1)[1]
        for c in project["classifiers"]
        if c.startswith("Programming Language :: Python :: 3.")
    }
    assert pythons == {"3.11", "3.12", "3.13"}
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text().startswith("MIT License\n")
    assert project["readme"] == "README.md"
    assert project["scripts"] == {"panns-keras": "panns_keras.cli:main"}
    # setup.py holds no metadata, only the configs/ mapping
    setup_py = (REPO / "setup.py").read_text()
    for field in ("name=", "version=", "install_requires", "python_requires", "entry_points"):
        assert field not in setup_py
    assert '{"panns_keras.configs": "configs"}' in setup_py
    # the recipes: one copy, at the top level
    assert sorted(p.name for p in (REPO / "configs").glob("*.py")) == [
        "__init__.py",
        "audioset.py",
        "audioset_balanced.py",
        "demo.py",
        "finetune.py",
    ]
    assert not (REPO / "panns_keras" / "configs").exists()
    # the Makefile's other Pythons are the classifiers' (but 3.11, the main interpreter)
    others = re.search(r"^OTHER_PYTHONS \?= (.+)$", (REPO / "Makefile").read_text(), re.M)[1]
    assert set(others.split()) == pythons - {"3.11"}


def test_built_wheel_installs_configs_and_metadata(tmp_path):
    """The wheel holds panns_keras/configs/*.py (from the top-level configs/), the licence and
    the PEP 621 metadata."""
    import setuptools

    if Version(setuptools.__version__) < Version("77"):
        pytest.fail(
            f"setuptools {setuptools.__version__} < 77 (the build backend pyproject "
            "asks for); run `make setup-test`"
        )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("panns_keras-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(z.read(meta_name).decode())
        demo = z.read("panns_keras/configs/demo.py").decode()
    assert demo == (REPO / "configs" / "demo.py").read_text()
    assert {n for n in names if n.startswith("panns_keras/configs/")} == {
        f"panns_keras/configs/{p.name}" for p in (REPO / "configs").glob("*.py")
    }
    assert not any(n.startswith("configs/") for n in names)
    # one top-level package: nothing generic (data_prep, tests, benchmarks) in site-packages
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {
        "panns_keras"
    }
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert meta["License-Expression"] == "MIT"
    assert meta["Requires-Python"] in (">=3.11,<3.14", "<3.14,>=3.11")
    assert "Programming Language :: Python :: 3.13" in meta.get_all("Classifier")
    assert len(meta.get_all("Requires-Dist")) >= 11


def test_lowest_versions_are_the_floors():
    """`make test-lowest` installs exactly the lower ends of the core ranges."""
    lowest = re.search(r"^LOWEST \?= (.+)$", (REPO / "Makefile").read_text(), re.M)[1].split()
    floors = {}
    for r in _setup_lists()["INSTALL_REQUIRES"]:
        req = Requirement(r)
        floors[req.name] = next(s.version for s in req.specifier if s.operator == ">=")
    assert {p.split("==")[0]: p.split("==")[1] for p in lowest} == {
        name: floors[name] for name in ("tensorflow", "keras", "numpy")
    }


def test_library_code_does_not_look_for_the_repository():
    """No `Path(__file__).parents[...]` lookups or test-only switches in what is installed."""
    offenders = []
    for path in [*REPO.glob("panns_keras/**/*.py"), *REPO.glob("data_prep/**/*.py")]:
        text = path.read_text()
        for bad in (".parents[", "PANNS_KERAS_SIGKILL", "PANNS_PREPARE_EXIT", "os._exit("):
            if bad in text:
                offenders.append(f"{path.relative_to(REPO)}: {bad}")
    assert offenders == []
    assert not (REPO / "panns_keras" / "demo.py").exists()
    assert (REPO / "examples" / "demo.py").is_file()
    assert (REPO / "examples" / "transfer_demo.py").is_file()
