"""The converter: genuine .pth files -> model directories that reproduce the goldens."""

import os
import pickle
import zipfile

import numpy as np
import pytest

import panns_keras
from panns_keras.convert.converter import convert_checkpoint
from panns_keras.convert.mapping import ConversionError, assign_state_dict
from panns_keras.errors import UserError
from tests.helpers.golden import check_outputs, load_golden


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize(
    ("fixture", "reference"), [("leenet11_ckpts", "LeeNet11"), ("cnn6_ckpts", "Cnn6")]
)
def test_genuine_checkpoints_convert_exactly(request, fixture, reference, fmt, tmp_path):
    path = request.getfixturevalue(fixture)[fmt]
    out = convert_checkpoint(path, tmp_path / "model")  # model inferred from the file name
    model = panns_keras.load_model(out)
    assert model.spec.reference_name == reference
    assert len(model.labels) == 527 and model.labels[0] == "Speech"
    _, _, outputs, tols, waveform = load_golden(reference)
    check_outputs(model, outputs, tols, waveform, model.spec.head.kind)


def test_explicit_model_name_and_labels(leenet11_ckpts, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("index,mid,display_name\n" + "".join(f"{i},m{i},c{i}\n" for i in range(527)))
    out = convert_checkpoint(leenet11_ckpts["zip"], tmp_path / "m", "LeeNet11", labels)
    assert panns_keras.load_model(out).labels[5] == "c5"


def _assert_fails(path, tmp_path, match, model=None):
    out = tmp_path / "out"
    with pytest.raises(UserError, match=match):
        convert_checkpoint(path, out, model)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_truncated_checkpoint(leenet11_ckpts, tmp_path):
    data = leenet11_ckpts["zip"].read_bytes()
    bad = tmp_path / "LeeNet11_cut.pth"
    bad.write_bytes(data[: len(data) // 2])
    _assert_fails(bad, tmp_path, "LeeNet11_cut.pth")


def test_corrupted_checkpoint(leenet11_ckpts, tmp_path):
    data = bytearray(leenet11_ckpts["zip"].read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    bad = tmp_path / "LeeNet11_bad.pth"
    bad.write_bytes(bytes(data))
    _assert_fails(bad, tmp_path, "LeeNet11_bad.pth")


def test_other_architecture(cnn6_ckpts, tmp_path):
    _assert_fails(cnn6_ckpts["zip"], tmp_path, "another architecture", model="cnn10")
    _assert_fails(cnn6_ckpts["zip"], tmp_path, "another architecture", model="leenet11")


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code(tmp_path):
    marker = tmp_path / "pwned"
    _Evil.marker = marker
    evil = tmp_path / "Cnn6_evil.pth"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"model": _Evil()}, protocol=2))
        z.writestr("archive/version", "3\n")
    _assert_fails(evil, tmp_path, "code execution")
    assert not marker.exists()


def test_missing_file_and_directory(tmp_path):
    _assert_fails(tmp_path / "Cnn14_mAP=0.431.pth", tmp_path, "not found")
    _assert_fails(tmp_path, tmp_path, "is a directory")


def test_frontend_mismatch_names_the_tensor():
    _, state, _, _, _ = load_golden("Cnn6")
    model = panns_keras.build_model("cnn6")
    fe = model.logmel_extractor
    state = dict(state)
    state["spectrogram_extractor.stft.conv_real.weight"] = fe.stft_real.T[:, None, :].copy()
    state["spectrogram_extractor.stft.conv_imag.weight"] = fe.stft_imag.T[:, None, :].copy()
    state["logmel_extractor.melW"] = fe.mel_matrix * 1.01
    with pytest.raises(ConversionError, match="logmel_extractor.melW"):
        assign_state_dict(model, state)
    state["logmel_extractor.melW"] = fe.mel_matrix[:, :32]
    with pytest.raises(ConversionError, match="melW has shape"):
        assign_state_dict(model, state)


def test_shape_mismatch_and_missing_key_assign_nothing():
    _, state, _, _, _ = load_golden("LeeNet11")
    model = panns_keras.build_model("leenet11")
    before = [np.asarray(w).copy() for w in model.weights]
    bad = dict(state)
    bad["fc1.weight"] = bad["fc1.weight"][:, :10]
    with pytest.raises(ConversionError, match="fc1"):
        assign_state_dict(model, bad)
    bad = {k: v for k, v in state.items() if not k.startswith("conv_block3.bn1")}
    with pytest.raises(ConversionError, match="conv_block3.bn1"):
        assign_state_dict(model, bad)
    for w, b in zip(model.weights, before):
        np.testing.assert_array_equal(np.asarray(w), b)


def test_num_batches_tracked_is_optional():
    _, state, outputs, tols, waveform = load_golden("LeeNet11")
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    model = panns_keras.build_model("leenet11")
    assign_state_dict(model, state)
    check_outputs(model, outputs, tols, waveform, "clip")


def test_cli_convert_one_line_errors(leenet11_ckpts, tmp_path, cli):
    ok = cli("convert", str(leenet11_ckpts["legacy"]), "--out", str(tmp_path / "m"))
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "m" / "model.weights.h5").is_file()
    bad = cli("convert", str(tmp_path / "nope.pth"), "--out", str(tmp_path / "x"))
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].endswith("nope.pth: checkpoint not found")
    # Not a checkpoint at all: the problem is said once, in the one-line form.
    text = tmp_path / "Cnn6_notes.pth"
    text.write_text("not a checkpoint\n")
    bad = cli("convert", str(text), "--out", str(tmp_path / "x"))
    assert bad.returncode == 1
    assert bad.stderr == (
        f"panns-keras convert: error: {text}: not a PyTorch checkpoint: "
        "neither a zip archive nor a pickle\n"
    )
    # An architecture the file name does not tell: --arch (the old --model still works).
    anon = tmp_path / "weights.pth"
    anon.write_bytes(leenet11_ckpts["zip"].read_bytes())
    bad = cli("convert", str(anon), "--out", str(tmp_path / "y"))
    assert bad.returncode == 1 and bad.stderr.startswith(
        "panns-keras convert: error: weights.pth: cannot infer the architecture from the file "
        "name; pass --arch (one of: cnn10, "
    )
    old = cli("convert", str(anon), "--model", "leenet11", "--out", str(tmp_path / "y"))
    assert old.returncode == 0, old.stderr
    assert old.stderr == (
        "panns-keras convert: note: --model is deprecated and goes away in the next release; "
        "use --arch (--model now names a model to load)\n"
    )
    assert panns_keras.load_model(tmp_path / "y").spec.name == "leenet11"
