"""Diagnostics (`mailwright check DOMAIN | HOST[:PORT]`): probe any mail domain or
server — ours or anyone's — for configuration flaws, through the same resolver and mx/
code the server delivers with. Every probe yields findings (findings.py); no probe ever
sends DATA or delivers a message."""
