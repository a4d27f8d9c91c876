"""tools/profile_reduce.py on a GPU-shaped trace written here: cuDNN convolutions by
direction, a cuBLAS gemm, the log-mel front end, the optimizer, pooling, reductions, copies
and a memcpy, matched by ``args.hlo_op``, by a ``#hlo_op=...#`` annotation or by the kernel's
own name; XLA's derived "XLA Ops" line and host events are not counted; no device events on a
GPU step gives "none". And a real XLA:CPU trace of a small jitted training step (JAX's
profiler), every event matched to the step's HLO and classed."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "profile_reduce", Path(__file__).resolve().parents[2] / "tools" / "profile_reduce.py"
)
pr = sys.modules.setdefault("profile_reduce", importlib.util.module_from_spec(_SPEC))
_SPEC.loader.exec_module(pr)

BB, BWD = "jit(step)/jvp(backbone)", "jit(step)/transpose(jvp(backbone))"
HLO = f"""HloModule jit_step, is_scheduled=true, entry_computation_layout={{(bf16[8,16]{{1,0}})->f32[]}}

%region_add (a: f32[], b: f32[]) -> f32[] {{
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %add.9 = f32[] add(f32[] %a, f32[] %b)
}}

%fused_add (param_0: bf16[8,16]) -> bf16[8,16] {{
  %param_0 = bf16[8,16]{{1,0}} parameter(0)
  ROOT %add.1 = bf16[8,16]{{1,0}} add(%param_0, %param_0), metadata={{op_name="{BB}/conv_block1_bn1/add"}}
}}

%fused_reduce (param_0.1: f32[8,16]) -> f32[8] {{
  %param_0.1 = f32[8,16]{{1,0}} parameter(0)
  %c = f32[] constant(0)
  ROOT %reduce.1 = f32[8]{{0}} reduce(%param_0.1, %c), dimensions={{1}}, to_apply=%region_add, metadata={{op_name="{BWD}/conv_block1_bn1/reduce_sum"}}
}}

%fused_transpose (param_0.2: f32[4,8]) -> f32[8,4] {{
  %param_0.2 = f32[4,8]{{1,0}} parameter(0)
  ROOT %transpose.1 = f32[8,4]{{1,0}} transpose(%param_0.2), dimensions={{1,0}}
}}

%fused_adam (param_0.3: f32[8], param_1.3: f32[8]) -> f32[8] {{
  %param_0.3 = f32[8]{{0}} parameter(0)
  %param_1.3 = f32[8]{{0}} parameter(1)
  ROOT %multiply.2 = f32[8]{{0}} multiply(%param_0.3, %param_1.3), metadata={{op_name="jit(step)/torch_adam/mul"}}
}}

%fused_dft (param_0.4: f32[8,512], param_1.4: f32[512,64]) -> f32[8,64] {{
  %param_0.4 = f32[8,512]{{1,0}} parameter(0)
  %param_1.4 = f32[512,64]{{1,0}} parameter(1)
  ROOT %dot.1 = f32[8,64]{{1,0}} dot(%param_0.4, %param_1.4), lhs_contracting_dims={{1}}, rhs_contracting_dims={{0}}, metadata={{op_name="jit(step)/jvp(logmel_extractor)/dot_general"}}
}}

ENTRY %main.1 (p0: bf16[8,16]) -> f32[] {{
  %p0 = bf16[8,16]{{1,0}} parameter(0)
  %cudnn-conv.1 = (bf16[8,64,100,64]{{3,2,1,0}}, u8[0]{{0}}) custom-call(%p0, %p0), window={{size=3x3 pad=1_1x1_1}}, dim_labels=bf01_oi01->bf01, custom_call_target="__cudnn$convForward", metadata={{op_name="{BB}/conv_block1_conv1/conv_general_dilated"}}
  %cudnn-conv-bw-input.2 = (bf16[8,64,100,64]{{3,2,1,0}}, u8[0]{{0}}) custom-call(%p0, %p0), custom_call_target="__cudnn$convBackwardInput", metadata={{op_name="{BWD}/conv_block1_conv1/conv_general_dilated"}}
  %cudnn-conv-bw-filter.3 = (bf16[64,64,3,3]{{3,2,1,0}}, u8[0]{{0}}) custom-call(%p0, %p0), custom_call_target="__cudnn$convBackwardFilter", metadata={{op_name="{BWD}/conv_block1_conv1/conv_general_dilated"}}
  %custom-call.4 = (f32[8,64]{{1,0}}, s8[0]{{0}}) custom-call(%p0, %p0), custom_call_target="__cublas$gemm", metadata={{op_name="jit(step)/jvp(head)/fc1/dot_general"}}
  %loop_add_fusion = bf16[8,16]{{1,0}} fusion(%p0), kind=kLoop, calls=%fused_add, metadata={{op_name="{BB}/conv_block1_bn1/add"}}
  %input_reduce_fusion = f32[8]{{0}} fusion(%p0), kind=kInput, calls=%fused_reduce
  %transpose_fusion = f32[8,4]{{1,0}} fusion(%p0), kind=kLoop, calls=%fused_transpose
  %loop_multiply_fusion.7 = f32[8]{{0}} fusion(%p0, %p0), kind=kLoop, calls=%fused_adam
  %dft_fusion = f32[8,64]{{1,0}} fusion(%p0, %p0), kind=kCustom, calls=%fused_dft, backend_config={{"fusion_backend_config":{{"kind":"__triton_gemm"}}}}
  %reduce-window.5 = f32[8,8]{{1,0}} reduce-window(%p0, %p0), window={{size=2x2 stride=2x2}}, to_apply=%region_add, metadata={{op_name="{BB}/conv_block1_pool/reduce_window"}}
  %select-and-scatter.6 = f32[8,16]{{1,0}} select-and-scatter(%p0, %p0, %p0), window={{size=2x2 stride=2x2}}, select=%region_add, scatter=%region_add, metadata={{op_name="{BWD}/conv_block1_pool/select_and_scatter_add"}}
  ROOT %r = f32[] constant(0)
}}
"""  # noqa: E501

# (kernel name, args, us per step, expected category)
KERNELS = [
    ("sm90_xmma_fprop_implicit_gemm_bf16", {"hlo_op": "cudnn-conv.1"}, 100, pr.CONV_FWD),
    ("sm90_xmma_dgrad_implicit_gemm", {"hlo_op": "cudnn-conv-bw-input.2"}, 80, pr.CONV_BWD_IN),
    ("sm90_xmma_wgrad_implicit_gemm", {"hlo_op": "cudnn-conv-bw-filter.3"}, 60, pr.CONV_BWD_W),
    ("nvjet_hsh_64x8", {"hlo_op": "custom-call.4", "hlo_module": "jit_step"}, 20, pr.MATMUL),
    ("loop_add_fusion", {"hlo_op": "loop_add_fusion"}, 10, pr.ELEMENTWISE),
    ("input_reduce_fusion", {"long_name": "a:#hlo_op=input_reduce_fusion#"}, 8, pr.REDUCE),
    ("transpose_fusion", {}, 4, pr.COPY),  # matched by name
    ("loop_multiply_fusion_7", {}, 6, pr.OPTIMIZER),  # by name, "_7" -> ".7"
    ("triton_gemm_dft", {"hlo_op": "dft_fusion"}, 30, pr.FRONTEND),
    ("reduce_window_kernel", {"hlo_op": "reduce-window.5"}, 5, pr.POOL),
    ("select_and_scatter_kernel", {"hlo_op": "select-and-scatter.6"}, 7, pr.POOL),
    ("MemcpyD2D", {}, 2, pr.COPY),
    ("mystery_kernel", {}, 1, pr.OTHER),
]
STEPS = 2


def gpu_trace(device_events: bool = True) -> dict:
    events = [
        {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/host:CPU"}},
        {"ph": "M", "pid": 2, "name": "process_name", "args": {"name": "/device:GPU:0"}},
        {"ph": "M", "pid": 1, "tid": 5, "name": "thread_name", "args": {"name": "python"}},
        {"ph": "M", "pid": 2, "tid": 7, "name": "thread_name", "args": {"name": "Stream #7"}},
        {"ph": "M", "pid": 2, "tid": 100, "name": "thread_name", "args": {"name": "XLA Ops"}},
    ]
    ts = 0.0
    for _ in range(STEPS):
        for name, args, us, _cat in KERNELS:
            if device_events:
                events.append(
                    {"ph": "X", "pid": 2, "tid": 7, "ts": ts, "dur": us, "name": name, "args": args}
                )
                # The derived line repeats the op: it must not count twice.
                events.append(
                    {
                        "ph": "X",
                        "pid": 2,
                        "tid": 100,
                        "ts": ts,
                        "dur": us,
                        "name": args.get("hlo_op", name),
                    }
                )
            # A host-side launch event naming the op: never device time.
            launch = {"hlo_op": "cudnn-conv.1", "hlo_module": "jit_step"}
            events.append(
                {
                    "ph": "X",
                    "pid": 1,
                    "tid": 5,
                    "ts": ts,
                    "dur": 1000.0,
                    "name": name,
                    "args": launch,
                }
            )
            ts += us + 3
        ts += 50  # a gap between steps
    return {"traceEvents": events}


def test_reduce_gpu_trace(tmp_path):
    trace_path, hlo_path = tmp_path / "t.trace.json.gz", tmp_path / "s.hlo.txt"
    trace_path.write_bytes(gzip.compress(json.dumps(gpu_trace()).encode()))
    hlo_path.write_text(HLO)
    s = pr.reduce_files(
        trace_path, hlo_path, STEPS, step_ms=0.5, out_prefix=tmp_path / "p", host_ops=False
    )
    assert (s["source"], s["hlo_module"], s["lines"]) == (
        "gpu",
        "jit_step",
        ["/device:GPU:0 / Stream #7"],
    )
    assert (s["events"], s["matched_events"]) == (STEPS * 13, STEPS * 11)
    expected: dict[str, float] = {}
    for _, _, us, cat in KERNELS:
        expected[cat] = expected.get(cat, 0) + us / 1e3
    got = {c["name"]: c["ms_per_step"] for c in s["categories"]}
    assert got == pytest.approx(expected)
    total = sum(us for _, _, us, _ in KERNELS) / 1e3  # 0.333 ms
    assert s["busy_ms_per_step"] == pytest.approx(total)
    # First start to last end: 2 x (333 us of kernels + 13 x 3 us apart) + 50 us - 3 us.
    assert s["span_ms_per_step"] == pytest.approx((2 * (333 + 39) + 50 - 3) / 1e3 / STEPS)
    by_name = {c["name"]: c for c in s["categories"]}
    assert by_name[pr.CONV_FWD]["pct_of_busy"] == pytest.approx(100 * 0.1 / total)
    assert by_name[pr.CONV_FWD]["pct_of_step"] == pytest.approx(100 * 0.1 / 0.5)
    assert by_name[pr.CONV_FWD]["events_per_step"] == 1
    # Categories in the report's order.
    assert [c["name"] for c in s["categories"]] == [c for c in pr.CATEGORIES if c in expected]

    passes = {r["name"]: r["ms_per_step"] for r in s["passes"]}
    # forward: conv 100, gemm 20, add 10, DFT 30, pool 5; backward: 80, 60, BN reduce 8,
    # select-and-scatter 7; unknown (no op_name): transpose, memcpy, mystery kernel.
    assert passes == pytest.approx(
        {"forward": 0.165, "backward": 0.155, "optimizer": 0.006, "unknown": 0.007}
    )
    layers = {r["name"]: r["ms_per_step"] for r in s["layers"]}
    assert layers["backbone/conv_block1"] == pytest.approx(0.27)
    assert layers["logmel_extractor"] == pytest.approx(0.03)
    assert layers["head/fc1"] == pytest.approx(0.02)
    assert layers["torch_adam"] == pytest.approx(0.006)
    top = s["top"]
    assert [t["op"] for t in top[:3]] == [
        "cudnn-conv.1",
        "cudnn-conv-bw-input.2",
        "cudnn-conv-bw-filter.3",
    ]
    assert top[0]["calls_per_step"] == 1 and len(top) == 13

    md = (tmp_path / "p.md").read_text()
    assert "| **total** | **0.333** | 100.0 | 66.6 | |" in md
    assert f"| {pr.CONV_BWD_W} | 0.060 | 18.0 | 12.0 | 1 |" in md
    assert json.loads((tmp_path / "p.json").read_text())["busy_ms_per_step"] == pytest.approx(total)


def test_reduce_without_device_events():
    """A GPU step whose trace has no kernel events (no CUPTI): "none", never the host's
    launch events; the same trace from a CPU step counts the host's XLA op events."""
    trace = gpu_trace(device_events=False)
    s = pr.reduce(trace, HLO, STEPS, host_ops=False)
    assert (s["source"], s["events"], s["categories"]) == ("none", 0, [])
    assert "NO device-kernel" in pr.to_markdown(s)
    s = pr.reduce(trace, HLO, STEPS, host_ops=True)
    assert (s["source"], s["events"]) == ("cpu", STEPS * 13)
    assert s["busy_ms_per_step"] == pytest.approx(13.0)  # 13 events of 1 ms per step
    assert [c["name"] for c in s["categories"]] == [pr.CONV_FWD]


def test_classify_conv_without_target_or_metadata():
    """XLA:CPU convolutions: direction from op_name, else a window at least as large as the
    output (a filter gradient), else unknown."""
    comps = {}
    fwd = pr.Instr(
        "c1",
        "convolution",
        "f32[2,8,8,4]{3,2,1,0} convolution(%a, %b), "
        "window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f",
    )
    wgrad = pr.Instr(
        "c2",
        "convolution",
        "f32[3,3,4,4]{3,2,1,0} convolution(%a, %b), "
        "window={size=8x8 pad=1_1x1_1}, dim_labels=f01b_i01o->01bf",
    )
    assert pr.classify(fwd, comps) == pr.CONV_UNKNOWN
    assert pr.classify(wgrad, comps) == pr.CONV_BWD_W
    fwd.op_name = f"{BB}/conv_block1_conv1/conv_general_dilated"
    assert pr.classify(fwd, comps) == pr.CONV_FWD
    fwd.op_name = f"{BWD}/conv_block1_conv1/conv_general_dilated"
    assert pr.classify(fwd, comps) == pr.CONV_BWD


def test_command_buffer_kernels_are_classed_one_by_one():
    """An op the HLO does not list (an XLA command buffer) with a memset and a GEMM inside:
    each kernel counts in its own category; its row in the top list says so and names the
    longest kernel."""
    events = [
        {"ph": "M", "pid": 2, "name": "process_name", "args": {"name": "/device:GPU:0"}},
        {"ph": "M", "pid": 2, "tid": 7, "name": "thread_name", "args": {"name": "Stream #7"}},
        {
            "ph": "X",
            "pid": 2,
            "tid": 7,
            "ts": 0.0,
            "dur": 2.0,
            "name": "Memset 0",
            "args": {"hlo_op": "command_buffer_1"},
        },
        {
            "ph": "X",
            "pid": 2,
            "tid": 7,
            "ts": 3.0,
            "dur": 40.0,
            "name": "sm90_xmma_gemm_f32f32_tf32f32_f32_tn_n_cublas",
            "args": {"hlo_op": "command_buffer_1"},
        },
    ]
    s = pr.reduce({"traceEvents": events}, HLO, steps=1)
    got = {c["name"]: c["ms_per_step"] for c in s["categories"]}
    assert got == pytest.approx({pr.COPY: 0.002, pr.MATMUL: 0.040})
    (row,) = s["top"]
    assert row["op"] == "command_buffer_1" and row["ms_per_step"] == pytest.approx(0.042)
    assert row["category"].startswith("several") and "gemm" in row["kernel"]


def test_reduce_a_real_xla_cpu_trace(tmp_path):
    """A jitted conv + dense training step profiled by ``jax.profiler`` on the CPU: XLA:CPU's
    per-instruction host events, every one matched to the compiled HLO, classed by kind and
    by pass (forward, backward, optimizer), and written as .md and .json."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    def step(w, x):
        def loss(w):
            with jax.named_scope("backbone"):
                y = jax.nn.relu(jax.lax.conv_general_dilated(x, w["conv"], (1, 1), "SAME"))
            with jax.named_scope("head"):
                z = y.reshape(y.shape[0], -1) @ w["fc"]
            return jnp.mean(z**2)

        value, grads = jax.value_and_grad(loss)(w)
        with jax.named_scope("optimizer"):
            w = jax.tree_util.tree_map(lambda a, g: a - 1e-3 * g, w, grads)
        return w, value

    cpu = jax.devices("cpu")[0]
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    w = {
        "conv": 0.1 * jax.random.normal(k1, (8, 4, 3, 3)),
        "fc": 0.01 * jax.random.normal(k2, (8 * 256, 10)),
    }
    x = jax.random.normal(k3, (4, 4, 16, 16))
    w, x = jax.device_put((w, x), cpu)
    compiled = jax.jit(step).lower(w, x).compile()
    w, first = compiled(w, x)
    (tmp_path / "step.hlo.txt").write_text(compiled.as_text())
    options = jax.profiler.ProfileOptions()
    options.python_tracer_level = 0
    with jax.profiler.trace(str(tmp_path / "tb"), profiler_options=options):
        for _ in range(2):
            w, last = compiled(w, x)
        jax.block_until_ready((w, last))
    (trace,) = (tmp_path / "tb").rglob("*.trace.json.gz")
    s = pr.reduce_files(trace, tmp_path / "step.hlo.txt", 2, None, tmp_path / "step", True)

    assert float(last) < float(first)  # the step trains
    assert (s["source"], s["hlo_module"], s["steps"]) == ("cpu", "jit_step", 2)
    assert s["events"] > 10 and s["matched_events"] == s["events"]
    cats = {c["name"]: c["ms_per_step"] for c in s["categories"]}
    assert s["busy_ms_per_step"] == pytest.approx(sum(cats.values()))
    assert sum(c["pct_of_busy"] for c in s["categories"]) == pytest.approx(100)
    for name in (pr.CONV_FWD, pr.MATMUL, pr.OPTIMIZER):
        assert cats.get(name, 0) > 0, (name, cats)
    passes = {row["name"]: row["ms_per_step"] for row in s["passes"]}
    assert passes["forward"] > 0 and passes["backward"] > 0 and passes["optimizer"] > 0
    assert "| **total** |" in (tmp_path / "step.md").read_text()
    assert json.loads((tmp_path / "step.json").read_text())["events"] == s["events"]
