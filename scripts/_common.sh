# shellcheck shell=bash
# Shared helpers for the service scripts. State lives under the git-ignored .local/.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="${STREAMRAG_LOCAL_DIR:-$ROOT/.local}"
mkdir -p "$LOCAL"
# llama.cpp's build flags (scripts/llama-cpp-build, once for the Python binding and llama-server): portable
# AVX2 by default (a -march=native build dies with "Illegal instruction" on other machines); CMAKE_ARGS
# replaces them (e.g. -DGGML_CUDA=on).
LLAMA_CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}"

die() { echo "error: $*" >&2; exit 1; }

# port_open HOST PORT -> 0 when something accepts TCP connections there.
# (the descriptor is opened, and closed, in a subshell: the caller's stderr is left alone)
port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# wait_port HOST PORT SECONDS
wait_port() {
  local host=$1 port=$2 secs=$3 i
  for ((i = 0; i < secs * 4; i++)); do
    port_open "$host" "$port" && return 0
    sleep 0.25
  done
  return 1
}

# stop_pidfile FILE NAME: TERM, wait up to 20 s, then KILL.
stop_pidfile() {
  local file=$1 name=$2 pid i
  [ -f "$file" ] || { echo "$name: not running (no pid file)"; return 0; }
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 80; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    echo "$name: stopped (pid $pid)"
  else
    echo "$name: not running (stale pid $pid)"
  fi
  rm -f "$file"
}
