#!/usr/bin/env bash
# A throw-away Label Studio server for the integration test (and for trying `aquapose ls push/pull`).
#
#   scripts/labelstudio_server.sh install        # create .venv-ls with label-studio (~2 min, once)
#   eval "$(scripts/labelstudio_server.sh start)" # install if needed, start, wait, export the env vars
#   scripts/labelstudio_server.sh stop           # stop the server started by `start`, delete its data
#
# Label Studio lives in its own venv (.venv-ls): its pins clash with ours. `start` runs it on
# 127.0.0.1 only (--internal-host; Label Studio's --host is the public URL, not the bind address),
# with SQLite in a fresh data folder, a random legacy API token and local-files serving from
# $AQUAPOSE_LS_DOCUMENT_ROOT (default: <data folder>/files). Its stdout is `export` lines for eval:
#   AQUAPOSE_LS_URL, AQUAPOSE_LS_TOKEN (also LABEL_STUDIO_API_KEY), AQUAPOSE_LS_DOCUMENT_ROOT,
#   AQUAPOSE_LS_PID, AQUAPOSE_LS_DATA_DIR. Everything else (progress, errors) goes to stderr.
# A preset AQUAPOSE_LS_DATA_DIR is used as the data folder (so a caller can `trap stop` before
# `start`). `stop` reads AQUAPOSE_LS_PID (or $AQUAPOSE_LS_DATA_DIR/server.pid) and deletes the
# data folder when it is one of ours (${TMPDIR:-/tmp}/aquapose-ls.*).
set -euo pipefail
cd "$(dirname "$0")/.."

LS_VENV=${LS_VENV:-.venv-ls}
LS_VERSION=${LS_VERSION:-1.23.2}
LS_START_TIMEOUT=${LS_START_TIMEOUT:-300}
PYTHON=${PYTHON:-python3}

log() { echo "[labelstudio_server] $*" >&2; }

install_ls() {
    if [ -x "$LS_VENV/bin/label-studio" ]; then
        return 0
    fi
    log "installing label-studio==$LS_VERSION into $LS_VENV (takes a couple of minutes)"
    "$PYTHON" -m venv "$LS_VENV"
    "$LS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    "$LS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "label-studio==$LS_VERSION" >&2
}

start_ls() {
    install_ls
    local data_dir port token root pid url
    data_dir=${AQUAPOSE_LS_DATA_DIR:-}
    if [ -z "$data_dir" ]; then
        data_dir=$(mktemp -d "${TMPDIR:-/tmp}/aquapose-ls.XXXXXX")
    fi
    mkdir -p "$data_dir"
    data_dir=$(cd "$data_dir" && pwd)
    root=${AQUAPOSE_LS_DOCUMENT_ROOT:-$data_dir/files}
    mkdir -p "$root"
    root=$(cd "$root" && pwd)
    port=$("$LS_VENV/bin/python" -c \
        'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    token=$("$LS_VENV/bin/python" -c 'import secrets; print(secrets.token_hex(20))')
    url="http://127.0.0.1:$port"
    log "starting Label Studio on $url (data: $data_dir, files: $root)"
    # setsid: own process group, so `stop` ends the server and anything it spawned.
    env LABEL_STUDIO_BASE_DATA_DIR="$data_dir/ls" \
        LABEL_STUDIO_USERNAME="aquapose@example.com" \
        LABEL_STUDIO_PASSWORD="$token" \
        LABEL_STUDIO_USER_TOKEN="$token" \
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true \
        LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true \
        LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT="$root" \
        LABEL_STUDIO_LATEST_VERSION_CHECK=false \
        LABEL_STUDIO_COLLECT_ANALYTICS=false \
        DJANGO_DB=sqlite \
        setsid "$LS_VENV/bin/label-studio" start --no-browser \
        --internal-host 127.0.0.1 --port "$port" --host "$url" \
        --data-dir "$data_dir/ls" --log-level WARNING \
        >"$data_dir/server.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$data_dir/server.pid"
    if ! AQUAPOSE_LS_URL="$url" AQUAPOSE_LS_TOKEN="$token" "$LS_VENV/bin/python" - \
        "$pid" "$LS_START_TIMEOUT" <<'PY' >&2; then
import json, os, sys, time, urllib.request

pid, timeout = int(sys.argv[1]), float(sys.argv[2])
url, token = os.environ["AQUAPOSE_LS_URL"], os.environ["AQUAPOSE_LS_TOKEN"]
start = time.monotonic()
while time.monotonic() - start < timeout:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("Label Studio exited during start-up")
    try:
        request = urllib.request.Request(
            url + "/api/current-user/whoami", headers={"Authorization": "Token " + token}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            json.load(response)
        print(f"[labelstudio_server] ready after {time.monotonic() - start:.0f} s")
        sys.exit(0)
    except Exception:
        time.sleep(1)
sys.exit(f"Label Studio did not answer within {timeout:.0f} s")
PY
        log "start failed; last lines of $data_dir/server.log:"
        tail -n 30 "$data_dir/server.log" >&2 || true
        kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
        exit 1
    fi
    printf 'export AQUAPOSE_LS_URL=%q\n' "$url"
    printf 'export AQUAPOSE_LS_TOKEN=%q\n' "$token"
    printf 'export LABEL_STUDIO_API_KEY=%q\n' "$token"
    printf 'export AQUAPOSE_LS_DOCUMENT_ROOT=%q\n' "$root"
    printf 'export AQUAPOSE_LS_PID=%q\n' "$pid"
    printf 'export AQUAPOSE_LS_DATA_DIR=%q\n' "$data_dir"
}

stop_ls() {
    local pid=${AQUAPOSE_LS_PID:-} data_dir=${AQUAPOSE_LS_DATA_DIR:-}
    if [ -z "$pid" ] && [ -n "$data_dir" ] && [ -f "$data_dir/server.pid" ]; then
        pid=$(cat "$data_dir/server.pid")
    fi
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        log "stopping Label Studio (pid $pid)"
        kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 20); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -9 -- "-$pid" 2>/dev/null || true
    fi
    case "$data_dir" in
        "${TMPDIR:-/tmp}"/aquapose-ls.*) rm -rf "$data_dir" ;;
    esac
}

case "${1:-}" in
    install) install_ls ;;
    start) start_ls ;;
    stop) stop_ls ;;
    *)
        echo "usage: $0 install|start|stop" >&2
        exit 2
        ;;
esac
