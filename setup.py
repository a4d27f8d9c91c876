"""panns-keras: PANNs audio tagging in Keras 3 / TensorFlow. Requirements come from the pinned
requirements files so the two never drift."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
ONNX = ("tf2onnx", "onnx", "onnxruntime")  # the 'onnx' extra: their pins in requirements-test


def _requirements(name: str) -> list[str]:
    lines = (HERE / name).read_text().splitlines()
    return [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()
            and not ln.startswith("-r")]  # fmt: skip


setup(
    name="panns-keras",
    version="0.1.0",
    description="PANNs (Kong et al. 2020) audio tagging models in Keras 3 / TensorFlow",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["panns_keras", "panns_keras.*", "data_prep", "data_prep.*"]),
    package_data={"panns_keras": ["assets/*.csv"]},
    install_requires=_requirements("requirements.txt"),
    extras_require={
        "test": _requirements("requirements-test.txt"),
        "beam": ["apache-beam==2.77.0"],
        "onnx": [r for r in _requirements("requirements-test.txt") if r.split("==")[0] in ONNX],
    },
    entry_points={"console_scripts": ["panns-keras=panns_keras.cli:main"]},
)
