"""The README's examples, run as written: the Python inference examples (issue 14) and every
command line of the README (the command-line table and the ```bash blocks; issue 23), with
the paths swapped for tiny test data and small models (SWAPS, EXTRA)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import panns_keras
from panns_keras.convert.mapping import assign_state_dict
from panns_keras.labels import audioset_labels
from panns_keras.models.saving import save_model_dir
from tests.helpers.golden import load_golden

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


# What a README command line names -> what the test has (applied in order, as plain text).
SWAPS = [
    ("Cnn14_mAP=0.431.pth", "LeeNet11_mAP=0.000.pth"),  # a genuine, small PANNs checkpoint
    ("--out models/cnn14", "--out models/converted"),
    ("models/cnn14_sed", "models/cnn6"),
    ("models/cnn14", "models/cnn6"),  # the golden Cnn6 (AudioSet labels, 32 kHz)
    ("--config=audioset:cnn14", "--config=demo"),
    # distillation: the bundled digits are prepared as written; the teacher and its
    # predictions are a tiny Cnn6 on the 3-class demo shards the student trains on (EXTRA)
    ("demo_data/fsdd/", f"{ROOT}/demo_data/fsdd/"),
    ("--model=runs/demo/model --data=data/digits --out=data/digits_teacher",
     "--model=models/demo_teacher --data=data/demo --out=data/demo_teacher"),
    ("--config.data.teacher=data/digits_teacher", "--config.data.teacher=data/demo_teacher"),
]
# Flags appended per verb: a training run takes two steps on the tiny data, export works on
# 1 s windows (every format of the line, at a tenth of the conversion and calibration time).
EXTRA = {
    "train": "--config.train.num_steps=2 --config.train.log_every=1 --config.eval.every=0 "
             "--config.train.image_every=0 --config.data.train_files='data/demo/*.tfrecord' "
             "--config.data.num_classes=3",
    "export": "--window_seconds 1",  # the formats as written, on 1 s windows
    "finetune": "--config.train.num_steps=2 --config.train.batch_size=2 --clip_seconds=1",
}  # fmt: skip
# Files a command must have written (relative to its working directory), from its flags.
WRITES = {
    "convert": ["{out}/model.weights.h5"],
    "prepare": ["{out}/manifest.json"],
    "train": ["{out}/config.json"],
    "evaluate": ["{out}/metrics.json"],
    "export": ["{out}/export_info.json"],
    "sed": ["{out_tsv}", "{scores_dir}", "{plot}"],
    "embed": ["{out}", "{out_npz}"],
    "finetune": ["{out}/results.json"],
    "teach": ["{out}/teacher.json"],
}
SLOW = {"export", "finetune", "train"}


def readme_command_lines() -> list[str]:
    """Every command line in README.md: the table's `panns-keras ...` cells and the lines of
    ```bash / ```sh blocks that run panns-keras (after optional VAR=value assignments)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = re.findall(r"^\| *[a-z]+ *\| *`(panns-keras [^`]+)`", text, flags=re.M)
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if re.match(r"^([A-Z_]+=\S+ +)*panns-keras ", line):
                lines.append(line)
    return lines


def _verb(line: str) -> str:
    return line.split("panns-keras ", 1)[1].split()[0]


COMMANDS = readme_command_lines()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A working directory with every file the README's commands name."""
    from tests.helpers.train_data import write_data

    d = tmp_path_factory.mktemp("readme")
    model = panns_keras.build_model("cnn6")
    assign_state_dict(model, load_golden("Cnn6")[1])
    save_model_dir(model, d / "models" / "cnn6", audioset_labels())
    shutil.copy(ROOT / "tests/assets/ckpt/LeeNet11_golden_zip.pth", d / "LeeNet11_mAP=0.000.pth")
    for src, dst in [("gcompris_memory_LRBark_1_LA_cut.wav", "dog.wav"),
                     ("freedesktop_camera-shutter_22k.mp3", "street.mp3"),
                     ("ovos_rooster_44k_stereo.flac", "recording.flac")]:  # fmt: skip
        shutil.copy(AUDIO / src, d / dst)
    rows = ["path,labels,fold"]
    for i, name in enumerate(["fsdd_0_george_0", "fsdd_1_jackson_0", "fsdd_7_theo_0",
                              "ovos_sheep", "ovos_rooster", "librosa_robin"]):  # fmt: skip
        cls = "digit" if name.startswith("fsdd") else "animal"
        (d / "my_sounds" / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(AUDIO / f"{name}.wav", d / "my_sounds" / cls / f"{name}.wav")
        rows.append(f"my_sounds/{cls}/{name}.wav,{cls},{i % 2}")
    (d / "my_dataset.csv").write_text("\n".join(rows) + "\n")
    write_data(str(d / "data" / "demo"), clips_per_class=4, sample_rate=8000, clip=8000)
    prep = run_line("panns-keras prepare --class_dir=my_sounds/ --out=data/eval "
                    "--sample_rate=32000 --clip_seconds=1", d)  # fmt: skip
    assert prep.returncode == 0, prep.stderr
    return d


def _digits_files(d: Path) -> None:
    """models/digits and digits/{train,test}.csv for README's --check line: a Cnn6 trained on
    the bundled spoken digits (tests/helpers/trained_models.py, once per process)."""
    if (d / "models" / "digits").is_dir():
        return
    sys.path.insert(0, str(ROOT))
    from tests.helpers.trained_models import digits_model

    trained = digits_model()
    shutil.copytree(trained.model_dir, d / "models" / "digits")
    shutil.copytree(trained.data_dir, d / "digits")


def _teacher_files(d: Path, predictions: bool) -> None:
    """models/demo_teacher (a tiny Cnn6 at the demo shards' 8 kHz and 3 classes) and, for
    the student's line, its predictions in data/demo_teacher (what the teach line writes)."""
    from tests.helpers.teacher_data import make_teacher, tiny_teacher

    tiny_teacher(str(d / "models" / "demo_teacher"))
    if predictions and not (d / "data" / "demo_teacher" / "teacher.json").is_file():
        make_teacher(str(d / "data" / "demo"), str(d / "data" / "demo_teacher"),
                     str(d / "models" / "demo_teacher"))  # fmt: skip


def run_line(line: str, cwd: Path) -> subprocess.CompletedProcess:
    """Runs one README line through bash (globs, quotes and VAR=value as a user's shell)."""
    command = line.replace("panns-keras ", f"{shlex.quote(sys.executable)} -m panns_keras ", 1)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=900)  # fmt: skip


def test_readme_command_lines_are_found():
    verbs = [_verb(line) for line in COMMANDS]
    for verb in ("convert", "prepare", "train", "evaluate", "export", "tag", "sed", "embed",
                 "finetune"):  # fmt: skip
        assert verb in verbs, verb
    # every verb a line uses has its expected outputs listed, or is a printing verb
    assert set(verbs) <= set(WRITES) | {"tag", "models", "--version", "--helpfull"}, verbs


@pytest.mark.parametrize("line", [
    pytest.param(line, id=f"{i}-{_verb(line)}",
                 marks=[pytest.mark.slow] if _verb(line) in SLOW else [])
    for i, line in enumerate(COMMANDS)
])  # fmt: skip
def test_readme_command_line_runs(line, scratch):
    verb = _verb(line)
    for old, new in SWAPS:
        line = line.replace(old, new)
    line = f"{line} {EXTRA.get(verb, '')}".strip()
    if "--check digits/" in line:
        _digits_files(scratch)
    if "demo_teacher" in line:
        _teacher_files(scratch, predictions="data.teacher=" in line)
    p = run_line(line, scratch)
    assert p.returncode == 0, f"{line}\n{p.stderr[-3000:]}"
    assert "Traceback" not in p.stderr
    given = dict(re.findall(r"--([a-z_]+)[= ]([^ -][^ ]*)", line))
    for path in WRITES.get(verb, []):
        path = path.format(**given).strip("'\"")
        assert (scratch / path).exists(), (line, path)
    if verb == "tag":  # two files, five labels each, in a table
        assert p.stdout.count("dog.wav") >= 1 and p.stdout.count("street.mp3") >= 1, p.stdout
