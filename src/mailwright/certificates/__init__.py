"""Certificates from an ACME CA (RFC 8555), through the `acme` client library (certbot's).

- files.py: where the account key, the certificate and its key live in data_dir, and
  what the certificate says (status);
- challenges.py: HTTP-01 key authorizations, as files the `http` listener serves
  (public/acme.py), so that an issuance run by `mailwright cert renew` in another process
  is answered by the running server;
- issue.py: one issuance (account, order, HTTP-01, finalize), blocking;
- renewal.py: when a certificate is due (2/3 of its lifetime), and the housekeeping loop
  the primary worker runs: issue, write, emit events, have the server load it.
"""
