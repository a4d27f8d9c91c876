"""The command line as a whole: --version, quiet output, one-line errors of every verb, one
meaning per flag name (old spellings rewritten with a note), the progress display."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import panns_keras
from panns_keras import flagnames
from panns_keras.cli import quiet
from panns_keras.progress import Progress

REPO = Path(__file__).resolve().parents[1]
WAV = REPO / "tests" / "assets" / "audio" / "ovos_rooster.wav"
ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user has it
ENV.update(PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")


def cli_process(*args, cwd=None):
    """``python -m panns_keras *args`` in a fresh interpreter: the entry point itself, and what
    only a fresh process shows (TensorFlow's native log lines). Other tests use the
    in-process ``cli`` fixture."""
    command = [sys.executable, "-m", "panns_keras", *map(str, args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=ENV, timeout=300)


def test_version(tmp_path):
    p = cli_process("--version", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout == f"panns-keras {panns_keras.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", panns_keras.__version__)


def test_quiet_by_default_no_native_log_lines(tmp_path):
    """A verb that imports TensorFlow prints only its own line (TensorFlow's oneDNN / cudart
    lines are dropped at import; TF_CPP_MIN_LOG_LEVEL is not set by the caller)."""
    from panns_keras.models.saving import save_model_dir

    model = panns_keras.build_model("leenet11", num_classes=2, sample_rate=8000)
    save_model_dir(model, tmp_path / "m", [("/m/a", "a"), ("/m/b", "b")])
    bad = tmp_path / "bad.wav"  # the model loads (TensorFlow), the file fails to decode
    bad.write_bytes(b"not audio at all")
    code = (
        "import sys; from panns_keras.cli import main; "
        f"rc = main(['panns-keras', 'tag', {str(bad)!r}, '--model', "
        f"{str(tmp_path / 'm')!r}]); print('tensorflow' in sys.modules, rc)"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300
    )
    assert p.stdout == "True 1\n"  # TensorFlow was imported, and nothing of it shows
    lines = p.stderr.splitlines()  # its own progress summary and error line, nothing else
    assert lines[0] == "tag: 0 audio s 0.00 audio s/s, 0 s, 1 failed" and len(lines) == 2
    assert lines[1].startswith(f"panns-keras tag: error: {bad}: unreadable"), lines


def test_native_log_line_pattern():
    native = [
        "I0000 00:00:1796039640.357710    5600 port.cc:153] oneDNN custom operations are on.",
        "I0000 00:00:1796039640.358283    5600 cudart_stub.cc:31] Could not find cuda drivers",
        "E0000 00:00:1796039670.114833    5771 cuda_platform.cc:52] failed call to cuInit: x",
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild "
        "TensorFlow with the appropriate compiler flags.",
    ]
    kept = [
        "panns-keras tag: error: x.wav: missing",
        "W1130 11:55:45.763268 139950909938560 abt.py:3] a Python absl warning line",
        "Traceback (most recent call last):",
    ]
    assert all(quiet.is_native_log_line(line) for line in native)
    assert not any(quiet.is_native_log_line(line) for line in kept)
    assert quiet.verbosity_of(["--model=x", "--verbosity=1"]) == 1
    assert quiet.verbosity_of(["-v", "0"]) == 0 and quiet.verbosity_of(["--model=x"]) is None


def test_export_shows_progress_and_no_runtime_lines(tmp_path):
    """export: its result lines on stdout; on stderr only the progress lines (the TFLite
    runtime's "INFO: Created TensorFlow Lite XNNPACK delegate" is dropped)."""
    from panns_keras.models.saving import save_model_dir

    model = panns_keras.build_model(
        "cnn6",
        num_classes=3,
        sample_rate=8000,
        window_size=256,
        hop_size=160,
        fmax=4000.0,
        mel_bins=32,
        seed=0,
    )
    labels = [(f"/m/{i}", f"class {i}") for i in range(3)]
    d = save_model_dir(model, tmp_path / "m", labels)
    out = tmp_path / "export"
    p = cli_process(
        "export", "--model", d, "--out", out, "--formats", "tflite_float32", "--window_seconds", "1"
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"tflite_float32: {out}/cnn6_float32.tflite (")
    assert re.fullmatch(
        r"export: 1/1 formats \(100\.0%\) [\d.]+ formats/s, \d+ s, "
        r"tflite_float32 done\n",
        p.stderr,
    ), p.stderr
    assert (out / "export_info.json").is_file() and not list(out.glob("*.tmp"))


# (verb, arguments) that are each a user mistake, and the THING the one line must name.
MISTAKES = [
    ("convert", ["x.pth"], "--out"),
    ("prepare", ["--class_dir=."], "--out"),
    ("train", ["--out=somewhere"], "--config"),
    ("evaluate", ["--data=x"], "--model"),
    ("export", ["--out=x"], "--model"),
    ("export", ["--model=no_such_dir", "--out=x"], "no_such_dir"),
    ("tag", [], "FILE"),
    ("sed", [str(WAV)], "--model"),
    ("embed", [str(WAV), "--model=no_such_model", "--out=x"], "no_such_model"),
    ("finetune", ["--out=x"], "--data"),
    ("tag", [str(WAV), "--top_kk=3"], "--top_kk"),
    ("train", ["--config=no_such_recipe", "--out=x"], "no_such_recipe"),
]


_WITHOUT_KERAS = (
    "import sys; sys.modules['tensorflow'] = sys.modules['keras'] = None; "
    "from panns_keras.cli import main; sys.exit(main(['panns-keras', *sys.argv[1:]]))"
)


@pytest.mark.parametrize("verb,args,thing", MISTAKES, ids=[f"{m[0]}-{m[2]}" for m in MISTAKES])
def test_user_errors_are_one_line(verb, args, thing, tmp_path):
    """... and each is found before TensorFlow or Keras loads (importing either fails here)."""
    p = subprocess.run(
        [sys.executable, "-c", _WITHOUT_KERAS, verb, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert p.returncode in (1, 2), p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith(f"panns-keras {verb}: error: {thing}: "), lines[0]
    assert len(lines[0].split(": error: ")[1].split(": ", 1)[1]) > 5  # says the problem


def test_old_flag_spellings_are_rewritten_with_one_note():
    notes = []
    args = [
        "--prepare_output_dir=o",
        "--prepare_name",
        "n",
        "--class_dir=c",
        "--prepare_output_dir=p",
        "--noprepare_sample_rate",
    ]
    assert flagnames.rewrite("prepare", args, notes.append) == [
        "--out=o",
        "--name",
        "n",
        "--class_dir=c",
        "--out=p",
        "--nosample_rate",
    ]
    assert notes == [
        "panns-keras prepare: note: --prepare_output_dir is deprecated and goes away in the "
        "next release; use --out",
        "panns-keras prepare: note: --prepare_name is deprecated and goes away in the next "
        "release; use --name",
        "panns-keras prepare: note: --prepare_sample_rate is deprecated and goes away in the "
        "next release; use --sample_rate",
    ]
    notes.clear()
    # finetune: --init is now --model; an old --model NAME is an architecture (--arch); a
    # --model that is a path stays a model to load.
    got = flagnames.rewrite(
        "finetune", ["--init=base", "--model", "cnn14_mel32", "--workdir", "w"], notes.append
    )
    assert got == ["--model=base", "--arch=cnn14_mel32", "--out", "w"]
    assert [n.split("note: ")[1].split(" is")[0] for n in notes] == [
        "--init",
        "--model",
        "--workdir",
    ]
    assert "(--model now names a model to load)" in notes[1]
    notes.clear()
    assert flagnames.rewrite(
        "finetune", ["--model", "runs/base", "--model=x.pth"], notes.append
    ) == ["--model=runs/base", "--model=x.pth"]
    # a preset name is a model to load, not an old --model NAME (cnn14_mel128 has no preset)
    assert flagnames.rewrite(
        "finetune", ["--model=cnn14", "--model", "cnn14_mel128"], notes.append
    ) == ["--model=cnn14", "--arch=cnn14_mel128"]
    assert flagnames.rewrite("convert", ["a.pth", "--model", "cnn6"], notes.append) == [
        "a.pth",
        "--arch",
        "cnn6",
    ]
    assert flagnames.rewrite("sed", ["--out_csv=e.tsv"], notes.append) == ["--out_tsv=e.tsv"]
    assert flagnames.rewrite("train", ["--workdir=w"], notes.append) == ["--out=w"]
    notes.clear()
    # The new spellings, other verbs and positional arguments pass unchanged.
    same = ["x.wav", "--model=m", "--out", "o", "--", "--workdir=literal"]
    assert flagnames.rewrite("tag", same, notes.append) == same
    assert flagnames.rewrite("train", same, notes.append) == same and notes == []


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_plain_lines_off_a_terminal(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    out = io.StringIO()
    p = Progress(10, "tag", unit="files", stream=out, interval=0)
    p.update(5, failed=1)
    p.update(5)
    p.close()
    p.close()  # once
    lines = out.getvalue().splitlines()  # close() does not repeat the 10/10 line
    assert len(lines) == 2 and "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert re.fullmatch(
        r"tag: 5/10 files \(50\.0%\) [\d.]+ files/s, eta \d+ s, 1 failed", lines[0]
    ), lines[0]
    assert re.fullmatch(r"tag: 10/10 files \(100\.0%\) [\d.]+ files/s, \d+ s, 1 failed", lines[1])
    # a long interval: nothing until close
    out = io.StringIO()
    p = Progress(None, "train", unit="steps", stream=out, interval=3600)
    for _ in range(50):
        p.update(1, postfix="loss 0.5")
    assert out.getvalue() == ""
    p.close()
    assert re.fullmatch(r"train: 50 steps [\d.]+ steps/s, \d+ s, loss 0\.5\n", out.getvalue())


def test_progress_bar_on_a_terminal_and_lines_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    term = _Terminal()
    p = Progress(4, "prepare", unit="clips", stream=term)
    p.update(4, force=True)
    p.close()
    text = term.getvalue()
    assert text.startswith("\r\x1b[Kprepare: 4/4 clips (100.0%)") and text.endswith("\n")
    assert text.count("\n") == 1  # redrawn in place, one newline at the end
    monkeypatch.setenv("CI", "true")
    term = _Terminal()
    p = Progress(4, "prepare", unit="clips", stream=term, interval=0)
    p.update(2)
    p.close()
    assert "\r" not in term.getvalue() and term.getvalue().count("\n") == 1


# The exit-code rule (cli/__init__.py, README): 2 = usage, 1 = some inputs failed.
EXIT_CODES = [
    (2, "tag", [str(WAV), "--model=m", "--top_k=-1"], "--top_k=-1: -1 is not a positive integer"),
    (
        2,
        "sed",
        [str(WAV), "--model=m", "--threshold=2"],
        "--threshold=2: 2.0 is not a number in the range [0.0, 1.0]",
    ),
    (2, "tag", [str(WAV), "--model=m", "--hop_seconds=0"], "--hop_seconds=0.0: must be > 0"),
    (2, "evaluate", ["--model=m", "--data=x", "--out=o", "--batch_size=0"], "--batch_size=0: "),
    (
        2,
        "train",
        ["--config=demo", "--config.train.no_such=1", "--out=o"],
        "--config.train.no_such: no such field in ",
    ),
    (
        2,
        "train",
        ["--config=demo", "--config.train.batch_size=abc", "--out=o"],
        "--config.train.batch_size=abc: not a valid int",
    ),
    (
        2,
        "train",
        ["--config=demo", "--config.model.name=cnn99", "--out=o"],
        "--config.model.name=cnn99: unknown model; did you mean ",
    ),
    (2, "train", ["--config=demo"], "--out: required"),
    (2, "convert", ["x.pth"], "--out: required"),
    (
        2,
        "export",
        ["--model=m", "--out=o", "--window_seconds=0"],
        "--window_seconds=0: 0.0 is not number >= 0.01",
    ),
    (
        2,
        "prepare",
        ["--class_dir=x", "--out=o", "--clips_per_shard=0"],
        "--clips_per_shard=0: 0 is not a positive integer",
    ),
    (1, "embed", [str(WAV), "--model=no_such_model", "--out=o"], "no_such_model: "),
    (1, "tag", ["no_such.wav", str(WAV), "--model=no_such_model"], "no_such_model: "),
]


@pytest.mark.parametrize(
    "rc,verb,args,start", EXIT_CODES, ids=[f"{e[0]}-{e[1]}-{i}" for i, e in enumerate(EXIT_CODES)]
)
def test_exit_codes_follow_the_written_rule(rc, verb, args, start, tmp_path, cli):
    p = cli(verb, *args, cwd=tmp_path)
    assert p.returncode == rc, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith(f"panns-keras {verb}: error: {start}"), lines[0]
    doc = panns_keras.cli.__doc__
    assert "2  usage" in doc and "1  some inputs failed" in doc
    readme = (REPO / "README.md").read_text()
    assert "exit code 2" in readme and "exit code 1" in readme


def test_print_config_and_help_list_the_fields(tmp_path, cli):
    p = cli(
        "train",
        "--config=demo",
        "--config.train.batch_size=8",
        "--config.model.overrides.conv_dropout",
        "0.2",
        "--print_config",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("# --config=demo (") and lines[0].endswith(
        "configs/demo.py) --config.train.batch_size=8 --config.model.overrides.conv_dropout=0.2"
    )
    assert "  --config.train.batch_size=8" in lines
    assert "  --config.model.overrides.conv_dropout=0.2" in lines
    assert "  --config.train.num_steps=300" in lines  # the recipe's own value
    assert not (tmp_path / "o").exists()
    h = cli("train", "--config=demo", "--help", cwd=tmp_path)
    assert h.returncode == 0, h.stderr
    assert "config fields of --config=demo (" in h.stdout
    assert "  --config.train.num_steps=300" in h.stdout.splitlines()
    assert "  --config.data.sample_rate=8000" in h.stdout.splitlines()
    # the recipe list comes from the package (finetune included)
    assert "Packaged recipes: audioset, audioset_balanced, demo, finetune." in " ".join(
        h.stdout.split()
    )
    # finetune: the default --config is the packaged recipe, from any working directory
    f = cli("finetune", "--model=models/m", "--mode=probe", "--print_config", cwd=tmp_path)
    assert f.returncode == 0, f.stderr
    assert f.stdout.startswith("# --config=finetune (")
    assert "  --config.model.init='models/m'" in f.stdout.splitlines()
    assert "  --config.model.mode='probe'" in f.stdout.splitlines()
    missing = cli("finetune", "--data=none.csv", "--model=models/m", "--out=o", cwd=tmp_path)
    assert missing.returncode == 1, missing.stderr
    assert missing.stderr == (
        "panns-keras finetune: error: none.csv: no such file or folder (--data)\n"
    )


def test_helpfull_and_one_help_per_infer_verb(cli):
    p = cli("--helpfull")
    assert p.returncode == 0, p.stderr
    assert "panns-keras tag|sed|embed FILE... --model MODEL" in p.stdout
    assert "panns-keras finetune --data=" in p.stdout
    helps = {verb: cli(verb, "--help").stdout for verb in ("tag", "sed", "embed")}
    assert helps["tag"].startswith("panns-keras tag FILE... --model MODEL")
    assert "--top_k: labels per file. (a positive integer)" in helps["tag"]
    assert "--threshold" not in helps["tag"] and "--out_npz" not in helps["tag"]
    assert helps["sed"].startswith("panns-keras sed FILE...")
    assert "--threshold: frame score threshold. (a number in the range [0.0, 1.0])" in helps["sed"]
    assert "--top_k" not in helps["sed"] and "--out_npz" not in helps["sed"]
    assert helps["embed"].startswith("panns-keras embed FILE...")
    assert "--out_npz" in helps["embed"] and "--top_k" not in helps["embed"]
    for text in helps.values():
        assert "--model: " in text and "--window_seconds: " in text


def test_progress_shows_sub_second_totals():
    stream = io.StringIO()
    p = Progress(0.3, "tag", unit="audio s", stream=stream, interval=1e9)
    p.update(0.3)
    p.close()
    assert stream.getvalue().startswith("tag: 0.30/0.30 audio s (100.0%) ")
    stream = io.StringIO()
    p = Progress(12.25, "tag", unit="audio s", stream=stream, interval=1e9)
    p.update(2.5)
    p.close()
    assert stream.getvalue().startswith("tag: 2.5/12.2 audio s (20.4%) ")
