#!/usr/bin/env bash
# Debian packages the end-to-end tests and benchmarks drive: real SMTP clients
# (swaks, curl, msmtp) and Postfix's smtp-source load generator. Installed only
# when missing, so a warm machine pays nothing.
set -euo pipefail
need=()
command -v swaks >/dev/null || need+=(swaks)
command -v curl >/dev/null || need+=(curl)
command -v msmtp >/dev/null || need+=(msmtp)
[ -x /usr/sbin/smtp-source ] || need+=(postfix)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing test packages: ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Postfix must not start a system MTA as a side effect of being installed.
policy_added=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  policy_added=1
fi
trap 'if [ -n "$policy_added" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi' EXIT
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
