#!/usr/bin/env bash
# Interop of our WebSocket server and client with Python `websockets` and
# Node `ws`, all on 127.0.0.1, without and with permessage-deflate:
#   1. our echo example serves; py_client.py and node_client.mjs run their
#      battery against it, plain and with --deflate (the clients offer
#      compression and fail unless it was accepted);
#   2. the deflate_bench_server example serves with the default threshold
#      (128 bytes; echo compresses everything), and with context takeover both
#      ways and every message compressed; the two clients run their --deflate
#      battery against each;
#   3. py_echo_server.py and node_echo_server.mjs serve, plain and with
#      --deflate; our interop_client example runs its battery against each,
#      with --deflate against the compressing ones (skipped, with a message,
#      while that example is not built).
# The --deflate batteries include messages above and below the threshold.
# Needs scripts/setup and `cargo build --release --examples`. Logs of the
# servers land in artifacts/interop/. Exits 1 if any run failed.
# ECHO_BIN, DEFLATE_SERVER_BIN and INTEROP_CLIENT_BIN replace the examples,
# to check this script against other implementations.
set -euo pipefail
cd "$(dirname "$0")/../.."

ECHO=${ECHO_BIN:-target/release/examples/echo}
DEFLATE_SERVER=${DEFLATE_SERVER_BIN:-target/release/examples/deflate_bench_server}
INTEROP_CLIENT=${INTEROP_CLIENT_BIN:-target/release/examples/interop_client}
PYTHON=.venv/bin/python
LOGS=artifacts/interop
START_TIMEOUT=20
RUN_TIMEOUT=60

PIDS=()
PASSED=0
FAILED=0

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pass() {
  echo "ok - $1"
  PASSED=$((PASSED + 1))
}

fail() {
  echo "not ok - $1"
  FAILED=$((FAILED + 1))
}

# start_server NAME PORT CMD...: runs CMD in the background, logging to
# $LOGS/NAME.log, and waits until PORT accepts TCP. Sets SERVER_PID.
start_server() {
  local name=$1 port=$2 deadline=$((SECONDS + START_TIMEOUT))
  shift 2
  "$@" >"$LOGS/$name.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      fail "$name exited before listening on $port (see $LOGS/$name.log)"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      fail "$name not listening on $port after ${START_TIMEOUT}s"
      return 1
    fi
    sleep 0.1
  done
}

# stop_server NAME: fails NAME if the server died on its own, then stops it.
stop_server() {
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
  else
    fail "$1 died during the run (see $LOGS/$1.log)"
  fi
}

# run_battery NAME CMD...: runs one battery with a time limit.
run_battery() {
  local name=$1 status=0
  shift
  echo "--- $name"
  timeout "$RUN_TIMEOUT" "$@" || status=$?
  if ((status == 0)); then
    pass "$name"
  else
    fail "$name (exit $status)"
  fi
}

clients_against_our_server() {
  if [[ ! -x $ECHO ]]; then
    fail "$ECHO is not built (cargo build --release --examples)"
    return
  fi
  local port
  port=$(free_port)
  start_server echo "$port" "$ECHO" "127.0.0.1:$port" || return 0
  run_battery "python websockets client -> our echo server" \
    "$PYTHON" tests/interop/py_client.py "ws://127.0.0.1:$port/"
  run_battery "node ws client -> our echo server" \
    node tests/interop/node_client.mjs "ws://127.0.0.1:$port/"
  run_battery "python websockets client, deflate -> our echo server" \
    "$PYTHON" tests/interop/py_client.py "ws://127.0.0.1:$port/" --deflate
  run_battery "node ws client, deflate -> our echo server" \
    node tests/interop/node_client.mjs "ws://127.0.0.1:$port/" --deflate
  stop_server echo
}

# Our server at the default threshold, then with context takeover both ways
# and every message compressed.
clients_against_our_compressing_server() {
  if [[ ! -x $DEFLATE_SERVER ]]; then
    fail "$DEFLATE_SERVER is not built (cargo build --release --examples)"
    return
  fi
  local mode threshold port
  for mode in default:128 takeover:0; do
    threshold=${mode#*:} mode=${mode%:*}
    port=$(free_port)
    start_server "deflate_server_$mode" "$port" "$DEFLATE_SERVER" --deflate "$mode" \
      --threshold "$threshold" --listen "127.0.0.1:$port" || continue
    run_battery "python websockets client, deflate -> our server (--deflate $mode --threshold $threshold)" \
      "$PYTHON" tests/interop/py_client.py "ws://127.0.0.1:$port/" --deflate
    run_battery "node ws client, deflate -> our server (--deflate $mode --threshold $threshold)" \
      node tests/interop/node_client.mjs "ws://127.0.0.1:$port/" --deflate
    stop_server "deflate_server_$mode"
  done
}

our_client_against_servers() {
  if [[ ! -x $INTEROP_CLIENT ]]; then
    echo "SKIP our client against python and node servers: $INTEROP_CLIENT is not built yet"
    return
  fi
  local port flag suffix
  for flag in "" --deflate; do
    suffix=${flag:+, deflate}
    port=$(free_port)
    if start_server "py_echo_server$flag" "$port" "$PYTHON" tests/interop/py_echo_server.py "$port" $flag; then
      run_battery "our client$suffix -> python websockets echo server" \
        "$INTEROP_CLIENT" "ws://127.0.0.1:$port/" $flag
      stop_server "py_echo_server$flag"
    fi
    port=$(free_port)
    if start_server "node_echo_server$flag" "$port" node tests/interop/node_echo_server.mjs "$port" $flag; then
      run_battery "our client$suffix -> node ws echo server" \
        "$INTEROP_CLIENT" "ws://127.0.0.1:$port/" $flag
      stop_server "node_echo_server$flag"
    fi
  done
}

mkdir -p "$LOGS"
clients_against_our_server
clients_against_our_compressing_server
our_client_against_servers
echo "interop: $PASSED of $((PASSED + FAILED)) runs passed"
((FAILED == 0))
