#!/usr/bin/env bash
# Record a real MTA in its Debian-stock configuration (plus the lab settings).
#
#   sudo tests/recordings/record_stock.sh postfix     # or exim, sendmail, opensmtpd, clamsmtpd
#   sudo DIALOGUES=tests/recordings/dialogues.json OUT=/tmp/pf.json tests/recordings/record_stock.sh postfix
#   sudo VARIANT=delay_reject_no tests/recordings/record_stock.sh postfix   # a setting variant (see variant_*)
#   (record_<program>.sh with CONFIG=stock runs this too)
#
# What "stock" means here: the package is installed with dpkg, its own
# maintainer scripts run and write its configuration exactly as on a fresh
# Debian 12 machine (debconf answers preseeded, as an installer would type
# them), on a throw-away machine built by labns.sh: an overlay of /etc, /usr
# and /var in private namespaces, whose host name is mx.lab.example.org,
# whose only network is loopback and whose DNS is the lab's offline zone.
# Then the few "lab settings" in lab_<program> below are applied on top, each
# with the reason for it; the result is snapshotted into stock/<program>.conf
# (the file a persona cites) and into the recording's "settings" verbatim.
#
# Nothing leaves the machine: the namespace has no network but loopback, so
# deliveries (which the daemons attempt as usual) fail or land in the overlay's
# /var/mail; everything is deleted afterwards, and every process dies with the
# namespace's pid 1.  The host's own postfix, users and files are not touched.
#
# Env: DIALOGUES (default generated/corpus.json), OUT (default
# generated/<program>.json), VARIANT (default: none), SNAPSHOT=check|update
# (compare stock/<program>.conf with the configuration made now, or rewrite
# it; default check: a difference is reported and stops the run),
# KEEP_LOGS=DIR (copy the DNS query log, syslog and daemon logs there),
# TIMEOUT (seconds to wait for each reply, default 8), PROBE=file.py (instead
# of recording, run this python script with the port as argument).
set -Eeuo pipefail

PROGRAM="${1:-}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/mta_common.sh"
. "$HERE/labns.sh"

case $PROGRAM in
    postfix) PKGS=(postfix ssl-cert) ;;
    exim) PKGS=(exim4-daemon-light exim4-base exim4-config) ;;
    sendmail) PKGS=(sendmail-bin sendmail-base sendmail-cf) ;;
    opensmtpd) PKGS=(opensmtpd) ;;
    clamsmtpd) PKGS=(clamsmtp clamav-daemon postfix ssl-cert) ;;
    *) die "usage: record_stock.sh postfix|exim|sendmail|opensmtpd|clamsmtpd" ;;
esac
VARIANT="${VARIANT:-}"
if [[ -n $VARIANT ]]; then
    # a setting variant (or VARIANT=stock, the reference): the scripted and targeted dialogues
    DIALOGUES="${DIALOGUES:-$HERE/dialogues.json:$HERE/generated/targeted.json}"
else
    DIALOGUES="${DIALOGUES:-$HERE/generated/corpus.json}"
fi
if [[ -n $VARIANT ]]; then
    OUT="${OUT:-$HERE/generated/variants/$PROGRAM-$VARIANT.json}"
else
    OUT="${OUT:-$HERE/generated/$PROGRAM.json}"
fi
SNAPSHOT="${SNAPSHOT:-check}"
TIMEOUT="${TIMEOUT:-8}"

# ------------------------------------------------------------------ host side
if [[ ${LABNS_INSIDE:-} != 1 ]]; then
    need_root
    IFS=: read -r -a dfiles <<<"$DIALOGUES"
    for f in "${dfiles[@]}"; do [[ -r $f || -n ${PROBE:-} ]] || die "no dialogues file $f"; done
    command -v unshare >/dev/null || die "unshare (util-linux) is needed"
    WORK="$(mktemp -d /tmp/labsmtp-stock-$PROGRAM.XXXXXX)"
    chmod 0755 "$WORK"
    trap '[[ -n ${KEEP_WORK:-} ]] || rm -rf "$WORK"' EXIT
    mkdir -p "$WORK/debs"
    ensure_apt_lists
    # The packages and whatever they need that the host lacks (no
    # Recommends: none of them changes what the daemon answers).  Another
    # apt-get on the machine may hold its lock for a while: retry.
    fetched=0
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        if (cd "$WORK/debs" && apt-get download "${PKGS[@]}" >"$WORK/apt.log" 2>&1) &&
            apt-get install --download-only --no-install-recommends -y -q \
                -o Dir::Cache::archives="$WORK/debs" "${PKGS[@]}" >>"$WORK/apt.log" 2>&1; then
            fetched=1
            break
        fi
        if [[ $attempt -eq 3 ]]; then apt-get update -qq >>"$WORK/apt.log" 2>&1 || true; fi
        sleep 15
    done
    [[ $fetched -eq 1 ]] || { cat "$WORK/apt.log" >&2; die "could not download ${PKGS[*]}"; }
    rm -rf "$WORK/debs/partial" "$WORK/debs/lock"
    export LABNS_INSIDE=1 WORK PROGRAM VARIANT DIALOGUES OUT SNAPSHOT TIMEOUT
    export PROBE="${PROBE:-}" KEEP_LOGS="${KEEP_LOGS:-}"
    rc=0
    labns_run bash "$0" "$PROGRAM" || rc=$?
    exit $rc
fi

# ------------------------------------------------------------- machine side
trap 'echo "record_stock.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR
labns_setup "$WORK" "$HERE"
PORT=25   # the namespace's own port 25: nothing else can listen there
[[ $PROGRAM == clamsmtpd ]] && PORT=10026   # Debian's clamsmtpd.conf: Listen: 127.0.0.1:10026

SETTINGS_FILE="$HERE/stock/$PROGRAM.conf"
LAB_NOTES=""   # the lab settings, as text, for the snapshot's header
lab() { LAB_NOTES+="$1"$'\n'; }
# show FILE [COMMENT-REGEX]: a file's lines without comments and blank lines.
show() {
    if [[ ! -e $1 ]]; then echo "(no $1)"; return 0; fi
    grep -v -e "${2:-^[[:space:]]*#}" -e '^[[:space:]]*$' "$1" || echo "(empty)"
}

# ---------------------------------------------------------------- Postfix
preseed_postfix() {
    # The installer's questions, answered for the lab.  Everything not listed
    # takes the package's default answer (e.g. mydestination, inet_interfaces).
    cat <<'EOF'
postfix postfix/main_mailer_type select Internet Site
postfix postfix/mailname string lab.example.org
postfix postfix/mynetworks string 127.0.0.1/32
EOF
}
lab_postfix() {
    lab "debconf postfix/main_mailer_type = Internet Site (the installer's default answer)"
    lab "debconf postfix/mailname = lab.example.org (the lab's mail domain; host name is mx.lab.example.org)"
    lab "debconf postfix/mynetworks = 127.0.0.1/32 (Debian's default is 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128; the lab's outside client is 127.0.0.2, which must be untrusted so that relaying from it is refused)"
    # Nothing is delivered: every transport is paused, accepted mail stays in
    # the queue and goes with the machine.  (Without this, mail relayed to
    # client.example.org or mail.good.example, which the lab zone points at
    # 127.0.0.1/2, loops back into the server being recorded.)  Not visible
    # in the SMTP dialogue.
    lab "defer_transports = local, virtual, smtp, relay, lmtp, error, retry, discard (no delivery at all: accepted mail stays queued; not visible in the SMTP dialogue)"
    postconf -e "defer_transports = local, virtual, smtp, relay, lmtp, error, retry, discard"
    postfix_variant
}
start_postfix() {
    # As Debian's postfix@-.service: configure-instance.sh fills the chroot
    # (/var/spool/postfix/etc/...), then the master starts.
    /usr/lib/postfix/configure-instance.sh - >/dev/null
    postfix start >/dev/null 2>&1
}
stop_postfix() { postfix stop >/dev/null 2>&1 || true; sleep 1; }
snapshot_postfix() {
    echo "## postconf -n (main.cf, every setting that differs from Postfix's built-in default)"
    postconf -n
    echo "## postconf -M (master.cf services; Debian's master.cf.dist)"
    postconf -M | sed 's/  */ /g'
    echo "## /etc/aliases (written by postfix's postinst)"
    show /etc/aliases
    echo "## /etc/mailname"
    show /etc/mailname
    echo "## TLS: smtpd_tls_cert_file is ssl-cert's snakeoil certificate, made by make-ssl-cert for CN=$(hostname -f)"
}
logs_postfix() { :; }  # Postfix logs to syslog
software_postfix() {
    echo "Postfix $(postconf -dh mail_version) (Debian postfix $(dpkg-query -W -f='${Version}' postfix))"
}

postfix_variant() {
    case $VARIANT in
        ""|stock) ;;
        delay_reject_no)
            lab "variant: smtpd_delay_reject = no"; postconf -e "smtpd_delay_reject = no" ;;
        helo_required)
            lab "variant: smtpd_helo_required = yes"; postconf -e "smtpd_helo_required = yes" ;;
        strict_rfc821)
            lab "variant: strict_rfc821_envelopes = yes"; postconf -e "strict_rfc821_envelopes = yes" ;;
        helo_restrictions)
            lab "variant: smtpd_helo_restrictions = reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname, reject_unknown_helo_hostname"
            postconf -e "smtpd_helo_restrictions = reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname, reject_unknown_helo_hostname" ;;
        helo_restrictions_no_delay)
            lab "variant: smtpd_helo_restrictions = reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname, reject_unknown_helo_hostname; smtpd_delay_reject = no; smtpd_helo_required = yes"
            postconf -e "smtpd_helo_restrictions = reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname, reject_unknown_helo_hostname" \
                "smtpd_delay_reject = no" "smtpd_helo_required = yes" ;;
        limits)
            lab "variant: smtpd_recipient_limit = 3, message_size_limit = 2000"
            postconf -e "smtpd_recipient_limit = 3" "message_size_limit = 2000" ;;
        *) die "unknown Postfix variant $VARIANT" ;;
    esac
}

# ------------------------------------------------------------------- Exim
preseed_exim() {
    cat <<'EOF'
exim4-config exim4/dc_eximconfig_configtype select internet site; mail is sent and received directly using SMTP
exim4-config exim4/mailname string lab.example.org
EOF
}
lab_exim() {
    lab "debconf exim4/dc_eximconfig_configtype = internet site (Debian's default answer is 'local delivery only')"
    lab "debconf exim4/mailname = lab.example.org"
    lab "daemon started as exim4 -bd -odq instead of Debian's exim4 -bd -q30m (no queue runner, every message only queued: nothing is delivered; not visible in the SMTP dialogue)"
    exim_variant
}
# Exim's settings go into Debian's template (the non-split configuration),
# then update-exim4.conf generates the configuration again, as an admin would.
exim_template_edit() {  # $1: a main-section option; $2: an ACL to add (optional)
    python3 - "$1" "${2:-}" <<'PY'
import sys
p = "/etc/exim4/exim4.conf.template"
s = open(p).read()
option, acl = sys.argv[1], sys.argv[2]
assert "\nbegin acl\n" in s
s = s.replace("\nbegin acl\n", "\n" + option + "\n\nbegin acl\n\n" + (acl + "\n" if acl else ""), 1)
open(p, "w").write(s)
PY
}
exim_variant() {
    case $VARIANT in
        ""|stock) return 0 ;;
        helo_verify)
            lab "variant: helo_verify_hosts = * (main option in exim4.conf.template)"
            exim_template_edit "helo_verify_hosts = *" ;;
        helo_try_verify)
            lab "variant: helo_try_verify_hosts = * (main option in exim4.conf.template)"
            exim_template_edit "helo_try_verify_hosts = *" ;;
        acl_helo)
            lab "variant: acl_smtp_helo = acl_check_helo, an ACL that denies a HELO/EHLO name without a dot (closest to Postfix reject_non_fqdn_helo_hostname)"
            exim_template_edit "acl_smtp_helo = acl_check_helo" 'acl_check_helo:
  deny
    message = HELO/EHLO argument must be a fully-qualified domain name
    condition = ${if match{$sender_helo_name}{\N\.\N}{no}{yes}}
  accept
' ;;
        *) die "unknown Exim variant $VARIANT" ;;
    esac
    update-exim4.conf
}
start_exim() {
    # Debian's init script runs exim4 -bd -q30m ($QUEUEINTERVAL in
    # /etc/default/exim4); the lab runs no queue runner and queues every
    # message (-odq): nothing is delivered, which the SMTP dialogue cannot see.
    . /etc/default/exim4
    /usr/sbin/exim4 -bd -odq $COMMONOPTIONS $SMTPLISTENEROPTIONS
}
stop_exim() { [[ -r /run/exim4/exim.pid ]] && kill "$(cat /run/exim4/exim.pid)" 2>/dev/null || true; }
snapshot_exim() {
    echo "## /etc/exim4/update-exim4.conf.conf (written by exim4-config's postinst from the debconf answers)"
    show /etc/exim4/update-exim4.conf.conf
    echo "## the configuration update-exim4.conf generated from Debian's exim4.conf.template (comments left out)"
    show /var/lib/exim4/config.autogenerated
    echo "## /etc/aliases (written by exim4-config's postinst)"
    show /etc/aliases
    echo "## /etc/mailname"
    show /etc/mailname
}
logs_exim() { cp -r /var/log/exim4 "$1/exim4-logs" 2>/dev/null || true; }
software_exim() {
    echo "Exim $(exim4 -bV | sed -n 's/^Exim version \([^ ]*\).*/\1/p') (Debian exim4-daemon-light $(dpkg-query -W -f='${Version}' exim4-daemon-light))"
}

# --------------------------------------------------------------- Sendmail
lab_sendmail() {
    # No debconf: sendmail-bin's postinst runs update_sendmail, which writes
    # /etc/mail/sendmail.mc from Debian's prototype, empty access,
    # local-host-names and aliases files, and builds sendmail.cf with make.
    lab "/etc/mail/local-host-names: lab.example.org (sendmail's way to make a domain local, FEATURE(use_cw_file) in Debian's sendmail.mc; Postfix and Exim get it from their mailname question)"
    echo "lab.example.org" >>/etc/mail/local-host-names
    lab "/etc/aliases: 'postmaster: root' (sendmail's postinst writes an empty alias file, so stock Sendmail answers 'User unknown' for postmaster, which RFC 5321 §4.5.1 requires; every other MTA's postinst writes this alias)"
    echo "postmaster: root" >>/etc/aliases
    newaliases >/dev/null 2>&1
    lab "/etc/mail/access: 'Connect:127 RELAY' -> 'Connect:127.0.0.1 RELAY' (Debian's access file lets all of 127/8 relay; the lab's outside client is 127.0.0.2, which must be untrusted so that relaying from it is refused; GreetPause:127, ClientRate:127 and ClientConn:127 stay as shipped)"
    sed -i 's/^Connect:127\([[:space:]]\)/Connect:127.0.0.1\1/' /etc/mail/access
    grep -q '^Connect:127\.0\.0\.1[[:space:]]*RELAY' /etc/mail/access || die "could not edit /etc/mail/access"
    makemap hash /etc/mail/access.db </etc/mail/access
    lab "daemon started as sendmail-mta -L sm-mta -bd -odq instead of Debian's ... -bd -q10m (no queue runner, every message only queued: nothing is delivered; not visible in the SMTP dialogue)"
    # Sendmail refuses connections while the load average is above RefuseLA
    # (12 x the number of CPUs by default; this shared machine reached 13.8)
    # and sleeps before each command above DelayLA: the machine's load must
    # not change what is recorded.
    lab "sendmail.mc: define(\`confREFUSE_LA', \`1000') and define(\`confDELAY_LA', \`0') before MAILER_DEFINITIONS (Sendmail stops accepting connections when the load average is above RefuseLA; the recording machine's load must not change the answers)"
    sed -i "s/^MAILER_DEFINITIONS/define(\`confREFUSE_LA', \`1000')dnl\ndefine(\`confDELAY_LA', \`0')dnl\nMAILER_DEFINITIONS/" /etc/mail/sendmail.mc
    m4 /etc/mail/sendmail.mc >/etc/mail/sendmail.cf
    grep -q '^O RefuseLA=1000' /etc/mail/sendmail.cf || die "RefuseLA not set"
    sendmail_variant
}
sendmail_privacy() {  # replace Debian's confPRIVACY_FLAGS, rebuild sendmail.cf
    python3 - "$1" <<'PY'
import re, sys
p = "/etc/mail/sendmail.mc"
s = open(p).read()
s, n = re.subn(r"define\(`confPRIVACY_FLAGS',dnl\n`[^']*'\)dnl", "define(`confPRIVACY_FLAGS', `%s')dnl" % sys.argv[1], s)
assert n == 1, "no confPRIVACY_FLAGS in sendmail.mc"
open(p, "w").write(s)
PY
    m4 /etc/mail/sendmail.mc >/etc/mail/sendmail.cf
    grep -q "^O PrivacyOptions=$1\$" /etc/mail/sendmail.cf || die "PrivacyOptions not set"
}
sendmail_variant() {
    case $VARIANT in
        ""|stock) ;;
        privacy_goaway)
            lab "variant: confPRIVACY_FLAGS = goaway (PrivacyOptions=goaway) instead of Debian's list"
            sendmail_privacy goaway ;;
        privacy_authwarnings)
            lab "variant: confPRIVACY_FLAGS = authwarnings only (no needmailhelo, needexpnhelo, needvrfyhelo, ...)"
            sendmail_privacy authwarnings ;;
        *) die "unknown Sendmail variant $VARIANT" ;;
    esac
}
start_sendmail() {
    # Debian's init script with sendmail.conf's defaults (DAEMON_MODE=daemon,
    # QUEUE_INTERVAL=10m) runs sendmail-mta -L sm-mta -bd -q10m; the lab
    # runs no queue runner and only queues (-odq): nothing is delivered.
    /usr/sbin/sendmail-mta -L sm-mta -bd -odq
}
stop_sendmail() { pkill -TERM -x sendmail-mta 2>/dev/null || pkill -TERM -f '^sendmail: MTA' 2>/dev/null || true; }
snapshot_sendmail() {
    echo "## /etc/mail/sendmail.mc (written by sendmail's postinst: Debian's cf/debian/sendmail.mc; dnl comment lines left out)"
    show /etc/mail/sendmail.mc '^\(dnl #\|#\)'
    echo "## /etc/mail/access (the access database's source; comments left out)"
    show /etc/mail/access
    for f in local-host-names relay-domains trusted-users; do
        echo "## /etc/mail/$f"
        show "/etc/mail/$f"
    done
    echo "## /etc/aliases"
    show /etc/aliases
    echo "## /etc/mailname"
    show /etc/mailname
}
logs_sendmail() { :; }  # Sendmail logs to syslog
software_sendmail() {
    echo "Sendmail $(/usr/libexec/sendmail/sendmail -d0.1 -bt </dev/null 2>&1 | sed -n 's/^Version \([0-9.]*\).*/\1/p' | head -n1) (Debian sendmail-bin $(dpkg-query -W -f='${Version}' sendmail-bin))"
}

# -------------------------------------------------------------- OpenSMTPD
preseed_opensmtpd() {
    cat <<'EOF'
opensmtpd opensmtpd/mailname string lab.example.org
EOF
}
lab_opensmtpd() {
    lab "debconf opensmtpd/mailname = lab.example.org"
    # Debian's smtpd.conf accepts mail only from local clients; its own
    # comment says how to accept external mail for a domain.  That line,
    # uncommented in place with the lab's domain:
    lab "smtpd.conf: '# match from any for domain \"example.org\" action \"local\"' uncommented in place as 'match from any for domain \"lab.example.org\" action \"local\"' (Debian's own example for accepting external mail for a domain; without it no outside client, e.g. 127.0.0.2, can send to the lab)"
    sed -i 's/^# *match from any for domain "example.org" action "local"/match from any for domain "lab.example.org" action "local"/' /etc/smtpd.conf
    grep -q '^match from any for domain "lab.example.org" action "local"' /etc/smtpd.conf \
        || die "could not uncomment the example line in /etc/smtpd.conf"
    lab "daemon started as smtpd -P mda -P mta (delivery agents paused: nothing is delivered; not visible in the SMTP dialogue)"
    case $VARIANT in
        ""|stock) ;;
        helo_filter)
            lab "variant: built-in filters rejecting a HELO/EHLO name without a dot: table helo_bare { \"^[^.]*\$\" }; filter helo_fqdn phase helo match helo regex <helo_bare> reject ...; the same for phase ehlo; listen on localhost filter \"fqdn\""
            python3 - <<'PY'
p = "/etc/smtpd.conf"
s = open(p).read()
filters = (
    'table helo_bare { "^[^.]*$" }\n'
    'filter "helo_fqdn" phase helo match helo regex <helo_bare> reject "550 5.7.1 HELO name must be a fully-qualified domain name"\n'
    'filter "ehlo_fqdn" phase ehlo match helo regex <helo_bare> reject "550 5.7.1 EHLO name must be a fully-qualified domain name"\n'
    'filter "fqdn" chain { "helo_fqdn", "ehlo_fqdn" }\n\n'
)
assert "\nlisten on localhost\n" in s
s = s.replace("\nlisten on localhost\n", "\n" + filters + 'listen on localhost filter "fqdn"\n', 1)
open(p, "w").write(s)
PY
            smtpd -n -f /etc/smtpd.conf >/dev/null || die "smtpd.conf with the filters does not parse" ;;
        *) die "unknown OpenSMTPD variant $VARIANT" ;;
    esac
}
# As Debian's init script (smtpd daemonises), with the delivery agents
# paused (-P mda -P mta): nothing is delivered.
start_opensmtpd() { /usr/sbin/smtpd -P mda -P mta; }
stop_opensmtpd() { pkill -TERM -x smtpd 2>/dev/null || true; }
snapshot_opensmtpd() {
    echo "## /etc/smtpd.conf (comments left out)"
    show /etc/smtpd.conf
    echo "## /etc/aliases (written by opensmtpd's postinst)"
    show /etc/aliases
    echo "## /etc/mailname"
    show /etc/mailname
}
logs_opensmtpd() { :; }  # smtpd logs to syslog
software_opensmtpd() {
    echo "OpenSMTPD $({ smtpd -h 2>&1 || true; } | sed -n 's/^version: OpenSMTPD \([^ ]*\).*/\1/p' | head -n1) (Debian opensmtpd $(dpkg-query -W -f='${Version}' opensmtpd))"
}

# -------------------------------------------------------------- clamsmtpd
preseed_clamsmtpd() { preseed_postfix; }
lab_clamsmtpd() {
    lab_postfix
    lab "clamsmtpd.conf: OutAddress: 10025 -> 127.0.0.1:25 (Debian's file expects a Postfix content_filter reinjection smtpd on port 10025; in the lab clamsmtpd stands in front of the stock Postfix's own smtpd)"
    sed -i 's/^OutAddress:.*/OutAddress: 127.0.0.1:25/' /etc/clamsmtpd.conf
    # clamd cannot download ClamAV's signature databases offline; it gets a
    # one-signature database (the EICAR test string).  Clean mail scans clean
    # exactly as with the full databases.
    lab "clamd: the signature database is one signature, the EICAR test string as Lab.Test.EICAR (/var/lib/clamav/lab.ndb), because freshclam cannot download ClamAV's databases offline"
    python3 - /var/lib/clamav/lab.ndb <<'PY'
import sys
eicar = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
open(sys.argv[1], "w").write("Lab.Test.EICAR:0:*:" + eicar.hex() + "\n")
PY
}
start_clamsmtpd() {
    start_postfix
    mkdir -p /run/clamav /run/clamsmtp
    chown clamav:clamav /run/clamav
    chown clamsmtp:clamsmtp /run/clamsmtp
    /usr/sbin/clamd --foreground=true >/dev/null 2>&1 &   # as clamav-daemon.service
    for _ in $(seq 1 150); do [[ -S /run/clamav/clamd.ctl ]] && break; sleep 0.2; done
    /usr/sbin/clamsmtpd -f /etc/clamsmtpd.conf             # as Debian's init script
}
stop_clamsmtpd() { pkill -TERM -x clamsmtpd 2>/dev/null || true; pkill -TERM -x clamd 2>/dev/null || true; stop_postfix; }
snapshot_clamsmtpd() {
    echo "## /etc/clamsmtpd.conf (comments left out)"
    show /etc/clamsmtpd.conf
    echo "## the Postfix behind it:"
    snapshot_postfix
}
logs_clamsmtpd() { :; }
software_clamsmtpd() {
    echo "clamsmtpd $(dpkg-query -W -f='${Version}' clamsmtp | sed 's/-.*//') (Debian clamsmtp $(dpkg-query -W -f='${Version}' clamsmtp)) in front of $(software_postfix), with clamd (Debian clamav-daemon $(dpkg-query -W -f='${Version}' clamav-daemon))"
}

# ------------------------------------------------------------ run the program
preseed_fn="preseed_$PROGRAM"
declare -F "$preseed_fn" >/dev/null || preseed_fn=true
labns_install "$WORK" "$($preseed_fn)"
"lab_$PROGRAM"
"start_$PROGRAM"
wait_greets "$PORT" || { tail -n 30 "$WORK/syslog" >&2 || true; die "$PROGRAM did not answer on 127.0.0.1:$PORT"; }

{
    echo "# $PROGRAM, Debian 12 stock configuration plus the lab settings."
    echo "# Made by tests/recordings/record_stock.sh $PROGRAM${VARIANT:+ (VARIANT=$VARIANT)}: the package was installed"
    echo "# with dpkg on a fresh Debian 12 (labns.sh) and its maintainer scripts wrote the configuration."
    echo "# The machine: host name mx.lab.example.org; loopback only; DNS = the lab zone (labdns.py);"
    echo "# the daemon listens where the package puts it (inside a private network namespace)."
    echo "# Lab settings applied on top of the stock configuration:"
    printf '%s' "$LAB_NOTES" | sed 's/^/#   - /'
    "snapshot_$PROGRAM"
    echo "## DNS: the zone labdns.py serves on 127.0.0.1:53 (DEFAULT_ZONE of labsmtp/lab/dnszone.py); every other name is NXDOMAIN"
    python3 "$HERE/labdns.py" --print-zone | grep -v -e '^;' -e '^[[:space:]]*$'
} >"$WORK/settings.txt"

if [[ -z $VARIANT && -z $PROBE ]]; then
    if [[ $SNAPSHOT == update || ! -e $SETTINGS_FILE ]]; then
        cp "$WORK/settings.txt" "$SETTINGS_FILE"
        echo "wrote $SETTINGS_FILE" >&2
    elif ! diff -u "$SETTINGS_FILE" "$WORK/settings.txt" >&2; then
        die "the configuration made now differs from $SETTINGS_FILE (SNAPSHOT=update to accept it)"
    fi
fi

SOFTWARE="$(software_$PROGRAM)"
if [[ -n $PROBE ]]; then
    python3 "$PROBE" "$PORT" || true
else
    mkdir -p "$(dirname "$OUT")"
    START=$SECONDS
    dargs=()
    IFS=: read -r -a dfiles <<<"$DIALOGUES"
    for f in "${dfiles[@]}"; do dargs+=(--dialogues "$f"); done
    python3 "$HERE/record.py" "${dargs[@]}" --timeout "$TIMEOUT" --quiet \
        --server "127.0.0.1:$PORT" --software "$SOFTWARE" \
        --settings "$(cat "$WORK/settings.txt")" --out "$OUT"
    echo "recording took $((SECONDS - START)) s; written to $OUT ($SOFTWARE)" >&2
fi
"stop_$PROGRAM"
if [[ -n $KEEP_LOGS ]]; then
    mkdir -p "$KEEP_LOGS"
    cp "$WORK/dns.log" "$WORK/syslog" "$KEEP_LOGS/" 2>/dev/null || true
    "logs_$PROGRAM" "$KEEP_LOGS"
fi
