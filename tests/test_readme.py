"""The README's and docs/'s examples, run as written: every Python block (issue 14; the
README's Keras-way block runs in tests/models/test_tagger_keras.py) and every command line
(the README's command-line table and the ```bash blocks; issue 23), with the paths swapped for
tiny test data and small models (SWAPS, EXTRA). Command lines that are not ``panns-keras``
(``make``, ``pip``) are checked against the Makefile and the repository's files (issue 38)."""

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
# The user's path (README) and the longer material it links to (docs/).
DOCS = ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]


def doc_text(doc: str = "README.md") -> str:
    return (ROOT / doc).read_text(encoding="utf-8")


def readme_section(title: str, doc: str = "README.md") -> str:
    """The ``## title`` section of README.md or of another page (``doc="docs/NAME.md"``)."""
    text = doc_text(doc)
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def sections(doc: str) -> list[tuple[str, str]]:
    """``(title, text)`` of every ``## `` section of a page (the text before the first: "")."""
    parts = re.split(r"^## (.+)$", doc_text(doc), flags=re.M)
    return [("", parts[0])] + list(zip(parts[1::2], parts[2::2]))


def python_blocks(section: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


# The sections whose ```python blocks a test runs as written: (page, section title) -> test.
PYTHON_RUN = {
    ("README.md", "A pretrained model"): "test_readme_pretrained_model_example_runs",
    ("README.md", "Tag, detect events, embed in Python"): "test_readme_python_api_examples_run",
    ("docs/deployment.md", "SavedModel"): "test_readme_python_api_examples_run",
    ("docs/inference.md", "Models"): "test_docs_model_examples_run",
    (
        "README.md",
        "The Keras way",
    ): "tests/models/test_tagger_keras.py::test_readme_the_keras_way_runs_as_written",
}
# Code that no test can run here, with what checks it instead.
NOT_PYTHON = {
    (
        "docs/deployment.md",
        "Android (TFLite / MediaPipe)",
        "kotlin",
    ): "its file name, input and output facts: tests/export/test_export.py",
}


def run_blocks(blocks: list[str], cwd: Path, namespace: dict, where: str) -> dict:
    here = os.getcwd()
    os.chdir(cwd)
    try:
        for block in blocks:
            exec(compile(block, where, "exec"), namespace)
    finally:
        os.chdir(here)
    return namespace


def test_every_code_block_is_run_or_checked():
    """Each fenced block of README.md and docs/: python run by a test above (PYTHON_RUN), bash
    lines run or checked below, anything else named in NOT_PYTHON."""
    opened = set()  # (page, section, language) of each fenced block
    for doc in DOCS:
        for title, text in sections(doc):
            for lang in re.findall(r"```(\w*)\n.*?```", text, flags=re.S):
                opened.add((doc, title, lang))
    python = {(d, t) for d, t, lang in opened if lang == "python"}
    assert python == set(PYTHON_RUN), python ^ set(PYTHON_RUN)
    other = {k for k in opened if k[2] not in ("python", "bash")}
    assert other == set(NOT_PYTHON), other
    assert ("README.md", "", "bash") in opened  # make demo / make test open the README
    assert doc_text().startswith("# panns-keras\n\n```bash\nmake demo ")


@pytest.fixture()
def chdir_scratch(tmp_path, monkeypatch):
    monkeypatch.setenv("PANNS_KERAS_OFFLINE", "1")  # the examples never download here
    monkeypatch.setenv("PANNS_KERAS_HOME", str(tmp_path / "cache"))
    return tmp_path


def _cache_preset(name: str, model) -> None:
    """``model`` as the cached model of preset ``name`` (what a first load_model leaves)."""
    from panns_keras.presets import cache, table
    from panns_keras.presets.resolve import model_path

    preset = table.find(name)
    save_model_dir(model, model_path(preset), audioset_labels())
    cache.write_marker(name, {"name": name, "key": preset.key(), "source": "test"})


@pytest.mark.slow
def test_readme_pretrained_model_example_runs(chdir_scratch):
    """The README's first block with the presets in the cache (a Cnn6 stands in for Cnn14;
    mn10_as is a real mn10 with fresh weights), and the numbers its comments state."""
    from panns_keras.presets import table

    (block,) = python_blocks(readme_section("A pretrained model"))
    code = block.replace('"cnn14"', '"cnn6"')
    cnn6 = panns_keras.build_model("cnn6")
    assign_state_dict(cnn6, load_golden("Cnn6")[1])
    _cache_preset("cnn6", cnn6)
    _cache_preset("mn10_as", panns_keras.build_model("mn10"))
    ns = run_blocks([code], chdir_scratch, {}, "README.md")
    assert ns["out"]["clipwise_output"].shape == (1, 527)
    assert ns["out"]["embedding"].shape == (1, 512)
    assert ns["small"].spec.name == "mn10" and ns["fresh"].spec.num_classes == 10
    n = len(panns_keras.list_models())
    assert f"the {n} architectures" in block
    efficient = len(table.presets()) - len(table.BUILTIN)
    builtin = len(table.BUILTIN)
    assert f"the {builtin}\n# presets of PANNs and the {efficient} of EfficientAT" in block
    mn10 = table.find("mn10_as")
    assert f"mAP {mn10.map}, {mn10.params} M params" in block


def test_docs_model_examples_run(chdir_scratch, capsys):
    blocks = python_blocks(readme_section("Models", "docs/inference.md"))
    assert len(blocks) == 2
    ns = run_blocks(blocks, chdir_scratch, {}, "docs/inference.md")
    out = capsys.readouterr().out
    assert "(1, 10) (1, 512)" in out and "('dog', 'cat', 'bird')" in out
    assert ns["model"].spec.sample_rate == 32000 and (chdir_scratch / "tagger.keras").is_file()
    assert f"gives the {len(panns_keras.list_models())} names" in doc_text("docs/inference.md")


def test_readme_python_api_examples_run(tmp_path, capsys):
    """README's inference examples, then docs/deployment.md's SavedModel one, in one scratch
    directory with the files they name."""
    from panns_keras.export import export_savedmodel, export_tflite

    blocks = python_blocks(readme_section("Tag, detect events, embed in Python"))
    blocks += python_blocks(readme_section("SavedModel", "docs/deployment.md"))
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
    namespace = run_blocks(blocks, tmp_path, {}, "README.md")
    out = capsys.readouterr().out
    assert "[(512,), (512,)]" in out
    assert "(1, 527) (1, 512) (1, 101, 64)" in out
    assert namespace["result"].window_clipwise.shape[1] == 527
    assert namespace["found"].frame_scores_hop == 0.25


def test_readme_verbs_exist():
    """The flags the README's command-line paragraph names are defined by the infer verbs."""
    text = readme_section("Command line: `panns-keras <verb>`")
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
    (
        "--model=runs/demo/model --data=data/digits --out=data/digits_teacher",
        "--model=models/demo_teacher --data=data/demo --out=data/demo_teacher",
    ),
    ("--config.data.teacher=data/digits_teacher", "--config.data.teacher=data/demo_teacher"),
    # my_sounds/ holds ten 1 s windows: calibrate on 8 of them (export asks for 100 by default)
    ("--representative my_sounds/", "--representative my_sounds/ --representative_windows 8"),
]
# Flags appended per verb: a training run takes two steps on the tiny data, export works on
# 1 s windows (every format of the line, at a tenth of the conversion and calibration time).
EXTRA = {
    "train": "--config.train.num_steps=2 --config.train.log_every=1 --config.eval.every=0 "
    "--config.train.image_every=0 --config.data.train_files='data/demo/*.tfrecord' "
    "--config.data.num_classes=3",
    "export": "--window_seconds 1",  # the formats as written, on 1 s windows
    "finetune": "--config.train.num_steps=2 --config.train.batch_size=2 --clip_seconds=1",
}
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


def shell_lines(doc: str) -> list[str]:
    """The command lines of a page's ```bash blocks (continuations joined, comments cut)."""
    lines = []
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", doc_text(doc), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].split("# ")[0].strip()
            if line:
                lines.append(line)
    return lines


def _runs_panns_keras(line: str) -> bool:
    return re.match(r"^([A-Z_]+=\S+ +)*panns-keras ", line) is not None


def readme_command_lines() -> list[tuple[str, str]]:
    """``(page, line)`` of every ``panns-keras`` command line in README.md and docs/: the
    README table's `panns-keras ...` cells and the lines of ```bash / ```sh blocks that run
    panns-keras (after optional VAR=value assignments). A line on two pages runs once."""
    found: dict[str, str] = {}
    for doc in DOCS:
        table = re.findall(r"^\| *[a-z]+ *\| *`(panns-keras [^`]+)`", doc_text(doc), flags=re.M)
        for line in table + [x for x in shell_lines(doc) if _runs_panns_keras(x)]:
            found.setdefault(line, doc)
    return [(doc, line) for line, doc in found.items()]


def _verb(line: str) -> str:
    return line.split("panns-keras ", 1)[1].split()[0]


COMMANDS = readme_command_lines()


def test_other_command_lines_name_what_exists():
    """The lines of README's and docs/'s ```bash blocks that are not panns-keras: each `make`
    target is one of the Makefile's, each file a `pip` line names exists."""
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))
    seen = []
    for doc in DOCS:
        for line in shell_lines(doc):
            if _runs_panns_keras(line):
                continue
            for part in line.split("&&"):
                words = shlex.split(part)
                if words[0] == "make":
                    for target in [w for w in words[1:] if "=" not in w]:
                        assert target in targets, (doc, line, target)
                elif words[:2] == ["pip", "install"]:
                    args = words[2:]
                    for i, arg in enumerate(args):
                        if arg in ("-r", "-c"):
                            assert (ROOT / args[i + 1]).is_file(), (doc, line, args[i + 1])
                        elif not arg.startswith("-") and args[i - 1] not in ("-r", "-c"):
                            assert arg == ".", (doc, line, arg)  # the package, this repository
                else:
                    pytest.fail(f"{doc}: no test runs or checks this command line: {line}")
                seen.append(words[0])
    assert seen.count("make") >= 9 and seen.count("pip") >= 3, seen


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A working directory with every file the README's commands name."""
    from tests.helpers.train_data import write_data

    d = tmp_path_factory.mktemp("readme")
    model = panns_keras.build_model("cnn6")
    assign_state_dict(model, load_golden("Cnn6")[1])
    save_model_dir(model, d / "models" / "cnn6", audioset_labels())
    shutil.copy(ROOT / "tests/assets/ckpt/LeeNet11_golden_zip.pth", d / "LeeNet11_mAP=0.000.pth")
    for src, dst in [
        ("gcompris_memory_LRBark_1_LA_cut.wav", "dog.wav"),
        ("freedesktop_camera-shutter_22k.mp3", "street.mp3"),
        ("ovos_rooster_44k_stereo.flac", "recording.flac"),
    ]:
        shutil.copy(AUDIO / src, d / dst)
    rows = ["path,labels,fold"]
    for i, name in enumerate(
        [
            "fsdd_0_george_0",
            "fsdd_1_jackson_0",
            "fsdd_7_theo_0",
            "ovos_sheep",
            "ovos_rooster",
            "librosa_robin",
        ]
    ):
        # folders named after AudioSet classes: export calibrates on them per class
        cls = "Speech" if name.startswith("fsdd") else "Animal"
        (d / "my_sounds" / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(AUDIO / f"{name}.wav", d / "my_sounds" / cls / f"{name}.wav")
        rows.append(f"my_sounds/{cls}/{name}.wav,{cls},{i % 2}")
    (d / "my_dataset.csv").write_text("\n".join(rows) + "\n")
    write_data(str(d / "data" / "demo"), clips_per_class=4, sample_rate=8000, clip=8000)
    prep = run_line(
        "panns-keras prepare --class_dir=my_sounds/ --out=data/eval "
        "--sample_rate=32000 --clip_seconds=1",
        d,
    )
    assert prep.returncode == 0, prep.stderr
    return d


def _digits_files(d: Path) -> None:
    """models/digits and digits/{train,test}.csv for README's --check line: a Cnn6 trained on
    the bundled spoken digits (tests/helpers/trained_models.py, once per process)."""
    if (d / "models" / "digits").is_dir():
        return
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
        make_teacher(
            str(d / "data" / "demo"),
            str(d / "data" / "demo_teacher"),
            str(d / "models" / "demo_teacher"),
        )


def run_line(line: str, cwd: Path) -> subprocess.CompletedProcess:
    """Runs one README line through bash (globs, quotes and VAR=value as a user's shell)."""
    command = line.replace("panns-keras ", f"{shlex.quote(sys.executable)} -m panns_keras ", 1)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, env=env, timeout=900
    )


def test_readme_command_lines_are_found():
    verbs = [_verb(line) for _, line in COMMANDS]
    for verb in (
        "convert",
        "prepare",
        "train",
        "evaluate",
        "export",
        "tag",
        "sed",
        "embed",
        "finetune",
    ):
        assert verb in verbs, verb
    # every verb a line uses has its expected outputs listed, or is a printing verb
    assert set(verbs) <= set(WRITES) | {"tag", "models", "--version", "--helpfull"}, verbs


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(
            line,
            id=f"{i}-{Path(doc).stem}-{_verb(line)}",
            marks=[pytest.mark.slow] if _verb(line) in SLOW else [],
        )
        for i, (doc, line) in enumerate(COMMANDS)
    ],
)
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


def _anchor(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def test_links_between_readme_and_docs_resolve():
    """Every relative link of README.md and docs/ names a file that exists and, after `#`, a
    heading of it; README links to each page of docs/."""
    linked = set()
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)]+)\)", doc_text(doc)):
            if re.match(r"^[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            page = (ROOT / doc).parent / path if path else ROOT / doc
            assert page.is_file(), (doc, target)
            name = page.resolve().relative_to(ROOT).as_posix()
            if doc == "README.md":
                linked.add(name)
            if anchor:
                titles = re.findall(r"^#+ (.+)$", doc_text(name), flags=re.M)
                assert anchor in {_anchor(t) for t in titles}, (doc, target)
    assert set(DOCS[1:]) <= linked, set(DOCS[1:]) - linked
