#!/usr/bin/env bash
# unet-matting installer.
#   ./install.sh --dev     ./.venv with the project and its test tools (torch: CPU build, pinned)
#   sudo ./install.sh      system install (see --help); issue 5 tracks its hardening and tests
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"   # CPU build; a GPU host sets e.g. TORCH_SPEC=torch==2.13.0+cu128
APT_DEV=(python3-venv python3-dev gcc pkg-config libsystemd-dev openssh-server openssh-client rsync logrotate systemd)

say() { printf 'install.sh: %s\n' "$*"; }
die() { say "error: $*" >&2; exit 1; }

usage() {
    sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'USAGE'
Options:
  --dev            developer/CI install into ./.venv (apt prerequisites when run as root)
  --no-apt         do not call apt-get (prerequisites already present)
  -h, --help       this text
Environment:
  TORCH_SPEC       pip requirement for torch (default torch==2.13.0, the CPU build)
USAGE
}

missing_apt() {
    local pkg out=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || out+=("$pkg")
    done
    echo "${out[@]:-}"
}

apt_prerequisites() {
    command -v apt-get >/dev/null || { say "no apt-get: install ${*} by hand"; return 0; }
    local missing
    missing="$(missing_apt "$@")"
    [ -z "$missing" ] && return 0
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "missing Debian packages: $missing (run as root or install them)"
        sudo=(sudo)
    fi
    say "installing Debian packages: $missing"
    "${sudo[@]}" apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends $missing
}

dev_install() {
    local use_apt="$1"
    [ "$use_apt" = yes ] && apt_prerequisites "${APT_DEV[@]}"
    cd "$HERE"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q "$TORCH_SPEC"
    .venv/bin/python -m pip install -q -e ".[dev]"
    say "ready: $(.venv/bin/unet-matting --version) in $HERE/.venv"
}

main() {
    local mode=system use_apt=yes
    while [ $# -gt 0 ]; do
        case "$1" in
            --dev) mode=dev ;;
            --no-apt) use_apt=no ;;
            -h|--help) usage; exit 0 ;;
            *) die "unknown option $1 (see --help)" ;;
        esac
        shift
    done
    case "$mode" in
        dev) dev_install "$use_apt" ;;
        system) die "the system install is not written yet (issue 5); use --dev for now" ;;
    esac
}

main "$@"
