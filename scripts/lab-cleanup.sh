#!/usr/bin/env bash
# Removes what a crashed or killed netns lab run (crate steer-tests) left
# behind: daemons, network namespaces st<pid>-<n>-*, temp dirs
# /tmp/steer-test-*, bpffs pins /sys/fs/bpf/steer-test-*, FRR's
# /var/tmp/frr/<daemon>.<pid> crash dirs. Idempotent.
#
# By default only leftovers of test processes that are no longer alive are
# removed, so it is safe while other lab tests run; --all removes everything.
set -uo pipefail

ALL=0
[ "${1:-}" = "--all" ] && ALL=1
[ "$(id -u)" = 0 ] || { echo "lab-cleanup: run as root" >&2; exit 1; }

# Is the test process that owns name tag st<pid>-... gone (or --all)?
stale() {
  local pid
  pid=$(sed -n 's/^st\([0-9]\+\)-[0-9]\+.*/\1/p' <<<"$1")
  [ -n "$pid" ] || return 1
  [ "$ALL" = 1 ] || [ ! -d "/proc/$pid" ]
}

kill_pids() {
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local alive=()
    for p in "$@"; do [ -d "/proc/$p" ] && alive+=("$p"); done
    [ ${#alive[@]} -eq 0 ] && return 0
    sleep 0.3
  done
  kill -KILL "$@" 2>/dev/null
  return 0
}

# 1. Daemons inside stale lab namespaces.
for ns in $(ls /run/netns 2>/dev/null | grep -E '^st[0-9]+-[0-9]+-' || true); do
  stale "$ns" || continue
  mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null)
  if [ ${#pids[@]} -gt 0 ]; then
    echo "lab-cleanup: stopping ${#pids[@]} process(es) in netns $ns"
    kill_pids "${pids[@]}"
  fi
done

# 2. Daemons whose command line points into a stale lab temp dir (their
#    namespace may already be gone).
pids=()
for d in /proc/[0-9]*; do
  cmd=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
  tag=$(sed -n 's|.*/tmp/steer-test-\(st[0-9]\+-[0-9]\+\).*|\1|p' <<<"$cmd")
  [ -n "$tag" ] && stale "$tag" && pids+=("${d#/proc/}")
done
if [ ${#pids[@]} -gt 0 ]; then
  echo "lab-cleanup: stopping ${#pids[@]} leftover daemon(s): ${pids[*]}"
  kill_pids "${pids[@]}"
fi

# 3. Namespaces.
for ns in $(ls /run/netns 2>/dev/null | grep -E '^st[0-9]+-[0-9]+-' || true); do
  stale "$ns" || continue
  echo "lab-cleanup: deleting netns $ns"
  ip netns del "$ns" 2>/dev/null || true
done

# 4. Temp dirs and bpffs pins.
for path in /tmp/steer-test-* /sys/fs/bpf/steer-test-*; do
  [ -e "$path" ] || continue
  name=$(basename "$path")
  stale "${name#steer-test-}" || continue
  echo "lab-cleanup: removing $path"
  rm -rf "$path"
done

# 5. FRR crash-log dirs of FRR daemons that are gone.
for d in /var/tmp/frr/bgpd.* /var/tmp/frr/zebra.*; do
  [ -d "$d" ] || continue
  pid=${d##*.}
  [ -d "/proc/$pid" ] || rm -rf "$d"
done
exit 0
