#!/usr/bin/env bash
# System tools the test suite needs beyond npm packages. Idempotent and quiet: `npm test` runs it
# first (pretest), and so does `.ci/run`. Each section installs or starts one tool if it is
# missing and says what it does; with everything present it prints one line. Debian packages need
# root: without it, a missing package fails here with its name and the command to run.
set -euo pipefail
cd "$(dirname "$0")/.."
step="start"
say() { step="$*"; echo "ci-deps: $*"; }
trap 'echo "ci-deps: FAILED while: $step" >&2' ERR

# apt-get as root, or a clear failure naming the package when this user cannot install it.
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "ci-deps: the tests need the Debian package(s) $*, which only root can install:" >&2
    echo "ci-deps:   sudo apt-get update && sudo apt-get install -y $*" >&2
    echo "ci-deps: (or run 'sudo bash scripts/ci-deps.sh' once)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# promtool (Debian's `prometheus` package): `promtool check rules` / `promtool test rules` on deploy/prometheus/.
if ! command -v promtool >/dev/null 2>&1; then
  say "installing promtool (apt: prometheus)"
  apt_install prometheus
  # The package starts a Prometheus server where services run; tests only need the binary.
  (systemctl disable --now prometheus >/dev/null 2>&1 || service prometheus stop >/dev/null 2>&1 || true)
fi

# kustomize (Go module, into the gitignored .tools/): `kustomize build` of deploy/ overlays.
if [ ! -x .tools/kustomize ]; then
  say "building kustomize v5.7.1 into .tools/ (go install)"
  mkdir -p .tools
  GOBIN="$PWD/.tools" GOFLAGS=-mod=mod go install sigs.k8s.io/kustomize/kustomize/v5@v5.7.1
fi

# versitygw (Go module, into .tools/): the real S3-compatible server of the storage tests (posix
# backend on a temp folder, started by test/global-setup.ts). About 3 minutes the first time.
if [ ! -x .tools/versitygw ]; then
  say "building versitygw v1.8.0 into .tools/ (go install; a few minutes the first time)"
  mkdir -p .tools
  GOBIN="$PWD/.tools" GOFLAGS=-mod=mod go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
fi

# Jaeger v2 (Go module, into .tools/): the real OTLP receiver of the tracing test and bench
# (test/helpers/jaeger.ts). Its go.mod has a `replace` directive, which `go install pkg@version`
# refuses, so it is built from a throwaway module that requires it as a tool.
# About 15 minutes the first time on 2 cores.
if [ ! -x .tools/jaeger ]; then
  say "building jaeger v1.75.0 (v2 all-in-one) into .tools/ (go build; about 15 minutes the first time)"
  mkdir -p .tools
  jb="$(mktemp -d)"
  (cd "$jb" && go mod init jaeger-build >/dev/null 2>&1 \
    && GOFLAGS=-mod=mod go get -tool github.com/jaegertracing/jaeger/cmd/jaeger@v1.75.0 \
    && GOFLAGS=-mod=mod go build -o "$OLDPWD/.tools/jaeger.tmp" github.com/jaegertracing/jaeger/cmd/jaeger)
  mv .tools/jaeger.tmp .tools/jaeger
  rm -rf "$jb"
fi

# PostgreSQL and Redis on 127.0.0.1 (report, DLQ and rate-limit tests). Start them when installed
# but stopped; install them from Debian's packages when missing.
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  say "starting Redis on 127.0.0.1:6379"
  if ! command -v redis-server >/dev/null 2>&1; then
    say "installing Redis (apt: redis-server)"
    apt_install redis-server
  fi
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  say "starting PostgreSQL on 127.0.0.1:5432"
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    say "installing PostgreSQL (apt: postgresql)"
    apt_install postgresql
    # Trust auth on loopback, as the tests expect (a throwaway CI database).
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
      sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/; s/^(local\s+all\s+(postgres|all)\s+)\S+/\1trust/' "$hba"
    done
  fi
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  for _ in $(seq 1 30); do (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null && break; sleep 1; done
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 || psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE test' >/dev/null
fi

# Chromium (Debian's package) for the Temporal UI end-to-end test (playwright-core drives
# /usr/bin/chromium; no browser download).
if [ ! -x /usr/bin/chromium ]; then
  say "installing Chromium (apt: chromium)"
  apt_install chromium
fi
echo "ci-deps: ready (promtool, kustomize, versitygw, jaeger, Redis, PostgreSQL, Chromium)"
