#!/usr/bin/env bash
# Runs a command against a RAM-backed block device: an ext4 file system on a
# loop device over a file in /dev/shm, with a chosen read_ahead_kb (128 KiB,
# Linux's default for NVMe drives, unless told otherwise). Root only.
#
#   bench/loopdev.sh [-s SIZE] [-r READ_AHEAD_KB] [-c FILE]... -- COMMAND [ARG]...
#
#   -s SIZE           size of the device (truncate syntax: 2G, 512M); default 2G
#   -r READ_AHEAD_KB  the device's read_ahead_kb; default 128
#   -c FILE           copy FILE onto the device first (repeatable)
#
# COMMAND runs with the mount point in $NPYFLOW_LOOP_DIR and the device in
# $NPYFLOW_LOOP_DEV; the literal @DIR@ in any ARG is replaced by the mount
# point. Whatever happens (success, failure, Ctrl-C), the file system is
# unmounted, the loop device detached and the backing file removed.
#
# Examples (see docs/BENCHMARKS.md):
#   bench/loopdev.sh -s 1G -c x.npy -- target/release/npyflow bench @DIR@/x.npy
#   bench/loopdev.sh -s 2G -- env NPYFLOW_BENCH_DIR=@DIR@ cargo bench --bench page_cache
set -euo pipefail

size=2G
read_ahead_kb=128
copies=()
while getopts "s:r:c:h" opt; do
    case "$opt" in
        s) size=$OPTARG ;;
        r) read_ahead_kb=$OPTARG ;;
        c) copies+=("$OPTARG") ;;
        h) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[[ "${1:-}" == "--" ]] && shift
if [[ $# -eq 0 ]]; then
    echo "loopdev.sh: no command given (see -h)" >&2
    exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "loopdev.sh: needs root (losetup, mkfs.ext4, mount)" >&2
    exit 2
fi

image=""
dev=""
mnt=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n "$mnt" ]]; then
        if mountpoint -q "$mnt"; then umount "$mnt" || umount -l "$mnt" || true; fi
        rmdir "$mnt" 2>/dev/null || true
    fi
    if [[ -n "$dev" ]]; then losetup -d "$dev" 2>/dev/null || true; fi
    if [[ -n "$image" ]]; then rm -f "$image"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

image=$(mktemp /dev/shm/npyflow-loop.XXXXXX)
truncate -s "$size" "$image"
dev=$(losetup --find --show "$image")
mkfs.ext4 -q -F "$dev"
mnt=$(mktemp -d /tmp/npyflow-loop.XXXXXX)
mount "$dev" "$mnt"
name=$(basename "$dev")
echo "$read_ahead_kb" > "/sys/block/$name/queue/read_ahead_kb"
for f in "${copies[@]}"; do
    cp -- "$f" "$mnt/"
done
chmod 1777 "$mnt"
echo "loopdev.sh: $dev (ext4 over $image, $size, read_ahead_kb $(cat "/sys/block/$name/queue/read_ahead_kb")) mounted at $mnt" >&2

export NPYFLOW_LOOP_DIR="$mnt" NPYFLOW_LOOP_DEV="$dev"
args=()
for a in "$@"; do
    args+=("${a//@DIR@/$mnt}")
done
set +e
"${args[@]}"
status=$?
set -e
exit "$status"
