#!/bin/bash
# Scale-out on more than one host (issue 5, item 9). Two responder hosts are
# two network namespaces made here (ip netns, one veth pair each), with
# addresses from the benchmarking range 198.18.0.0/15 that exist only on
# those veths. Each runs avatar.fcgi in bytes mode over TCP
# (--socket 198.18.N.x:9000) with FCGI_WEB_SERVER_ADDRS naming the host-side
# address, so only the front server may talk to it. nginx on the host
# balances between them with the shipped avatar-fastcgi.conf snippet
# (fastcgi_next_upstream error timeout invalid_header). Under ab -c 50:
#   1. host A's responder is stopped: 0 failed GETs, 0 non-2xx;
#   2. it comes back: requests reach it again (its debug log counts them);
#   3. host A's link goes down (the host vanishes, packets are dropped):
#      0 failed GETs, with a 1 s fastcgi_connect_timeout in the upstream.
# Also: a peer not in FCGI_WEB_SERVER_ADDRS (host B's address) is refused by
# host A. Skips only where network namespaces cannot be made; CI runs as
# root and must run it. Cleans up namespaces and processes on any exit.
# STRESS_SECONDS (default 20) bounds each ab run.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${STRESS_SECONDS:-20}
[[ $SECS =~ ^[0-9]+$ ]] && [ "$SECS" -ge 6 ] || { echo "Bail out! STRESS_SECONDS=$SECS: want a whole number >= 6"; exit 1; }
BIN=$ROOT/avatar.fcgi
HOSTILE=$ROOT/build/fcgi-hostile
n=0
fails=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi; }
diag() { echo "# $*"; }

TMP=$(mktemp -d /tmp/rel-netns-XXXXXX)
TAG=$$
NSA=av5a$TAG NSB=av5b$TAG
OCT=$((TAG % 250 + 1))
HA=198.18.$OCT.1 A=198.18.$OCT.2 HB=198.18.$OCT.5 B=198.18.$OCT.6
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill -TERM "$p" 2>/dev/null; done
    sleep 0.5
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill -KILL "$p" 2>/dev/null; done
    [ -f "$TMP/nginx/nginx.pid" ] && kill -KILL "$(cat "$TMP/nginx/nginx.pid")" 2>/dev/null
    # Deleting a namespace deletes its end of the veth, and so the pair.
    ip netns del "$NSA" 2>/dev/null
    ip netns del "$NSB" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for t in ip nginx ab; do
    command -v $t >/dev/null || PATH=$PATH:/usr/sbin
    command -v $t >/dev/null || { echo "1..0 # SKIP $t is not installed"; exit 0; }
done
[ -x "$BIN" ] && [ -x "$HOSTILE" ] || { echo "Bail out! build avatar.fcgi and build/fcgi-hostile first"; exit 1; }
if ! ip netns add "$NSA" 2>"$TMP/err"; then
    echo "1..0 # SKIP network namespaces are not allowed here: $(cat "$TMP/err")"
    exit 0
fi
if ip -o addr | grep -q " 198\.18\.$OCT\."; then
    echo "Bail out! 198.18.$OCT.0/24 already exists outside the test"; exit 1
fi
ip netns add "$NSB" || { echo "Bail out! ip netns add $NSB"; exit 1; }

# One veth pair per host: hX on the host, nX inside the namespace.
setup_host() {  # NS HOSTADDR NSADDR SUFFIX
    ip link add h$4$TAG type veth peer name n$4$TAG || return 1
    ip link set n$4$TAG netns "$1" || return 1
    ip addr add "$2/30" dev h$4$TAG && ip link set h$4$TAG up || return 1
    ip -n "$1" addr add "$3/30" dev n$4$TAG && ip -n "$1" link set n$4$TAG up && ip -n "$1" link set lo up
}
setup_host "$NSA" "$HA" "$A" a && setup_host "$NSB" "$HB" "$B" b || { echo "Bail out! veth setup failed"; exit 1; }

mkdir -p "$TMP/avatars" "$TMP/nginx/tmp"
cp "$ROOT/avatars/-1.png" "$ROOT/avatars/1000.png" "$TMP/avatars/"

start_responder() {  # NS ADDR ALLOWED LOG -> sets RPID
    ip netns exec "$1" env FCGI_WEB_SERVER_ADDRS="$3" "$BIN" --mode bytes --socket "$2:9000" \
        --workers 2 --dir "$TMP/avatars" --log-level debug </dev/null >>"$4" 2>&1 &
    RPID=$!
    PIDS+=("$RPID")
    local i
    for ((i = 0; i < 50; i++)); do
        "$HOSTILE" --wait 1 "$2:9000" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
start_responder "$NSA" "$A" "$HA" "$TMP/a.log"; RA=$RPID
start_responder "$NSB" "$B" "$HB" "$TMP/b.log"; RB=$RPID
out=$("$HOSTILE" "$A:9000" ping); ok $? "host A answers FastCGI from the front server's address ($out)"
out=$("$HOSTILE" "$B:9000" ping); ok $? "host B answers FastCGI from the front server's address ($out)"
# From inside B, A is reached through the host only if forwarding is on;
# instead check the allow list directly: a second responder in A allowing
# only an address nobody has refuses the front server.
ip netns exec "$NSA" env FCGI_WEB_SERVER_ADDRS=198.18.$OCT.99 "$BIN" --mode bytes --socket "$A:9001" \
    --dir "$TMP/avatars" </dev/null >"$TMP/deny.log" 2>&1 &
PIDS+=($!)
sleep 0.5
out=$("$HOSTILE" --wait 2 "$A:9001" ping); rc=$?
ok $((rc == 0)) "a responder whose FCGI_WEB_SERVER_ADDRS omits the front server refuses it ($out)"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cp "$ROOT/conf/nginx/avatar-fastcgi.conf" "$TMP/nginx/avatar-fastcgi.conf"
cat >"$TMP/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 2;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/tmp/body;
    fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
    proxy_temp_path $TMP/nginx/tmp/proxy;
    scgi_temp_path $TMP/nginx/tmp/scgi;
    uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
    # Two responder hosts. A host that fails is left alone for 2 s, then
    # tried again; a host that does not answer a connect in 1 s is skipped.
    upstream avatar {
        server $A:9000 max_fails=1 fail_timeout=2s;
        server $B:9000 max_fails=1 fail_timeout=2s;
        keepalive 8;
    }
    fastcgi_connect_timeout 1s;
    server {
        listen 127.0.0.1:$PORT;
        location ~ "^/(?:avatar/)?[^/]+\$" {
            include $TMP/nginx/avatar-fastcgi.conf;
        }
    }
}
CONF
nginx -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" </dev/null >"$TMP/nginx.out" 2>&1 &
PIDS+=($!)
for ((i = 0; i < 50; i++)); do
    curl -s -o /dev/null -m 1 "http://127.0.0.1:$PORT/1000" && break
    sleep 0.1
done
code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$PORT/1000")
ok $(( code != 200 )) "nginx in front of both hosts answers ($code)"

served() { grep -c 'debug:.*1000' "$1" 2>/dev/null || true; }

ab_phase() {  # NAME ACTION-AT-1/3 ACTION-AT-2/3
    ab -r -c 50 -t "$SECS" -n 100000000 "http://127.0.0.1:$PORT/1000" >"$TMP/ab-$1.out" 2>&1 &
    local ab=$!
    sleep $((SECS / 3))
    eval "$2"
    sleep $((SECS / 3))
    eval "$3"
    wait $ab
    local complete failed non2xx max
    complete=$(awk '/^Complete requests:/ {print $3}' "$TMP/ab-$1.out")
    failed=$(awk '/^Failed requests:/ {print $3}' "$TMP/ab-$1.out")
    non2xx=$(awk '/^Non-2xx responses:/ {print $3}' "$TMP/ab-$1.out")
    max=$(awk '$1 == "100%" {print $2}' "$TMP/ab-$1.out")
    ok $(( ${complete:-0} == 0 )) "$1: ab -c 50 completed ${complete:-0} requests"
    ok "${failed:-1}" "$1: ${failed:-?} failed GETs"
    ok "${non2xx:-0}" "$1: ${non2xx:-0} non-2xx"
    diag "$1: ${complete:-0} requests, ${failed:-?} failed, ${non2xx:-0} non-2xx, longest ${max:-?} ms"
    [ "${failed:-1}" = 0 ] && [ "${non2xx:-0}" = 0 ] || sed 's/^/#   /' "$TMP/ab-$1.out" | head -30
}

# 1 and 2: responder A stopped, then started again.
stop_a() { kill -TERM "$RA"; wait "$RA"; echo "$?" >"$TMP/a.status"; }
back_a() { : >"$TMP/a2.log"; start_responder "$NSA" "$A" "$HA" "$TMP/a2.log"; RA=$RPID; }
ab_phase 'host A responder stopped and restarted' stop_a back_a
ok "$(cat "$TMP/a.status")" "host A's responder exited 0 on SIGTERM under load"
sleep 3
ab -c 20 -n 2000 "http://127.0.0.1:$PORT/1000" >/dev/null 2>&1
got=$(served "$TMP/a2.log")
ok $(( got == 0 )) "host A back: traffic returns to it ($got requests logged by its new responder)"

# 3: host A's link goes down (no RST, no ICMP: its packets are dropped).
down_a() { ip link set "ha$TAG" down; }
up_a() { ip link set "ha$TAG" up; }
ab_phase 'host A link down' down_a up_a
err=$(grep -c 'upstream timed out\|connect() failed' "$TMP/nginx/error.log" || true)
diag "nginx error.log: $err upstream connect errors or timeouts, all retried on host B"

echo "1..$n"
[ "$fails" = 0 ]
