#!/usr/bin/env bash
# Debian packages the end-to-end tests and benchmarks drive: real SMTP, POP3 and IMAP
# clients (swaks, curl, msmtp, fetchmail, mpop, mbsync from isync), OpenDKIM, Postfix's
# smtp-source load generator, and with --bench the peers we measure against (Dovecot's
# POP3 and IMAP).
# Installed only when missing, so a warm machine pays nothing.
set -euo pipefail
need=()
command -v swaks >/dev/null || need+=(swaks)
command -v curl >/dev/null || need+=(curl)
command -v msmtp >/dev/null || need+=(msmtp)
command -v fetchmail >/dev/null || need+=(fetchmail)
command -v mpop >/dev/null || need+=(mpop)
command -v mbsync >/dev/null || need+=(isync)
command -v unbound >/dev/null || need+=(unbound)      # validating resolver for DANE tests
[ -x /usr/sbin/opendkim ] || need+=(opendkim)          # DKIM interop, both directions
[ -x /usr/sbin/smtp-source ] || need+=(postfix)
if [ "${1:-}" = "--bench" ]; then
  [ -x /usr/lib/dovecot/pop3 ] || need+=(dovecot-pop3d)
  [ -x /usr/lib/dovecot/imap ] || need+=(dovecot-imapd)
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing test packages: ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Postfix, Dovecot, unbound and OpenDKIM must not start system daemons as a side effect of
# being installed.
policy_added=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  policy_added=1
fi
trap 'if [ -n "$policy_added" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi' EXIT
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
