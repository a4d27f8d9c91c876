"""Only what pyproject.toml cannot say: the top-level ``configs/`` folder is installed as the
package ``panns_keras.configs`` (one copy on disk; an editable install maps it too). All
metadata is in pyproject.toml."""

from setuptools import find_packages, setup

PACKAGES = find_packages(include=["panns_keras", "panns_keras.*"])  # data_prep/: a launcher

setup(packages=[*PACKAGES, "panns_keras.configs"], package_dir={"panns_keras.configs": "configs"})
