#!/usr/bin/env bash
# The lb image and a 3-container farm, end to end, without any registry:
#
#   1. the base image lb-base:bookworm (debootstrap + docker import; reused when present),
#   2. the wheels on the host (lb's build backend and every runtime dependency),
#   3. the images, built with the classic builder and no network: the node
#      image (no extras) and the demo application image (extra "demo"),
#   4. a farm on a user-defined bridge network: lb-a, lb-b, lb-c (farm file
#      examples/compose/farm.toml with a fresh secret) and app-a, app-b, app-c
#      (lb's demo application); each node's web port is published on
#      127.0.0.1 only, and curl on the host checks that
#        - a session sticks to its home whichever entry container it uses,
#        - `docker stop` of a node drains it: no request of a loop through the
#          other entries fails, its sessions are served by it, then re-homed,
#        - `docker kill` of a node is detected and its sessions re-homed:
#          requests with its cookie succeed through the others, on a new home.
#
# Prints "SKIPPED: <reason>" and exits 0 when no Docker engine answers. Bounded
# in time (LB_DOCKER_TIMEOUT seconds, default 1200, for the whole run); removes
# its containers and network on every exit (LB_DOCKER_KEEP=1 keeps them).
# Other settings: LB_DOCKER_BASE_IMAGE (default lb-base:bookworm, made by
# tests/docker/base-image.sh when missing; another base is used as it is, and
# the build may then reach the network, e.g. for tini), PYTHON (the host
# Python that builds the wheels; default python3, same version as the image's).
set -euo pipefail

skip() {
    echo "SKIPPED: $*"
    exit 0
}
command -v docker >/dev/null 2>&1 || skip "no docker command"
if ! info_err=$(timeout 30 docker info 2>&1 >/dev/null); then
    skip "no Docker engine answers (docker info: $(printf '%s' "$info_err" | tail -n 1))"
fi
command -v curl >/dev/null 2>&1 || { echo "FAILED: curl is needed on the host"; exit 2; }

# The whole run is bounded: timeout signals this script's process group.
if [ -z "${LB_DOCKER_WATCHED:-}" ]; then
    export LB_DOCKER_WATCHED=1
    exec timeout --kill-after=30 "${LB_DOCKER_TIMEOUT:-1200}" bash "$0" "$@"
fi

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/docker
BASE=${LB_DOCKER_BASE_IMAGE:-lb-base:bookworm}
PY=${PYTHON:-python3}
RUN=lbdt$$
NET=$RUN-net
LABEL=lb.docker-test=$RUN
IMAGE_NODE=lb-docker-test:node
IMAGE_APP=lb-docker-test:demo
NODES=(a b c)
WHEELS_REL=build/docker/wheels
WORK=$(mktemp -d /tmp/lb-docker-test.XXXXXX)
LOOP_PID=""
declare -A PORT COOKIE HOME_OF HITS PICK
APP_CODE="import sys; from aiohttp import web; from lb.demo.app import make_app; web.run_app(make_app(sys.argv[1]), host='0.0.0.0', port=9000, access_log=None)"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "[$(date +%T)] $*"; }
fail() {
    echo "FAILED: $*"
    exit 1
}

cleanup() {
    local rc=$?
    trap - EXIT
    if [ -n "$LOOP_PID" ]; then
        kill "$LOOP_PID" 2>/dev/null || true
        wait "$LOOP_PID" 2>/dev/null || true
    fi
    if [ "$rc" != 0 ]; then
        for n in "${NODES[@]}"; do
            docker logs "$RUN-lb-$n" >"$WORK/lb-$n.log" 2>&1 || true
            docker logs "$RUN-app-$n" >"$WORK/app-$n.log" 2>&1 || true
        done
        echo "logs and request records kept in $WORK"
    fi
    if [ -z "${LB_DOCKER_KEEP:-}" ]; then
        local ids
        ids=$(docker ps -aq --filter "label=$LABEL" 2>/dev/null || true)
        if [ -n "$ids" ]; then
            # shellcheck disable=SC2086
            docker rm -f $ids >/dev/null 2>&1 || true
        fi
        docker network rm "$NET" >/dev/null 2>&1 || true
    else
        echo "kept: containers labelled $LABEL, network $NET"
    fi
    [ "$rc" = 0 ] && rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
set -E
trap 'echo "FAILED: line $LINENO: $BASH_COMMAND" >&2' ERR
trap 'echo "FAILED: stopped by a signal (the run is bounded by LB_DOCKER_TIMEOUT=${LB_DOCKER_TIMEOUT:-1200} s)"; exit 124' TERM INT

# ------------------------------------------------------------------ HTTP helpers
# req ENTRY JAR_ARGS... : one GET through ENTRY's published port; sets R_CODE,
# R_NODE (the demo application that answered), R_HITS (its session counter).
req() {
    local entry=$1
    shift
    local body=$WORK/body.$BASHPID
    R_CODE=$(curl -s -o "$body" -w '%{http_code}' --max-time 5 "$@" \
        "http://127.0.0.1:${PORT[$entry]}/r") || R_CODE=000
    R_NODE=$(sed -n 's/.*"node": *"\([^"]*\)".*/\1/p' "$body" 2>/dev/null || true)
    R_HITS=$(sed -n 's/.*"session_hits": *\([0-9]*\).*/\1/p' "$body" 2>/dev/null || true)
}

# jar_home JAR: the home named by the lbhome cookie (1.<kid>.<home>.<expiry>.<mac>)
jar_home() {
    awk '$6 == "lbhome" { split($7, p, "."); h = p[3] } END { print h }' "$1" 2>/dev/null || true
}

# wait_ready TIMEOUT ENTRIES... : every entry reaches every live home (signed cookies)
wait_ready() {
    local limit=$1
    shift
    local start
    start=$(now)
    local entry home got
    while :; do
        local missing=""
        for entry in "$@"; do
            for home in "$@"; do
                got=$(curl -s -o /dev/null -D - --max-time 3 -H "Cookie: lbhome=${COOKIE[$home]}" \
                    "http://127.0.0.1:${PORT[$entry]}/healthz" 2>/dev/null \
                    | tr -d '\r' | sed -n 's/^[Xx]-[Dd]emo-[Nn]ode: *//p' || true)
                [ "$got" = "$home" ] || missing="$missing $entry->$home"
            done
        done
        [ -z "$missing" ] && return 0
        if awk -v s="$(since "$start")" -v l="$limit" 'BEGIN { exit !(s > l) }'; then
            fail "the farm did not answer within $limit s (missing:$missing)"
        fi
        sleep 0.5
    done
}

publish_port() {
    docker port "$RUN-lb-$1" 8080/tcp | awk 'NR == 1 { sub(/.*:/, ""); print }'
}

# logged CONTAINER EVENT_REGEX: the container's log has a line matching (not a
# pipe into grep -q: with pipefail its early exit could fail the pipeline)
logged() {
    docker logs "$1" >"$WORK/logs.tmp" 2>&1 || true
    grep -Eq "$2" "$WORK/logs.tmp"
}

T_START=$(now)

# ------------------------------------------------------------------ 1. base image
t=$(now)
base_how=given
if [ "$BASE" = lb-base:bookworm ]; then
    if docker image inspect "$BASE" >/dev/null 2>&1; then
        base_how=cached
    else
        base_how=built
        bash "$HERE/base-image.sh" "$BASE" || fail "could not make the base image $BASE"
    fi
    BUILD_NET=none
else
    BUILD_NET=default
fi
T_BASE=$(since "$t")
say "base image $BASE ($base_how, ${T_BASE} s)"

# ------------------------------------------------------------------ 2. wheels
t=$(now)
host_py=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
image_py=$(docker run --rm --network none "$BASE" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])') \
    || fail "$BASE has no python3"
[ "$host_py" = "$image_py" ] \
    || fail "the host's $PY is Python $host_py but $BASE has $image_py: binary wheels would not fit (set PYTHON=python$image_py)"
rm -rf "${ROOT:?}/$WHEELS_REL"
mkdir -p "$ROOT/$WHEELS_REL"
if ! "$PY" -m pip wheel -q --disable-pip-version-check -w "$ROOT/$WHEELS_REL" \
    "$ROOT[demo]" 'setuptools>=68' wheel >"$WORK/wheels.log" 2>&1; then
    tail -n 20 "$WORK/wheels.log"
    fail "pip wheel failed"
fi
# lb itself: compiled with mypyc (setup.py) when the checkout's .venv has mypy and a
# C compiler is here, and the image installs that wheel; else no wheel of lb, and the
# image builds lb from its source (pure Python)
rm -f "$ROOT/$WHEELS_REL"/lb-*.whl
LB_BUILD="pure Python"
VPY=$ROOT/.venv/bin/python
if [ -x "$VPY" ] && "$VPY" -c 'import mypyc' 2>/dev/null && command -v cc >/dev/null 2>&1; then
    if ! LB_COMPILE=1 "$VPY" -m pip wheel -q --disable-pip-version-check --no-deps \
        --no-build-isolation -w "$ROOT/$WHEELS_REL" "$ROOT" >"$WORK/lb-wheel.log" 2>&1; then
        tail -n 20 "$WORK/lb-wheel.log"
        fail "compiling lb's wheel failed"
    fi
    LB_BUILD="compiled with mypyc"
fi
T_WHEELS=$(since "$t")
say "wheels: $(ls "$ROOT/$WHEELS_REL"/*.whl | wc -l) in $WHEELS_REL, lb $LB_BUILD (${T_WHEELS} s)"

# ------------------------------------------------------------------ 3. images
t=$(now)
build() { # TAG EXTRAS
    local log=$WORK/build-${1##*:}.log
    if ! (cd "$ROOT" && DOCKER_BUILDKIT=0 docker build --network "$BUILD_NET" \
        --build-arg BASE_IMAGE="$BASE" --build-arg WHEELS="$WHEELS_REL" \
        --build-arg EXTRAS="$2" -t "$1" .) >"$log" 2>&1; then
        tail -n 30 "$log"
        fail "docker build of $1 failed"
    fi
}
build "$IMAGE_NODE" ""
build "$IMAGE_APP" demo
T_IMAGES=$(since "$t")
meta=$(docker image inspect -f '{{.Config.User}} {{.Config.StopSignal}} {{json .Config.Entrypoint}} {{if .Config.Healthcheck}}health{{end}}' "$IMAGE_NODE")
[ "$meta" = 'lb SIGTERM ["tini","--","lb"] health' ] || fail "unexpected image config: $meta"
version=$(docker run --rm --network none "$IMAGE_NODE" --version)
case $version in *"($LB_BUILD)"*) ;; *) fail "the image runs $version, not lb $LB_BUILD" ;; esac
# the node image carries no aiohttp: lb demo says which extra it needs
demo_out=$(docker run --rm --network none "$IMAGE_NODE" demo 2>&1) && fail "lb demo ran in the node image"
case $demo_out in *"lb[demo]"*) ;; *) fail "lb demo in the node image said: $demo_out" ;; esac
say "images $IMAGE_NODE, $IMAGE_APP ($version) built offline (build network: $BUILD_NET; ${T_IMAGES} s); $(docker image inspect -f '{{.Size}}' "$IMAGE_NODE" | awk '{ printf "%.0f MB", $1 / 1e6 }')"

# ------------------------------------------------------------------ 4. the farm
T_FARM0=$(now)
secret=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(48))')
sed "s|^secret = .*|secret = \"$secret\"|" "$ROOT/examples/compose/farm.toml" >"$WORK/farm.toml"
chmod 644 "$WORK/farm.toml"
# mutual TLS links: a farm CA and a certificate per node, readable by the image's user
PYTHONPATH="$ROOT" "$PY" -m lb certs "$WORK/certs" --farm compose --nodes a,b,c >/dev/null \
    || fail "lb certs failed"
chown -R 10001:10001 "$WORK/certs"
check() {
    docker run --rm --network none -v "$WORK/farm.toml:/etc/lb/farm.toml:ro" \
        -v "$WORK/certs:/etc/lb/certs:ro" "$IMAGE_NODE" check-config /etc/lb/farm.toml 2>&1
}
out=$(check) || fail "farm file refused: $out"
mode="advertise, mTLS links"
say "farm file: examples/compose/farm.toml, fresh secret, peers found by container name ($mode)"

docker network create --driver bridge --label "$LABEL" "$NET" >/dev/null
for n in "${NODES[@]}"; do
    docker run -d --name "$RUN-app-$n" --label "$LABEL" --network "$NET" --network-alias "app-$n" \
        --no-healthcheck --entrypoint tini "$IMAGE_APP" -- python3 -c "$APP_CODE" "$n" >/dev/null
done
for n in "${NODES[@]}"; do
    docker run -d --name "$RUN-lb-$n" --label "$LABEL" --network "$NET" --network-alias "lb-$n" \
        -e LB_NODE="$n" -v "$WORK/farm.toml:/etc/lb/farm.toml:ro" \
        -v "$WORK/certs:/etc/lb/certs:ro" -p 127.0.0.1::8080 \
        --stop-timeout 30 --health-interval 2s --health-start-period 5s "$IMAGE_NODE" >/dev/null
done
for n in "${NODES[@]}"; do PORT[$n]=$(publish_port "$n"); done
while read -r name value; do COOKIE[$name]=$value; done < <(
    docker exec "$RUN-lb-a" python3 -c 'import os, time
from lb.config import load_config
from lb.routing.cookie import CookieKeyring
c = load_config(os.environ["LB_CONFIG"])
k = CookieKeyring(c.name, c.secret)
for n in c.nodes:
    print(n, k.sign(n, int(time.time()) + 3600))'
)
wait_ready 60 a b c
t=$(now)
for n in "${NODES[@]}"; do
    while [ "$(docker inspect -f '{{.State.Health.Status}}' "$RUN-lb-$n")" != healthy ]; do
        awk -v s="$(since "$t")" 'BEGIN { exit !(s > 30) }' && fail "lb-$n not healthy within 30 s"
        sleep 0.5
    done
done
say "farm up in $(since "$T_FARM0") s: entries 127.0.0.1:${PORT[a]} (a), :${PORT[b]} (b), :${PORT[c]} (c); every entry reaches every home; all healthy"
# the health check asked the node's admin listener (/healthz), and lb ctl reaches it
health_log=$(docker inspect -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "$RUN-lb-a")
case $health_log in *'"status": "ok"'*) ;; *) fail "lb-a's health check did not ask its admin listener: $health_log" ;; esac
ctl_out=$(docker exec "$RUN-lb-a" lb ctl members 2>&1) || fail "lb ctl members in lb-a: $ctl_out"
[ "$(printf '%s\n' "$ctl_out" | awk 'NR > 1 && $2 == "alive"' | wc -l)" = 3 ] \
    || fail "lb ctl members in lb-a: $ctl_out"
say "health checks ask each node's admin listener; lb ctl members in lb-a: a, b, c alive"

# --- sessions stick to their home through every entry
sessions=0
for i in $(seq 1 30); do
    entry=${NODES[$((i % 3))]}
    jar=$WORK/jar.$i
    req "$entry" -c "$jar"
    [ "$R_CODE" = 200 ] || fail "new session via $entry: HTTP $R_CODE"
    [ "$R_HITS" = 1 ] || fail "new session via $entry: session_hits $R_HITS"
    home=$(jar_home "$jar")
    [ "$home" = "$R_NODE" ] || fail "new session via $entry: cookie names home '$home', served by '$R_NODE'"
    HOME_OF[$i]=$home
    HITS[$i]=1
    sessions=$i
    homes=" ${HOME_OF[*]} "
    if [ "$i" -ge 6 ] && [[ $homes == *" a "* && $homes == *" b "* && $homes == *" c "* ]]; then
        break
    fi
done
homes=" ${HOME_OF[*]} "
[[ $homes == *" a "* && $homes == *" b "* && $homes == *" c "* ]] \
    || fail "30 new sessions did not land on every node: ${HOME_OF[*]}"
checked=0
for i in $(seq 1 "$sessions"); do
    for entry in a b c a; do
        req "$entry" -b "$WORK/jar.$i" -c "$WORK/jar.$i"
        HITS[$i]=$((HITS[$i] + 1))
        [ "$R_CODE" = 200 ] || fail "session $i (home ${HOME_OF[$i]}) via $entry: HTTP $R_CODE"
        [ "$R_NODE" = "${HOME_OF[$i]}" ] \
            || fail "session $i (home ${HOME_OF[$i]}) via $entry: served by $R_NODE"
        [ "$R_HITS" = "${HITS[$i]}" ] \
            || fail "session $i via $entry: session_hits $R_HITS, expected ${HITS[$i]}"
        checked=$((checked + 1))
    done
done
count_home() { local c=0 h; for h in "${HOME_OF[@]}"; do [ "$h" = "$1" ] && c=$((c + 1)); done; echo "$c"; }
say "sticky: $sessions sessions (homes a:$(count_home a) b:$(count_home b) c:$(count_home c)), $checked requests through entries a, b, c, each on its home with its counter going up"

# one session per home for the next checks
for i in $(seq 1 "$sessions"); do
    h=${HOME_OF[$i]}
    [ -n "${PICK[$h]:-}" ] || PICK[$h]=$i
done

# --- docker stop drains: no failed request through the other entries
request_loop() { # ENTRIES... ; one line per request: time entry session-home code node
    local n=0 i e
    while [ ! -e "$WORK/loop.stop" ] && [ $n -lt 3000 ]; do
        for h in a b c; do
            i=${PICK[$h]}
            for e in "$@"; do
                req "$e" -b "$WORK/jar.$i"
                echo "$(now) $e $h $R_CODE $R_NODE" >>"$WORK/loop.log"
                n=$((n + 1))
            done
        done
        req "$1"
        echo "$(now) $1 new $R_CODE $R_NODE" >>"$WORK/loop.log"
    done
}
: >"$WORK/loop.log"
request_loop a b &
LOOP_PID=$!
sleep 2
t_stop0=$(now)
docker stop "$RUN-lb-c" >/dev/null
t_stop1=$(now)
T_STOP=$(since "$t_stop0")
sleep 3
touch "$WORK/loop.stop"
wait "$LOOP_PID" || true
LOOP_PID=""
rm -f "$WORK/loop.stop"
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$RUN-lb-c")
[ "$exit_code" = 0 ] || fail "lb-c exited $exit_code after docker stop (137: killed before its drain ended)"
logged "$RUN-lb-c" '"event": "node_stopped"' || fail "lb-c logged no node_stopped"
if logged "$RUN-lb-c" '"event": "drain_deadline"'; then
    fail "lb-c hit its drain deadline"
fi
logged "$RUN-lb-a" '"peer": "c", "old": "[a-z]+", "new": "left"' || fail "lb-a never saw c leave"
total=$(wc -l <"$WORK/loop.log")
failed=$(awk '$4 != 200' "$WORK/loop.log" | wc -l)
before=$(awk -v t="$t_stop0" '$1 < t && $3 == "c" && $5 == "c"' "$WORK/loop.log" | wc -l)
after=$(awk -v t="$t_stop1" '$1 > t && $3 == "c" && $4 == 200 && $5 != "c"' "$WORK/loop.log" | wc -l)
stale=$(awk -v t="$t_stop1" '$1 > t && $5 == "c"' "$WORK/loop.log" | wc -l)
[ "$failed" = 0 ] || { awk '$4 != 200' "$WORK/loop.log" | head; fail "$failed of $total requests failed while lb-c drained"; }
[ "$total" -ge 30 ] || fail "only $total requests in the loop"
[ "$before" -gt 0 ] || fail "no request reached c's session on c before the stop"
[ "$after" -gt 0 ] || fail "no request of c's session was re-homed after the stop"
[ "$stale" = 0 ] || fail "$stale requests were served by c after it stopped"
say "drain: docker stop lb-c took ${T_STOP} s, exit 0; $total requests through a and b during it, 0 failed; c's session served by c before, re-homed after ($after requests)"

# lb-c comes back (same container; its published port may change)
docker start "$RUN-lb-c" >/dev/null
PORT[c]=$(publish_port c)
t=$(now)
wait_ready 60 a b c
say "lb-c restarted and rejoined in $(since "$t") s"

# --- docker kill: detected, the sessions of the dead node re-homed
i=${PICK[b]}
req a -b "$WORK/jar.$i" -c "$WORK/jar.$i"
[ "$R_CODE" = 200 ] && [ "$R_NODE" = b ] || fail "before the kill, b's session via a: HTTP $R_CODE from $R_NODE"
docker kill "$RUN-lb-b" >/dev/null
t_kill=$(now)
errors=0
while :; do
    for e in a c; do
        req "$e" -b "$WORK/jar.$i" -c "$WORK/jar.$i"
        if [ "$R_CODE" = 200 ] && [ "$R_NODE" != b ]; then break 2; fi
        [ "$R_CODE" = 200 ] || errors=$((errors + 1))
    done
    awk -v s="$(since "$t_kill")" 'BEGIN { exit !(s > 20) }' && fail "b's session not re-homed within 20 s of the kill"
    sleep 0.1
done
T_REHOME=$(since "$t_kill")
new_home=$(jar_home "$WORK/jar.$i")
[ "$new_home" = "$R_NODE" ] || fail "re-homed session: cookie names '$new_home', served by '$R_NODE'"
hits=$R_HITS
for e in a c a c; do
    req "$e" -b "$WORK/jar.$i" -c "$WORK/jar.$i"
    hits=$((hits + 1))
    [ "$R_CODE" = 200 ] && [ "$R_NODE" = "$new_home" ] && [ "$R_HITS" = "$hits" ] \
        || fail "re-homed session via $e: HTTP $R_CODE from $R_NODE (hits $R_HITS), expected $new_home (hits $hits)"
done
for e in a c a c a c; do
    req "$e"
    [ "$R_CODE" = 200 ] && [ "$R_NODE" != b ] || fail "new session via $e after the kill: HTTP $R_CODE from $R_NODE"
done
t=$(now)
until logged "$RUN-lb-a" '"peer": "b", "old": "[a-z]+", "new": "dead"'; do
    awk -v s="$(since "$t")" 'BEGIN { exit !(s > 10) }' && fail "lb-a never declared b dead"
    sleep 0.5
done
say "kill: b's session re-homed on $new_home ${T_REHOME} s after docker kill ($errors failed requests before that), sticks there via a and c; new sessions avoid b; lb-a logged b dead"

T_FARM=$(since "$T_FARM0")
T_TOTAL=$(since "$T_START")
echo "PASSED: docker farm ($mode)"
echo "timing: base image ${T_BASE} s ($base_how), wheels ${T_WHEELS} s, images ${T_IMAGES} s, farm checks ${T_FARM} s, total ${T_TOTAL} s"
