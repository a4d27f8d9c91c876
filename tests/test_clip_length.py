"""A model knows its input: the clip length it was trained on travels with it (model folder,
.keras, SavedModel, TFLite, ONNX) and sets the defaults of tag / embed / sed / export /
finetune; every path gives the same answer on the same real clip; quiet, honest output.

The model is the demo's shape (Cnn6, 8 kHz, 32 mel bins, hop 160, 128-d embedding, 1 s clips)
with seeded weights; the clips are real spoken digits from demo_data/ (FSDD, CC BY-SA 4.0).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import panns_keras
from panns_keras.audio import load_audio
from panns_keras.data.formats import Label
from tests.helpers.cli import run_cli

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "demo_data" / "fsdd" / "recordings"
CLIPS = [
    DIGITS / f"{d}_{sp}_{t}.wav"
    for d, sp, t in (
        (7, "nicolas", 0),
        (3, "george", 1),
        (5, "jackson", 2),
        (9, "lucas", 3),
        (0, "nicolas", 4),
        (1, "george", 5),
    )
]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# max |score diff| allowed between two runs of the same float32 graph on the same padded clip
FLOAT_TOL = 1e-4
# float16 weights: the export's own bound is 5e-2 (a gross-error guard, for Cnn14); on this
# model and these clips the measured max |score diff| is 2.9e-4 (mean 9.4e-5)
F16_TOL = 1e-2


def demo_model(seed: int = 0, clip_seconds: float | None = 1.0):
    """The demo's shape with seeded weights (the same in every process: Keras's own
    initializers are not seeded): top-2 score margins ~0.3 on the clips below."""
    from panns_keras.train.warm_start import seeded_glorot

    model = panns_keras.build_model(
        "cnn6",
        num_classes=10,
        seed=seed,
        sample_rate=8000,
        window_size=256,
        hop_size=160,
        mel_bins=32,
        fmax=4000.0,
        embedding_size=128,
        spec_augment=False,
        clip_seconds=clip_seconds,
        labels=[Label(i, f"/d/{i}", n) for i, n in enumerate(NAMES)],
    )
    seeded_glorot(model.weight_layers().values(), seed)
    return model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from panns_keras.models.saving import save_model_dir

    model = demo_model()
    return save_model_dir(model, tmp_path_factory.mktemp("m") / "digits", model.class_labels)


@pytest.fixture(scope="module")
def exported(model_dir, tmp_path_factory):
    """Every float path, exported with default flags (the window is the model's 1 s)."""
    out = tmp_path_factory.mktemp("export")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "panns_keras",
            "export",
            f"--model={model_dir}",
            f"--out={out}",
            "--representative",
            str(DIGITS),
            "--formats=savedmodel,tflite_float32,tflite_float16,mediapipe",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr
    return out, p


@pytest.fixture
def cli(capfd, monkeypatch):
    """``cli(VERB, ARGS...)``: the command line in this process (tests/helpers/cli.py)."""
    monkeypatch.setenv("PANNS_KERAS_PROGRESS_INTERVAL", "0")
    return lambda *args: run_cli(capfd, *args)


def as_trained(model, clips: list[Path]) -> np.ndarray:
    """The Keras model on each clip zero-padded to its 1 s training length (scores (N, K))."""
    rows = []
    for c in clips:
        x = load_audio(str(c), 8000)[:8000]
        rows.append(np.pad(x, (0, 8000 - len(x))))
    return np.asarray(model(np.stack(rows), training=False)["clipwise_output"])


# ----------------------------------------------------------------------------- the spec
def test_clip_length_travels_with_the_model(model_dir, tmp_path):
    from panns_keras import load_model

    config = json.loads((model_dir / "config.json").read_text())
    assert config["spec"]["clip_seconds"] == 1.0
    loaded = load_model(model_dir)
    assert loaded.spec.clip_seconds == 1.0 and loaded.spec.clip_samples == 8000
    path = tmp_path / "m.keras"
    loaded.save(path)
    again = load_model(path)
    assert again.spec.clip_seconds == 1.0
    # a config.json written before the field existed loads, length unknown
    del config["spec"]["clip_seconds"]
    old = tmp_path / "old"
    old.mkdir()
    for name in os.listdir(model_dir):
        if name != "config.json":
            (old / name).write_bytes((model_dir / name).read_bytes())
    (old / "config.json").write_text(json.dumps(config))
    assert load_model(old).spec.clip_seconds is None


def test_converter_and_trainer_record_the_clip_length(tmp_path, cli):
    from panns_keras.train import warm_start
    from panns_keras.train.config import base_config

    ckpt = REPO / "tests" / "assets" / "ckpt" / "LeeNet11_golden_zip.pth"
    p = cli("convert", ckpt, f"--out={tmp_path / 'lee'}")
    assert p.returncode == 0, p.stderr
    config = json.loads((tmp_path / "lee" / "config.json").read_text())
    assert config["spec"]["clip_seconds"] == 10.0  # PANNs checkpoints: 10 s AudioSet clips
    c = base_config()
    c.model.name = "cnn6"
    c.model.overrides.sample_rate, c.model.overrides.embedding_size = 8000, 32
    c.model.overrides.fmax, c.model.overrides.mel_bins = 4000.0, 32
    c.data.sample_rate, c.data.clip_samples, c.data.num_classes = 8000, 12000, 3
    assert warm_start.build_model_from_config(c).spec.clip_seconds == 1.5
    c = base_config()  # warm start: the new data's clip length
    c.model.init, c.model.mode = str(tmp_path / "lee"), "finetune"
    c.data.sample_rate, c.data.clip_samples, c.data.num_classes = 32000, 24000, 3
    assert warm_start.build_model_from_config(c).spec.clip_seconds == 0.75


# ----------------------------------------------------------------------------- every path
def test_every_path_gives_the_same_answer_on_real_clips(model_dir, exported):
    """Keras (model folder), SavedModel, each TFLite variant, MediaPipe and ONNX, each through
    `panns_keras.tag` with default arguments, on real digits: the same top class and scores as
    the model run as trained (clips zero-padded to 1 s), the 0.8 s cuts included."""
    from panns_keras import load_model

    out, _ = exported
    info = json.loads((out / "export_info.json").read_text())
    assert info["clip_seconds"] == 1.0 and info["window_seconds"] == 1.0
    keras_model = load_model(model_dir)
    ref = as_trained(keras_model, CLIPS)
    cuts = [load_audio(str(c), 8000)[:6400] for c in CLIPS]  # 0.8 s: shorter than a clip
    ref_cut = np.asarray(
        keras_model(np.stack([np.pad(c, (0, 8000 - len(c))) for c in cuts]), training=False)[
            "clipwise_output"
        ]
    )
    paths = {
        "keras": (model_dir, FLOAT_TOL),
        "savedmodel": (out / "savedmodel", FLOAT_TOL),
        "tflite_float32": (out / "cnn6_float32.tflite", FLOAT_TOL),
        "tflite_float16": (out / "cnn6_float16.tflite", F16_TOL),
        "mediapipe": (out / "cnn6_mediapipe.tflite", FLOAT_TOL),
    }
    margin = np.sort(ref, axis=1)[:, -1] - np.sort(ref, axis=1)[:, -2]
    for name, (path, tol) in paths.items():
        if name != "keras":
            assert info["artifacts"][name][
                "input_samples" if "tflite" in name or name == "mediapipe" else "path"
            ]
        got = np.stack([r.clipwise for r in panns_keras.tag(str(path), [str(c) for c in CLIPS])])
        assert np.abs(got - ref).max() <= tol, name
        sure = margin > 2 * tol  # the top class is decided beyond the variant's tolerance
        assert sure.sum() >= 3, margin
        assert np.array_equal(got.argmax(1)[sure], ref.argmax(1)[sure]), name
        got_cut = np.stack([r.clipwise for r in panns_keras.tag(str(path), cuts, 8000)])
        assert np.abs(got_cut - ref_cut).max() <= tol, name
    for name in ("tflite_float32", "tflite_float16", "mediapipe"):
        assert info["artifacts"][name]["input_samples"] == 8000
    # export_info's agreement: each file run as tag runs it against Keras run as trained
    for name, entry in info["artifacts"].items():
        agree = entry["agreement"]
        assert agree["clip_seconds"] == 1.0 and agree["clips"] == 8, name
        assert agree["top1_agreement"] == 1.0, name
        assert agree["max_abs"] <= (F16_TOL if name == "tflite_float16" else FLOAT_TOL), name
    assert "clips of" in info["agreement_inputs"]


def test_a_window_other_than_the_clip_length_is_reported(model_dir, tmp_path, cli):
    """An explicit window wins and is reported; a .tflite at another window is flagged, and
    its agreement in export_info.json tells how far it is from the model as trained."""
    out = tmp_path / "exp"
    p = cli(
        "export",
        f"--model={model_dir}",
        f"--out={out}",
        "--formats=tflite_float32",
        "--window_seconds=10",
        "--representative",
        DIGITS,
    )
    assert p.returncode == 0, p.stderr
    assert "--window_seconds 10; the model was trained on 1 s clips" in p.stderr
    entry = json.loads((out / "export_info.json").read_text())["artifacts"]["tflite_float32"]
    assert entry["input_samples"] == 80000
    assert entry["agreement"]["max_abs"] > 100 * FLOAT_TOL  # padded to 10 s: other scores
    p = cli("tag", CLIPS[0], "--model", out / "cnn6_float32.tflite", "--format=json")
    assert p.returncode == 0, p.stderr
    assert "this .tflite has a 10 s window, but the model was trained on 1 s clips" in p.stderr
    assert "INFO: Created TensorFlow Lite" not in p.stderr  # quiet: no XNNPACK line
    p = cli("tag", CLIPS[0], "--model", model_dir, "--format=json", "--window_seconds=2")
    assert p.returncode == 0, p.stderr
    assert "note: --window_seconds 2 (the model was trained on 1 s clips" in p.stderr
    p = cli("tag", CLIPS[0], "--model", model_dir, "--format=json")
    assert p.returncode == 0 and "note:" not in p.stderr, p.stderr
    assert json.loads(p.stdout)[0]["windows"] == 1


# ----------------------------------------------------------------------------- export checks
def test_export_check_scales_with_the_models_float32_noise(monkeypatch):
    from panns_keras.export import ExportVerificationError, common

    model = demo_model()
    x = np.stack(
        [
            np.pad(
                load_audio(str(c), 8000)[:8000],
                (0, 8000 - min(8000, len(load_audio(str(c), 8000)))),
            )
            for c in CLIPS[:2]
        ]
    )
    noise = common.float32_noise(model, x)
    assert 0 < noise < 1e-5  # measured 1e-7 .. 1e-6 on this model
    monkeypatch.setattr(common, "float32_noise", lambda m, v: 1e-5)  # a deeper model's noise
    check = common.FloatCheck("onnx", model, x, 1e-4)
    stats = check.scores({"max_abs": 3e-4, "mean_abs": 1e-5})  # another CPU's kernels
    assert stats["tolerance"] == pytest.approx(50 * 1e-5) and stats["float32_noise"] == 1e-5
    with pytest.raises(ExportVerificationError, match="onnx: re-loaded export differs"):
        common.FloatCheck("onnx", model, x, 1e-4).scores({"max_abs": 2e-3, "mean_abs": 1e-4})
    with pytest.raises(ExportVerificationError, match="output embedding differs"):
        check.output("embedding", np.ones((2, 4)), np.ones((2, 4)) + 1e-2)
    check.output("embedding", np.ones((2, 4)), np.ones((2, 4)) + 3e-4)  # within 50 x noise


def test_a_broken_export_still_fails(model_dir, tmp_path):
    """A TFLite of other weights (a wrong export) fails the widened check all the same."""
    from panns_keras.export import ExportVerificationError
    from panns_keras.export import tflite as T

    model, other = demo_model(0), demo_model(seed=1)
    content = T.convert(other, "float32", 8000)
    clips = np.stack(
        [
            np.pad(x, (0, 8000 - len(x)))
            for x in (load_audio(str(c), 8000)[:8000] for c in CLIPS[:2])
        ]
    )
    with pytest.raises(ExportVerificationError, match="tflite_float32"):
        T.verify_tflite(model, content, "float32", clips)


# ----------------------------------------------------------------------------- sed
def test_sed_with_a_clip_model(model_dir, tmp_path, cli):
    """Defaults: window = the model's 1 s clip, hop a quarter of it; events and scores end
    with the audio; progress never passes 100%; the plot ends where the audio ends and shows
    the threshold and every event."""
    from panns_keras.cli import infer
    from panns_keras.inference import detect_events

    wav = tmp_path / "four_digits.wav"
    x = np.concatenate([load_audio(str(c), 8000) for c in CLIPS[:4]])
    sf.write(wav, x, 8000)
    duration = len(x) / 8000
    out_tsv = tmp_path / "ev.tsv"
    p = cli(
        "sed",
        wav,
        "--model",
        model_dir,
        "--out_tsv",
        out_tsv,
        "--threshold",
        "0.55",
        "--plot",
        tmp_path / "p.png",
    )
    assert p.returncode == 0, p.stderr
    shown = [float(v) for v in re.findall(r"\(([\d.]+)%\)", p.stderr)]
    assert shown and max(shown) <= 100.0 and shown[-1] == 100.0
    assert re.search(rf"sed: {duration:.1f}/{duration:.1f} audio s", p.stderr), p.stderr
    rows = [r.split("\t") for r in out_tsv.read_text().splitlines()[1:]]
    assert all(0 <= float(r[1]) < float(r[2]) <= round(duration, 3) for r in rows)
    ((res, events),) = detect_events(str(model_dir), [str(wav)], threshold=0.55)
    assert res.frame_scores_hop == pytest.approx(0.25)  # a quarter of the 1 s window
    assert len(res.frame_scores) == int(np.ceil(duration / 0.25))
    assert [(e["onset"], e["offset"], e["event_label"]) for e in events] == [
        (float(r[1]), float(r[2]), r[3]) for r in rows
    ]
    fig = infer.sed_figure(
        panns_keras.runtime.load_runner(str(model_dir)), res, list(NAMES), threshold=0.55
    )
    ax = fig.axes[-1]
    assert ax.get_xlim() == pytest.approx((0, duration))
    assert any(list(line.get_ydata()) == [0.55, 0.55] for line in ax.get_lines())
    bars = [ln for ln in ax.get_lines() if ln.get_linewidth() == 4]
    assert len(bars) == len(events)
    assert all(max(ln.get_xdata()) <= duration for ln in ax.get_lines())


# ----------------------------------------------------------------------------- finetune
@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory):
    d = tmp_path_factory.mktemp("ft")
    rows = ["path,labels,fold"]
    for digit in (3, 7):
        for sp in ("george", "lucas"):
            for take in range(3):
                rows.append(f"{DIGITS}/{digit}_{sp}_{take}.wav,{NAMES[digit]},{sp}")
    (d / "clips.csv").write_text("\n".join(rows) + "\n")
    return d / "clips.csv"


def test_finetune_takes_the_models_input_and_shows_where_it_is(model_dir, tiny_csv, tmp_path, cli):
    out = tmp_path / "ft"
    p = cli(
        "finetune", f"--data={tiny_csv}", f"--model={model_dir}", f"--out={out}", "--print_config"
    )
    assert p.returncode == 0, p.stderr
    for field in (
        "model.name='cnn6'",
        "data.sample_rate=8000",
        "data.clip_samples=8000",
        "data.num_classes=2",
    ):
        assert f"--config.{field}\n" in p.stdout, (field, p.stdout)
    p = cli(
        "finetune",
        f"--data={tiny_csv}",
        f"--model={model_dir}",
        f"--out={out}",
        "--config.train.num_steps=2",
        "--config.train.batch_size=4",
        "--config.train.warmup_steps=0",
    )
    assert p.returncode == 0, p.stderr
    manifest = json.loads((out / "data" / "manifest.json").read_text())
    assert manifest["clip_samples"] == 8000 and manifest["sample_rate"] == 8000
    lines = p.stdout.splitlines()
    assert lines[0].startswith("fold_george (1/2): accuracy ")
    assert lines[1].startswith("fold_lucas (2/2): accuracy ")
    assert lines[-1] == f"results: {out / 'results.json'}"
    assert "finetune: 2/4 steps (50.0%)" in p.stderr and "split 1/2 fold_george" in p.stderr
    assert "split 2/2 fold_lucas, step 2/2" in p.stderr and "eta " in p.stderr
    # an explicit clip length wins and is reported
    p = cli(
        "finetune",
        f"--data={tiny_csv}",
        f"--model={model_dir}",
        f"--out={out}2",
        "--clip_seconds=2",
        "--print_config",
    )
    assert "note: --clip_seconds 2; the model was trained on 1 s clips" in p.stderr
    assert "--config.data.clip_samples=16000\n" in p.stdout, p.stdout


# ----------------------------------------------------------------------------- small things
def test_misspelled_verb_gets_a_suggestion(capsys):
    from panns_keras.cli import main

    assert main(["panns-keras", "tga"]) == 2
    assert "panns-keras: error: tga: unknown verb; did you mean tag?" in capsys.readouterr().err
    assert main(["panns-keras", "xyzzy"]) == 2
    assert "did you mean" not in capsys.readouterr().err


def test_inputs_are_checked_before_the_model_loads(tmp_path, cli):
    """Every input missing: one line each and exit 1, and the model (whose weights are
    damaged here) is never loaded."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"format": "panns_keras.model_dir/2"}))
    p = cli("tag", tmp_path / "a.wav", tmp_path / "b.wav", "--model", broken)
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        f"panns-keras tag: error: {tmp_path / n}: missing" for n in ("a.wav", "b.wav")
    ]


def test_embed_window_files_only_when_asked(model_dir, tmp_path, cli):
    p = cli("embed", CLIPS[0], "--model", model_dir, "--out", tmp_path / "a")
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(tmp_path / "a")) == ["7_nicolas_0.npy"]
    p = cli("embed", CLIPS[0], "--model", model_dir, "--out", tmp_path / "b", "--window_embeddings")
    assert p.returncode == 0, p.stderr
    assert np.load(tmp_path / "b" / "7_nicolas_0.windows.npy").shape == (1, 128)


def test_prepare_follows_the_exit_code_rule(tmp_path, cli):
    """Some inputs unreadable: the rest is written and prepare exits 1 (the rule of every
    batch verb); --max_fail_fraction accepts a share; README says both."""
    d = tmp_path / "sounds" / "seven"
    d.mkdir(parents=True)
    for c in CLIPS[:3]:
        (d / c.name).write_bytes(c.read_bytes())
    (d / "bad.wav").write_bytes(b"not audio at all")
    p = cli(
        "prepare",
        f"--class_dir={tmp_path / 'sounds'}",
        f"--out={tmp_path / 'o'}",
        "--sample_rate=8000",
        "--clip_seconds=1",
        "--num_workers=1",
    )
    assert p.returncode == 1, p.stderr
    assert "1 of 4 inputs failed" in p.stderr
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["num_clips"] == 3
    p = cli(
        "prepare",
        f"--class_dir={tmp_path / 'sounds'}",
        f"--out={tmp_path / 'o2'}",
        "--sample_rate=8000",
        "--clip_seconds=1",
        "--num_workers=1",
        "--max_fail_fraction=0.25",
    )
    assert p.returncode == 0, p.stderr
    readme = (REPO / "README.md").read_text()
    assert "--max_fail_fraction" in readme


def test_runs_is_ignored_and_the_ap_chart_is_readable():
    from panns_keras.train.evaluation import ap_figure

    assert "/runs/" in (REPO / ".gitignore").read_text().splitlines()
    ap = np.linspace(0.2, 1.0, 10)
    fig = ap_figure({"ap": ap, "mAP": float(ap.mean()), "excluded_classes": []}, list(NAMES))
    ax = fig.axes[0]
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # right of the bars, not over them
    assert min(t.get_fontsize() for t in ax.get_xticklabels()) >= 8
    from matplotlib import pyplot as plt

    plt.close(fig)


def test_quiet_patterns_cover_the_converter_lines():
    from panns_keras.cli import quiet

    for line in (
        "fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, "
        "output_inference_type: FLOAT32",
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    ):
        assert quiet.is_native_log_line(line)
