"""Running prepare from parsed flags: `run(flag_values) -> manifest` and the failure check.

`panns-keras prepare` and `python -m data_prep` (the top-level launcher) are one program:
same flags, messages and exit codes. Nothing here imports the CLI package."""

from __future__ import annotations

import os
import sys

from absl import flags, logging

from panns_keras.data.prepare import flags as prep_flags
from panns_keras.data.prepare import writer
from panns_keras.errors import UsageError, UserError


def run(fv: flags.FlagValues = flags.FLAGS) -> dict:
    """Runs prepare from parsed flags and returns the manifest.

    Raises:
        UsageError: no --out. UserError: more failed inputs than --max_fail_fraction allows.
    """
    if not fv.out:
        raise UsageError("--out: required (the output folder)")
    manifest = writer.prepare(fv.out, prep_flags.options_from_flags(fv))
    manifest_path = os.path.join(fv.out, writer.MANIFEST_NAME)
    problem = failure(manifest, fv.max_fail_fraction, manifest_path)
    if problem:
        raise UserError(problem)
    return manifest


def summary(manifest: dict) -> str:
    reasons = ", ".join(f"{n} {r}" for r, n in sorted(manifest["skipped_by_reason"].items()))
    shown = f" ({reasons})" if reasons else ""
    return (
        f"{manifest['num_clips']} clips in {len(manifest['shards'])} shards, "
        f"{manifest['num_skipped']} skipped{shown}"
    )


def failure(manifest: dict, max_fail_fraction: float, manifest_path: str) -> str | None:
    """The one-line problem when too many inputs failed, else None."""
    frac = manifest["fail_fraction"]
    logging.info("prepare: %s, fail fraction %.3f", summary(manifest), frac)
    if frac <= max_fail_fraction:
        return None
    reasons = ", ".join(f"{n} {r}" for r, n in sorted(manifest["skipped_by_reason"].items()))
    return (
        f"{manifest_path}: {manifest['num_skipped']} of {manifest['num_inputs']} inputs "
        f"failed ({reasons}), fail fraction {frac:.3f} > --max_fail_fraction "
        f"{max_fail_fraction:g}; the manifest lists each with its reason"
    )


def exit_code(
    manifest: dict,
    max_fail_fraction: float,
    manifest_path: str = "manifest.json",
    prog: str = "prepare",
) -> int:
    """0, or 1 after printing the one-line failure (the Beam pipeline's exit)."""
    problem = failure(manifest, max_fail_fraction, manifest_path)
    if problem:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        return 1
    return 0
