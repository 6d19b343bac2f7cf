# Helpers shared by record_postfix.sh, record_exim.sh, record_sendmail.sh,
# record_opensmtpd.sh and record_clamsmtpd.sh.  Sourced, not run.
#
# These MTAs conflict with the installed postfix as Debian packages, so they
# are never `apt-get install`ed: their .deb files are fetched with
# `apt-get download` and unpacked with `dpkg -x` into a private directory,
# and the binaries are run from there with a private configuration.  Only
# their shared-library dependencies (which conflict with nothing) are
# installed normally.

die() { echo "${0##*/}: $*" >&2; exit 1; }

need_root() { [[ $EUID -eq 0 ]] || die "must run as root"; }

ensure_apt_lists() {
    if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then  # (.lz4 on Debian 12)
        apt-get update -qq
    fi
}

# apt_install PKG...: ordinary installs of non-MTA dependencies (libraries).
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$p")
    done
    if ((${#missing[@]})); then
        ensure_apt_lists
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${missing[@]}" >&2
    fi
}

# fetch_extract DIR PKG...: apt-get download each PKG into DIR/debs and
# unpack it into DIR/root (never installs it).
fetch_extract() {
    local dir=$1; shift
    mkdir -p "$dir/debs" "$dir/root"
    ensure_apt_lists
    (cd "$dir/debs" && apt-get download "$@" >&2) \
        || { apt-get update -qq; (cd "$dir/debs" && apt-get download "$@" >&2); }
    local p
    for p in "$@"; do
        dpkg -x "$dir"/debs/"${p}"_*.deb "$dir/root"
    done
}

# deb_version DIR PKG: the Debian version of a downloaded package.
deb_version() { dpkg-deb -f "$1"/debs/"$2"_*.deb Version; }

# exim_extract DIR: Debian 12's Exim 4.96 (exim4-daemon-light) unpacked into
# DIR/root, binary DIR/root/usr/sbin/exim4.  Installs the libraries it links
# (ordinary packages) and creates the system user "Debian-exim" that the binary
# looks up at start-up if it is missing (the only change outside DIR).  Shared
# by record_exim.sh (Exim as a server) and tests/mta_clients.py (as a client).
exim_extract() {
    local dir=$1
    apt_install libdb5.3 libgnutls-dane0 libgnutls30 libidn12 libidn2-0 \
        libnsl2 libpcre2-8-0 libcrypt1
    fetch_extract "$dir" exim4-daemon-light exim4-base
    getent passwd Debian-exim >/dev/null || \
        useradd --system --user-group --no-create-home --home-dir /var/spool/exim4 \
            --shell /usr/sbin/nologin Debian-exim
}

port_open() {
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.settimeout(1)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
s.close()
EOF
}

# Reads the greeting and says QUIT, so that the probe is a clean session.
port_greets() {
    python3 - "$1" <<'EOF'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    f = s.makefile("rb")
    line = f.readline()
    while line[3:4] == b"-":
        line = f.readline()
    if not line.startswith(b"220"):
        sys.exit(1)
    s.sendall(b"QUIT\r\n")
    f.readline()
    s.close()
except OSError:
    sys.exit(1)
EOF
}

wait_greets() {
    local port=$1 i
    for i in $(seq 1 100); do
        port_greets "$port" && return 0
        sleep 0.2
    done
    return 1
}

# stop_pid PID: TERM, wait up to 10 s, then KILL.
stop_pid() {
    local pid=$1 i
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
}
