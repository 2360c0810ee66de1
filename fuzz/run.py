"""Run one target under atheris (libFuzzer): `python -m fuzz.run NAME [libFuzzer args]`,
e.g. `python -m fuzz.run imap var/fuzz/imap -max_total_time=60`. Mailwright's modules
are instrumented for coverage; a finding is saved as crash-<hash> in the working
directory (reproduce: `python -m fuzz.run NAME crash-<hash>`)."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["mailwright"]):
    from fuzz import targets


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        sys.exit(f"usage: python -m fuzz.run {{{','.join(targets.TARGETS)}}} [libFuzzer args]")
    target = targets.build(sys.argv[1])
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
