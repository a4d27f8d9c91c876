"""`python -m data_prep.beam_pipeline --out=... --class_dir=... [--runner=... Beam options]`

Prepare's flags run through Apache Beam (optional extra: apache-beam); the pipeline is
``panns_keras.data.prepare.beam``."""

import sys


def entry() -> None:
    from panns_keras.data.prepare import beam

    sys.exit(beam.main(sys.argv))


if __name__ == "__main__":
    entry()
