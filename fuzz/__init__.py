"""Coverage-guided fuzzing (atheris, libFuzzer) of what parses untrusted input: the SMTP,
IMAP and POP3 sessions (command parsers), the DATA/BDAT and IMAP literal framers and
the MIME structure builder. `make fuzz` runs every target for FUZZ_SECONDS each.

    python -m fuzz.run smtp var/fuzz/smtp -max_total_time=60

targets.py: the targets (bytes in; an exception or a failed check is a finding);
seeds.py: the seed corpus, taken from the unit tests; run.py: atheris around them.
A finding becomes a regression test in tests/unit and is fixed there.
"""
