#!/bin/sh
# Writes a Docker Compose file with the lottery server and N agency clients.
#
#   ./generar-compose.sh FILE N [--mode lottery|echo] [--swarm [--endpoint-mode dnsrr|vip]]
#
# --swarm writes a stack for `docker stack deploy -c FILE lottery` instead
# (tools/stack_generator.py). It makes the missing credentials as for Compose
# (below), then wires TLS when .secrets/ beside FILE holds ca.pem, server.pem,
# server.key and agency-K.pem/.key for every agency: always in lottery mode; an
# echo stack (no agency certificates) runs without TLS.
#
# The mode defaults to $CLIENT_MODE, else lottery. N = 0 gives the server alone.
# The YAML comes from tools/compose_generator.py (PyYAML), run with the host's
# python3 when it has PyYAML, else inside the project's client image (which has
# it), else the script stops and says how to install PyYAML. FILE is replaced
# only once the whole document is ready: a failed run never leaves a partial file.
# Relative paths inside the file (config files, ./.data, ./.secrets) resolve
# against FILE's directory, so generate it at the repository root.
#
# Lottery runs, Compose files and stacks alike, are authenticated by default
# (mutual TLS): the script makes whatever TLS credentials are missing in .secrets/
# beside FILE, with tools/credentials.py (existing files, keys above all, are
# kept): with the host's python3 when it has `cryptography` (as root; or as anyone
# when no image is built), else inside the client image as root. The image has
# `cryptography` from requirements.txt, and root can give the keys to uid 10001,
# the containers' user, which must read them from the Compose secrets.
#
# Environment: CLIENT_MODE; PYTHON (default python3), DOCKER (default docker) and
# GENERATOR_IMAGE (default client:latest) choose what runs the generator.
set -eu

ROOT=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
DOCKER=${DOCKER:-docker}
GENERATOR_IMAGE=${GENERATOR_IMAGE:-client:latest}

usage() {
    [ $# -eq 0 ] || echo "generar-compose.sh: $*" >&2
    cat >&2 <<'EOF'
usage: ./generar-compose.sh FILE N [--mode lottery|echo] [--swarm [--endpoint-mode dnsrr|vip]]
  FILE  compose file to write (e.g. docker-compose-dev.yaml)
  N     number of agency clients, a non-negative integer (0: the server alone)
  mode  lottery (default, or $CLIENT_MODE) or echo
  --swarm  a Docker Swarm stack file; endpoint mode dnsrr (default) or vip
EOF
    exit 2
}

[ $# -ge 2 ] || usage "missing arguments"
FILE=$1
N=$2
shift 2
MODE=${CLIENT_MODE:-lottery}
GENERATOR=tools.compose_generator
ENDPOINT=""
while [ $# -gt 0 ]; do
    case $1 in
        --mode) [ $# -ge 2 ] || usage "--mode needs a value"; MODE=$2; shift 2 ;;
        --mode=*) MODE=${1#--mode=}; shift ;;
        --swarm) GENERATOR=tools.stack_generator; shift ;;
        --endpoint-mode) [ $# -ge 2 ] || usage "--endpoint-mode needs a value"; ENDPOINT=$2; shift 2 ;;
        --endpoint-mode=*) ENDPOINT=${1#--endpoint-mode=}; shift ;;
        *) usage "unexpected argument: $1" ;;
    esac
done
[ -n "$FILE" ] || usage "the file name is empty"
case $N in
    '' | *[!0-9]*) usage "N must be a non-negative integer, not '$N'" ;;
esac
case $MODE in
    lottery | echo) ;;
    *) usage "unknown mode '$MODE'" ;;
esac
STACK_ARGS=""
if [ "$GENERATOR" = tools.compose_generator ]; then
    [ -z "$ENDPOINT" ] || usage "--endpoint-mode needs --swarm"
else
    case ${ENDPOINT:=dnsrr} in
        dnsrr | vip) STACK_ARGS=" --endpoint-mode $ENDPOINT" ;;
        *) usage "unknown endpoint mode '$ENDPOINT'" ;;
    esac
fi

echo "Nombre del archivo de salida: $FILE"
echo "Cantidad de clientes: $N"

credentials() {
    secrets=$(cd "$(dirname "$FILE")" && pwd)/.secrets
    agencies=$N
    [ "$MODE" = lottery ] || agencies=0  # the echo stays plaintext: only the server needs a certificate
    host=no
    "$PYTHON" -c 'import cryptography' >/dev/null 2>&1 && host=yes
    if [ $host = yes ] && [ "$(id -u)" = 0 ]; then
        (cd "$ROOT" && "$PYTHON" -m tools.credentials "$secrets" --agencies "$agencies") >&2
    elif "$DOCKER" image inspect "$GENERATOR_IMAGE" >/dev/null 2>&1; then
        mkdir -p -m 700 "$secrets" && chmod 700 "$secrets"  # keys 0600 of uid 10001, in a directory only we enter
        "$DOCKER" run --rm -i --network none --user 0:0 -v "$secrets:/secrets" --entrypoint python3 \
            "$GENERATOR_IMAGE" - /secrets --agencies "$agencies" <"$ROOT/tools/credentials.py" >&2
    elif [ $host = yes ]; then
        echo "generar-compose.sh: not root: the keys in $secrets stay yours, and the containers'" \
            "uid 10001 must be able to read them" >&2
        (cd "$ROOT" && "$PYTHON" -m tools.credentials "$secrets" --agencies "$agencies") >&2
    else
        cat >&2 <<EOF
generar-compose.sh: the TLS credentials need the cryptography package, and neither
$PYTHON has it nor is the image $GENERATOR_IMAGE built. Either install it:
    $PYTHON -m pip install -r requirements.txt
or build the images first: make docker-image
EOF
        return 1
    fi
}

generate() {
    if "$PYTHON" -c 'import yaml' >/dev/null 2>&1; then
        # shellcheck disable=SC2086  # STACK_ARGS is a list of plain words
        (cd "$ROOT" && "$PYTHON" -m "$GENERATOR" - "$N" --mode "$MODE" $STACK_ARGS)
    elif [ "$GENERATOR" = tools.stack_generator ] && "$DOCKER" image inspect "$GENERATOR_IMAGE" >/dev/null 2>&1; then
        # The stack generator imports the compose generator: mount tools/ (read-only).
        # shellcheck disable=SC2086
        "$DOCKER" run --rm --network none -v "$ROOT/tools:/opt/generator/tools:ro" -w /opt/generator \
            --entrypoint python3 "$GENERATOR_IMAGE" -m tools.stack_generator - "$N" --mode "$MODE" $STACK_ARGS
    elif "$DOCKER" image inspect "$GENERATOR_IMAGE" >/dev/null 2>&1; then
        # No mounts: the generator reads its own source from stdin and writes to stdout.
        "$DOCKER" run --rm -i --network none --entrypoint python3 "$GENERATOR_IMAGE" \
            - - "$N" --mode "$MODE" <"$ROOT/tools/compose_generator.py"
    else
        cat >&2 <<EOF
generar-compose.sh: the generator needs PyYAML, and neither $PYTHON has it nor is
the image $GENERATOR_IMAGE built. Either install it:
    $PYTHON -m pip install -r requirements.txt      (or: pip install PyYAML)
or build the images first: make docker-image
EOF
        return 1
    fi
}

# Prints " --tls" when .secrets/ beside FILE holds every file the stack mounts, else
# nothing (and says so on stderr).
stack_tls() {
    secrets="$(dirname "$FILE")/.secrets"
    tls=" --tls"
    k=1
    for name in ca.pem server.pem server.key crl.pem; do [ -f "$secrets/$name" ] || tls=""; done
    while [ $k -le "$N" ]; do
        [ -f "$secrets/agency-$k.pem" ] && [ -f "$secrets/agency-$k.key" ] || tls=""
        k=$((k + 1))
    done
    [ -n "$tls" ] || echo "generar-compose.sh: no credentials in $secrets for all $N agencies; the stack runs without TLS" >&2
    printf '%s' "$tls"
}

TMP=$(mktemp "$(dirname "$FILE")/.generar-compose.XXXXXX")
trap 'rm -f "$TMP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
generate >"$TMP"
# After the generator has accepted N, before FILE appears. A --swarm stack mounts
# the credentials as Swarm secrets: once they are made, write it again with them.
credentials
if [ "$GENERATOR" = tools.stack_generator ]; then
    TLS=$(stack_tls)
    if [ -n "$TLS" ]; then
        STACK_ARGS="$STACK_ARGS$TLS"
        generate >"$TMP"
    fi
fi
chmod 644 "$TMP"
mv -f "$TMP" "$FILE"
