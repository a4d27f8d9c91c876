"""`python -m data_prep --out=... (--audioset_csv|--generic_csv|--class_dir)=...`

The same program as `panns-keras prepare` (same flags, messages and exit codes): a launcher
on the CLI's floor; the preparation code is ``panns_keras.data.prepare``.
"""

import sys


def entry() -> None:
    from panns_keras.cli import main

    sys.exit(main(["panns-keras", "prepare", *sys.argv[1:]]))


if __name__ == "__main__":
    entry()
