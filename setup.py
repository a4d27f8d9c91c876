"""panns-keras: PANNs audio tagging in Keras 3 / TensorFlow.

``install_requires`` holds version *ranges* so the package installs into an environment
that already has TensorFlow; both ends are tested: the lower end by ``make test-lowest``
(TensorFlow, Keras and NumPy at their lowest supported versions installed first), the upper
end by ``make test`` with the exact pins of ``constraints.txt``.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "panns_keras/__init__.py").read_text())[1]

# Lower ends: the versions `make test-lowest` installs first (LOWEST in the Makefile).
# Upper ends: the next release after the tested pins where a release line may break the API
# (TensorFlow minor versions), else the next major version.
INSTALL_REQUIRES = [
    "tensorflow>=2.16.2,<2.22",
    "keras>=3.3.3,<4",
    "numpy>=1.26.4,<3",
    "absl-py>=1.0",
    "ml-collections>=0.1.1",
    # tf.summary needs it; TensorFlow 2.16 installs it, 2.21 no longer does.
    "tensorboard>=2.16.2,<3",
    "soundfile>=0.12.1",
    "soxr>=0.3.7",
    "scipy>=1.11",
    # The linear probe caps BLAS at one thread while it solves (train/probe.py): threaded,
    # L-BFGS-B's vector work ran 5-10x slower on a busy 2-core machine.
    "threadpoolctl>=3.1",
    "ai-edge-litert>=1.2",
    "matplotlib>=3.7",
]
ONNX = ["tf2onnx>=1.16.1", "onnx>=1.16", "onnxruntime>=1.18"]
BEAM = ["apache-beam>=2.60"]
TEST = ["pytest>=8", "ruff>=0.6", "librosa>=0.10.2", "scikit-learn>=1.4", "mediapipe>=0.10.14",
        "jax>=0.4.30"]  # jax: the model layer's JAX-backend tests

setup(
    name="panns-keras",
    version=VERSION,
    description="PANNs (Kong et al. 2020) audio tagging models in Keras 3 / TensorFlow",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    # Verified on CPython 3.11 only (the development and CI interpreter).
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["panns_keras", "panns_keras.*", "data_prep", "data_prep.*"]),
    package_data={"panns_keras": ["assets/*.csv", "configs/*.py"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": TEST + BEAM + ONNX, "beam": BEAM, "onnx": ONNX},
    entry_points={"console_scripts": ["panns-keras=panns_keras.cli:main"]},
)
