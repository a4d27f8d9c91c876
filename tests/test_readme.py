"""The README's Python inference examples, run as written (issue 14)."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden import load_golden

import panns_keras
from panns_keras.convert.mapping import assign_state_dict
from panns_keras.labels import audioset_labels
from panns_keras.models.saving import save_model_dir

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "tests" / "assets" / "audio"


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def python_blocks(section: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_python_api_examples_run_as_written(tmp_path, capsys):
    from panns_keras.export import export_savedmodel, export_tflite

    blocks = python_blocks(readme_section("Python inference API"))
    assert len(blocks) == 3
    # The files the examples name, in a scratch working directory.
    model = panns_keras.build_model("cnn6")
    assign_state_dict(model, load_golden("Cnn6")[1])
    model.labels = tuple(name for _, name in audioset_labels())
    save_model_dir(model, tmp_path / "models" / "cnn6", audioset_labels())
    export_tflite(model, tmp_path / "export" / "cnn6_float32.tflite", window_seconds=10.0)
    export_savedmodel(model, tmp_path / "export" / "savedmodel")
    shutil.copy(AUDIO / "gcompris_memory_LRBark_1_LA_cut.wav", tmp_path / "dog.wav")
    shutil.copy(AUDIO / "asterisk_call-forwarding.wav", tmp_path / "street.wav")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        namespace: dict = {}
        for block in blocks:
            exec(compile(block, "README.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "[(512,), (512,)]" in out
    assert "(1, 527) (1, 512) (1, 101, 64)" in out
    assert namespace["result"].window_clipwise.shape[1] == 527
    assert namespace["found"].frame_scores_hop == 0.25


def test_readme_verbs_exist():
    """The flags the README's command-line paragraph names are defined by the infer verbs."""
    text = readme_section("Command line: `panns-keras <verb>` (`panns-keras <verb> --help` for "
                          "each verb's flags)")  # fmt: skip
    from absl import flags

    import panns_keras.cli.infer  # noqa: F401

    named = set(re.findall(r"--([a-z_]+)", text))
    new = {"model", "hop_seconds", "median_filter", "scores_dir", "out_npz"}
    assert new <= named
    for flag in new:
        assert flag in flags.FLAGS, flag
