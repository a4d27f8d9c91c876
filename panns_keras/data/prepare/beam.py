"""The preparation transform as an Apache Beam pipeline (optional extra: apache-beam).

Same listing, same shard plan, same per-clip transform (`writer.encode_clip`) and the
same shard writer as the local path, so the shards, their sha256s and manifest.json are
identical to `writer.prepare`'s. The output folder must be reachable by every worker
under the same path (local disk for DirectRunner, a shared mount otherwise).

usage (the launcher at the top of the repository): python -m data_prep.beam_pipeline \
         --out=... --class_dir=... [--runner=DirectRunner --direct_num_workers=4 ...Beam options]
"""

from __future__ import annotations

import os
import sys

from absl import logging

from panns_keras.data.prepare import writer as prep
from panns_keras.data.prepare.options import PrepareOptions


def _encode(item, sample_rate, clip_samples):
    shard_index, position, clip = item
    return shard_index, (position, prep.encode_clip(clip, sample_rate, clip_samples))


def _write(keyed, shards_by_index, out_dir, fingerprints):
    shard_index, results = keyed
    shard = shards_by_index[shard_index]
    ordered = [r for _, r in sorted(results, key=lambda pr: pr[0])]
    state = prep.write_shard(out_dir, shard, iter(ordered), fingerprints[shard_index], None)
    return shard_index, state["sha256"]


def prepare_beam(
    output_dir: str, options: PrepareOptions | None = None, pipeline_options=None, **fields
) -> dict:
    """Like `writer.prepare(output_dir, options, **fields)` but runs the clips through Beam.

    `options.num_workers` is ignored (parallelism comes from the runner); pipeline_options is
    a `PipelineOptions` or a list of Beam command-line arguments.
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    options = (options or PrepareOptions()).with_fields(**fields)
    name, sample_rate, clip_samples = options.name, options.sample_rate, options.clip_samples
    listing = prep.list_inputs(options)
    clips, pre_skipped = prep.precheck(listing)
    shards = prep.plan_shards(clips, name, int(options.clips_per_shard))
    os.makedirs(output_dir, exist_ok=True)
    prep.inputs_lib.write_labels_csv(os.path.join(output_dir, prep.LABELS_NAME), listing.labels)

    fingerprints = {s.index: prep.shard_fingerprint(s, sample_rate, clip_samples) for s in shards}
    todo = [s for s in shards if prep.load_state(output_dir, s, fingerprints[s.index]) is None]
    logging.info("beam prepare: %d shards, %d to write", len(shards), len(todo))
    if todo:
        if pipeline_options is None or isinstance(pipeline_options, list | tuple):
            pipeline_options = PipelineOptions(list(pipeline_options or ["--runner=DirectRunner"]))
        by_index = {s.index: s for s in todo}
        items = [(s.index, j, c) for s in todo for j, c in enumerate(s.clips)]
        with beam.Pipeline(options=pipeline_options) as p:
            _ = (
                p
                | "Clips" >> beam.Create(items, reshuffle=True)
                | "Encode" >> beam.Map(_encode, sample_rate, clip_samples)
                | "ByShard" >> beam.GroupByKey()
                | "WriteShard" >> beam.Map(_write, by_index, output_dir, fingerprints)
            )
    states = {}
    for s in shards:
        st = prep.load_state(output_dir, s, fingerprints[s.index])
        if st is None:
            raise RuntimeError(f"beam prepare: shard {s.filename} was not written")
        states[s.index] = st
    manifest = prep.build_manifest(
        name,
        listing.labels,
        shards,
        states,
        pre_skipped,
        sample_rate,
        clip_samples,
        len(listing.clips) + len(listing.skipped),
    )
    prep.write_manifest(output_dir, manifest)
    return manifest


def main(argv=None) -> int:
    """``python -m data_prep.beam_pipeline``: prepare's flags, the rest are Beam's options."""
    from absl import flags

    from panns_keras.data.prepare import flags as prep_flags
    from panns_keras.data.prepare import run
    from panns_keras.flagnames import rewrite

    prep_flags.define_flags()
    fv = flags.FLAGS
    argv = list(argv if argv is not None else sys.argv)
    rest = fv([argv[0], *rewrite("prepare", argv[1:])], known_only=True)
    manifest = prepare_beam(fv.out, prep_flags.options_from_flags(fv), rest[1:] or None)
    path = os.path.join(fv.out, "manifest.json")
    return run.exit_code(manifest, fv.max_fail_fraction, path, "data_prep.beam_pipeline")
