#!/usr/bin/env bash
# Build the collection's native helpers from src/ (the restart hook and the preload library)
# for x86_64 and aarch64, or check that the
# shipped files under files/native/ are byte-identical to a fresh build (what hosts receive
# is provably this source).
#   scripts/native.sh build    rebuild files/native/<arch>/*
#   scripts/native.sh check    build into a temp dir and compare (CI)
# Needs gcc, gcc-aarch64-linux-gnu and libc6-dev-arm64-cross (installed from apt as root when missing).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
log() { printf '[native] %s\n' "$*" >&2; }

# arch|compiler
TARGETS=("x86_64|gcc" "aarch64|aarch64-linux-gnu-gcc")
# Reproducible: no build id, no paths, no timestamps; static and without libc (src/nolibc.h).
# shellcheck disable=SC2054 # the commas belong to the linker options
HOOK_FLAGS=(-Os -static -nostdlib -ffreestanding -fno-builtin -fno-stack-protector -fno-pie -no-pie
            -fno-asynchronous-unwind-tables -fno-unwind-tables -fno-ident "-ffile-prefix-map=$top/="
            -Wall -Wextra -Werror -Wno-unused-parameter
            -Wl,--build-id=none -Wl,-z,noexecstack -Wl,-z,norelro -s)
# The preload library links libc (it lives inside the server) but calls the kernel through
# syscall(): every symbol it needs is older than GLIBC_2.17 (EL7). tests/unit checks that.
# shellcheck disable=SC2054 # the commas belong to the linker options
LIB_FLAGS=(-O2 -shared -fPIC -fvisibility=hidden -fno-stack-protector -fno-ident "-ffile-prefix-map=$top/="
           -Wall -Wextra -Werror -Wl,--build-id=none -Wl,-z,now -Wl,-z,noexecstack -Wl,--hash-style=both -s)

need_compilers() {
  local missing=()
  command -v gcc >/dev/null 2>&1 || missing+=(gcc)
  [ -e /usr/include/x86_64-linux-gnu/bits/wordsize.h ] || missing+=(libc6-dev)
  command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing+=(gcc-aarch64-linux-gnu)
  # the preload library includes libc's headers; --no-install-recommends leaves out the
  # cross libc that gcc-aarch64-linux-gnu only recommends
  [ -e /usr/aarch64-linux-gnu/include/bits/wordsize.h ] || missing+=(libc6-dev-arm64-cross)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || { log "missing ${missing[*]}: install them (apt) or run as root"; return 1; }
  log "installing ${missing[*]} from apt"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
}

build_into() {
  local out=$1 t arch cc
  for t in "${TARGETS[@]}"; do
    IFS='|' read -r arch cc <<<"$t"
    mkdir -p "$out/$arch"
    (cd "$top" && "$cc" "${HOOK_FLAGS[@]}" -o "$out/$arch/netsvc-sockclean" src/netsvc-sockclean.c)
    (cd "$top" && "$cc" "${LIB_FLAGS[@]}" -o "$out/$arch/libnetsvc-preload.so" src/netsvc-preload.c)
    chmod 0644 "$out/$arch/netsvc-sockclean" "$out/$arch/libnetsvc-preload.so"
  done
}

case "${1:-check}" in
  build)
    need_compilers
    build_into "$top/files/native"
    (cd "$top/files/native" && sha256sum ./*/* >SHA256SUMS)
    log "built: $(cd "$top/files/native" && echo ./*/*)"
    ;;
  check)
    need_compilers
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    build_into "$tmp"
    rc=0
    for t in "${TARGETS[@]}"; do
      arch=${t%%|*}
      for f in "$tmp/$arch"/*; do
        shipped="$top/files/native/$arch/$(basename "$f")"
        if cmp -s "$f" "$shipped"; then
          log "$arch/$(basename "$f"): identical to a fresh build of src/"
        else
          log "$arch/$(basename "$f"): DIFFERS from a fresh build of src/ (run scripts/native.sh build)"; rc=1
        fi
      done
    done
    exit $rc
    ;;
  *) echo "usage: $0 build|check" >&2; exit 2 ;;
esac
