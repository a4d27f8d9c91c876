"""`python tests/check_versions.py tensorflow==2.16.2 keras==3.3.3 ...`: exits 1 unless every
named distribution is installed at exactly that version (run by `make test-lowest` after the
package was installed on top, to show pip kept the environment's TensorFlow)."""

import sys
from importlib.metadata import PackageNotFoundError, version


def main(pins: list[str]) -> int:
    bad = []
    for pin in pins:
        name, _, want = pin.partition("==")
        try:
            have = version(name)
        except PackageNotFoundError:
            have = "not installed"
        print(f"{name}: {have}" + ("" if have == want else f" (expected {want})"))
        if have != want:
            bad.append(name)
    if bad:
        print(f"check_versions: error: pip replaced {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
