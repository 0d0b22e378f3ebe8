#!/bin/sh
# Can Mosquitto write its persistence directory, as the user it runs as?
#
#   deploy/check-mosquitto.sh [CONFIG]     (default /etc/mosquitto/mosquitto.conf; run as root)
#
# Why: started as root, Mosquitto drops to its `user` (default `mosquitto`) before it saves
# anything. When that user cannot write `persistence_location`, every save fails with a line
# in Mosquitto's own log and nothing else: clients see no error, the broker runs on, and the
# first crash or kill loses every persistent session and every queued QoS 1 message (the
# readings held for an absent collector). docs/operations.md, "Mosquitto's persistence".
#
# Reads CONFIG and the files of its `include_dir`s (the last value of a key wins), then, as
# that user, creates and removes a file in the directory. Exit 0: it can (one line, OK);
# 1: it cannot, or persistence is off (one line: why, and the fix); 2: the check could not be
# made. POSIX sh: runs on Debian and in the eclipse-mosquitto (Alpine) image alike.
set -u

persistence=false
location=
persistence_file=mosquitto.db
user=mosquitto

fail() {
    echo "check-mosquitto: FAIL: $*"
    exit 1
}

cannot() {
    echo "check-mosquitto: cannot check: $*" >&2
    exit 2
}

read_conf() {
    [ -r "$1" ] || cannot "cannot read $1"
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in '#'*) continue ;; esac
        set -f # split the line into key and value, without expanding a `*` in it
        # shellcheck disable=SC2086
        set -- $line
        set +f
        [ $# -ge 2 ] || continue
        key=$1
        shift
        case $key in
            persistence) persistence=$1 ;;
            persistence_location) location=$* ;;
            persistence_file) persistence_file=$* ;;
            user) user=$1 ;;
            include_dir)
                for included in "$*"/*.conf; do
                    [ -e "$included" ] && read_conf "$included"
                done
                ;;
        esac
    done <"$1"
}

conf=${1:-/etc/mosquitto/mosquitto.conf}
read_conf "$conf"

[ "$persistence" = true ] ||
    fail "persistence is off in $conf: queued QoS 1 messages live in memory only (set persistence true)"
[ -n "$location" ] ||
    fail "persistence_location is not set in $conf: Mosquitto would write $persistence_file in its working directory"
case $location in
    */) ;;
    *) fail "persistence_location $location does not end in /: Mosquitto would write $location$persistence_file" ;;
esac
[ -d "$location" ] ||
    fail "$location does not exist (Mosquitto does not create it): install -d -o $user -g $user -m 750 $location"
id "$user" >/dev/null 2>&1 || cannot "no user $user on this machine (the user of $conf)"

# As `user`: create and remove a file where Mosquitto writes `<file>.new` before renaming it,
# and read the file it restores from at start.
probe="$location.check-mosquitto.$$"
db="$location$persistence_file"
quote() { printf "'%s'" "$(printf %s "$1" | sed "s/'/'\\\\''/g")"; }
test_as_user="touch $(quote "$probe") && rm -f $(quote "$probe") && { [ ! -e $(quote "$db") ] || [ -r $(quote "$db") ]; }"
if [ "$(id -u)" = 0 ] && [ "$user" != root ]; then
    su -s /bin/sh "$user" -c "$test_as_user" >/dev/null 2>&1
elif [ "$(id -un)" = "$user" ] || [ "$(id -u)" = 0 ]; then
    sh -c "$test_as_user" >/dev/null 2>&1
else
    cannot "run this as root (or as $user): Mosquitto runs as $user"
fi
if [ $? -ne 0 ]; then
    rm -f "$probe" 2>/dev/null
    owner=$(ls -ld "$location" | awk '{print $3 ":" $4 " " $1}')
    fail "user $user cannot write $location (owner $owner) or read $db: Mosquitto would persist nothing and a crash loses every queued message; fix: chown -R $user: $location"
fi
echo "check-mosquitto: OK: user $user can write $location (persistence true, $conf)"
