#!/usr/bin/env bash
# Runs one command inside a throwaway QEMU guest whose kernel has sch_netem,
# for hosts (and CI runners) whose own kernel lacks it. The guest sees the
# host's / read-only over 9p with a tmpfs on top (so host binaries, tc, ip,
# test binaries run unchanged and the host is never written); results
# come back through --rw.
#
#   netem-scripts/vm-run.sh [--mem MiB] [--cpus N] [--timeout S] [--kernel-root DIR]
#                           [--rw DIR] [--env NAME=VALUE ...] -- CMD [ARGS...]
#
# --rw DIR mounts the host's DIR read-write at the same path in the guest
# (for results); --env sets a variable for the command (PATH, HOME and CI
# are passed on anyway). The command runs as root in the current directory.
# Exit status: the command's, or 124 if the guest did not finish in time,
# or 2 for a set-up problem (said on stderr). The command's output is this
# script's output. Needs: qemu-system-x86, an installed Debian -amd64 kernel
# with its modules, busybox-static and cpio:
#   apt-get install qemu-system-x86 linux-image-amd64 busybox-static cpio
# The newest installed -amd64 kernel is used, or with --kernel-root the
# newest in DIR, a Debian kernel package unpacked with `dpkg -x PKG DIR`
# (another release's, say, uninstalled; its module index is made there on
# first use). Its uncompressed image and an initramfs are built once and
# cached in ${XDG_CACHE_HOME:-~/.cache}/transbench-vm.
set -euo pipefail

mem=2048
cpus=2
timeout=600
rw=
kroot=
envs=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --mem) mem=$2; shift 2 ;;
        --cpus) cpus=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --) shift; break ;;
        --rw) rw=$(cd "$2" && pwd); shift 2 ;;
        --kernel-root) kroot=$(cd "$2" && pwd); shift 2 ;;
        --env) envs+=("$2"); shift 2 ;;
        -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "vm-run: unknown option $1 (the command goes after --)" >&2; exit 2 ;;
    esac
done
if [[ $# -eq 0 ]]; then
    echo "vm-run: no command: netem-scripts/vm-run.sh -- CMD [ARGS...]" >&2
    exit 2
fi

missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v cpio >/dev/null || missing+=(cpio)
busybox=$(command -v busybox || true)
if [[ -z "$busybox" ]] || ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
    [[ -x /bin/busybox ]] && file -L /bin/busybox | grep -q 'statically linked' && busybox=/bin/busybox || missing+=(busybox-static)
fi
kernel=$(find "$kroot/boot" -maxdepth 1 -name 'vmlinuz-*-amd64' -printf '%f\n' 2>/dev/null | sed 's/^vmlinuz-//' | sort -V | tail -n 1)
modules=$kroot/lib/modules/$kernel
if [[ -n "$kroot" ]] && [[ -z "$kernel" || ! -d $modules ]]; then
    echo "vm-run: --kernel-root $kroot holds no boot/vmlinuz-*-amd64 with its lib/modules (dpkg -x a linux-image-*-amd64 package there)" >&2
    exit 2
fi
[[ -n "$kernel" && -d $modules ]] || missing+=(linux-image-amd64)
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "vm-run: missing ${missing[*]}: apt-get install ${missing[*]}" >&2
    exit 2
fi
if [[ -n "$kroot" && ! -s $modules/modules.dep ]]; then
    # dpkg -x skips the package's depmod; modprobe in the guest needs it.
    depmod -b "$kroot" "$kernel" || { echo "vm-run: depmod -b $kroot $kernel failed" >&2; exit 2; }
fi
if ! find "$modules" -name 'sch_netem.ko*' | grep -q .; then
    echo "vm-run: kernel $kernel has no sch_netem module; install a Debian -amd64 kernel that does" >&2
    exit 2
fi

# Bump when the initramfs below changes, so caches rebuild.
layout=5
cache=${XDG_CACHE_HOME:-$HOME/.cache}/transbench-vm/$kernel-$layout
mkdir -p "$cache"

# The uncompressed kernel: QEMU boots an ELF vmlinux through PVH directly,
# which saves the guest's own decompression (seconds under TCG).
if [[ ! -s $cache/vmlinux ]]; then
    image=$kroot/boot/vmlinuz-$kernel
    # Debian compresses with xz (6.1) or zstd (6.12): find whichever
    # stream comes first.
    offset=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$image" | head -n 1 | cut -d: -f1 || true)
    unpack=(xz -dc)
    if [[ -z "$offset" ]]; then
        offset=$(LC_ALL=C grep -obUaP '\x28\xb5\x2f\xfd' "$image" | head -n 1 | cut -d: -f1 || true)
        unpack=(zstd -qdc)
    fi
    if [[ -z "$offset" ]]; then
        echo "vm-run: no xz or zstd stream in $image: cannot extract vmlinux" >&2
        exit 2
    fi
    if ! command -v "${unpack[0]}" >/dev/null; then
        echo "vm-run: $image is ${unpack[0]}-compressed: apt-get install ${unpack[0]/xz/xz-utils}" >&2
        exit 2
    fi
    tail -c +"$((offset + 1))" "$image" | "${unpack[@]}" 2>/dev/null > "$cache/vmlinux.tmp" || true
    if ! head -c 4 "$cache/vmlinux.tmp" | grep -q 'ELF'; then
        echo "vm-run: $image did not decompress to an ELF kernel" >&2
        rm -f "$cache/vmlinux.tmp"
        exit 2
    fi
    mv "$cache/vmlinux.tmp" "$cache/vmlinux"
fi

# The initramfs: static busybox, the modules that mount the host's root
# (virtio, 9p, overlay), and an init that switches into it.
if [[ ! -s $cache/initramfs.cpio.gz ]]; then
    stage=$(mktemp -d)
    trap 'rm -rf "$stage"' EXIT
    mkdir -p "$stage"/{bin,dev,proc,sys,lower,upper,newroot,modules}
    cp "$busybox" "$stage/bin/busybox"
    for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p overlay; do
        f=$(find "$modules" -name "$m.ko*" | head -n 1)
        [[ -n "$f" ]] || continue
        case "$f" in
            *.xz) xz -dc "$f" > "$stage/modules/$m.ko" ;;
            *.zst) zstd -qdc "$f" > "$stage/modules/$m.ko" ;;
            *) cp "$f" "$stage/modules/$m.ko" ;;
        esac
        echo "$m" >> "$stage/modules/order"
    done
    cat > "$stage/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do insmod /modules/$m.ko || echo "vm-run: insmod $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 hostroot /lower || { echo "vm-run: cannot mount the host's root"; echo o > /proc/sysrq-trigger; }
mount -t tmpfs -o size=1g tmpfs /upper
mkdir -p /upper/up /upper/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/up,workdir=/upper/work /newroot
mkdir -p /newroot/vmout
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 vmout /newroot/vmout
exec switch_root /newroot /bin/bash /vmout/guest.sh
INIT
    chmod +x "$stage/init"
    (cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) > "$cache/initramfs.cpio.gz.tmp"
    mv "$cache/initramfs.cpio.gz.tmp" "$cache/initramfs.cpio.gz"
    rm -rf "$stage"
    trap - EXIT
fi

# The exchange directory: the command, its cwd and environment go in, its
# exit status comes out. Output goes to the guest's serial console.
share=$(mktemp -d)
trap 'rm -rf "$share"' EXIT
{
    echo 'mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev 2>/dev/null'
    # /tmp stays the host's (under the overlay): commands and test binaries
    # often live there. /run is the guest's own, for its namespaces.
    echo 'mount -t tmpfs tmpfs /run; mkdir -p /dev/pts /dev/shm /dev/net /var/run/netns'
    echo 'mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm'
    echo 'ip link set lo up'
    if [[ -n "$kroot" ]]; then
        # modprobe looks in /lib/modules: lend it the unpacked package's.
        printf 'mkdir -p %q && mount --bind %q %q\n' "/lib/modules/$kernel" "$modules" "/lib/modules/$kernel"
    fi
    if [[ -n "$rw" ]]; then
        printf 'mkdir -p %q && mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 rw %q\n' "$rw" "$rw"
    fi
    printf 'export PATH=%q HOME=%q CI=%q\n' "$PATH" "$HOME" "${CI:-}"
    for e in "${envs[@]}"; do printf 'export %q\n' "$e"; done
    printf 'cd %q\n' "$PWD"
    printf '%q ' "$@"
    echo '< /dev/null'
    echo 'echo $? > /vmout/status'
    # Power off is asynchronous: wait for it rather than let init exit,
    # and in a loop of builtins, since a binary run now may be read from a
    # 9p share that is going away (init dies of SIGBUS, and panics).
    echo 'sync; echo o > /proc/sysrq-trigger; while :; do :; done'
} > "$share/guest.sh"

extra=()
append="console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init"
if [[ -n "$rw" ]]; then
    extra+=(-virtfs "local,path=$rw,mount_tag=rw,security_model=none,multidevs=remap")
fi
status=124
if timeout "$timeout" qemu-system-x86_64 \
    -M q35 -accel tcg,thread=multi -cpu max -m "$mem" -smp "$cpus" \
    -kernel "$cache/vmlinux" -initrd "$cache/initramfs.cpio.gz" \
    -append "$append" "${extra[@]}" \
    -nographic -no-reboot -nic none \
    -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$share,mount_tag=vmout,security_model=none,multidevs=remap" \
    </dev/null | tr -d '\r' | sed -u -e '1,/Booting from ROM\.\./{/Booting from ROM\.\./!d;s/.*Booting from ROM\.\.//}' \
        -e '/^\[ *[0-9.]*\] \(sysrq\|reboot\): /d'; then
    [[ -s $share/status ]] && status=$(cat "$share/status")
fi
exit "$status"
