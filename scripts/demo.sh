#!/usr/bin/env bash
# The seed scenario of Steer in network namespaces, in one command:
#
#   bash scripts/demo.sh            install what is missing, build, start the lab,
#                                   walk through it, tear it down
#   bash scripts/demo.sh --keep     the same, but leave the lab up to poke around
#   bash scripts/demo.sh show       walk through a kept lab again
#   bash scripts/demo.sh down       tear a kept (or crashed) lab down
#
# Options: --no-build (skip scripts/setup.sh and cargo; use the existing
# target/release binaries). STEER_BIN: a steer binary to use.
#
# The lab itself is the tests' own (tests/src/seed.rs, the scenario
# tests/agent_seed.rs runs), driven by `cargo xtask demo` (xtask/src/demo.rs);
# this script only installs, builds and hands over.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
if [ -n "${SUDO_USER:-}" ] && ! command -v cargo >/dev/null 2>&1; then
  PATH="$(getent passwd "$SUDO_USER" | cut -d: -f6)/.cargo/bin:$PATH"
fi
die() { printf 'demo FAILED: %s\n' "$*" >&2; exit 1; }

BUILD=1 ARGS=()
for arg in "$@"; do
  case $arg in
    --no-build) BUILD=0 ;;
    -h|--help|help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --keep|run|show|down) ARGS+=("$arg") ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || die "run as root (sudo bash scripts/demo.sh $*)"

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
case " ${ARGS[*]-} " in *" show "*|*" down "*) BUILD=0 ;; esac
if [ $BUILD = 1 ]; then
  T0=$SECONDS
  printf '== 0. Install and build ==\n'
  bash "$ROOT/scripts/setup.sh"
  (cd "$ROOT" && cargo build --release --locked -p steer -p xtask) \
    || die "cargo build --release -p steer -p xtask"
  printf 'installed and built in %s s\n' $((SECONDS - T0))
fi
export STEER_BIN=${STEER_BIN:-$TARGET/steer}
[ -x "$TARGET/xtask" ] || die "$TARGET/xtask is missing (run without --no-build)"
case " ${ARGS[*]-} " in *" show "*|*" down "*) ;; *)
  [ -x "$STEER_BIN" ] || die "$STEER_BIN is missing (run without --no-build)" ;;
esac
exec "$TARGET/xtask" demo "${ARGS[@]}"
