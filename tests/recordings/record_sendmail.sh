#!/usr/bin/env bash
# Record what a real Sendmail (Debian 12's sendmail-bin, 8.17) answers to
# tests/recordings/dialogues.json.
#
#   sudo CONFIG=stock tests/recordings/record_sendmail.sh   # Debian-stock config, generated corpus (record_stock.sh)
#   sudo tests/recordings/record_sendmail.sh            # port 10027
#   sudo PORT=10127 OUT=/tmp/sm.json tests/recordings/record_sendmail.sh
#
# Needs: root, Debian 12, python3, m4.  sendmail-* conflicts with postfix, so
# it is NOT installed: sendmail-bin and sendmail-cf are `apt-get download`ed
# and `dpkg -x`ed into a temp directory (only the libraries and m4 are
# installed).  A sendmail.cf is built from the stock cf/m4 macros with the
# .mc below and the daemon runs in the foreground (-bD) with -C that file,
# listening on 127.0.0.1:$PORT only.  Every address resolves to a mailer
# whose program is /bin/true (LOCAL_RULE_0) and DeliveryMode is queueonly with
# no queue runner, so nothing is ever delivered or relayed.  It is stopped
# and the temp directory deleted on exit.
set -euo pipefail

PORT="${PORT:-10027}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# CONFIG=stock: the Debian-stock configuration instead (record_stock.sh sendmail).
if [[ ${CONFIG:-lab} == stock ]]; then exec "$HERE/record_stock.sh" sendmail; fi
. "$HERE/mta_common.sh"

need_root
[[ $PORT =~ ^[0-9]+$ ]] || die "PORT must be a number"
apt_install python3 m4 procps util-linux libdb5.3 libldap-2.5-0 liblockfile1 libnsl2 \
    libsasl2-2 libssl3 libwrap0
port_open "$PORT" && die "something already listens on 127.0.0.1:$PORT"

# Not under /tmp: sendmail refuses files (e.g. its helpfile) whose directory
# path contains a world-writable directory.
WORK="$(mktemp -d /run/labsmtp-sendmail.XXXXXX)"
chmod 0755 "$WORK"
pid=""
cleanup() {
    local rc=$?
    set +e
    stop_pid "$pid"
    if [[ $rc -ne 0 && -s $WORK/daemon.log ]]; then
        echo "---- sendmail output ----" >&2
        tail -n 40 "$WORK/daemon.log" >&2
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fetch_extract "$WORK" sendmail-bin sendmail-cf
SM="$WORK/root/usr/libexec/sendmail/sendmail"
CFDIR="$WORK/root/usr/share/sendmail/cf"
DEBVER="$(deb_version "$WORK" sendmail-bin)"
[[ -x $SM && -r $CFDIR/m4/cf.m4 ]] || die "unexpected sendmail package layout"

mkdir -p "$WORK/mqueue"
chmod 0700 "$WORK/mqueue"
: >"$WORK/statistics"
# No DNS at all: hosts come from /etc/hosts only (the machine is offline).
printf 'hosts\tfiles\naliases\tfiles\n' >"$WORK/service.switch"

# The settings that shape what the server answers (recorded verbatim).
# Privacy flags are Debian's stock sendmail.mc ones (needmailhelo included).
SETTINGS="$(cat <<'EOF'
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `mx.lab.example.org')dnl
LOCAL_DOMAIN(`lab.example.org')dnl
define(`confMAX_MESSAGE_SIZE', `1048576')dnl
define(`confPRIVACY_FLAGS', `needmailhelo,needexpnhelo,needvrfyhelo,restrictqrun,restrictexpand,nobodyreturn,authwarnings')dnl
define(`confTO_IDENT', `0')dnl
define(`confAUTH_MECHANISMS', `')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confDELIVERY_MODE', `queueonly')dnl
FEATURE(`no_default_msa')dnl
FEATURE(`nocanonify')dnl
FEATURE(`accept_unresolvable_domains')dnl
FEATURE(`block_bad_helo')dnl
MAILER(`local')dnl
MAILER(`smtp')dnl
MAILER_DEFINITIONS
Mblackhole,	P=/bin/true, F=lsDFMq, S=EnvFromL, R=EnvToL, A=true
LOCAL_RULE_0
R$*	$#blackhole $: $1
EOF
)"
# Notes on the settings:
# - AuthMechanisms is empty (no AUTH offered, as in the lab); otherwise what
#   sendmail offers depends on which Cyrus SASL modules happen to be installed.
# - relaying: sendmail always lets 127.0.0.1 relay ("originated locally" in
#   Relay_ok); 127.0.0.2 is in no relay class, so it may not relay.
# - nocanonify + accept_unresolvable_domains: this machine has no DNS; with
#   DNS example.org would resolve and the answers would be the same.
# - block_bad_helo (8.17's closest to "reject non-FQDN HELO") is checked at
#   RCPT time, not at HELO, and skips relay-allowed clients such as
#   127.0.0.1; sendmail itself only rejects an empty or syntactically
#   invalid HELO.
# - LOCAL_RULE_0 resolves every address (after the relay check) to the
#   "blackhole" mailer, whose program is /bin/true: any local part of
#   lab.example.org is accepted and nothing can leave.  (Sendmail's own
#   `$#discard` only works in check_* rulesets.)  With DeliveryMode
#   queueonly and no queue runner it is not even run.

# Plumbing (not behaviour): where this throw-away instance lives.
cat >"$WORK/sendmail.mc" <<EOF
divert(0)dnl
include(\`$CFDIR/m4/cf.m4')dnl
VERSIONID(\`labsmtp tests/recordings/record_sendmail.sh')dnl
define(\`QUEUE_DIR', \`$WORK/mqueue')dnl
define(\`STATUS_FILE', \`$WORK/statistics')dnl
define(\`confPID_FILE', \`$WORK/sendmail.pid')dnl
define(\`HELP_FILE', \`$WORK/root/etc/mail/helpfile')dnl
define(\`confSERVICE_SWITCH_FILE', \`$WORK/service.switch')dnl
define(\`confHOST_STATUS_DIRECTORY', \`')dnl
define(\`ALIAS_FILE', \`')dnl
DAEMON_OPTIONS(\`Family=inet, Name=MTA-v4, Port=$PORT, Addr=127.0.0.1')dnl
$SETTINGS
EOF
m4 -D_CF_DIR_="$CFDIR/" "$WORK/sendmail.mc" >"$WORK/sendmail.cf"
grep -q '^O DaemonPortOptions=.*Addr=127\.0\.0\.1' "$WORK/sendmail.cf" \
    || die "sendmail.cf does not listen on 127.0.0.1 only"
[[ $(grep -c '^O DaemonPortOptions' "$WORK/sendmail.cf") -eq 1 ]] \
    || die "sendmail.cf has more than one listener"

# Sendmail sleeps 60 s at start-up when the machine's own host name is not
# qualified and does not resolve; it runs in a private UTS namespace whose
# host name is the lab server's (the machine's host name is not changed).
in_uts() { unshare --uts sh -c 'hostname mx.lab.example.org && exec "$@"' sh "$@"; }

VERSION="$(in_uts "$SM" -C "$WORK/sendmail.cf" -d0.1 -bt </dev/null 2>&1 | sed -n 's/^Version \([0-9.]*\).*/\1/p' | head -n1)"
[[ -n $VERSION ]] || die "could not get the sendmail version"
SOFTWARE="Sendmail $VERSION (Debian sendmail-bin $DEBVER)"

# (unshare, sh and sendmail are one process: $! is sendmail's pid)
unshare --uts sh -c 'hostname mx.lab.example.org && exec "$@"' sh \
    "$SM" -C "$WORK/sendmail.cf" -bD >"$WORK/daemon.log" 2>&1 &
pid=$!
wait_greets "$PORT" || die "sendmail did not answer on 127.0.0.1:$PORT"

OUTFILE="${OUT:-$HERE/sendmail-${VERSION%.*.*}.json}"
START=$SECONDS
python3 "$HERE/record.py" \
    --server "127.0.0.1:$PORT" \
    --software "$SOFTWARE" \
    --settings "sendmail.mc (built with the stock cf/m4, run as -bD -C sendmail.cf), plus a private queue, no alias file, DaemonPortOptions=Family=inet, Name=MTA-v4, Port=$PORT, Addr=127.0.0.1:
$SETTINGS" \
    --out "$OUTFILE"
echo "recording took $((SECONDS - START)) s" >&2
echo "fixture written to $OUTFILE ($SOFTWARE)"
