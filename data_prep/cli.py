"""Entry points: `run(flag_values) -> exit code` and absl `main(argv)`."""

from __future__ import annotations

from absl import app, flags, logging

from data_prep import flags as prep_flags
from data_prep import prepare as prepare_lib


def run(fv: flags.FlagValues = flags.FLAGS) -> int:
    """Runs prepare from parsed flags; 0 = ok, 1 = too many failed inputs."""
    if not fv.prepare_output_dir:
        raise app.UsageError("--prepare_output_dir is required")
    manifest = prepare_lib.prepare(
        fv.prepare_output_dir,
        **prep_flags.prepare_kwargs(fv),
        num_workers=fv.num_workers,
    )
    return exit_code(manifest, fv.max_fail_fraction)


def exit_code(manifest: dict, max_fail_fraction: float) -> int:
    frac = manifest["fail_fraction"]
    logging.info(
        "prepare: %d clips in %d shards, %d skipped (%s), fail fraction %.3f",
        manifest["num_clips"],
        len(manifest["shards"]),
        manifest["num_skipped"],
        manifest["skipped_by_reason"],
        frac,
    )
    if frac > max_fail_fraction:
        logging.error(
            "prepare: fail fraction %.3f > --max_fail_fraction %.3f",
            frac,
            max_fail_fraction,
        )
        return 1
    return 0


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    return run(flags.FLAGS)


def entry() -> None:
    prep_flags.define_flags()
    app.run(main)
