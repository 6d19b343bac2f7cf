#!/usr/bin/env bash
# Record what a real Postfix answers to tests/recordings/dialogues.json.
#
#   sudo CONFIG=stock tests/recordings/record_postfix.sh   # Debian-stock config, generated corpus (record_stock.sh)
#   sudo tests/recordings/record_postfix.sh            # port 10025
#   sudo PORT=10125 OUT=/tmp/pf.json tests/recordings/record_postfix.sh
#   sudo MAILLOG=/tmp/pf.log tests/recordings/record_postfix.sh  # keep Postfix's log
#
# Needs: root, Debian 12 with the `postfix` package installed (any debconf
# choice, "No configuration" is fine), python3.  /etc/postfix is neither read
# for settings nor modified: a throw-away Postfix instance is built in a temp
# directory (own config_directory, queue_directory and data_directory),
# listens on 127.0.0.1:$PORT only, cannot deliver or relay anything (every
# transport is `discard`), and is stopped and deleted on exit.
set -euo pipefail

PORT="${PORT:-10025}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# CONFIG=stock: the Debian-stock configuration instead (record_stock.sh postfix).
if [[ ${CONFIG:-lab} == stock ]]; then exec "$HERE/record_stock.sh" postfix; fi
OUT="${OUT:-$HERE/postfix-3.7.json}"
POSTFIX=/usr/sbin/postfix
POSTCONF=/usr/sbin/postconf

. "$HERE/mta_common.sh"  # die, port_open, port_greets

[[ $EUID -eq 0 ]] || die "must run as root (Postfix's master runs as root)"
[[ -x $POSTFIX && -x $POSTCONF ]] || die "postfix is not installed (apt-get install postfix)"
command -v python3 >/dev/null || die "python3 is needed"
getent passwd postfix >/dev/null || die "no 'postfix' user (is the postfix package installed?)"
getent group postdrop >/dev/null || die "no 'postdrop' group (is the postfix package installed?)"
[[ $PORT =~ ^[0-9]+$ ]] || die "PORT must be a number"

port_open "$PORT" && die "something already listens on 127.0.0.1:$PORT (a leftover run? choose another PORT=)"

WORK="$(mktemp -d /tmp/labsmtp-postfix.XXXXXX)"
chmod 0755 "$WORK"             # the postfix user must be able to traverse it
CONF="$WORK/etc"               # config_directory
QUEUE="$WORK/spool"            # queue_directory (root-owned, postfix fixes the rest)
DATA="$WORK/lib"               # data_directory (owned by postfix)
LOG="$WORK/maillog"            # maillog_file, written by postlogd
mkdir -p "$CONF" "$QUEUE" "$DATA"
chown root:root "$CONF" "$QUEUE"
chown postfix:postfix "$DATA"
chmod 0755 "$CONF" "$QUEUE" "$DATA"

started=0
cleanup() {
    local rc=$?
    set +e
    if [[ $started -eq 1 ]]; then
        "$POSTFIX" -c "$CONF" stop >/dev/null 2>&1
        # Wait for the master (and its children) to be gone before deleting.
        local pidfile="$QUEUE/pid/master.pid" pid=""
        [[ -r $pidfile ]] && pid="$(tr -dc 0-9 <"$pidfile")"
        for _ in $(seq 1 50); do
            [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            "$POSTFIX" -c "$CONF" abort >/dev/null 2>&1
            sleep 1
        fi
    fi
    if [[ -n ${MAILLOG:-} && -e $LOG ]]; then
        cp "$LOG" "$MAILLOG" && echo "Postfix log copied to $MAILLOG" >&2
    fi
    if [[ $rc -ne 0 && -s $LOG ]]; then
        echo "---- last lines of the Postfix log ($LOG) ----" >&2
        tail -n 40 "$LOG" >&2
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The settings that shape what the server answers.  They are written to
# main.cf verbatim and recorded verbatim in the fixture's "settings" field.
SETTINGS="$(grep -v '^#' "$HERE/postfix-lab.cf")"

# Plumbing: where this throw-away instance lives (not behaviour; not recorded).
cat >"$CONF/main.cf" <<EOF
# Throw-away instance made by tests/recordings/record_postfix.sh
config_directory = $CONF
queue_directory = $QUEUE
data_directory = $DATA
maillog_file = $LOG
maillog_file_prefixes = $WORK
smtpd_peername_lookup = no
EOF
# (smtpd_peername_lookup = no: no reverse DNS for 127.0.0.x -- only the
# Received: header would differ, and it keeps the run offline and fast.)
printf '%s\n' "$SETTINGS" >>"$CONF/main.cf"

# master.cf: the stock Postfix services, minus the public port 25 listener,
# TLS manager and the optional pipe(8) examples, plus an smtpd on loopback.
# No chroot: the private queue directory has no /etc, /lib, ... copies.
MASTER_DIST=/usr/share/postfix/master.cf.dist
[[ -r $MASTER_DIST ]] || MASTER_DIST=/etc/postfix/master.cf.proto
[[ -r $MASTER_DIST ]] || die "no master.cf.dist / master.cf.proto to copy"
cp "$MASTER_DIST" "$CONF/master.cf"
for svc in smtp/inet submission/inet submissions/inet smtps/inet tlsmgr/unix \
           maildrop/unix uucp/unix ifmail/unix bsmtp/unix \
           scalemail-backend/unix mailman/unix; do
    if "$POSTCONF" -c "$CONF" -M "$svc" 2>/dev/null | grep -q .; then
        "$POSTCONF" -c "$CONF" -MX "$svc"
    fi
done
"$POSTCONF" -c "$CONF" -Me "127.0.0.1:$PORT/inet = 127.0.0.1:$PORT inet n - n - - smtpd"
"$POSTCONF" -c "$CONF" -Fe '*/*/chroot = n'
for svc in discard/unix cleanup/unix qmgr/unix rewrite/unix bounce/unix postlog/unix-dgram; do
    "$POSTCONF" -c "$CONF" -M "$svc" | grep -q . || die "master.cf lacks $svc"
done

# Belt and braces: nothing may leave this machine.
for p in default_transport relay_transport local_transport virtual_transport; do
    [[ "$("$POSTCONF" -c "$CONF" -h "$p")" == discard ]] || die "$p is not discard"
done
if "$POSTCONF" -c "$CONF" -M | awk '$2 == "inet"' | grep -v "^127\.0\.0\.1:$PORT " | grep -q .; then
    die "unexpected inet listener in master.cf"
fi

# `postfix check` runs `post-install create-missing`, which creates the queue
# subdirectories with the ownership Postfix insists on (postfix:root 0700,
# public/ and maildrop/ group postdrop) and then checks them.
"$POSTFIX" -c "$CONF" check

VERSION="$("$POSTCONF" -c "$CONF" -dh mail_version)"
SOFTWARE="Postfix $VERSION (Debian)"

"$POSTFIX" -c "$CONF" start
started=1

for _ in $(seq 1 100); do
    port_greets "$PORT" && break
    sleep 0.2
done
port_greets "$PORT" || die "Postfix did not answer on 127.0.0.1:$PORT"

MASTER_LINE="$("$POSTCONF" -c "$CONF" -M "127.0.0.1:$PORT/inet")"
START=$SECONDS
python3 "$HERE/record.py" \
    --server "127.0.0.1:$PORT" \
    --software "$SOFTWARE" \
    --settings "main.cf:
$SETTINGS
master.cf:
$MASTER_LINE" \
    --out "$OUT"
echo "recording took $((SECONDS - START)) s" >&2

# Let the queue manager hand the accepted test messages to discard(8), so
# that the log (MAILLOG=...) shows where they went; then stop.
for _ in $(seq 1 25); do
    [[ -z "$(find "$QUEUE/incoming" "$QUEUE/active" "$QUEUE/maildrop" -type f 2>/dev/null)" ]] && break
    sleep 0.2
done
if grep -E 'status=' "$LOG" 2>/dev/null | grep -vq 'relay=none,.*status=sent'; then
    echo "record_postfix: WARNING: a message was not simply discarded:" >&2
    grep -E 'status=' "$LOG" | grep -v 'relay=none,.*status=sent' >&2
fi
echo "fixture written to $OUT ($SOFTWARE)"
