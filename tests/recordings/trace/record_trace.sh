#!/usr/bin/env bash
# Record the trace fields (Received:, Return-Path:, ...) that real MTAs write
# into the mail they accept and deliver, for labsmtp/protocol/trace.py.
#
#   sudo tests/recordings/trace/record_trace.sh              # all of them
#   sudo tests/recordings/trace/record_trace.sh exim sendmail
#   sudo DEBUG=1 tests/recordings/trace/record_trace.sh postfix   # show its log
#
# Programs: postfix (Debian's defaults for the trace: no TLS or SASL details),
# postfix-headers (smtpd_tls_received_header and smtpd_sasl_authenticated_header
# on), exim, sendmail, opensmtpd, clamsmtpd (in front of a Postfix).  Each
# writes tests/recordings/trace/<name>.json (sessions.json replayed by
# trace_record.py, with the header lines each delivered copy gained).
#
# Needs root, Debian 12, the postfix package (for postfix and clamsmtpd),
# python3, openssl, util-linux, iproute2.  The other MTAs conflict with postfix
# as packages, so their .debs are `apt-get download`ed and `dpkg -x`ed (see
# ../mta_common.sh); only libraries are installed on the machine.
#
# Each program runs in its own throw-away "machine" made of Linux namespaces:
#   - net: only the loopback interface, so nothing can leave it (every client
#     address 127.0.0.x is local; ports are private to it);
#   - pid: when the recording ends, the kernel kills whatever is left;
#   - mount: /etc, /usr and /var are overlays whose writes land in the temp
#     directory (users the MTA needs, /etc/resolv.conf, SASL settings), so the
#     machine's own files are never changed;
#   - uts: the host name is mx.lab.example.org.
# DNS inside is zonedns.py on the namespace's own 127.0.0.1:53 (the host's
# port 53 is untouched), serving the lab zone, so reverse
# lookups (the names written in Received:) are the lab's.  The idea of a
# namespace with a zone-serving resolver was first worked out on the `rec`
# branch (tests/recordings/labdns.py, labns.sh); nothing is copied from it.
# Every program really delivers, into maildirs (or files) in the temp
# directory, which trace_record.py reads; all is deleted on exit.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REC="$(dirname "$HERE")"
. "$REC/mta_common.sh"
PORT=10070          # inside the namespace
BACKEND_PORT=10071  # clamsmtpd's Postfix, inside the namespace
ALL=(postfix postfix-headers exim sendmail opensmtpd clamsmtpd)

# ------------------------------------------------------------------ inside
# Everything below "inside_*" runs as pid 1 of the namespaces.

ns_setup() {
    local d
    ip link set lo up
    hostname mx.lab.example.org
    for d in etc usr var; do
        mkdir -p "$WORK/ov/$d/up" "$WORK/ov/$d/wk"
        mount -t overlay overlay \
            -o "lowerdir=/$d,upperdir=$WORK/ov/$d/up,workdir=$WORK/ov/$d/wk" "/$d"
    done
    rm -f /etc/resolv.conf
    printf 'nameserver 127.0.0.1\noptions attempts:1 timeout:2\n' >/etc/resolv.conf
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >/etc/hosts
    printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' >/etc/nsswitch.conf
    echo mx.lab.example.org >/etc/mailname
    # the mailbox owners (local users for Sendmail and OpenSMTPD)
    for u in bob carol; do
        getent passwd "$u" >/dev/null || useradd --system --no-create-home \
            --home-dir /nonexistent --shell /usr/sbin/nologin "$u"
    done
    mkdir -p "$WORK/mail"
    chmod 1777 "$WORK/mail"
    python3 "$HERE/zonedns.py" --listen 127.0.0.1:53 --log "$WORK/dns.log" \
        2>"$WORK/zonedns.err" &
    for _ in $(seq 1 50); do
        getent hosts mail.good.example >/dev/null && break
        sleep 0.1
    done
    [[ "$(getent hosts 127.0.0.2 | awk '{print $2}')" == mail.good.example ]] \
        || die "the lab zone does not answer in the namespace"
    : >"$WORK/dns.log"
}

record() {  # record SOFTWARE SETTINGS
    python3 "$HERE/trace_record.py" --server "127.0.0.1:$PORT" --mail "$WORK/mail" \
        --software "$1" --settings "$2" --dns-log "$WORK/dns.log" --out "$WORK/out.json"
}

# --- Postfix --------------------------------------------------------------
POSTFIX=/usr/sbin/postfix
POSTCONF=/usr/sbin/postconf

postfix_settings() {  # postfix_settings EXTRA
    cat <<EOF
compatibility_level = 3.6
myhostname = mx.lab.example.org
mydomain = lab.example.org
myorigin = \$mydomain
mydestination = localhost
mynetworks = 127.0.0.1/32
inet_protocols = ipv4
smtpd_banner = \$myhostname ESMTP \$mail_name (Debian/GNU)
biff = no
append_dot_mydomain = no
alias_maps =
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
virtual_mailbox_domains = lab.example.org
virtual_mailbox_maps = inline:{ {bob@lab.example.org = bob/}, {carol@lab.example.org = carol/} }
virtual_mailbox_base = <mail>
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
smtpd_tls_security_level = may
smtpd_tls_cert_file = <cert>
smtpd_tls_key_file = <key>
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
default_transport = error:nothing leaves the lab
relay_transport = error:nothing leaves the lab
$1
EOF
}

# postfix_instance DIR PORT SETTINGS: build and start a private Postfix.
postfix_instance() {
    local dir=$1 port=$2 settings=$3 svc
    mkdir -p "$dir/etc/sasl" "$dir/spool" "$dir/lib" "$dir/sasl"
    chown postfix:postfix "$dir/lib"
    # Debian's Postfix reads Cyrus settings from $config_directory/sasl/smtpd.conf
    # (/etc/postfix/sasl/smtpd.conf on a real machine).
    cat >"$dir/etc/sasl/smtpd.conf" <<EOF
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN
sasldb_path: $dir/sasl/sasldb2
EOF
    echo secret | "$WORK/root/usr/sbin/saslpasswd2" -p -c -f "$dir/sasl/sasldb2" \
        -u mx.lab.example.org ada
    chown postfix:postfix "$dir/sasl/sasldb2"
    cp "$WORK/cert.pem" "$WORK/key.pem" "$dir/"
    chmod 0600 "$dir/key.pem"
    {
        echo "config_directory = $dir/etc"
        echo "queue_directory = $dir/spool"
        echo "data_directory = $dir/lib"
        echo "maillog_file = $dir/maillog"
        echo "maillog_file_prefixes = $dir"
        sed -e "s|<mail>|$WORK/mail|" -e "s|<cert>|$dir/cert.pem|" \
            -e "s|<key>|$dir/key.pem|" <<<"$settings"
    } >"$dir/etc/main.cf"
    cp /usr/share/postfix/master.cf.dist "$dir/etc/master.cf"
    for svc in smtp/inet submission/inet submissions/inet smtps/inet \
               maildrop/unix uucp/unix ifmail/unix bsmtp/unix \
               scalemail-backend/unix mailman/unix; do
        if "$POSTCONF" -c "$dir/etc" -M "$svc" 2>/dev/null | grep -q .; then
            "$POSTCONF" -c "$dir/etc" -MX "$svc"
        fi
    done
    "$POSTCONF" -c "$dir/etc" -Me "127.0.0.1:$port/inet = 127.0.0.1:$port inet n - n - - smtpd"
    "$POSTCONF" -c "$dir/etc" -Fe '*/*/chroot = n'
    "$POSTFIX" -c "$dir/etc" check
    "$POSTFIX" -c "$dir/etc" start
    wait_greets "$port" || { tail -n 30 "$dir/maillog" >&2; die "Postfix did not answer on $port"; }
}

postfix_stop() {
    "$POSTFIX" -c "$1/etc" stop >/dev/null 2>&1 || true
    sleep 1
}

inside_postfix() {  # inside_postfix EXTRA-SETTINGS
    local settings
    settings="$(postfix_settings "${1:-}")"
    postfix_instance "$WORK/pf" "$PORT" "$settings"
    record "Postfix $("$POSTCONF" -dh mail_version) (Debian postfix $(dpkg-query -W -f='${Version}' postfix))" \
        "main.cf (plus a private queue, config and data directory; <mail>, <cert>, <key> are paths in the temp directory; SASL: config_directory/sasl/smtpd.conf with Cyrus sasldb, mech_list PLAIN LOGIN, user ada):
$settings
master.cf: 127.0.0.1:$PORT inet n - n - - smtpd (stock services otherwise, no chroot)"
    postfix_stop "$WORK/pf"
    if [[ -n ${DEBUG:-} ]]; then
        grep -i "sasl\|warn\|error\|fatal" "$WORK/pf/maillog" >&2 || true
    fi
}

inside_postfix-headers() {
    inside_postfix "smtpd_tls_received_header = yes
smtpd_sasl_authenticated_header = yes"
}

# --- Exim -----------------------------------------------------------------
inside_exim() {
    local EXIM="$WORK/root/usr/sbin/exim4" settings pid
    getent passwd Debian-exim >/dev/null || useradd --system --user-group --no-create-home \
        --home-dir /var/spool/exim4 --shell /usr/sbin/nologin Debian-exim
    mkdir -p "$WORK/exim/spool" "$WORK/exim/log"
    chown Debian-exim:Debian-exim "$WORK/exim/spool" "$WORK/exim/log"
    cp "$WORK/cert.pem" "$WORK/key.pem" "$WORK/exim/"
    chown Debian-exim "$WORK/exim/key.pem"
    chmod 0600 "$WORK/exim/key.pem"
    # The transport's *_add options are those of Debian's stock mail_spool
    # and maildir_home transports; the rest is Exim's defaults (received_header_text
    # included), with reverse lookups on (host_lookup = *) and ident off.
    settings="$(cat <<'EOF'
primary_hostname = mx.lab.example.org
domainlist local_domains = lab.example.org
hostlist relay_from_hosts = 127.0.0.1/32
host_lookup = *
rfc1413_hosts =
tls_advertise_hosts = *
tls_certificate = <dir>/cert.pem
tls_privatekey = <dir>/key.pem
never_users = root
acl_smtp_rcpt = acl_check_rcpt

begin acl
acl_check_rcpt:
  accept  authenticated = *
  accept  hosts = +relay_from_hosts
  require message = relay not permitted
          domains = +local_domains
  accept

begin routers
local_user:
  driver = accept
  domains = +local_domains
  local_parts = bob : carol
  transport = maildir_delivery

begin transports
maildir_delivery:
  driver = appendfile
  directory = <mail>/$local_part_data
  maildir_format
  create_directory
  delivery_date_add
  envelope_to_add
  return_path_add
  user = Debian-exim
  mode = 0644

begin authenticators
plain_server:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and {{eq{$auth2}{ada}}{eq{$auth3}{secret}}}}
  server_set_id = $auth2
EOF
)"
    # Debian's exim reads /etc/exim4/exim4.conf (the overlay's): no -C, so that
    # the delivery processes exim re-executes keep their privileges.
    mkdir -p /etc/exim4
    {
        echo "# made by tests/recordings/trace/record_trace.sh"
        echo "local_interfaces = <; 127.0.0.1.$PORT"
        echo "daemon_smtp_ports = $PORT"
        echo "spool_directory = $WORK/exim/spool"
        echo "log_file_path = $WORK/exim/log/%slog"
        echo "pid_file_path = $WORK/exim/exim.pid"
        echo "exim_path = $EXIM"
        echo "keep_environment ="
        sed -e "s|<dir>|$WORK/exim|" -e "s|<mail>|$WORK/mail|" <<<"$settings"
    } >/etc/exim4/exim4.conf
    "$EXIM" -bV >"$WORK/exim/bV.txt" 2>&1 || { cat "$WORK/exim/bV.txt" >&2; die "exim -bV failed"; }
    local version
    version="$(sed -n 's/^Exim version \([^ ]*\).*/\1/p' "$WORK/exim/bV.txt" | head -n1)"
    "$EXIM" -bdf &
    pid=$!
    wait_greets "$PORT" || { tail "$WORK"/exim/log/* >&2; die "exim did not answer"; }
    record "Exim $version (Debian exim4-daemon-light $(cat "$WORK/debver.exim4-daemon-light"))" \
        "/etc/exim4/exim4.conf (in the namespace; plus listener, spool and log settings; <dir>, <mail> are paths in the temp directory):
$settings"
    [[ -z ${DEBUG:-} ]] || cat "$WORK"/exim/log/* >&2
    stop_pid "$pid"
}

# --- Sendmail -------------------------------------------------------------
inside_sendmail() {
    local SM="$WORK/root/usr/libexec/sendmail/sendmail" CFDIR="$WORK/root/usr/share/sendmail/cf"
    local D="$WORK/sm" settings pid version
    mkdir -p "$D/mqueue" "$D/certs" /etc/sasl2
    chmod 0700 "$D/mqueue"
    : >"$D/statistics"
    cp "$WORK/cert.pem" "$WORK/key.pem" "$D/certs/"
    chmod 0600 "$D/certs/key.pem"
    chmod 0755 "$D/certs"
    printf 'pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\n' \
        >/etc/sasl2/Sendmail.conf
    echo secret | "$WORK/root/usr/sbin/saslpasswd2" -p -c -f /etc/sasldb2 -u mx.lab.example.org ada
    chmod 0600 /etc/sasldb2
    # The local mailer's program: one file per delivered copy, in the
    # recipient's directory (what mail.local would append to /var/mail/USER).
    cat >"$D/deliver" <<EOF
#!/bin/sh
# argv: -r SENDER? USER... (the stock local mailer's flags: $u, -r from 'r')
while [ \$# -gt 0 ]; do
    case \$1 in -r|-f) shift 2;; -d) shift;; *) break;; esac
done
tmp=\$(mktemp "$WORK/mail/.in.XXXXXX")
cat >"\$tmp"
for u; do
    mkdir -p "$WORK/mail/\$u"
    cp "\$tmp" "\$(mktemp "$WORK/mail/\$u/msg.XXXXXX")"
done
rm -f "\$tmp"
EOF
    chmod 0755 "$D/deliver"
    settings="$(cat <<'EOF'
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `mx.lab.example.org')dnl
LOCAL_DOMAIN(`lab.example.org')dnl
define(`confPRIVACY_FLAGS', `needmailhelo,needexpnhelo,needvrfyhelo,restrictqrun,restrictexpand,nobodyreturn,authwarnings')dnl
define(`confTO_IDENT', `0')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confAUTH_MECHANISMS', `PLAIN LOGIN')dnl
TRUST_AUTH_MECH(`PLAIN LOGIN')dnl
define(`confSERVER_CERT', `<certs>/cert.pem')dnl
define(`confSERVER_KEY', `<certs>/key.pem')dnl
define(`confCACERT', `<certs>/cert.pem')dnl
define(`confCACERT_PATH', `<certs>')dnl
define(`LOCAL_MAILER_PATH', `<deliver>')dnl
define(`LOCAL_MAILER_ARGS', `deliver $u')dnl
FEATURE(`no_default_msa')dnl
FEATURE(`nocanonify')dnl
FEATURE(`accept_unresolvable_domains')dnl
MAILER(`local')dnl
MAILER(`smtp')dnl
EOF
)"
    # needmailhelo is Debian's stock privacy flag: MAIL before HELO is refused.
    cat >"$D/sendmail.mc" <<EOF
divert(0)dnl
include(\`$CFDIR/m4/cf.m4')dnl
VERSIONID(\`labsmtp tests/recordings/trace/record_trace.sh')dnl
define(\`QUEUE_DIR', \`$D/mqueue')dnl
define(\`STATUS_FILE', \`$D/statistics')dnl
define(\`confPID_FILE', \`$D/sendmail.pid')dnl
define(\`HELP_FILE', \`$WORK/root/etc/mail/helpfile')dnl
define(\`confHOST_STATUS_DIRECTORY', \`')dnl
define(\`ALIAS_FILE', \`$D/aliases')dnl
DAEMON_OPTIONS(\`Family=inet, Name=MTA-v4, Port=$PORT, Addr=127.0.0.1')dnl
$(sed -e "s|<certs>|$D/certs|" -e "s|<deliver>|$D/deliver|" <<<"$settings")
EOF
    m4 -D_CF_DIR_="$CFDIR/" "$D/sendmail.mc" >"$D/sendmail.cf"
    # local delivery needs an alias database (else "alias database unavailable")
    printf 'postmaster: root\nMAILER-DAEMON: postmaster\n' >"$D/aliases"
    "$SM" -C "$D/sendmail.cf" -bi >&2
    version="$("$SM" -C "$D/sendmail.cf" -d0.1 -bt </dev/null 2>&1 | sed -n 's/^Version \([0-9.]*\).*/\1/p' | head -n1)"
    "$SM" -C "$D/sendmail.cf" -bD -O LogLevel=14 >"$D/daemon.log" 2>&1 &
    pid=$!
    wait_greets "$PORT" || { cat "$D/daemon.log" >&2; die "sendmail did not answer"; }
    record "Sendmail $version (Debian sendmail-bin $(cat "$WORK/debver.sendmail-bin"))" \
        "sendmail.mc (stock cf/m4; -bD -C sendmail.cf; plus a private queue, an alias file with postmaster and MAILER-DAEMON, DaemonPortOptions=Family=inet, Name=MTA-v4, Port=$PORT, Addr=127.0.0.1; Cyrus SASL sasldb with user ada; <certs>, <deliver> are paths in the temp directory: <deliver> writes one file per recipient):
$settings"
    if [[ -n ${DEBUG:-} ]]; then
        "$SM" -C "$D/sendmail.cf" -bp >&2; cat "$D/daemon.log" >&2; ls -la "$D/mqueue" >&2
    fi
    stop_pid "$pid"
}

# --- OpenSMTPD ------------------------------------------------------------
inside_opensmtpd() {
    local SMTPD="$WORK/root/usr/sbin/smtpd" D="$WORK/os" settings pid version u
    for u in opensmtpd opensmtpq; do
        getent passwd "$u" >/dev/null || useradd --system --user-group --no-create-home \
            --home-dir /var/lib/opensmtpd/empty --shell /usr/sbin/nologin "$u"
    done
    mkdir -p "$D" /var/lib/opensmtpd/empty /usr/libexec/opensmtpd
    # its compiled-in helpers (mail.maildir, ...), into the /usr overlay
    cp -a "$WORK/root/usr/libexec/opensmtpd/." /usr/libexec/opensmtpd/
    rm -rf /var/spool/smtpd   # smtpd creates it with the modes it insists on
    # STARTTLS fails in Debian 12's 6.8.0p2 (RSA or ECDSA key alike): its
    # privilege-separated signing breaks under OpenSSL 3 ("missing private
    # key", "SSL routines::EVP lib"; OpenSMTPD issues #1171, #1239, fixed in
    # 7.x).  The recording keeps that failure; AUTH needs TLS, so no AUTH either.
    cp "$WORK/cert.pem" "$WORK/key.pem" "$D/"
    chmod 0600 "$D/key.pem"
    printf 'ada %s\n' "$(openssl passwd -6 secret)" >"$D/creds"
    chmod 0640 "$D/creds"
    chgrp opensmtpd "$D/creds"
    settings="$(cat <<EOF
pki mx.lab.example.org cert "<dir>/cert.pem"
pki mx.lab.example.org key "<dir>/key.pem"
table creds file:<dir>/creds
listen on 127.0.0.1 port $PORT tls pki mx.lab.example.org auth-optional <creds> hostname mx.lab.example.org
action "local" maildir "<mail>/%{user.username}"
match from any for domain "lab.example.org" action "local"
EOF
)"
    sed -e "s|<dir>|$D|g" -e "s|<mail>|$WORK/mail|" <<<"$settings" >"$D/smtpd.conf"
    "$SMTPD" -n -f "$D/smtpd.conf" >&2 || die "smtpd.conf does not parse"
    version="$({ "$SMTPD" -h 2>&1 || true; } | sed -n 's/^version: OpenSMTPD \([^ ]*\).*/\1/p' | head -n1)"
    "$SMTPD" -d -v -f "$D/smtpd.conf" >"$D/daemon.log" 2>&1 &
    pid=$!
    wait_greets "$PORT" || { cat "$D/daemon.log" >&2; die "smtpd did not answer"; }
    record "OpenSMTPD $version (Debian opensmtpd $(cat "$WORK/debver.opensmtpd"))" \
        "smtpd.conf (smtpd -d -v; STARTTLS fails in this build under OpenSSL 3, OpenSMTPD issues #1171/#1239, so TLS and AUTH sessions have no delivery; <dir>, <mail> are paths in the temp directory; creds: ada with a SHA-512 crypt of the password; bob and carol are local users):
$settings"
    [[ -z ${DEBUG:-} ]] || grep -i "io-error\|warn" "$D/daemon.log" | head -30 >&2
    stop_pid "$pid"
}

# --- clamsmtpd in front of Postfix -----------------------------------------
inside_clamsmtpd() {
    local pf_settings settings clamd_pid clamsmtpd_pid D="$WORK/cs"
    mkdir -p "$D/clamdb" "$D/tmp"
    python3 - "$D/clamdb/lab.ndb" <<'EOF'
import sys
eicar = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
open(sys.argv[1], "w").write("Lab.Test.EICAR:0:*:" + eicar.hex() + "\n")
EOF
    printf 'LocalSocket %s\nDatabaseDirectory %s\nTemporaryDirectory %s\nForeground yes\nLogFile %s\n' \
        "$D/clamd.ctl" "$D/clamdb" "$D/tmp" "$D/clamd.log" >"$D/clamd.conf"
    "$WORK/root/usr/sbin/clamd" -c "$D/clamd.conf" >/dev/null 2>&1 &
    clamd_pid=$!
    for _ in $(seq 1 150); do [[ -S $D/clamd.ctl ]] && break; sleep 0.2; done
    [[ -S $D/clamd.ctl ]] || die "clamd did not start"
    pf_settings="$(postfix_settings "")"
    postfix_instance "$WORK/pf" "$BACKEND_PORT" "$pf_settings"
    settings="OutAddress: 127.0.0.1:$BACKEND_PORT
Listen: 127.0.0.1:$PORT
Action: drop
Header: X-Virus-Scanned: ClamAV using ClamSMTP
XClient: off"
    { printf '%s\n' "$settings"; echo "ClamAddress: $D/clamd.ctl"; echo "TempDirectory: $D/tmp"; } \
        >"$D/clamsmtpd.conf"
    "$WORK/root/usr/sbin/clamsmtpd" -f "$D/clamsmtpd.conf" -d 3 >"$D/clamsmtpd.log" 2>&1 &
    clamsmtpd_pid=$!
    wait_greets "$PORT" || { cat "$D/clamsmtpd.log" >&2; die "clamsmtpd did not answer"; }
    record "clamsmtpd $(cut -d- -f1 "$WORK/debver.clamsmtp") (Debian clamsmtp $(cat "$WORK/debver.clamsmtp")) in front of Postfix $("$POSTCONF" -dh mail_version)" \
        "clamsmtpd.conf (clamsmtpd -f clamsmtpd.conf -d 3; plus ClamAddress and TempDirectory):
$settings
clamd: a one-signature database (EICAR), as in ../record_clamsmtpd.sh
backend: Postfix on 127.0.0.1:$BACKEND_PORT, main.cf:
$pf_settings"
    stop_pid "$clamsmtpd_pid"
    postfix_stop "$WORK/pf"
    stop_pid "$clamd_pid"
}

# ----------------------------------------------------------------- outside

packages_for() {
    case $1 in
        postfix|postfix-headers) echo sasl2-bin ;;
        exim) echo exim4-daemon-light exim4-base ;;
        sendmail) echo sendmail-bin sendmail-cf sasl2-bin ;;
        opensmtpd) echo opensmtpd ;;
        clamsmtpd) echo clamsmtp clamav-daemon sasl2-bin ;;
    esac
}

libraries_for() {
    case $1 in
        exim) echo libdb5.3 libgnutls-dane0 libgnutls30 libidn12 libidn2-0 libnsl2 libpcre2-8-0 libcrypt1 ;;
        sendmail) echo m4 libdb5.3 libldap-2.5-0 liblockfile1 libnsl2 libsasl2-2 libssl3 libwrap0 libsasl2-modules libsasl2-modules-db ;;
        opensmtpd) echo libdb5.3 libevent-2.1-7 libpam0g libssl3 zlib1g libcrypt1 ;;
        clamsmtpd) echo libclamav12 libcurl4 libncurses6 libsystemd0 libtinfo6 zlib1g libsasl2-modules libsasl2-modules-db ;;
        postfix*) echo libsasl2-modules libsasl2-modules-db ;;
    esac
}

record_one() {
    local prog=$1 p
    WORK="$(mktemp -d /run/labsmtp-trace.XXXXXX)"
    chmod 0755 "$WORK"
    trap 'rm -rf "$WORK"' EXIT
    # shellcheck disable=SC2046
    apt_install python3 openssl iproute2 util-linux $(libraries_for "$prog")
    # shellcheck disable=SC2046
    fetch_extract "$WORK" $(packages_for "$prog")
    for p in $(packages_for "$prog"); do deb_version "$WORK" "$p" >"$WORK/debver.$p"; done
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=mx.lab.example.org \
        -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
    unshare --pid --fork --mount-proc --mount --net --uts --ipc --propagation private \
        env WORK="$WORK" DEBUG="${DEBUG:-}" bash "$HERE/record_trace.sh" --inside "$prog"
    [[ -s $WORK/out.json ]] || die "$prog: no recording"
    case $prog in
        postfix) out=postfix-3.7.json ;;
        postfix-headers) out=postfix-3.7-headers.json ;;
        exim) out=exim-4.96.json ;;
        sendmail) out=sendmail-8.17.json ;;
        opensmtpd) out=opensmtpd-6.8.json ;;
        clamsmtpd) out=clamsmtpd-1.10.json ;;
    esac
    cp "$WORK/out.json" "$HERE/$out"
    echo "$prog: $HERE/$out" >&2
    rm -rf "$WORK"
    trap - EXIT
}

if [[ ${1:-} == --inside ]]; then
    [[ -n ${WORK:-} ]] || die "WORK is not set"
    ns_setup
    "inside_$2"
    exit 0
fi

need_root
trap 'exit 130' INT TERM
for prog in "${@:-${ALL[@]}}"; do
    [[ " ${ALL[*]} " == *" $prog "* ]] || die "unknown program $prog (one of: ${ALL[*]})"
    record_one "$prog"
done
