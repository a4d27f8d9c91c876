"""A ``jax.profiler`` trace of a jitted step reduced to device time per kind of op.

python tools/profile_reduce.py TRACE.trace.json.gz STEP.hlo.txt[.gz] --steps=4 \
    [--step_ms=51.9] [--out=PREFIX]      (writes PREFIX.md and PREFIX.json)

Inputs: the Chrome-trace JSON that ``jax.profiler.trace`` writes
(``plugins/profile/<run>/<host>.trace.json.gz``) over ``steps`` calls of one compiled
step, and that step's optimized HLO (``Compiled.as_text()``).

Which events count (``source``):
- ``gpu``: kernel and memcpy events of the ``/device:GPU:N`` processes (CUPTI), on their
  ``Stream`` threads only (XLA's derived "XLA Ops" / "XLA Modules" lines would count them
  twice). Each names its HLO instruction in ``args.hlo_op`` (or in a ``#hlo_op=...#``
  annotation); without one the kernel name itself is tried (``loop_add_fusion_3`` ->
  ``loop_add_fusion.3``) and library kernels are classed by name (xmma fprop / dgrad /
  wgrad, gemm).
- ``cpu``: without device events, XLA:CPU's per-instruction host events (``args.hlo_op`` of
  the step's ``hlo_module``). They run on several threads at once, so their sum is op time,
  not wall time.
- ``none``: neither; the report says so (e.g. CUPTI was not usable) and gives no table.

Each event's HLO instruction is classed from the HLO text (:func:`classify`): the scope in
its ``op_name`` metadata first (the log-mel front end, bn0 + SpecAugment, the optimizer),
then what it computes (cuDNN convolution by direction, matmul, pooling, reductions, pure
data movement, other fusions). The pass (forward / backward / optimizer) comes from the
same metadata: JAX names gradient ops ``transpose(jvp(...))``.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

# Categories, in report order.
FRONTEND = "front end: STFT + log-mel"
FRONTEND_BN = "front end: bn0 + SpecAugment"
CONV_FWD = "convolution forward"
CONV_BWD_IN = "convolution backward (input)"
CONV_BWD_W = "convolution backward (filter)"
CONV_BWD = "convolution backward"
CONV_UNKNOWN = "convolution (direction not in the HLO)"
MATMUL = "matmul / dense"
POOL = "pooling (reduce-window, select-and-scatter)"
REDUCE = "reductions (BatchNorm statistics, loss, means)"
ELEMENTWISE = "BatchNorm / activation / elementwise fusions"
OPTIMIZER = "optimizer update"
COPY = "copies / transposes / memcpy"
OTHER = "other"
CATEGORIES = (
    FRONTEND,
    FRONTEND_BN,
    CONV_FWD,
    CONV_BWD_IN,
    CONV_BWD_W,
    CONV_BWD,
    CONV_UNKNOWN,
    MATMUL,
    POOL,
    REDUCE,
    ELEMENTWISE,
    OPTIMIZER,
    COPY,
    OTHER,
)

MOVES = {
    "copy",
    "transpose",
    "bitcast",
    "reshape",
    "parameter",
    "slice",
    "concatenate",
    "pad",
    "dynamic-slice",
    "dynamic-update-slice",
    "tuple",
    "get-tuple-element",
    "broadcast",
    "constant",
    "copy-start",
    "copy-done",
    "bitcast-convert",
    "convert",
    "reverse",
}
ELEMENTWISE_OPS = {
    "add",
    "subtract",
    "multiply",
    "divide",
    "maximum",
    "minimum",
    "exp",
    "log",
    "sqrt",
    "rsqrt",
    "tanh",
    "logistic",
    "select",
    "compare",
    "negate",
    "abs",
    "power",
    "clamp",
}
OPTIMIZER_SCOPES = ("optimizer", "adam", "stateless_apply", "sgd")


# ---------------------------------------------------------------------------- the HLO text
@dataclass
class Instr:
    name: str
    opcode: str
    line: str
    calls: list[str] = field(default_factory=list)
    op_name: str = ""


_INSTR = re.compile(r"^\s+(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")
_OPCODE = re.compile(r"(?:^|\s)([a-z][a-z0-9\-]*)\(")
_CALLS = re.compile(
    r"\b(?:calls|to_apply|called_computations|condition|body)="
    r"(\{[^}]*\}|%?[\w.\-]+)"
)
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_TARGET = re.compile(r'custom_call_target="([^"]*)"')


def parse_hlo(text: str) -> tuple[str, dict[str, dict[str, Instr]], dict[str, str]]:
    """(module name, {computation: {instruction: Instr}}, {instruction: its computation})."""
    module, comps, owner, current = "", {}, {}, None
    for line in text.splitlines():
        if line.startswith("HloModule "):
            module = line.split()[1].rstrip(",")
        elif line and not line[0].isspace() and line.rstrip().endswith("{"):
            head = line.split()[1] if line.startswith("ENTRY ") else line.split()[0]
            current = head.lstrip("%")
            comps[current] = {}
        elif line.startswith("}"):
            current = None
        elif current is not None and (m := _INSTR.match(line)):
            name, rhs = m.groups()
            op = _OPCODE.search(rhs)
            calls = [
                c.strip(" {}%")
                for m2 in _CALLS.finditer(rhs)
                for c in m2.group(1).split(",")
                if c.strip(" {}%")
            ]
            op_name = _OP_NAME.search(rhs)
            comps[current][name] = Instr(
                name, op.group(1) if op else "?", rhs, calls, op_name.group(1) if op_name else ""
            )
            owner[name] = current
    return module, comps, owner


def _inner(instr: Instr, comps: dict, seen: set | None = None) -> list[Instr]:
    """The instructions of every computation ``instr`` calls, recursively."""
    seen = set() if seen is None else seen
    found = []
    for c in instr.calls:
        if c in seen or c not in comps:
            continue
        seen.add(c)
        for sub in comps[c].values():
            found.append(sub)
            found.extend(_inner(sub, comps, seen))
    return found


_WINDOW = re.compile(r"window=\{size=([\dx]+)")
_SHAPE = re.compile(r"^\(?[a-z]\w*\[([\d,]*)\]")
_LABELS = re.compile(r"dim_labels=\w+->(\w+)")


def _conv_kind(target: str, conv: Instr | None = None, op_name: str = "") -> str:
    """The direction of a convolution from its cuDNN target, else its ``op_name``, else
    its shape: a window at least as large as the output is a filter gradient."""
    t = target.lower()
    if "backwardfilter" in t or "bw-filter" in t:
        return CONV_BWD_W
    if "backwardinput" in t or "bw-input" in t:
        return CONV_BWD_IN
    if "forward" in t or "fprop" in t:
        return CONV_FWD
    if op_name:
        return CONV_BWD if "transpose(" in op_name else CONV_FWD
    window = _WINDOW.search(conv.line) if conv else None
    shape, labels = (_SHAPE.match(conv.line), _LABELS.search(conv.line)) if conv else (0, 0)
    if window and shape and labels:
        dims = [int(d) for d in shape.group(1).split(",") if d]
        spatial = [d for d, c in zip(dims, labels.group(1)) if c.isdigit()]
        if math.prod(int(w) for w in window.group(1).split("x")) >= math.prod(spatial):
            return CONV_BWD_W
    return CONV_UNKNOWN


def classify(instr: Instr, comps: dict) -> str:
    """The category of one HLO instruction (see the module docstring)."""
    inner = _inner(instr, comps)
    names = [instr.op_name] + [i.op_name for i in inner if i.op_name]
    scope = next((n for n in names if n), "")
    layer = layer_of(scope)
    if layer.startswith("logmel_extractor"):
        return FRONTEND
    if layer.startswith(("bn0", "spec_augmenter")):
        return FRONTEND_BN
    if any(s in scope.lower() for s in OPTIMIZER_SCOPES):
        return OPTIMIZER
    if instr.opcode == "while":
        return OTHER
    ops = {i.opcode for i in inner} | ({instr.opcode} - {"fusion"})
    targets = [t for i in (instr, *inner) for t in _TARGET.findall(i.line)]
    text = instr.line
    conv_targets = [t for t in targets if "conv" in t.lower()]
    if conv_targets:
        return _conv_kind(conv_targets[0], op_name=scope)
    if "convolution" in ops:
        conv = next(i for i in (instr, *inner) if i.opcode == "convolution")
        return _conv_kind("", conv, conv.op_name or scope)
    if (
        "dot" in ops
        or any("gemm" in t.lower() or "matmul" in t.lower() for t in targets)
        or "__triton_gemm" in text
        or "__cudnn$fusion" in text
    ):
        return MATMUL
    if ops & {"reduce-window", "select-and-scatter"}:
        return POOL
    if "reduce" in ops:
        return REDUCE
    if ops <= MOVES:
        return COPY
    return ELEMENTWISE if instr.opcode == "fusion" or ops & ELEMENTWISE_OPS else OTHER


def pass_of(scope: str, category: str) -> str:
    """forward / backward / optimizer from an ``op_name``."""
    if category == OPTIMIZER:
        return "optimizer"
    if category in (CONV_BWD, CONV_BWD_IN, CONV_BWD_W) or "transpose(" in scope:
        return "backward"
    return "forward" if scope else "unknown"


def layer_of(scope: str) -> str:
    """The Keras layer of an ``op_name`` without JAX's transforms and the primitive, the
    nested model kept and block layers merged (``jit(step)/transpose(jvp(backbone))/
    conv_block1_bn1/mul`` -> ``backbone/conv_block1``); ops of the step itself (loss,
    mixup) -> ``(step)``."""
    if not scope:
        return "(no scope)"
    parts = [p for p in re.sub(r"[\w.]+\(|\)", "", scope).split("/") if p][1:-1]
    parts = [p for p in parts if p not in ("step", "main")][:2]
    if parts and (m := re.match(r"(.*?block_?\d+)", parts[-1])):
        parts[-1] = m.group(1)
    return "/".join(parts) or "(step)"


# ---------------------------------------------------------------------------- the trace
@dataclass
class Event:
    name: str
    dur_us: float
    ts: float
    hlo_op: str
    hlo_module: str


_ANNOT = re.compile(r"hlo_op=([^,#]+)")
_MODULE = re.compile(r"hlo_module=([^,#]+)")


def _event(e: dict) -> Event:
    args = e.get("args") or {}
    op, module = str(args.get("hlo_op", "")), str(args.get("hlo_module", ""))
    if not op:  # an annotation string somewhere: "...#hlo_op=fusion.3,hlo_module=jit_f#"
        for v in (e.get("name", ""), *map(str, args.values())):
            if m := _ANNOT.search(v):
                op = m.group(1)
                module = module or ((m2 := _MODULE.search(v)) and m2.group(1)) or ""
                break
    return Event(e.get("name", ""), float(e.get("dur", 0.0)), float(e.get("ts", 0.0)), op, module)


DERIVED = ("xla ops", "xla modules", "framework", "tensorflow", "steps", "source", "launch")


def device_events(
    trace: dict, module: str = "", host_ops: bool = True
) -> tuple[str, list[Event], list[str]]:
    """(source, events, the "process / thread" lines they came from): GPU/TPU kernel events
    if the trace has any (the stream lines; else every line but the derived ones), else
    (with ``host_ops``: the step ran on the CPU) XLA:CPU op events of ``module`` (any module
    when empty), else ("none", [], [])."""
    events = trace.get("traceEvents", [])
    procs, threads = {}, {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            procs[e["pid"]] = str(e.get("args", {}).get("name", ""))
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            threads[(e["pid"], e.get("tid"))] = str(e.get("args", {}).get("name", ""))

    def line(e):
        return threads.get((e["pid"], e.get("tid")), "")

    device = {p for p, n in procs.items() if n.startswith(("/device:GPU", "/device:TPU"))}
    xs = [e for e in events if e.get("ph") == "X" and e.get("pid") in device]
    picked = [e for e in xs if "stream" in line(e).lower()] or [
        e for e in xs if not line(e).lower().startswith(DERIVED)
    ]
    if not picked:
        if not host_ops:  # host events of a GPU step are kernel launches, not device time
            return "none", [], []
        picked = [
            e
            for e in events
            if e.get("ph") == "X"
            and (e.get("args") or {}).get("hlo_op")
            and not str(e.get("name", "")).startswith("end: ")
            and (not module or e["args"].get("hlo_module", "") in ("", module))
        ]
    lines = sorted({f"{procs.get(e['pid'], e['pid'])} / {line(e)}" for e in picked})
    source = "gpu" if picked and picked[0].get("pid") in device else "cpu"
    return (source, [_event(e) for e in picked], lines) if picked else ("none", [], [])


def _kernel_category(name: str) -> str:
    """A library kernel without an HLO instruction, classed by its name."""
    n = name.lower()
    if "memcpy" in n or "memset" in n:
        return COPY
    if "wgrad" in n:
        return CONV_BWD_W
    if "dgrad" in n:
        return CONV_BWD_IN
    if "fprop" in n or "conv" in n:
        return CONV_FWD
    if any(k in n for k in ("gemm", "nvjet", "cublas", "cutlass")):
        return MATMUL
    return OTHER


# ---------------------------------------------------------------------------- the reduction
def reduce(
    trace: dict, hlo_text: str, steps: int, step_ms: float | None = None, host_ops: bool = True
) -> dict:
    """Device time per category, pass and layer, and the top 20 instructions, per step
    (``host_ops``: see :func:`device_events`)."""
    module, comps, owner = parse_hlo(hlo_text)
    source, events, lines = device_events(trace, module, host_ops)
    instrs = {n: comps[c][n] for n, c in owner.items()}
    cache: dict[str, tuple[str, str]] = {}

    def lookup(ev: Event) -> tuple[str, str, str]:
        """(instruction, category, op_name) of an event."""
        op = ev.hlo_op
        if op not in instrs and ev.name in instrs:
            op = ev.name
        if op not in instrs:
            dotted = re.sub(r"_(\d+)$", r".\1", ev.name)
            op = dotted if dotted in instrs else op
        if op in instrs:
            if op not in cache:
                cache[op] = (
                    classify(instrs[op], comps),
                    instrs[op].op_name
                    or next((i.op_name for i in _inner(instrs[op], comps) if i.op_name), ""),
                )
            return (op, *cache[op])
        return (op or ev.name, _kernel_category(ev.name), "")

    by_cat = collections.Counter()
    by_pass = collections.Counter()
    by_layer = collections.Counter()
    by_op: dict[str, list] = {}
    count = collections.Counter()
    matched = 0
    for ev in events:
        op, cat, scope = lookup(ev)
        matched += op in instrs
        by_cat[cat] += ev.dur_us
        count[cat] += 1
        by_pass[pass_of(scope, cat)] += ev.dur_us
        by_layer[layer_of(scope) if scope else "(no scope)"] += ev.dur_us
        row = by_op.setdefault(op, [0.0, 0, cat, collections.Counter(), scope])
        row[0] += ev.dur_us
        row[1] += 1
        row[3][ev.name] += ev.dur_us  # the op's kernels: the longest is shown
        if row[2] != cat:  # e.g. a command buffer's kernels, classed each by its name
            row[2] = "several (each kernel by its name)"
    busy = sum(by_cat.values())
    span = (max(e.ts + e.dur_us for e in events) - min(e.ts for e in events)) if events else 0
    per = 1e-3 / max(steps, 1)  # us over all steps -> ms per step

    def table(counter, n=None):
        return [
            {"name": k, "ms_per_step": v * per, "pct_of_busy": 100 * v / busy}
            for k, v in counter.most_common(n)
        ]

    order = {c: i for i, c in enumerate(CATEGORIES)}
    cats = [
        {
            **row,
            "events_per_step": count[row["name"]] / max(steps, 1),
            "pct_of_step": (100 * row["ms_per_step"] / step_ms) if step_ms else None,
        }
        for row in table(by_cat)
    ]
    cats.sort(key=lambda r: order.get(r["name"], len(order)))
    top = sorted(by_op.items(), key=lambda kv: -kv[1][0])[:20]
    notes = {
        "gpu": "device time of GPU kernels and memcpys (CUPTI), per step",
        "cpu": "no device-kernel events in the trace: XLA:CPU per-op host times instead; "
        "ops run on several threads at once, so the sum is op time, not wall time",
        "none": "NO device-kernel or XLA op events in the trace (CUPTI not usable?): no "
        "per-op figures; see the timed variants instead",
    }
    return {
        "source": source,
        "note": notes[source],
        "hlo_module": module,
        "steps": steps,
        "lines": lines,
        "events": len(events),
        "matched_events": matched,
        "busy_ms_per_step": busy * per,
        "span_ms_per_step": span * per,
        "step_ms": step_ms,
        "categories": cats,
        "passes": table(by_pass),
        "layers": table(by_layer, 25),
        "top": [
            {
                "op": op,
                "category": cat,
                "kernel": kernels.most_common(1)[0][0],
                "ms_per_step": us * per,
                "pct_of_busy": 100 * us / busy,
                "calls_per_step": n / max(steps, 1),
                "op_name": scope[-160:],
            }
            for op, (us, n, cat, kernels, scope) in top
        ],
    }


def to_markdown(s: dict) -> str:
    """The reduction as markdown tables."""
    lines = [f"### Device time per step ({s['source']}: {s['note']})", ""]
    if s["source"] == "none":
        return "\n".join(lines)
    step = f"{s['step_ms']:.2f} ms timed step, " if s.get("step_ms") else ""
    lines += [
        f"{s['steps']} steps profiled; {step}{s['busy_ms_per_step']:.2f} ms busy and "
        f"{s['span_ms_per_step']:.2f} ms first-to-last event per step; "
        f"{s['matched_events']} of {s['events']} events matched to HLO instructions of "
        f"{s['hlo_module']}; lines: {', '.join(s['lines'][:4])}"
        f"{' ...' if len(s['lines']) > 4 else ''}",
        "",
        "| category | ms / step | % of busy | % of timed step | events / step |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in s["categories"]:
        pct = "" if r["pct_of_step"] is None else f"{r['pct_of_step']:.1f}"
        lines.append(
            f"| {r['name']} | {r['ms_per_step']:.3f} | {r['pct_of_busy']:.1f} | "
            f"{pct} | {r['events_per_step']:.0f} |"
        )
    pct = f"{100 * s['busy_ms_per_step'] / s['step_ms']:.1f}" if s.get("step_ms") else ""
    lines += [f"| **total** | **{s['busy_ms_per_step']:.3f}** | 100.0 | {pct} | |", ""]
    for title, key in (("pass", "passes"), ("layer (outermost Keras scope)", "layers")):
        lines += [f"| {title} | ms / step | % of busy |", "| --- | ---: | ---: |"]
        lines += [
            f"| {r['name']} | {r['ms_per_step']:.3f} | {r['pct_of_busy']:.1f} |" for r in s[key]
        ]
        lines.append("")
    lines += [
        "| # | HLO instruction | category | kernel | ms / step | % | calls / step |",
        "| ---: | --- | --- | --- | ---: | ---: | ---: |",
    ]
    for i, r in enumerate(s["top"], 1):
        lines.append(
            f"| {i} | {r['op']} | {r['category']} | {r['kernel'][:60]} | "
            f"{r['ms_per_step']:.3f} | {r['pct_of_busy']:.1f} | "
            f"{r['calls_per_step']:.0f} |"
        )
    return "\n".join(lines)


def xspace_to_trace(path) -> dict:
    """The events of an XSpace (``*.xplane.pb``, gzipped or not) as a Chrome-trace dict
    (``jax.profiler.ProfileData``): for when no ``*.trace.json.gz`` was written."""
    from jax.profiler import ProfileData

    data = Path(path).read_bytes()
    space = ProfileData.from_serialized_xspace(
        gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    )
    events = []
    for pid, plane in enumerate(space.planes):
        events.append({"ph": "M", "pid": pid, "name": "process_name", "args": {"name": plane.name}})
        for tid, line in enumerate(plane.lines):
            events.append(
                {
                    "ph": "M",
                    "pid": pid,
                    "tid": tid,
                    "name": "thread_name",
                    "args": {"name": line.name},
                }
            )
            events += [
                {
                    "ph": "X",
                    "pid": pid,
                    "tid": tid,
                    "name": ev.name,
                    "ts": ev.start_ns / 1e3,
                    "dur": ev.duration_ns / 1e3,
                    "args": {k: str(v) for k, v in ev.stats},
                }
                for ev in line.events
            ]
    return {"traceEvents": events}


def _read(path: Path) -> str:
    data = Path(path).read_bytes()
    return (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode()


def reduce_files(
    trace_path,
    hlo_path,
    steps: int,
    step_ms: float | None = None,
    out_prefix=None,
    host_ops: bool = True,
) -> dict:
    """:func:`reduce` of two files (gzipped or not; the trace a ``*.trace.json[.gz]`` or a
    ``*.xplane.pb[.gz]``); with ``out_prefix`` also writes ``<out_prefix>.md`` and
    ``<out_prefix>.json``."""
    trace = (
        xspace_to_trace(trace_path)
        if ".xplane.pb" in str(trace_path)
        else json.loads(_read(trace_path))
    )
    summary = reduce(trace, _read(hlo_path), steps, step_ms, host_ops)
    if out_prefix is not None:
        from panns_keras.fileio import atomic_write

        atomic_write(f"{out_prefix}.md", to_markdown(summary) + "\n")
        atomic_write(f"{out_prefix}.json", json.dumps(summary, indent=1))
    return summary


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trace")
    p.add_argument("hlo")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--step_ms", type=float, default=None)
    p.add_argument("--out", default=None, help="write OUT.md and OUT.json")
    p.add_argument(
        "--device",
        action="store_true",
        help="the step ran on an accelerator: never count host events",
    )
    a = p.parse_args(argv)
    try:
        summary = reduce_files(a.trace, a.hlo, a.steps, a.step_ms, a.out, not a.device)
    except (OSError, ValueError, EOFError) as e:  # missing, truncated or not a trace / HLO
        p.exit(1, f"profile_reduce: {type(e).__name__}: {e}\n")
    print(to_markdown(summary))


if __name__ == "__main__":
    main()
