#!/usr/bin/env bash
# What the end-to-end tests and the benchmarks drive, checked by what each tool can do, not
# by whether its command exists: swaks without Net::SSLeay is installed and still cannot
# speak TLS. Each check names the Debian packages that supply the capability; only those
# for missing capabilities are installed (with --no-install-recommends, so every package a
# capability needs is listed here), then everything is checked again.
#
#   scripts/install-test-deps.sh                 check; install what is missing; check again
#   scripts/install-test-deps.sh --bench         the same, with the benchmarks' peers
#   scripts/install-test-deps.sh --check [--bench]
#                                                report only, exit 1 when something is
#                                                missing (tests/conftest.py runs this)
#
# VENV_PYTHON: the virtualenv's interpreter, for Python packages (default .venv/bin/python).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV_PYTHON=${VENV_PYTHON:-$ROOT/.venv/bin/python}
check_only=""
bench=""
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    --bench) bench=1 ;;
    *) echo "usage: $0 [--check] [--bench]" >&2; exit 2 ;;
  esac
done

# --- capability probes: each succeeds only when the capability is there --------------------

# swaks --support prints "=== TLS supported" or "*** TLS not available: requires Net::SSLeay"
# (asked once per check: Perl starts slowly).
swaks_support=""
swaks_supports() {
  command -v swaks >/dev/null || return 1
  [ -n "$swaks_support" ] || swaks_support=$(swaks --support 2>&1) || true
  grep -qxF "=== $1 supported" <<<"$swaks_support"
}

# curl -V: "Protocols: ... imap imaps ..." and "Features: ... SSL ...".
curl_speaks() {
  local out protocols features p
  command -v curl >/dev/null || return 1
  out=$(curl -V 2>/dev/null) || return 1
  protocols=" $(sed -n 's/^Protocols: //p' <<<"$out") "
  features=" $(sed -n 's/^Features: //p' <<<"$out") "
  [[ $features == *" SSL "* ]] || return 1
  for p in "$@"; do
    [[ $protocols == *" $p "* ]] || return 1
  done
}

# msmtp/mpop --version: "TLS/SSL library: GnuTLS" ("none" without TLS) and the SASL list.
msmtp_like_has() {
  local tool=$1 out method
  shift
  command -v "$tool" >/dev/null || return 1
  out=$("$tool" --version 2>/dev/null) || return 1
  grep -Eq '^TLS/SSL library: (GnuTLS|OpenSSL|libtls)' <<<"$out" || return 1
  for method in "$@"; do
    grep -A1 '^Supported authentication methods:' <<<"$out" | grep -qw -- "$method" || return 1
  done
}

# fetchmail -V: "This is fetchmail release 6.4.37+GSS+NTLM+SDPS+SSL-SSLv2...".
fetchmail_has_ssl() {
  local home out
  command -v fetchmail >/dev/null || return 1
  home=$(mktemp -d)
  out=$(HOME=$home fetchmail -V </dev/null 2>&1) || true
  rm -rf "$home"
  grep -q '^This is fetchmail release .*+SSL' <<<"$out"
}

# isync links OpenSSL when built with TLS; without it SSLType is refused at run time.
mbsync_has_tls() {
  local out
  command -v mbsync >/dev/null || return 1
  out=$(ldd "$(command -v mbsync)" 2>/dev/null) || return 1
  grep -q 'libssl' <<<"$out"
}

opendkim_signs() {
  local out
  out=$(/usr/sbin/opendkim -V 2>&1) || return 1
  grep -qw 'rsa-sha256' <<<"$out" && grep -qw 'ed25519-sha256' <<<"$out"
}

unbound_validates() {
  local out
  command -v unbound >/dev/null || return 1
  out=$(unbound -V 2>&1) || return 1
  grep -q '^Linked modules:.*validator' <<<"$out"
}

# Horde_Mail_Autoconfig, with the Net_DNS2 resolver its SRV lookups use (PEAR paths).
horde_autoconfig_loads() {
  command -v php >/dev/null || return 1
  php -r 'exit(stream_resolve_include_path("Horde/Mail/Autoconfig/Driver/Thunderbird.php")
               && stream_resolve_include_path("Net/DNS2/Resolver.php") ? 0 : 1);' 2>/dev/null
}

runs() { "$@" >/dev/null 2>&1; }

# initdb and the pg_trgm extension (substring SEARCH) of some installed server version.
pg_server_has_trgm() {
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null \
    && compgen -G "/usr/share/postgresql/*/extension/pg_trgm.control" >/dev/null
}

python_imports() { [ -x "$VENV_PYTHON" ] && "$VENV_PYTHON" -c "import $1" 2>/dev/null; }

# --- the list ---------------------------------------------------------------------------------
missing=()      # "tool: capability (packages)" lines
apt_need=()
pip_need=()

# need TOOL CAPABILITY "DEBIAN PACKAGES" PROBE...
need() {
  local tool=$1 capability=$2 packages=$3 pkgs
  shift 3
  if ! "$@"; then
    missing+=("$tool: $capability -- Debian packages: $packages")
    read -ra pkgs <<<"$packages"
    apt_need+=("${pkgs[@]}")
  fi
}

# need_pip TOOL CAPABILITY "PIP REQUIREMENT" MODULE
need_pip() {
  if ! python_imports "$4"; then
    missing+=("$1: $2 -- pip package in $VENV_PYTHON: $3")
    pip_need+=("$3")
  fi
}

# swaks's TLS is Net::SSLeay; IO::Socket::SSL, Authen::SASL and Digest::HMAC are what
# Debian's swaks recommends/suggests for TLS and the SASL mechanisms.
SWAKS_PACKAGES="swaks libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl libdigest-hmac-perl"

check_all() {
  missing=()
  apt_need=()
  pip_need=()
  swaks_support=""
  need swaks "STARTTLS and implicit TLS (Perl Net::SSLeay)" "$SWAKS_PACKAGES" \
    swaks_supports TLS
  need swaks "AUTH PLAIN and LOGIN" "$SWAKS_PACKAGES" swaks_supports "Basic AUTH"
  need curl "smtp(s), imap(s) and pop3(s) over TLS" "curl" \
    curl_speaks smtp smtps imap imaps pop3 pop3s
  need msmtp "TLS and AUTH PLAIN, LOGIN, SCRAM-SHA-256" "msmtp" \
    msmtp_like_has msmtp plain login scram-sha-256
  need mpop "TLS and AUTH SCRAM-SHA-256" "mpop" msmtp_like_has mpop scram-sha-256
  need fetchmail "POP3 over TLS" "fetchmail" fetchmail_has_ssl
  need mbsync "IMAP over TLS" "isync" mbsync_has_tls
  need smtp-source "SMTP load generator" "postfix" runs test -x /usr/sbin/smtp-source
  need postfix "a throwaway Postfix (tests/postfix.py: the smuggling check)" "postfix" \
    runs test -x /usr/sbin/postfix
  need script "a terminal for Postfix's commands (tests/postfix.py)" "bsdutils" \
    runs script -V
  need opendkim "DKIM test mode with RSA and Ed25519" "opendkim" opendkim_signs
  need unbound "DNSSEC-validating resolver (DANE tests)" "unbound" unbound_validates
  need pgrep "find worker processes" "procps" runs pgrep -V
  # Playwright drives Debian's build (executable_path), never a browser it downloads.
  need chromium "headless browser for the web admin tests (Playwright)" "chromium" \
    runs /usr/bin/chromium --headless --no-sandbox --version
  need_pip playwright "drives chromium in the web admin tests" "playwright>=1.45" \
    playwright.sync_api
  need php "Horde_Mail_Autoconfig: a client of autoconfig and RFC 6186 SRV records" \
    "php-cli php-horde-mail-autoconfig" horde_autoconfig_loads
  need pebble "ACME test CA (tests/e2e/test_acme.py)" "pebble" runs test -x /usr/bin/pebble
  # The cluster is the tests' own (tests/pg.py: initdb + pg_ctl in a temporary directory);
  # the package's system service is not used.
  need postgresql "a PostgreSQL server for the store's second backend (tests/pg.py)" \
    "postgresql postgresql-contrib" pg_server_has_trgm
  need systemd-analyze "verify the unit file (contrib/systemd)" "systemd" \
    runs systemd-analyze --version
  if [ -n "$bench" ]; then
    need smtp-sink "SMTP sink (bench/relay.py)" "postfix" runs test -x /usr/sbin/smtp-sink
    need dovecot "IMAP server (bench/imap.py)" "dovecot-imapd" \
      runs test -x /usr/sbin/dovecot -a -x /usr/lib/dovecot/imap
    need dovecot "POP3 server (bench/pop3_download.py)" "dovecot-pop3d" \
      runs test -x /usr/sbin/dovecot -a -x /usr/lib/dovecot/pop3
    need_pip aiosmtpd "the fsyncing peer in bench/smtp_accept.py" "aiosmtpd>=1.4.4" aiosmtpd
    need wrk "HTTP load client (bench/tracking.py)" "wrk" runs test -x /usr/bin/wrk
  fi
}

report() {
  local line
  for line in "${missing[@]}"; do
    echo "missing: $line"
  done
}

check_all
if [ -n "$check_only" ]; then
  report
  exit $(( ${#missing[@]} > 0 ))
fi
[ ${#missing[@]} -eq 0 ] && exit 0
report

if [ ${#apt_need[@]} -gt 0 ]; then
  mapfile -t apt_need < <(printf '%s\n' "${apt_need[@]}" | sort -u)
  echo "installing Debian packages: ${apt_need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # Postfix, Dovecot, unbound and OpenDKIM must not start system daemons as a side effect
  # of being installed.
  policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    policy_added=1
  fi
  trap 'if [ -n "$policy_added" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi' EXIT
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${apt_need[@]}" >/dev/null
fi
if [ ${#pip_need[@]} -gt 0 ]; then
  if [ ! -x "$VENV_PYTHON" ]; then
    echo "no virtualenv at $VENV_PYTHON for ${pip_need[*]}: run make first" >&2
    exit 1
  fi
  echo "installing Python packages: ${pip_need[*]}"
  "$VENV_PYTHON" -m pip install -q "${pip_need[@]}"
fi

check_all
if [ ${#missing[@]} -gt 0 ]; then
  echo "still missing after installing:" >&2
  report >&2
  exit 1
fi
echo "test tools ready"
