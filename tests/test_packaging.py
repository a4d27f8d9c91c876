"""Packaging: ranges in setup.py, pins in constraints.txt, the lowest versions `make
test-lowest` installs, and library code that works from an installed wheel."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]


def _setup_lists() -> dict[str, list[str]]:
    tree = ast.parse((REPO / "setup.py").read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List):
            out[node.targets[0].id] = [ast.literal_eval(e) for e in node.value.elts]
    return out


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = Version(version)
    return pins


def test_requirements_are_ranges_that_hold_the_pins():
    lists = _setup_lists()
    pins = _pins()
    reqs = [Requirement(r) for key in ("INSTALL_REQUIRES", "ONNX", "BEAM", "TEST")
            for r in lists[key]]  # fmt: skip
    assert len(reqs) == 21
    for req in reqs:
        assert not any(s.operator == "==" for s in req.specifier), req  # a range, not a pin
        assert any(s.operator == ">=" for s in req.specifier), req  # with a tested floor
        assert req.specifier.contains(pins[req.name.lower()]), (req, pins[req.name.lower()])
    # every pinned distribution is required, but protobuf (TensorFlow's own range decides);
    # tensorboard is required: TensorFlow 2.21 no longer installs it, and tf.summary needs it
    # jaxlib comes with jax, h5py with keras (pinned below TensorFlow 2.21's h5py cap)
    assert set(pins) - {r.name.lower() for r in reqs} == {"protobuf", "jaxlib", "h5py"}


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
