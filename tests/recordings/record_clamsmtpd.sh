#!/usr/bin/env bash
# Record what a real clamsmtpd (Debian 12's clamsmtp, 1.10) answers to
# tests/recordings/dialogues.json.
#
#   sudo CONFIG=stock tests/recordings/record_clamsmtpd.sh   # Debian-stock config, generated corpus (record_stock.sh)
#   sudo tests/recordings/record_clamsmtpd.sh      # clamsmtpd on port 10029
#   sudo PORT=10129 BACKEND_PORT=10130 OUT=/tmp/c.json tests/recordings/record_clamsmtpd.sh
#   (XCLIENT=on: see below; DIALOGUES=file: replay other dialogues)
#
# clamsmtpd is an SMTP *proxy*: it speaks to the client and passes the
# session on to a backend SMTP server (OutAddress), scanning each message
# with clamd before passing on its DATA.  So three throw-away daemons run:
#
#   client --> clamsmtpd 127.0.0.1:$PORT --> Postfix 127.0.0.1:$BACKEND_PORT
#                  |
#                  +--> clamd on a unix socket in the temp directory
#
# - The backend is a private Postfix instance with the lab's Postfix settings
#   (as in record_postfix.sh; plus smtpd_authorized_xclient_hosts for the
#   XCLIENT=on experiment, see below).  Every Postfix transport is `discard`.
# - clamd (Debian's clamav-daemon) cannot download the ClamAV signature
#   databases here (offline), so it loads a one-signature database written
#   below (the EICAR test string, as "Lab.Test.EICAR"); clean mail scans
#   clean exactly as with the full databases.
#
# Needs: root, Debian 12 with the `postfix` package installed, python3.
# clamsmtp and clamav-daemon are NOT installed (clamsmtp would pull in
# clamav-daemon/clamav-freshclam services): their .debs are
# `apt-get download`ed and `dpkg -x`ed into a temp directory; only
# libraries (libclamav12, ...) are installed.  Everything is stopped and the
# temp directory deleted on exit.  Nothing is ever delivered or relayed.
set -euo pipefail

PORT="${PORT:-10029}"
BACKEND_PORT="${BACKEND_PORT:-10030}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# CONFIG=stock: the Debian-stock configuration instead (record_stock.sh clamsmtpd).
if [[ ${CONFIG:-lab} == stock ]]; then exec "$HERE/record_stock.sh" clamsmtpd; fi
. "$HERE/mta_common.sh"

POSTFIX=/usr/sbin/postfix
POSTCONF=/usr/sbin/postconf

need_root
[[ $PORT =~ ^[0-9]+$ && $BACKEND_PORT =~ ^[0-9]+$ ]] || die "ports must be numbers"
[[ -x $POSTFIX && -x $POSTCONF ]] || die "postfix is not installed (apt-get install postfix)"
getent passwd postfix >/dev/null || die "no 'postfix' user (is the postfix package installed?)"
apt_install python3 libclamav12 libcurl4 libncurses6 libsystemd0 libtinfo6 zlib1g
port_open "$PORT" && die "something already listens on 127.0.0.1:$PORT"
port_open "$BACKEND_PORT" && die "something already listens on 127.0.0.1:$BACKEND_PORT"

WORK="$(mktemp -d /tmp/labsmtp-clamsmtpd.XXXXXX)"
chmod 0755 "$WORK"
clamd_pid="" clamsmtpd_pid="" postfix_started=0
cleanup() {
    local rc=$?
    set +e
    stop_pid "$clamsmtpd_pid"
    stop_pid "$clamd_pid"
    if [[ $postfix_started -eq 1 ]]; then
        "$POSTFIX" -c "$WORK/pf/etc" stop >/dev/null 2>&1
        local pidfile="$WORK/pf/spool/pid/master.pid" p=""
        [[ -r $pidfile ]] && p="$(tr -dc 0-9 <"$pidfile")"
        for _ in $(seq 1 50); do
            [[ -n $p ]] && kill -0 "$p" 2>/dev/null || break
            sleep 0.2
        done
        [[ -n $p ]] && kill -0 "$p" 2>/dev/null && "$POSTFIX" -c "$WORK/pf/etc" abort >/dev/null 2>&1
    fi
    if [[ $rc -ne 0 ]]; then
        for f in "$WORK/clamsmtpd.log" "$WORK/clamd.log" "$WORK/pf/maillog"; do
            [[ -s $f ]] && { echo "---- $f ----" >&2; tail -n 30 "$f" >&2; }
        done
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fetch_extract "$WORK" clamsmtp clamav-daemon
CLAMSMTPD="$WORK/root/usr/sbin/clamsmtpd"
CLAMD="$WORK/root/usr/sbin/clamd"
DEBVER="$(deb_version "$WORK" clamsmtp)"
CLAMAV_DEBVER="$(deb_version "$WORK" clamav-daemon)"

# ---------------------------------------------------------------- clamd
mkdir -p "$WORK/clamdb" "$WORK/tmp"
python3 - "$WORK/clamdb/lab.ndb" <<'EOF'
import sys
eicar = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
open(sys.argv[1], "w").write("Lab.Test.EICAR:0:*:" + eicar.hex() + "\n")
EOF
cat >"$WORK/clamd.conf" <<EOF
LocalSocket $WORK/clamd.ctl
DatabaseDirectory $WORK/clamdb
TemporaryDirectory $WORK/tmp
Foreground yes
LogFile $WORK/clamd.log
LogTime yes
EOF
"$CLAMD" -c "$WORK/clamd.conf" >/dev/null 2>&1 &
clamd_pid=$!
for _ in $(seq 1 100); do [[ -S $WORK/clamd.ctl ]] && break; sleep 0.2; done
[[ -S $WORK/clamd.ctl ]] || die "clamd did not start"
CLAMD_VERSION="$(sed -n 's/.*clamd daemon \([0-9.]*\).*/\1/p' "$WORK/clamd.log" | head -n1)"

# ------------------------------------------------------- Postfix backend
PF="$WORK/pf"
mkdir -p "$PF/etc" "$PF/spool" "$PF/lib"
chown root:root "$PF/etc" "$PF/spool"
chown postfix:postfix "$PF/lib"
chmod 0755 "$PF" "$PF/etc" "$PF/spool" "$PF/lib"
# The recorded Postfix's own settings, plus trust for clamsmtpd's XCLIENT (left off).
BACKEND_SETTINGS="$(grep -v '^#' "$HERE/postfix-lab.cf")
smtpd_authorized_xclient_hosts = 127.0.0.1"
cat >"$PF/etc/main.cf" <<EOF
# Throw-away backend made by tests/recordings/record_clamsmtpd.sh
config_directory = $PF/etc
queue_directory = $PF/spool
data_directory = $PF/lib
maillog_file = $PF/maillog
maillog_file_prefixes = $WORK
smtpd_peername_lookup = no
EOF
printf '%s\n' "$BACKEND_SETTINGS" >>"$PF/etc/main.cf"
MASTER_DIST=/usr/share/postfix/master.cf.dist
[[ -r $MASTER_DIST ]] || MASTER_DIST=/etc/postfix/master.cf.proto
[[ -r $MASTER_DIST ]] || die "no master.cf.dist / master.cf.proto to copy"
cp "$MASTER_DIST" "$PF/etc/master.cf"
for svc in smtp/inet submission/inet submissions/inet smtps/inet tlsmgr/unix \
           maildrop/unix uucp/unix ifmail/unix bsmtp/unix \
           scalemail-backend/unix mailman/unix; do
    if "$POSTCONF" -c "$PF/etc" -M "$svc" 2>/dev/null | grep -q .; then
        "$POSTCONF" -c "$PF/etc" -MX "$svc"
    fi
done
"$POSTCONF" -c "$PF/etc" -Me "127.0.0.1:$BACKEND_PORT/inet = 127.0.0.1:$BACKEND_PORT inet n - n - - smtpd"
"$POSTCONF" -c "$PF/etc" -Fe '*/*/chroot = n'
for p in default_transport relay_transport local_transport virtual_transport; do
    [[ "$("$POSTCONF" -c "$PF/etc" -h "$p")" == discard ]] || die "$p is not discard"
done
if "$POSTCONF" -c "$PF/etc" -M | awk '$2 == "inet"' | grep -v "^127\.0\.0\.1:$BACKEND_PORT " | grep -q .; then
    die "unexpected inet listener in the backend's master.cf"
fi
"$POSTFIX" -c "$PF/etc" check
POSTFIX_VERSION="$("$POSTCONF" -c "$PF/etc" -dh mail_version)"
"$POSTFIX" -c "$PF/etc" start
postfix_started=1
wait_greets "$BACKEND_PORT" || die "the Postfix backend did not answer on 127.0.0.1:$BACKEND_PORT"

# ------------------------------------------------------------ clamsmtpd
# The settings that shape what clamsmtpd does (recorded verbatim).  Debian's
# /etc/clamsmtpd.conf has OutAddress/Listen/ClamAddress/TempDirectory/
# PidFile/User; everything else here is clamsmtpd's default made explicit.
# XClient stays off (the default) unless XCLIENT=on: clamsmtpd 1.10 sends
# "XCLIENT ADDR=..." right after the client's HELO/EHLO, Postfix then resets
# the session (a new 220, HELO/EHLO needed again) and clamsmtpd does not
# re-send the HELO, so every MAIL afterwards gets "503 5.5.1 Error: send
# HELO/EHLO first".  With XClient off the backend sees every client as
# 127.0.0.1 (clamsmtpd's own address), which is in its mynetworks: the
# relay check for 127.0.0.2 cannot work through the proxy.
SETTINGS="$(cat <<EOF
OutAddress: 127.0.0.1:$BACKEND_PORT
Listen: 127.0.0.1:$PORT
Action: drop
Header: X-Virus-Scanned: ClamAV using ClamSMTP
MaxConnections: 64
TimeOut: 180
KeepAlives: 0
XClient: ${XCLIENT:-off}
EOF
)"
{
    printf '%s\n' "$SETTINGS"
    echo "ClamAddress: $WORK/clamd.ctl"
    echo "TempDirectory: $WORK/tmp"
} >"$WORK/clamsmtpd.conf"

# -d 3: stay in the foreground, log to stderr (info level)
"$CLAMSMTPD" -f "$WORK/clamsmtpd.conf" -d 3 >"$WORK/clamsmtpd.log" 2>&1 &
clamsmtpd_pid=$!
wait_greets "$PORT" || die "clamsmtpd did not answer on 127.0.0.1:$PORT"

CLAMSMTP_VERSION="${DEBVER%%-*}"
SOFTWARE="clamsmtpd $CLAMSMTP_VERSION (Debian clamsmtp $DEBVER) in front of Postfix $POSTFIX_VERSION, with clamd $CLAMD_VERSION (Debian clamav-daemon $CLAMAV_DEBVER)"
OUTFILE="${OUT:-$HERE/clamsmtpd-$CLAMSMTP_VERSION.json}"
START=$SECONDS
python3 "$HERE/record.py" --dialogues "${DIALOGUES:-$HERE/dialogues.json}" \
    --server "127.0.0.1:$PORT" \
    --software "$SOFTWARE" \
    --settings "clamsmtpd.conf (clamsmtpd -f clamsmtpd.conf -d 3), plus ClamAddress: <clamd unix socket> and TempDirectory: <temp dir>:
$SETTINGS
note: clamsmtpd answers the greeting, a successful HELO/EHLO and DATA (354) itself; everything else is the backend's reply. With XClient off the backend sees every client as 127.0.0.1 (clamsmtpd's own address, in its mynetworks), so mail from 127.0.0.2 may relay.
clamd: Debian clamav-daemon's clamd with a private clamd.conf (LocalSocket, Foreground) and a one-signature database (EICAR test string as Lab.Test.EICAR), because the ClamAV databases cannot be downloaded offline.
backend: Postfix $POSTFIX_VERSION on 127.0.0.1:$BACKEND_PORT (smtpd, no chroot), main.cf:
$BACKEND_SETTINGS" \
    --out "$OUTFILE"
echo "recording took $((SECONDS - START)) s" >&2
echo "fixture written to $OUTFILE ($SOFTWARE)"
