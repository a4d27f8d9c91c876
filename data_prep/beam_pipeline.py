"""The data_prep transform as an Apache Beam pipeline (optional extra: apache-beam).

Same listing, same shard plan, same per-clip transform (`prepare.encode_clip`) and the
same shard writer as the local path, so the shards, their sha256s and manifest.json are
identical to `prepare.prepare`'s. The output folder must be reachable by every worker
under the same path (local disk for DirectRunner, a shared mount otherwise).

usage: python -m data_prep.beam_pipeline --out=... --class_dir=... \
         [--runner=DirectRunner --direct_num_workers=4 ...Beam pipeline options]
"""

from __future__ import annotations

import os
import sys

from absl import logging

from data_prep import prepare as prep


def _encode(item, sample_rate, clip_samples):
    shard_index, position, clip = item
    return shard_index, (position, prep.encode_clip(clip, sample_rate, clip_samples))


def _write(keyed, shards_by_index, out_dir, fingerprints):
    shard_index, results = keyed
    shard = shards_by_index[shard_index]
    ordered = [r for _, r in sorted(results, key=lambda pr: pr[0])]
    state = prep.write_shard(out_dir, shard, iter(ordered), fingerprints[shard_index], None)
    return shard_index, state["sha256"]


def prepare_beam(output_dir: str, pipeline_options=None, **kwargs) -> dict:
    """Like `prepare.prepare(output_dir, **kwargs)` but runs the clips through Beam.

    `num_workers` is ignored (parallelism comes from the runner); pipeline_options is a
    `PipelineOptions` or a list of Beam command-line arguments.
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    kwargs.pop("num_workers", None)
    name = kwargs.pop("name", "train")
    sample_rate = int(kwargs.pop("sample_rate", 32000))
    clip_seconds = float(kwargs.pop("clip_seconds", 10.0))
    clips_per_shard = int(kwargs.pop("clips_per_shard", 256))
    listing = prep.list_inputs(**kwargs)
    clips, pre_skipped = prep.precheck(listing)
    clip_samples = round(clip_seconds * sample_rate)
    shards = prep.plan_shards(clips, name, clips_per_shard)
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
        name, listing.labels, shards, states, pre_skipped, sample_rate, clip_samples,
        len(listing.clips) + len(listing.skipped),
    )  # fmt: skip
    prep.write_manifest(output_dir, manifest)
    return manifest


def main(argv=None) -> int:
    from absl import flags

    from data_prep import cli
    from data_prep import flags as prep_flags
    from panns_keras.flagnames import rewrite

    prep_flags.define_flags()
    fv = flags.FLAGS
    argv = list(argv if argv is not None else sys.argv)
    rest = fv([argv[0], *rewrite("prepare", argv[1:])], known_only=True)
    manifest = prepare_beam(
        fv.out,
        pipeline_options=rest[1:] or None,
        **prep_flags.prepare_kwargs(fv),
    )
    path = os.path.join(fv.out, "manifest.json")
    return cli.exit_code(manifest, fv.max_fail_fraction, path, "data_prep.beam_pipeline")


if __name__ == "__main__":
    sys.exit(main())
