"""Presets end to end against a checkpoint server on 127.0.0.1 (panns_keras/presets/resolve.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import panns_keras
from panns_keras.convert.converter import convert_checkpoint
from panns_keras.errors import UserError
from panns_keras.models.build import load_model as load_model_dir
from panns_keras.models.build import resolve
from panns_keras.presets import cache, find
from tests.helpers.checkpoint_server import CKPT, FILE

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "tests" / "assets" / "audio" / "ovos_rooster.wav"


def _cached_files(home: Path, name: str) -> list[str]:
    folder = home / "presets" / name
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _min_time(fn, n=3) -> float:
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def test_load_by_name_end_to_end_then_offline(
    env, server, tiny, ckpt_sha256, tmp_path, monkeypatch
):
    env({"tiny": tiny})
    model = panns_keras.load_model("tiny")
    assert model.spec.name == "leenet11" and len(model.labels) == 527
    # downloaded once, checked, converted, cached next to the .pth
    assert server.full_gets(FILE) == 1
    assert _cached_files(env.home, "tiny") == [FILE, "model", "preset.json"]
    marker = json.loads((env.home / "presets" / "tiny" / "preset.json").read_text())
    assert marker["digests"]["sha256"] == ckpt_sha256
    # the same numbers as converting the file by hand; a real clip tagged
    direct = load_model_dir(convert_checkpoint(CKPT, tmp_path / "direct"))
    got = panns_keras.tag("tiny", str(CLIP)).clipwise
    want = panns_keras.tag(direct, str(CLIP)).clipwise
    assert got.shape == (527,) and np.all(np.isfinite(got)) and got.max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    # second load: offline (server gone), no new request, not slower than a model directory
    server.stop()
    monkeypatch.setenv("PANNS_KERAS_OFFLINE", "1")
    n_requests = len(server.requests)
    again = panns_keras.models.tagger.AudioTagger.from_preset("tiny")
    assert again.spec.name == "leenet11" and len(server.requests) == n_requests
    model_dir = env.home / "presets" / "tiny" / "model"
    t_dir = _min_time(lambda: load_model_dir(model_dir))
    t_name = _min_time(lambda: panns_keras.load_model("tiny"))
    t_resolve = _min_time(lambda: resolve("tiny"), n=20)
    print(f"load model dir {t_dir:.3f} s, by name {t_name:.3f} s, resolve {t_resolve * 1e3:.2f} ms")
    assert t_resolve < 0.02
    assert t_name <= 1.25 * t_dir + 0.05


def test_every_door_takes_a_preset_name(env, tiny):
    """load_model, the runtime (tag/sed/embed), export/hear (api), finetune/train init, evaluate."""
    from panns_keras import hear, runtime
    from panns_keras.train import finetune, restore, warm_start

    env({"tiny": tiny})
    assert runtime.load_runner("tiny").name == "leenet11"
    assert warm_start.load_init("tiny").spec.name == "leenet11"
    assert finetune.init_sample_rate("tiny") == 32000
    assert restore.load_for_eval("tiny")[0].spec.name == "leenet11"
    assert hear.load_model("tiny").model.spec.name == "leenet11"


def test_tag_verb_takes_a_preset_name(env, server, tiny, cli):
    env({"tiny": tiny})
    p = cli("tag", CLIP, "--model", "tiny", "--top_k=2", "--format=json", cwd=ROOT)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)[0]["labels"]
    assert server.full_gets(FILE) == 1
    want = panns_keras.tag(panns_keras.load_model("tiny"), str(CLIP)).top(2)  # cached now
    assert [g["label"] for g in got] == [label for label, _ in want]
    np.testing.assert_allclose([g["score"] for g in got], [s for _, s in want], atol=1e-5)
    assert "download LeeNet11_mAP=0.266.pth: 3.0/3.0 MB (100.0%)" in p.stderr


def test_local_path_wins_over_a_name(env, server, tiny, tmp_path, monkeypatch):
    env({"tiny": tiny})
    (tmp_path / "work" / "tiny").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    assert resolve("tiny") == "tiny"  # a local folder of that name: used as a path
    assert server.requests == []
    with pytest.raises(UserError, match=r"^tiny: not a panns-keras model directory"):
        panns_keras.load_model("tiny")
    assert resolve("not_a_preset") == "not_a_preset"


@pytest.mark.parametrize("damage", ["corrupted", "truncated"])
def test_damaged_file_refused_and_nothing_cached(
    env, server, tiny, ckpt_bytes, ckpt_sha256, damage
):

    data = bytearray(ckpt_bytes)
    if damage == "corrupted":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    server.files[FILE] = bytes(data)
    env({"tiny": tiny})
    with pytest.raises(UserError) as e:
        panns_keras.load_model("tiny")
    message = str(e.value)
    actual = hashlib.sha256(data).hexdigest()
    assert "\n" not in message
    assert message.startswith(
        f"{FILE}: checksum mismatch (sha256 expected {ckpt_sha256}, got {actual}"
    )
    assert _cached_files(env.home, "tiny") == []
    assert find("tiny") is not None and not (env.home / "presets" / "tiny").exists()


def test_md5_mismatch_names_md5(env, server, ckpt_bytes):

    env({"tiny": {"url": server.url(FILE), "md5": "0" * 32, "arch": "leenet11"}})
    with pytest.raises(
        UserError,
        match=rf"^{FILE}: checksum mismatch \(md5 expected 0{{32}}, "
        rf"got {hashlib.md5(ckpt_bytes).hexdigest()}\); not cached$",
    ):
        panns_keras.load_model("tiny")
    assert _cached_files(env.home, "tiny") == []


def test_cut_download_resumes_with_a_range_request(env, server, tiny, ckpt_bytes, monkeypatch):
    env({"tiny": tiny})
    cut = 1_000_000
    # No retries: the cut run fails with the offline hint and keeps the part it got.
    monkeypatch.setenv("PANNS_KERAS_DOWNLOAD_RETRIES", "0")
    server.cut[FILE] = cut
    with pytest.raises(
        UserError,
        match=r"^tiny: cannot download \(connection closed after "
        rf"{cut} of {len(ckpt_bytes)} bytes",
    ):
        panns_keras.load_model("tiny")
    assert (env.home / "presets" / "tiny" / f"{FILE}.part").stat().st_size == cut
    # The next run asks for the rest only.
    monkeypatch.setenv("PANNS_KERAS_DOWNLOAD_RETRIES", "3")
    assert panns_keras.load_model("tiny").spec.name == "leenet11"
    assert server.requests == [(FILE, None), (FILE, f"bytes={cut}-")]
    # Within one run: the cut is retried at once, from where it stopped.
    server.requests.clear()
    server.cut[FILE] = 123_457
    env({"tiny2": tiny}, name="t2.json")
    assert panns_keras.load_model("tiny2").spec.name == "leenet11"
    assert server.requests == [(FILE, None), (FILE, "bytes=123457-")]


def test_offline_mode_says_which_file_to_place_where(env, server, tiny, ckpt_bytes, monkeypatch):
    env({"tiny": tiny})
    monkeypatch.setenv("PANNS_KERAS_OFFLINE", "1")
    target = env.home / "presets" / "tiny" / FILE
    with pytest.raises(UserError) as e:
        panns_keras.load_model("tiny")
    assert str(e.value) == (
        f"tiny: not cached and PANNS_KERAS_OFFLINE=1; download "
        f"{server.url(FILE)} (size unknown) and place it at {target}"
    )
    assert server.requests == [] and not target.parent.exists()
    # Placed by hand: checked and converted without the network.
    target.parent.mkdir(parents=True)
    target.write_bytes(ckpt_bytes)
    assert panns_keras.load_model("tiny").spec.name == "leenet11"
    assert server.requests == []


def test_no_network_gives_the_same_hint(env, server, tiny, monkeypatch):
    port = server.httpd.server_address[1]
    server.stop()  # nothing listens there any more
    monkeypatch.setenv("PANNS_KERAS_DOWNLOAD_RETRIES", "1")
    env({"tiny": tiny})
    with pytest.raises(
        UserError,
        match=rf"^tiny: cannot download \(.*\(after 2 attempts\)\); "
        rf"download http://127.0.0.1:{port}/.* and place it at ",
    ):
        panns_keras.load_model("tiny")


def test_user_table_overrides_a_builtin_name_and_takes_paths(
    env, server, tiny, ckpt_bytes, tmp_path, monkeypatch
):
    monkeypatch.delenv("PANNS_KERAS_PRESETS", raising=False)
    assert find("cnn14").url.startswith("https://zenodo.org/records/3987831/files/Cnn14_mAP")
    (tmp_path / "ckpts").mkdir()
    (tmp_path / "ckpts" / "ours.pth").write_bytes(ckpt_bytes)
    table = env(
        {
            "cnn14": tiny,
            "from_file_url": {
                "url": (tmp_path / "ckpts" / "ours.pth").as_uri(),
                "arch": "leenet11",
            },
            "from_relative_path": {"path": "ckpts/ours.pth", "arch": "leenet11"},
        }
    )
    assert find("cnn14").source == str(table) and find("Cnn14_mAP=0.431") is None
    model = panns_keras.load_model("cnn14")
    assert model.spec.name == "leenet11" and server.full_gets(FILE) == 1
    for name in ("from_file_url", "from_relative_path"):
        assert panns_keras.load_model(name).spec.name == "leenet11"
    # a model directory in a user table is used in place, not copied
    model_dir = env.home / "presets" / "cnn14" / "model"
    env({"ours_dir": {"path": str(model_dir)}}, name="dirs.json")
    assert resolve("ours_dir") == str(model_dir)
    assert not (env.home / "presets" / "ours_dir").exists()


def test_base_url_points_builtins_at_a_mirror(env, server, ckpt_bytes, monkeypatch):
    server.files["Cnn6_mAP=0.343.pth"] = ckpt_bytes  # not the real Cnn6: its md5 must refuse it
    monkeypatch.setenv("PANNS_KERAS_PRESET_BASE_URL", server.base_url + "/")
    assert find("cnn6").url == server.url("Cnn6_mAP=0.343.pth")

    with pytest.raises(
        UserError,
        match=r"^Cnn6_mAP=0.343.pth: checksum mismatch \(md5 expected "
        rf"e25e26b84585b14c7754c91e48efc9be, got {hashlib.md5(ckpt_bytes).hexdigest()}",
    ):
        panns_keras.load_model("cnn6")
    assert server.requests == [("Cnn6_mAP=0.343.pth", None)]
    assert _cached_files(env.home, "cnn6") == []


def test_bad_user_table_is_one_line(env, tmp_path):
    table = env({"x y": {"url": "https://example.invalid/a.pth"}})
    with pytest.raises(UserError, match=rf"^{table}: preset 'x y': names may hold"):
        resolve("anything")
    env({"ok": {"url": "ftp://host/a.pth"}})
    with pytest.raises(UserError, match=r"^ftp://host/a.pth: unsupported URL scheme 'ftp'"):
        resolve("ok")


@pytest.mark.slow
def test_two_processes_at_once_leave_a_good_cache(env, server, tiny, ckpt_sha256, tmp_path):
    env({"tiny": tiny})
    server.delay = 0.04  # ~2 s per download: the two overlap
    # Each process imports Keras, says it is ready, and waits for the other before loading.
    code = (
        "import sys, time, pathlib, keras, panns_keras\n"
        "ready = pathlib.Path(sys.argv[1]); (ready / sys.argv[2]).touch()\n"
        "while len(list(ready.iterdir())) < 2: time.sleep(0.01)\n"
        "m = panns_keras.load_model('tiny'); print(m.spec.name, len(m.labels))"
    )
    (tmp_path / "ready").mkdir()
    environ = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "ready"), str(i)],
            env=environ,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == "leenet11 527"
    assert server.full_gets(FILE) == 1  # the second waited for the first, then used its cache
    assert any("waiting for another process" in err for _, err in outs)
    assert _cached_files(env.home, "tiny") == [FILE, "model", "preset.json"]
    assert cache.read_marker("tiny")["digests"]["sha256"] == ckpt_sha256
    assert panns_keras.load_model("tiny").spec.name == "leenet11"


def test_a_served_keras_file_is_cached_as_is(env, server, tmp_path):
    from tests.helpers.narrow import narrow_model

    model = narrow_model("cnn6", num_classes=3, labels=["dog", "cat", "bird"])
    model.save(tmp_path / "ours.keras")
    data = (tmp_path / "ours.keras").read_bytes()
    server.files["ours.keras"] = data
    env({"ours": {"url": server.url("ours.keras"), "sha256": hashlib.sha256(data).hexdigest()}})
    loaded = panns_keras.load_model("ours")
    assert tuple(loaded.labels) == ("dog", "cat", "bird")
    assert _cached_files(env.home, "ours") == ["ours.keras", "preset.json"]
    x = np.random.default_rng(0).uniform(-0.1, 0.1, (1, 32000)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(loaded(x)["clipwise_output"]),
        np.asarray(model(x)["clipwise_output"]),
        atol=1e-6,
    )
    assert resolve("ours") == str(env.home / "presets" / "ours" / "ours.keras")
