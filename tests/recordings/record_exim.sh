#!/usr/bin/env bash
# Record what a real Exim (Debian 12's exim4-daemon-light, 4.96) answers to
# tests/recordings/dialogues.json.
#
#   sudo CONFIG=stock tests/recordings/record_exim.sh   # Debian-stock config, generated corpus (record_stock.sh)
#   sudo tests/recordings/record_exim.sh            # port 10026
#   sudo PORT=10126 OUT=/tmp/exim.json tests/recordings/record_exim.sh
#
# Needs: root, Debian 12, python3.  exim4-* conflicts with postfix, so it is
# NOT installed: the .debs are `apt-get download`ed and `dpkg -x`ed into a
# temp directory, only the libraries exim needs are installed.  Exim looks up
# its compiled-in user "Debian-exim" at start-up, so that system user is
# created if missing (the only change outside the temp directory).
# The daemon runs in the foreground (-bdf) with a private config (-C), listens
# on 127.0.0.1:$PORT only, queues everything (queue_only, no queue runner)
# and its only router is a :blackhole: redirect, so nothing is ever delivered
# or relayed.  It is stopped and the temp directory deleted on exit.
set -euo pipefail

PORT="${PORT:-10026}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# CONFIG=stock: the Debian-stock configuration instead (record_stock.sh exim).
if [[ ${CONFIG:-lab} == stock ]]; then exec "$HERE/record_stock.sh" exim; fi
. "$HERE/mta_common.sh"

need_root
[[ $PORT =~ ^[0-9]+$ ]] || die "PORT must be a number"
apt_install python3
port_open "$PORT" && die "something already listens on 127.0.0.1:$PORT"

WORK="$(mktemp -d /tmp/labsmtp-exim.XXXXXX)"
chmod 0755 "$WORK"
pid=""
cleanup() {
    local rc=$?
    set +e
    stop_pid "$pid"
    if [[ $rc -ne 0 && -d $WORK/log ]]; then
        echo "---- exim logs ----" >&2
        tail -n 40 "$WORK"/log/* >&2
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

exim_extract "$WORK"
EXIM="$WORK/root/usr/sbin/exim4"
DEBVER="$(deb_version "$WORK" exim4-daemon-light)"

mkdir -p "$WORK/spool" "$WORK/log"
chown Debian-exim:Debian-exim "$WORK/spool" "$WORK/log"

# The settings that shape what the server answers, recorded verbatim.
SETTINGS="$(cat <<'EOF'
primary_hostname = mx.lab.example.org
domainlist local_domains = lab.example.org
domainlist relay_to_domains =
hostlist relay_from_hosts = 127.0.0.1/32
message_size_limit = 1048576
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
queue_only = true
acl_smtp_helo = acl_check_helo
acl_smtp_mail = acl_check_mail
acl_smtp_rcpt = acl_check_rcpt
acl_smtp_data = acl_check_data

begin acl
acl_check_helo:
  # closest to Postfix reject_non_fqdn_helo_hostname (Exim itself already
  # refuses an empty or syntactically invalid HELO with 501)
  deny    message   = HELO/EHLO argument must be a fully-qualified domain name
          condition = ${if match{$sender_helo_name}{\N\.\N}{no}{yes}}
  accept

acl_check_mail:
  # closest to Postfix smtpd_helo_required (Debian's CHECK_MAIL_HELO_ISSUED);
  # never reached in 4.96, whose default hosts_require_helo = * answers
  # "503 HELO or EHLO required" first
  deny    message   = no HELO given before MAIL command
          condition = ${if def:sender_helo_name {no}{yes}}
  accept

acl_check_rcpt:
  accept  hosts = :
  deny    message     = restricted characters in address
          domains     = +local_domains
          local_parts = ^[.] : ^.*[@%!/|]
  deny    message     = restricted characters in address
          domains     = !+local_domains
          local_parts = ^[./|] : ^.*[@%!] : ^.*/\\.\\./
  accept  local_parts = postmaster
          domains     = +local_domains
  accept  hosts = +relay_from_hosts
  require message = relay not permitted
          domains = +local_domains : +relay_to_domains
  require verify = recipient
  accept

acl_check_data:
  accept

begin routers
discard_everything:
  driver = redirect
  data = :blackhole:

begin transports
EOF
)"

# Plumbing (not behaviour): where this throw-away instance lives.
cat >"$WORK/exim.conf" <<EOF
# Throw-away instance made by tests/recordings/record_exim.sh
local_interfaces = <; 127.0.0.1.$PORT
daemon_smtp_ports = $PORT
spool_directory = $WORK/spool
log_file_path = $WORK/log/%slog
pid_file_path = $WORK/exim.pid
exim_path = $WORK/root/usr/sbin/exim4
keep_environment =
$SETTINGS
EOF
chmod 0644 "$WORK/exim.conf"

"$EXIM" -C "$WORK/exim.conf" -bV >"$WORK/bV.txt" 2>&1 || { cat "$WORK/bV.txt" >&2; die "exim -bV failed"; }
VERSION="$(sed -n 's/^Exim version \([^ ]*\).*/\1/p' "$WORK/bV.txt" | head -n1)"
SOFTWARE="Exim $VERSION (Debian exim4-daemon-light $DEBVER)"

"$EXIM" -C "$WORK/exim.conf" -bdf &
pid=$!
wait_greets "$PORT" || die "exim did not answer on 127.0.0.1:$PORT"

START=$SECONDS
python3 "$HERE/record.py" \
    --server "127.0.0.1:$PORT" \
    --software "$SOFTWARE" \
    --settings "exim.conf (-C), plus local_interfaces = 127.0.0.1.$PORT and a private spool:
$SETTINGS" \
    --out "${OUT:-$HERE/exim-$VERSION.json}"
echo "recording took $((SECONDS - START)) s" >&2
echo "fixture written to ${OUT:-$HERE/exim-$VERSION.json} ($SOFTWARE)"
