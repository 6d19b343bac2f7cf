#!/usr/bin/env bash
# Record what a real OpenSMTPD (Debian 12's opensmtpd, 6.8.0p2) answers to
# tests/recordings/dialogues.json.
#
#   sudo CONFIG=stock tests/recordings/record_opensmtpd.sh   # Debian-stock config, generated corpus (record_stock.sh)
#   sudo tests/recordings/record_opensmtpd.sh            # port 10028
#   sudo PORT=10128 OUT=/tmp/os.json tests/recordings/record_opensmtpd.sh
#
# Needs: root, Debian 12, python3, util-linux (unshare, mount).  opensmtpd
# conflicts with postfix, so it is NOT installed: the .deb is
# `apt-get download`ed and `dpkg -x`ed into a temp directory, only its
# libraries are installed.  smtpd insists on its compiled-in users
# "opensmtpd" and "opensmtpq", which are created if missing (the only change
# outside the temp directory), and on compiled-in paths (/var/spool/smtpd,
# /var/lib/opensmtpd/empty, /var/run/smtpd.sock): it runs in a private mount
# namespace where /var/spool, /var/lib and /run are empty tmpfs, so the
# machine's own directories are neither used nor touched.
# smtpd runs in the foreground (-d), listens on 127.0.0.1:$PORT only, starts
# with its delivery agents paused (-P mda -P mta), and its only action is an
# mda whose command is /bin/true, so nothing is ever delivered or relayed.
# It is stopped and the temp directory deleted on exit.
set -euo pipefail

PORT="${PORT:-10028}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# CONFIG=stock: the Debian-stock configuration instead (record_stock.sh opensmtpd).
if [[ ${CONFIG:-lab} == stock ]]; then exec "$HERE/record_stock.sh" opensmtpd; fi
. "$HERE/mta_common.sh"

need_root
[[ $PORT =~ ^[0-9]+$ ]] || die "PORT must be a number"
apt_install python3 util-linux mount adduser libdb5.3 libevent-2.1-7 libpam0g \
    libssl3 zlib1g libcrypt1
port_open "$PORT" && die "something already listens on 127.0.0.1:$PORT"

WORK="$(mktemp -d /tmp/labsmtp-opensmtpd.XXXXXX)"
chmod 0755 "$WORK"
pid=""
cleanup() {
    local rc=$?
    set +e
    stop_pid "$pid"
    if [[ $rc -ne 0 && -s $WORK/daemon.log ]]; then
        echo "---- smtpd output ----" >&2
        tail -n 40 "$WORK/daemon.log" >&2
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fetch_extract "$WORK" opensmtpd
SMTPD="$WORK/root/usr/sbin/smtpd"
DEBVER="$(deb_version "$WORK" opensmtpd)"
for u in opensmtpd opensmtpq; do
    getent passwd "$u" >/dev/null || \
        adduser --quiet --system --group --home /var/lib/opensmtpd/empty \
            --no-create-home "$u"
done

# The settings that shape what the server answers (recorded verbatim).
# OpenSMTPD has no HELO restrictions to configure: its defaults are used.
SETTINGS="$(cat <<EOF
table catchall { "@" = "nobody" }
smtp max-message-size 1048576
listen on 127.0.0.1 port $PORT hostname mx.lab.example.org
action "blackhole" mda "/bin/true" virtual <catchall>
match from src 127.0.0.1 for any action "blackhole"
match from any for domain "lab.example.org" action "blackhole"
EOF
)"
printf '%s\n' "$SETTINGS" >"$WORK/smtpd.conf"
chmod 0644 "$WORK/smtpd.conf"
"$SMTPD" -n -f "$WORK/smtpd.conf" >&2 || die "smtpd.conf does not parse"

VERSION="$({ "$SMTPD" -h 2>&1 || true; } | sed -n 's/^version: OpenSMTPD \([^ ]*\).*/\1/p' | head -n1)"
[[ -n $VERSION ]] || die "could not get the smtpd version"
SOFTWARE="OpenSMTPD $VERSION (Debian opensmtpd $DEBVER)"

# (unshare, sh and smtpd are one process: $! is smtpd's parent process)
unshare --mount --propagation private sh -c '
    set -e
    for d in /var/spool /var/lib /run; do mount -t tmpfs -o mode=0755 tmpfs "$d"; done
    mkdir -p /var/lib/opensmtpd/empty
    exec "$@"' sh \
    "$SMTPD" -d -f "$WORK/smtpd.conf" -P mda -P mta >"$WORK/daemon.log" 2>&1 &
pid=$!
wait_greets "$PORT" || die "smtpd did not answer on 127.0.0.1:$PORT"

OUTFILE="${OUT:-$HERE/opensmtpd-${VERSION%p*}.json}"
START=$SECONDS
python3 "$HERE/record.py" \
    --server "127.0.0.1:$PORT" \
    --software "$SOFTWARE" \
    --settings "smtpd.conf (smtpd -d -f smtpd.conf -P mda -P mta; defaults otherwise, OpenSMTPD has no HELO checks):
$SETTINGS" \
    --out "$OUTFILE"
echo "recording took $((SECONDS - START)) s" >&2
echo "fixture written to $OUTFILE ($SOFTWARE)"
