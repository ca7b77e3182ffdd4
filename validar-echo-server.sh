#!/bin/sh
# Checks that the server's inline echo answers, from inside the Compose network.
#
#   sh validar-echo-server.sh
#
# Runs netcat in a throwaway container attached to tp0_testing_net (no netcat on
# the host, no published port), sends one line to `server` on the port that
# lottery_gevent/config.ini names, and compares the reply. Prints exactly
#   action: test_echo_server | result: success      (exit 0), or
#   action: test_echo_server | result: fail         (exit 1).
# While the network or the server is not up yet it retries, for at most 10 s in
# all. Each netcat call is bounded by `timeout` inside the container: busybox nc
# half-closes when its input ends, but its -w only bounds the connect, so a peer
# that echoes and never closes would otherwise hang it.
#
# Environment: NETCAT_IMAGE (default busybox:latest; needs sh, timeout and nc).
set -u

cd "$(dirname "$0")" || exit 1
NETWORK=tp0_testing_net
HOST=server
IMAGE=${NETCAT_IMAGE:-busybox:latest}
CONFIG=lottery_gevent/config.ini
RETRY_WINDOW_S=10
#: Longest single exchange; the server answers at once when it is up.
ATTEMPT_S=3

result() {
    echo "action: test_echo_server | result: $1"
    [ "$1" = success ]
    exit
}

# SERVER_PORT from config.ini's [DEFAULT] (keys are case-insensitive; "=" or ":").
PORT=$(awk -F '[=:]' '
    { key = tolower($1); gsub(/[ \t\r]/, "", key) }
    key == "server_port" { value = $2; gsub(/[ \t\r]/, "", value); print value; exit }
' "$CONFIG" 2>/dev/null)
case ${PORT:-} in
    '' | *[!0-9]*) PORT=12345 ;;
esac

MESSAGE="validar-echo-server $$ $(date +%s)"
DEADLINE=$(($(date +%s) + RETRY_WINDOW_S))
while :; do
    LEFT=$((DEADLINE - $(date +%s)))
    [ "$LEFT" -gt 0 ] || result fail
    [ "$LEFT" -lt "$ATTEMPT_S" ] && BOUND=$LEFT || BOUND=$ATTEMPT_S
    # `timeout` wraps nc itself, not the container's PID 1 (which would ignore SIGTERM);
    # nc's exit status tells a peer that closed (0) from one the timeout cut (non-zero).
    ANSWER=$(docker run --rm --network "$NETWORK" "$IMAGE" \
        sh -c 'printf "%s\n" "$1" | timeout "$2" nc "$3" "$4"' sh "$MESSAGE" "$BOUND" "$HOST" "$PORT" 2>/dev/null)
    STATUS=$?
    [ "$STATUS" -eq 0 ] && [ "$ANSWER" = "$MESSAGE" ] && result success
    # Something answered, but wrongly (another text, or never closed): retrying won't help.
    [ -n "$ANSWER" ] && result fail
    # Nothing answered: no network, no `server` yet, or connection refused. Try again,
    # pausing a second unless that would overrun the window.
    LEFT=$((DEADLINE - $(date +%s)))
    [ "$LEFT" -gt 0 ] || result fail
    [ "$LEFT" -le 1 ] || sleep 1
done
