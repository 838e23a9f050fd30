#!/usr/bin/env bash
# Start what the database tests talk to, installing it first on a machine that lacks it:
#   PostgreSQL on 127.0.0.1:5432 (trust for local TCP, role root/postgres, database test)
#   MariaDB    on 127.0.0.1:3306 (root with an empty password, database test)
#   Redis      on 127.0.0.1:6379 (no password; the tests start private ones with passwords)
#   RabbitMQ   on 127.0.0.1:5672 (guest/guest; the tests add a user and vhosts with rabbitmqctl)
# and the binaries of Mosquitto (mosquitto, mosquitto_passwd), nats-server and memcached, which
# the tests start as private servers with logins and certificates of their own; a Docker engine
# (scripts/docker.sh);
# plus the server binaries (initdb, postgres) the tests use to start private PostgreSQL servers
# with password authentication, openssl for test certificates, and Debian's prometheus-client for
# /usr/bin/python3 (the serve tests parse /metrics with its OpenMetrics parser), and the gRPC
# test peers' Python packages in target/grpc-venv; Chromium and ChromeDriver for the status
# page's browser test. Idempotent; run as root.
#   scripts/test-services.sh && cargo test
set -euo pipefail

log() { echo "test-services: $*" >&2; }

need=()
command -v openssl >/dev/null 2>&1 || need+=(openssl)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
[ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v rabbitmqctl >/dev/null 2>&1 || need+=(rabbitmq-server)
command -v mosquitto_passwd >/dev/null 2>&1 || need+=(mosquitto)
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
command -v memcached >/dev/null 2>&1 || need+=(memcached)
# The status page's browser test (tests/serve.rs) drives Debian's Chromium through ChromeDriver.
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
/usr/bin/python3 -c 'import prometheus_client.openmetrics.parser' >/dev/null 2>&1 \
  || need+=(python3-prometheus-client)
fresh_pg=0 fresh_my=0
if ((${#need[@]})); then
  log "installing ${need[*]}"
  [[ " ${need[*]} " == *" postgresql "* ]] && fresh_pg=1
  [[ " ${need[*]} " == *" mariadb-server "* ]] && fresh_my=1
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

wait_for() { # name, command...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "$name did not come up"; return 1
}

# PostgreSQL: the newest installed cluster "main".
version=$(ls /etc/postgresql | sort -V | tail -1)
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi
wait_for PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432
if ((fresh_pg)); then
  hba=/etc/postgresql/$version/main/pg_hba.conf
  sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  su postgres -c "psql -qc 'SELECT pg_reload_conf()'" >/dev/null
  su postgres -c "psql -qc 'CREATE ROLE root SUPERUSER LOGIN'" >/dev/null || true
  su postgres -c "createdb test" || true
fi

# MariaDB.
if ! mysqladmin --protocol=tcp -h 127.0.0.1 -u root status >/dev/null 2>&1 \
   && ! [ -S /run/mysqld/mysqld.sock ]; then
  log "starting MariaDB"
  install -d -o mysql -g mysql /run/mysqld
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
fi
wait_for MariaDB test -S /run/mysqld/mysqld.sock
if ((fresh_my)); then
  mariadb -e "ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD(''); CREATE DATABASE IF NOT EXISTS test"
fi
wait_for "MariaDB on 127.0.0.1:3306" mysqladmin --protocol=tcp -h 127.0.0.1 -u root status
# Redis.
redis_up() { exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && read -r -t 2 reply <&3 && [[ $reply == +PONG* ]]; }
if ! (redis_up) 2>/dev/null; then
  log "starting Redis"
  redis-server --daemonize yes --port 6379 --bind 127.0.0.1 --save "" --appendonly no >/dev/null
fi
wait_for Redis bash -c "$(declare -f redis_up); redis_up"
# RabbitMQ (its Erlang node takes a few seconds to boot; `await_startup` waits for it).
if ! rabbitmqctl -q status >/dev/null 2>&1; then
  log "starting RabbitMQ"
  rabbitmq-server -detached >/dev/null 2>&1 || true
fi
wait_for RabbitMQ rabbitmqctl -q await_startup
wait_for "RabbitMQ on 127.0.0.1:5672" bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672'
# The gRPC tests' peers (tests/grpc.rs): grpcio with its health servicer, and python-hyper's
# h2, in a venv of their own (Debian's python3 takes no pip installs).
grpc_venv="$(dirname "$0")/../target/grpc-venv"
if ! "$grpc_venv/bin/python" -c 'import grpc, grpc_health, h2' >/dev/null 2>&1; then
  log "installing grpcio, grpcio-health-checking and h2 into $grpc_venv"
  py=$(command -v python3)
  "$py" -m venv "$grpc_venv" 2>/dev/null \
    || { apt-get install -y -qq python3-venv >/dev/null && /usr/bin/python3 -m venv "$grpc_venv"; }
  "$grpc_venv/bin/pip" install -q grpcio grpcio-health-checking h2
fi
# A Docker engine for tests/docker.rs: no bridge, no iptables rules (scripts/docker.sh).
"$(dirname "$0")/docker.sh"
log "PostgreSQL, MariaDB, Redis and RabbitMQ are up"
