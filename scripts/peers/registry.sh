#!/usr/bin/env bash
# Start/stop a CNCF distribution registry (Debian's docker-registry) on 127.0.0.1 (or [::1]) on a
# free port, for tests and benchmarks. Three modes:
#
#   plain      no auth, plain HTTP
#   htpasswd   Basic auth (bcrypt, `htpasswd -B` from apache2-utils) behind TLS, with a CA made
#              here with openssl (DIR/certs/ca.crt; the server cert names 127.0.0.1, ::1, localhost)
#   token      Bearer tokens from scripts/peers/token-issuer.js (ES256 JWTs; the registry's
#              `auth: token:` trusts its certificate through rootcertbundle), plain HTTP
#   tls        no auth, TLS with the test CA (as htpasswd)
#
#   --client-ca (htpasswd, tls): the registry demands a client certificate signed by a client CA
#              made here (`http.tls.clientcas`). Prints CLIENT_CERTS=dir holding client.cert and
#              client.key (Docker's names in certs.d) signed by it, and WRONG_CLIENT_CERTS=dir
#              with a pair from another CA.
#
#   registry.sh start DIR MODE [--host 127.0.0.1|[::1]] [--user U --password P]
#                              [--jwt-ttl S] [--expires-in S] [--expired-first N] [--garbage-tokens]
#                              [--rotate-refresh] [--client-ca]
#       prints KEY=VALUE lines: REGISTRY=host:port PID=... [CERTS=dir with ca.crt] [TOKEN_URL=...]
#   registry.sh stop DIR
#
# DIR holds the config, the storage, the certs and the pids; `stop` ends what `start` started
# (by the pids it wrote) and leaves DIR for the caller to remove.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
die() { echo "registry.sh: $*" >&2; exit 1; }

free_port() {
  node -e 'const s=require("net").createServer().listen(0,process.argv[1],()=>{console.log(s.address().port);s.close()})' "$1"
}

stop() {
  local dir=$1
  for f in "$dir/registry.pid" "$dir/issuer.pid"; do
    if [ -f "$f" ]; then
      local pid; pid=$(cat "$f")
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$f"
    fi
  done
}

start() {
  local dir=$1 mode=$2; shift 2
  local host=127.0.0.1 user=strata password=strata-secret jwt_ttl=300 expires_in='' expired_first=0 garbage='' rotate='' client_ca=''
  while [ $# -gt 0 ]; do
    case "$1" in
      --host) host=$2; shift 2 ;;
      --user) user=$2; shift 2 ;;
      --password) password=$2; shift 2 ;;
      --jwt-ttl) jwt_ttl=$2; shift 2 ;;
      --expires-in) expires_in=$2; shift 2 ;;
      --expired-first) expired_first=$2; shift 2 ;;
      --garbage-tokens) garbage=--garbage; shift ;;
      --rotate-refresh) rotate=--rotate-refresh; shift ;;
      --client-ca) client_ca=1; shift ;;
      *) die "unknown option $1" ;;
    esac
  done
  command -v docker-registry >/dev/null || die "docker-registry missing (npm run setup installs it)"
  mkdir -p "$dir/data"
  local bind=${host#[}; bind=${bind%]}
  local auth='' tls=''
  case "$mode" in
    plain) ;;
    htpasswd|tls)
      mkdir -p "$dir/pki" "$dir/certs"
      openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=strata test CA" \
        -keyout "$dir/pki/ca.key" -out "$dir/pki/ca.crt" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
      openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$dir/pki/server.key" -out "$dir/pki/server.csr" 2>/dev/null
      printf 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$dir/pki/server.ext"
      openssl x509 -req -in "$dir/pki/server.csr" -CA "$dir/pki/ca.crt" -CAkey "$dir/pki/ca.key" -CAcreateserial -days 2 \
        -extfile "$dir/pki/server.ext" -out "$dir/pki/server.crt" 2>/dev/null
      cp "$dir/pki/ca.crt" "$dir/certs/ca.crt" # a certs dir as Docker/skopeo read it: the CA alone
      if [ "$mode" = htpasswd ]; then
        command -v htpasswd >/dev/null || die "htpasswd missing (apache2-utils)"
        htpasswd -Bbn "$user" "$password" >"$dir/htpasswd"
        auth="auth:
  htpasswd:
    realm: strata-test
    path: $dir/htpasswd"
      fi
      tls="  tls:
    certificate: $dir/pki/server.crt
    key: $dir/pki/server.key"
      if [ -n "$client_ca" ]; then
        client_pair() { # DIR CA-NAME: a CA of its own and client.cert/client.key signed by it
          local out=$1 name=$2
          mkdir -p "$out"
          openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$name" -keyout "$dir/pki/$name.key" -out "$dir/pki/$name.crt" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
          openssl req -newkey rsa:2048 -nodes -subj "/CN=strata test client" -keyout "$out/client.key" -out "$dir/pki/$name.csr" 2>/dev/null
          printf 'extendedKeyUsage=clientAuth\n' >"$dir/pki/client.ext"
          openssl x509 -req -in "$dir/pki/$name.csr" -CA "$dir/pki/$name.crt" -CAkey "$dir/pki/$name.key" -CAcreateserial -days 2 \
            -extfile "$dir/pki/client.ext" -out "$out/client.cert" 2>/dev/null
        }
        client_pair "$dir/client" client-ca
        client_pair "$dir/client-wrong" other-client-ca
        tls="$tls
    clientcas:
      - $dir/pki/client-ca.crt"
      fi
      ;;
    token)
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=strata token issuer" \
        -keyout "$dir/token.key" -out "$dir/token.crt" 2>/dev/null
      rm -f "$dir/issuer.port"
      setsid node "$HERE/token-issuer.js" --key "$dir/token.key" --cert "$dir/token.crt" --issuer strata-test-issuer \
        --service strata-test --port-file "$dir/issuer.port" --user "$user:$password" --jwt-ttl "$jwt_ttl" --expired-first "$expired_first" \
        ${expires_in:+--expires-in "$expires_in"} $garbage $rotate </dev/null >"$dir/issuer.log" 2>&1 &
      echo $! >"$dir/issuer.pid"
      for _ in $(seq 1 100); do [ -s "$dir/issuer.port" ] && break; sleep 0.05; done
      [ -s "$dir/issuer.port" ] || die "token issuer did not start: $(cat "$dir/issuer.log")"
      local tport; tport=$(cat "$dir/issuer.port")
      auth="auth:
  token:
    realm: http://127.0.0.1:$tport/token
    service: strata-test
    issuer: strata-test-issuer
    rootcertbundle: $dir/token.crt"
      echo "TOKEN_URL=http://127.0.0.1:$tport"
      ;;
    *) die "mode must be plain, htpasswd, tls or token" ;;
  esac
  [ -z "$client_ca" ] || [ -n "$tls" ] || die "--client-ca needs a TLS mode (htpasswd, tls)"
  local scheme=http; [ -n "$tls" ] && scheme=https
  local probe=(-k)
  [ -n "$client_ca" ] && probe+=(--cert "$dir/client/client.cert" --key "$dir/client/client.key")
  for _ in 1 2 3 4 5; do
    local port; port=$(free_port "$bind")
    cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
$auth
http:
  addr: "$host:$port"
  secret: strata-test-secret
$tls
YAML
    setsid docker-registry serve "$dir/config.yml" </dev/null >"$dir/registry.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 100); do
      if curl -s -o /dev/null "${probe[@]}" "$scheme://$host:$port/v2/"; then
        echo "$pid" >"$dir/registry.pid"
        echo "REGISTRY=$host:$port"
        echo "PID=$pid"
        [ -n "$tls" ] && echo "CERTS=$dir/certs"
        [ -n "$client_ca" ] && echo "CLIENT_CERTS=$dir/client" && echo "WRONG_CLIENT_CERTS=$dir/client-wrong"
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true # the port was taken in between: try another
  done
  stop "$dir"
  die "docker-registry did not start: $(tail -5 "$dir/registry.log")"
}

case "${1:-}" in
  start) [ $# -ge 3 ] || die "usage: registry.sh start DIR MODE [options]"; start "${@:2}" ;;
  stop) [ $# -eq 2 ] || die "usage: registry.sh stop DIR"; stop "$2" ;;
  *) echo "usage: registry.sh start DIR plain|htpasswd|token [options] | stop DIR" >&2; exit 2 ;;
esac
