"""Campaign mail (issue 17): which submitted messages are tracked (optin.py), the signed
tokens in their links (keys.py, tokens.py), the HTML rewrite (rewrite.py), the
List-Unsubscribe fields (unsubscribe.py) and how a pixel load or click is classified
(machine.py). The pipeline stage is delivery/stages/tracking.py; the endpoints that
recipients reach are public/tracking.py."""
