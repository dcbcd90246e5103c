#!/bin/sh
# Turn a Raspberry Pi OS Lite system into a Hearth server, once:
#
#   sudo hearth-firstboot [hearth_VERSION_ARCH.deb]
#
#  1. installs the hearth package (the .deb given, or the newest one in
#     /var/cache/hearth/) unless it is installed already;
#  2. keeps writes off the SD card: journald in RAM (16 MiB), `noatime` on /;
#  3. picks the server name: `server_name` from the settings file, else
#     <hostname>.local;
#  4. writes /etc/hearth/hearth.toml: that name, listening on the LAN
#     (0.0.0.0:8008), registration by token, mDNS on unless avahi-daemon
#     already answers for <hostname>.local;
#  5. unless `calls=no` in the settings file, sets up a TURN relay for
#     calls: installs Debian's coturn if it is missing (needs the internet;
#     without it calls still work inside the LAN), writes
#     /etc/turnserver.conf with a generated shared secret that also goes
#     into hearth.toml (turn_shared_secret, turn_uris), starts coturn;
#  6. creates the first admin account (`admin` and `admin_password` from the
#     settings file; a generated password otherwise) and a registration
#     token, both saved in /root/hearth-first-admin.txt (mode 0600);
#  7. starts the service and prints how to connect.
#
# The settings file is hearth.txt on the boot partition (/boot/firmware),
# editable from a PC before the first boot; see board/raspberry-pi/hearth.txt.
# The password is deleted from it once used. Run again, the script changes
# nothing once a database exists: it prints how to connect and exits.
#
# For tests, HEARTH_ROOT=DIR provisions the system under DIR instead of /
# (dpkg --root, no systemctl, nothing started) and HEARTH_BOOT=DIR names the
# boot partition (default: DIR/boot/firmware, or DIR/boot on older images).
set -eu

root=${HEARTH_ROOT:-}
[ "$root" = / ] && root=
if [ -n "${HEARTH_BOOT:-}" ]; then
    boot=$HEARTH_BOOT
elif [ -d "$root/boot/firmware" ]; then
    boot=$root/boot/firmware
else
    boot=$root/boot
fi
settings=$boot/hearth.txt
config=$root/etc/hearth/hearth.toml
data=$root/var/lib/hearth
credentials=$root/root/hearth-first-admin.txt
umask 027

say() { printf 'hearth-firstboot: %s\n' "$*"; }
die() { say "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (sudo)"
systemd_running() { [ -z "$root" ] && [ -d /run/systemd/system ]; }

# The value of KEY in the settings file: the last `KEY=value` line, with
# spaces around `=` and Windows line ends (a PC's editor) tolerated.
setting() {
    [ -f "$settings" ] || return 0
    tr -d '\r' <"$settings" | sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" |
        tail -n 1 | sed 's/[[:space:]]*$//'
}

# Sets KEY to the TOML VALUE in the config: replaces the key's line, or
# its commented-out example, or appends it.
set_key() {
    if grep -q "^$1 = " "$config"; then
        sed -i "s|^$1 = .*|$1 = $2|" "$config"
    elif grep -q "^# $1 = " "$config"; then
        sed -i "0,/^# $1 = .*/s||$1 = $2|" "$config"
    else
        printf '%s = %s\n' "$1" "$2" >>"$config"
    fi
}

hearth() { "$root/usr/bin/hearth" "$@" --config "$config" --data-dir "$data"; }

connect_help() {
    name=$(sed -n 's/^server_name = "\(.*\)"$/\1/p' "$config")
    port=$(sed -n 's/^listen = ".*:\([0-9]*\)"$/\1/p' "$config")
    scheme=http
    grep -q '^tls_cert = ' "$config" && scheme=https
    echo
    echo "Hearth is set up as $name."
    echo "  In Element or FluffyChat on a phone on this network, sign in with"
    echo "  homeserver $scheme://$name:${port:-8008}"
    if [ -z "$root" ] && command -v hostname >/dev/null; then
        for ip in $(hostname -I 2>/dev/null); do
            case "$ip" in
                *:*) ;;
                *) echo "  (or $scheme://$ip:${port:-8008} where .local names do not resolve)" ;;
            esac
        done
    fi
    echo "  The admin account, its password and a registration token for others"
    echo "  are in /root/hearth-first-admin.txt (sudo cat /root/hearth-first-admin.txt)."
    echo "  More: /usr/share/doc/hearth/README.board.md"
}

# 1. The package.
if [ ! -x "$root/usr/bin/hearth" ]; then
    deb=${1:-}
    if [ -z "$deb" ]; then
        deb=$(find "$root/var/cache/hearth" -maxdepth 1 -name 'hearth_*.deb' 2>/dev/null | sort -V | tail -n 1)
    fi
    if [ -z "$deb" ] || [ ! -f "$deb" ]; then
        die "hearth is not installed and no .deb was given or found in /var/cache/hearth"
    fi
    say "installing $(basename "$deb")"
    if [ -n "$root" ]; then
        dpkg --root="$root" --force-script-chrootless -i "$deb"
    else
        dpkg -i "$deb"
    fi
fi
[ -f "$config" ] || die "$config is missing; reinstall the hearth package"

if [ -e "$data/hearth.redb" ]; then
    say "already set up ($data/hearth.redb exists); nothing changed"
    connect_help
    exit 0
fi

# 2. The SD card.
mkdir -p "$root/etc/systemd/journald.conf.d"
cat >"$root/etc/systemd/journald.conf.d/hearth-sd-card.conf" <<'CONF'
# Written by hearth-firstboot: keep the journal in RAM so logging does not
# wear the SD card (lost at reboot). To keep logs across reboots instead:
# Storage=persistent and SystemMaxUse=50M.
[Journal]
Storage=volatile
RuntimeMaxUse=16M
CONF
chmod 0644 "$root/etc/systemd/journald.conf.d/hearth-sd-card.conf"
if [ -f "$root/etc/fstab" ]; then
    awk 'BEGIN { OFS = "\t" }
         !/^[[:space:]]*#/ && $2 == "/" && $4 !~ /(^|,)noatime(,|$)/ {
             sub(/(^|,)(relatime|strictatime)(,|$)/, ",", $4); sub(/^,|,$/, "", $4)
             $4 = ($4 == "" ? "noatime" : $4 ",noatime") }
         { print }' "$root/etc/fstab" >"$root/etc/fstab.hearth" &&
        cat "$root/etc/fstab.hearth" >"$root/etc/fstab" && rm "$root/etc/fstab.hearth"
fi
if systemd_running; then
    systemctl restart systemd-journald || true
fi

# 3. The server name.
hostname=$(tr -d '[:space:]' <"$root/etc/hostname" 2>/dev/null || true)
[ -n "$root" ] || hostname=$(hostname 2>/dev/null || echo "$hostname")
hostname=$(printf '%s' "${hostname:-hearth}" | tr '[:upper:]' '[:lower:]')
name=$(setting server_name | tr '[:upper:]' '[:lower:]')
[ -n "$name" ] || name=$hostname.local
echo "$name" | grep -Eqx '[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*' ||
    die "server_name $name is not a host name"
admin=$(setting admin | tr '[:upper:]' '[:lower:]')
admin=${admin:-admin}
echo "$admin" | grep -Eqx '[a-z0-9._=/+-]+' || die "admin $admin is not a valid user name"
password=$(setting admin_password)
[ -n "$password" ] || password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')

# 4. The configuration.
say "server name $name"
set_key server_name "\"$name\""
set_key listen '"0.0.0.0:8008"'
set_key registration '"token"'
# Raspberry Pi OS's avahi-daemon announces <hostname>.local already; two
# answers for one name are harmless, but one is enough.
if [ "$name" != "$hostname.local" ] || [ ! -x "$root/usr/sbin/avahi-daemon" ]; then
    case "$name" in
        *.local) set_key mdns true ;;
    esac
fi

# 5. The TURN relay for calls, unless the settings file says calls=no.
# coturn's defaults are tightened: it relays only to addresses outside the
# LAN (so nobody can use it to reach the Pi or the home network), uses a
# small relay port range for the home router, and no TLS (no certificate
# exists yet).
calls=$(setting calls | tr '[:upper:]' '[:lower:]')
turn_conf=$root/etc/turnserver.conf
if [ "$calls" = no ]; then
    say "calls=no: no TURN relay"
else
    if [ ! -x "$root/usr/bin/turnserver" ] && [ -z "$root" ] && command -v apt-get >/dev/null; then
        say "installing coturn (the TURN relay for calls)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coturn; } \
            >/dev/null 2>&1 ||
            say "coturn could not be installed (no internet?); calls work inside the LAN only"
    fi
    if [ -x "$root/usr/bin/turnserver" ]; then
        turn_secret=$(head -c 48 /dev/urandom | base64 | tr -d '/+=\n')
        # The Pi's LAN address: two clients relayed here reach each other
        # through it, so it stays allowed.
        lan_ip=
        if [ -z "$root" ] && command -v hostname >/dev/null; then
            for ip in $(hostname -I 2>/dev/null); do
                case "$ip" in *:*) ;; *) lan_ip=$ip; break ;; esac
            done
        fi
        if [ -f "$turn_conf" ] && [ ! -f "$turn_conf.orig" ]; then
            cp -p "$turn_conf" "$turn_conf.orig"
        fi
        # A new file, so the umask (027) applies: the old one was world-readable.
        rm -f "$turn_conf"
        {
            cat <<CONF
# Written by hearth-firstboot: coturn as the TURN relay for Hearth's calls
# (/usr/share/doc/hearth/README.board.md, "Calls"); the package's file is
# $turn_conf.orig. static-auth-secret is also turn_shared_secret in
# /etc/hearth/hearth.toml: change both together, then restart both.

# Clients connect here (UDP and TCP); forward both on the home router.
listening-port=3478
# Relayed media uses these UDP ports; forward them too.
min-port=49160
max-port=49200

# Time-limited credentials from Hearth's /voip/turnServer.
use-auth-secret
static-auth-secret=$turn_secret
realm=$name
fingerprint

# Relay only to the internet: never to the Pi itself, multicast or the LAN.
# coturn 4.6 refuses loopback peers by default (its old no-loopback-peers
# option is gone); the ranges below refuse them on any version.
no-multicast-peers
denied-peer-ip=0.0.0.0-0.255.255.255
denied-peer-ip=10.0.0.0-10.255.255.255
denied-peer-ip=100.64.0.0-100.127.255.255
denied-peer-ip=127.0.0.0-127.255.255.255
denied-peer-ip=169.254.0.0-169.254.255.255
denied-peer-ip=172.16.0.0-172.31.255.255
denied-peer-ip=192.168.0.0-192.168.255.255
denied-peer-ip=::1
denied-peer-ip=fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff
denied-peer-ip=fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff
CONF
            if [ -n "$lan_ip" ]; then
                printf '# The Pi itself, for two clients relayed here.\nallowed-peer-ip=%s\n' "$lan_ip"
            fi
            cat <<'CONF'

# A family's calls, not a public relay: a few allocations per user.
user-quota=12
total-quota=120

# No TLS until a certificate is configured: add cert= and pkey= (PEM files
# the turnserver user can read), remove no-tls and no-dtls, forward TCP
# 5349, and add "turns:<name>:5349?transport=tcp" to turn_uris.
no-tls
no-dtls
no-cli

# Behind a home router, relay addresses must be the public one:
# external-ip=<public IP>/<the Pi's LAN IP>
CONF
        } >"$turn_conf"
        # It holds the secret: readable by coturn's group only (umask 027),
        # looked up in the system being set up, like the hearth user below.
        turn_gid=$(sed -n 's/^turnserver:[^:]*:\([0-9]*\):.*/\1/p' "$root/etc/group")
        [ -z "$turn_gid" ] || chgrp "$turn_gid" "$turn_conf"
        set_key turn_uris "[\"turn:$name:3478?transport=udp\", \"turn:$name:3478?transport=tcp\"]"
        set_key turn_shared_secret "\"$turn_secret\""
        say "calls: TURN relay (coturn) on port 3478, relay ports 49160-49200"
        if systemd_running; then
            systemctl enable coturn.service 2>/dev/null || true
            systemctl restart coturn.service || say "coturn did not start: journalctl -u coturn"
        fi
    else
        say "coturn is not installed: no TURN relay (calls work inside the LAN)"
    fi
fi

# 6. The first account, while the service is stopped (admin commands refuse
# a running server's database), owned by hearth like everything it writes.
if systemd_running; then
    systemctl stop hearth.service || true
fi
owner=$(sed -n 's/^hearth:[^:]*:\([0-9]*\):\([0-9]*\):.*/\1:\2/p' "$root/etc/passwd")
[ -n "$owner" ] || die "no hearth user in $root/etc/passwd"
secret=$(mktemp -d)
trap 'rm -rf "$secret"' EXIT
printf '%s\n' "$password" >"$secret/password"
hearth user add "$admin" --admin --password-file "$secret/password" >/dev/null
token=$(hearth registration-token create --uses 10)
chown -R "$owner" "$data"
mkdir -p "$root/root"
(
    umask 077
    cat >"$credentials" <<TXT
Hearth, set up by hearth-firstboot on $(date -u '+%Y-%m-%d %H:%M UTC')
server name:        $name
homeserver URL:     http://$name:8008
admin account:      @$admin:$name
admin password:     $password
registration token: $token   (10 sign-ups; more: hearth registration-token create)
TXT
)
if [ -f "$settings" ] && grep -q '^[[:space:]]*admin_password' "$settings"; then
    sed -i 's/^[[:space:]]*admin_password[[:space:]]*=.*/admin_password=/' "$settings"
fi

# 7. Start.
if systemd_running; then
    systemctl enable hearth.service
    systemctl start hearth.service
    systemctl disable hearth-firstboot.service 2>/dev/null || true
else
    say "not starting anything under $root"
fi
connect_help
