# A throw-away "fresh Debian 12 machine called mx.lab.example.org" for the
# stock recordings (record_stock.sh).  Sourced, not run.
#
# labns_run CMD...       (on the host) run CMD as pid 1 of new pid, mount, net,
#                        uts and ipc namespaces.  When CMD exits the kernel
#                        kills every process left in them: no daemon survives.
# labns_setup WORK HERE  (inside) build the machine:
#   - network: a private stack with only the loopback interface up.  Nothing
#     a daemon sends can leave it, and any port (25 too) is private to it.
#   - host name: mx.lab.example.org (private UTS namespace).
#   - /etc, /usr, /var: overlays whose writes land in WORK/ov (deleted after),
#     so packages can be installed with dpkg and their maintainer scripts run
#     without changing the host.  /run, /dev/shm: empty tmpfs.  /dev: a fresh
#     tmpfs with null, zero, full, random, urandom, tty and pts bound from the
#     host, so that /dev/log can be the lab's own syslog socket.
#   - a fresh Debian's accounts: /etc/passwd and /etc/group are base-passwd's
#     masters (as on a new install); the packages' postinst scripts add their
#     own system users.  The host's extra users are not visible.
#   - no MTA: the host's postfix (installed for smtp-source) is purged inside
#     the overlay; /etc/aliases and /etc/mailname do not exist, as on a machine
#     where no MTA was ever installed, so each package's postinst writes its own.
#   - DNS: /etc/resolv.conf says nameserver 127.0.0.1, where labdns.py serves
#     the lab's offline zone (labsmtp/lab/dnszone.py DEFAULT_ZONE); /etc/hosts has
#     only the localhost lines.  labdns.py also receives /dev/log.

labns_run() {
    # pid 1 is a shell that only waits: a daemon whose parent is pid 1 thinks
    # init started it and stays in the foreground (Exim does).
    unshare --pid --fork --mount-proc --mount --net --uts --ipc --propagation private \
        bash -c '"$@"; rc=$?; exit $rc' labns-init "$@"
}

labns_setup() {
    local work=$1 here=$2 d n
    ip link set lo up
    hostname mx.lab.example.org

    for d in etc usr var; do
        mkdir -p "$work/ov/$d/up" "$work/ov/$d/wk"
        mount -t overlay overlay \
            -o "lowerdir=/$d,upperdir=$work/ov/$d/up,workdir=$work/ov/$d/wk" "/$d"
    done
    mount -t tmpfs -o mode=0755 tmpfs /run
    mkdir -p /run/lock && chmod 1777 /run/lock

    mkdir -p "$work/hostdev"
    mount --rbind /dev "$work/hostdev"
    mount -t tmpfs -o mode=0755 tmpfs /dev
    for n in null zero full random urandom tty; do
        touch "/dev/$n"
        mount --bind "$work/hostdev/$n" "/dev/$n"
    done
    mkdir -p /dev/pts /dev/shm
    mount --bind "$work/hostdev/pts" /dev/pts
    mount -t tmpfs -o mode=1777 tmpfs /dev/shm
    ln -s /proc/self/fd /dev/fd
    ln -s /proc/self/fd/0 /dev/stdin
    ln -s /proc/self/fd/1 /dev/stdout
    ln -s /proc/self/fd/2 /dev/stderr
    ln -s pts/ptmx /dev/ptmx

    # A fresh install's accounts (base-passwd), with unusable passwords.
    cp /usr/share/base-passwd/passwd.master /etc/passwd
    cp /usr/share/base-passwd/group.master /etc/group
    awk -F: '{print $1 ":*:19000:0:99999:7:::"}' /etc/passwd >/etc/shadow
    awk -F: '{print $1 ":*::"}' /etc/group >/etc/gshadow
    chown root:shadow /etc/shadow /etc/gshadow
    chmod 0640 /etc/shadow /etc/gshadow
    # dpkg refuses to run while its stat overrides name accounts that no
    # longer exist: keep only the overrides whose user and group still do.
    awk 'NR == FNR { if (FILENAME ~ /passwd/) u[$1] = 1; else g[$1] = 1; next }
         { split($0, f, " ") } (f[1] in u || f[1] ~ /^#/) && (f[2] in g || f[2] ~ /^#/)' \
        FS=: /etc/passwd FS=: /etc/group FS=' ' /var/lib/dpkg/statoverride \
        >/var/lib/dpkg/statoverride.new
    mv /var/lib/dpkg/statoverride.new /var/lib/dpkg/statoverride

    echo mx.lab.example.org >/etc/hostname
    printf '%s\n' '127.0.0.1	localhost' '::1		localhost ip6-localhost ip6-loopback' \
        'ff02::1		ip6-allnodes' 'ff02::2		ip6-allrouters' >/etc/hosts
    printf '%s\n' '# the lab: labdns.py serves the offline zone here' 'nameserver 127.0.0.1' \
        >/etc/resolv.conf
    rm -f /etc/aliases /etc/aliases.db /etc/mailname
    # Services are never started by maintainer scripts (the daemons are
    # started by hand below, in the foreground where possible).
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d

    python3 "$here/labdns.py" --listen 127.0.0.1:53 --log "$work/dns.log" \
        --syslog /dev/log --syslog-out "$work/syslog" 2>"$work/labdns.err" &
    for n in $(seq 1 100); do
        [[ -S /dev/log ]] && getent hosts mx.lab.example.org >/dev/null && break
        sleep 0.2
    done
    getent hosts mx.lab.example.org >/dev/null || { echo "labns: the lab DNS does not answer" >&2; return 1; }

    # The host's MTA (postfix, for smtp-source) goes: a fresh machine has none.
    if dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q "ok installed"; then
        DEBIAN_FRONTEND=noninteractive dpkg --purge postfix >"$work/purge.log" 2>&1
    fi
}

# labns_install WORK PRESEED: preseed debconf, then dpkg -i every .deb in
# WORK/debs, as apt would on a fresh machine (maintainer scripts included).
labns_install() {
    local work=$1 preseed=$2
    if [[ -n $preseed ]]; then
        printf '%s\n' "$preseed" | debconf-set-selections
    fi
    DEBIAN_FRONTEND=noninteractive dpkg -i "$work"/debs/*.deb >"$work/dpkg.log" 2>&1 || {
        tail -n 40 "$work/dpkg.log" >&2
        return 1
    }
}
