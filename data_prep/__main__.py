"""`python -m data_prep --out=... (--audioset_csv|--generic_csv|--class_dir)=..."""

from data_prep import cli

if __name__ == "__main__":
    cli.entry()
