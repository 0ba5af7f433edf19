#!/usr/bin/env bash
# Shared by the netem scripts: reading a profile, and failing clearly.
# Source it; do not run it.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
profiles="$here/profiles"

die() {
    echo "error: $*" >&2
    exit 1
}

need_root() {
    [ "$(id -u)" = 0 ] || die "$(basename "$0") needs root (tc and ip change the network)"
}

# profile_args NAME|FILE|"netem words..." -> the netem words, comments gone.
# A name is looked up in profiles/ (the same files linkemu reads).
profile_args() {
    local p=$1 file=""
    if [ -f "$profiles/$p.netem" ]; then
        file="$profiles/$p.netem"
    elif [ -f "$p" ]; then
        file=$p
    fi
    if [ -n "$file" ]; then
        sed -e 's/#.*//' "$file" | tr -s ' \t\n' ' ' | sed -e 's/^ //' -e 's/ $//'
    else
        # Inline netem words, as given.
        printf '%s' "$p"
    fi
}

# ns_exists NAME: whether network namespace NAME exists (exact name).
ns_exists() {
    ip netns list | awk '{print $1}' | grep -qxF "$1"
}

# offloads_off DEV: loss and delay must hit real packets, not aggregates.
offloads_off() {
    command -v ethtool >/dev/null || die "ethtool is needed to turn offloads off (apt-get install ethtool)"
    ethtool -K "$1" gso off gro off tso off >/dev/null 2>&1 || true
    ethtool -K "$1" tx-udp-segmentation off >/dev/null 2>&1 || true
}

# netem_or_die DEV WORDS... : tc netem on DEV's egress, or a clear reason.
netem_or_die() {
    local dev=$1 netns_args=()
    shift
    if [ -n "${NETNS:-}" ]; then netns_args=(-n "$NETNS"); fi
    local out
    # shellcheck disable=SC2068 # netem words must split as tc expects
    if ! out=$(tc "${netns_args[@]}" qdisc replace dev "$dev" root netem $@ 2>&1); then
        case $out in
            *"kind is unknown"*)
                die "this kernel has no sch_netem ($out). Use transbench's built-in emulator instead: transbench run --impair \"$*\"" ;;
            *) die "tc qdisc replace dev $dev root netem $*: $out" ;;
        esac
    fi
}
