# Sourced by scripts/bench.sh and scripts/link-order.sh: a private PostgreSQL configured as Debian
# configures one (scram-sha-256 passwords, TLS on with an RSA key), on a free loopback port.
#   private_pg WORKDIR PASSWORD   sets pg_dsn (postgres://bench:PASSWORD@127.0.0.1:PORT/postgres)
#   stop_private_pg WORKDIR
#   free_port                     prints a free TCP port on 127.0.0.1
# WORKDIR must be readable by the postgres user. Runs as root (the server runs as postgres) or as
# the user owning WORKDIR.
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_postgres() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups "$@"; else "$@"; fi; }

private_pg() {
  local work=$1 password=$2 port
  port=$(free_port)
  printf '%s' "$password" > "$work/pgpw"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout "$work/server.key" \
    -out "$work/server.pem" >/dev/null 2>&1
  [ "$(id -u)" = 0 ] && chown postgres "$work" "$work/pgpw" "$work/server.key" "$work/server.pem"
  chmod 600 "$work/server.key"
  as_postgres "$pgbin/initdb" -D "$work/pg" -U bench --pwfile="$work/pgpw" -A scram-sha-256 -E UTF8 \
    --locale=C --no-sync >/dev/null
  as_postgres "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start -o "-c port=$port \
    -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work -c fsync=off -c ssl=on \
    -c ssl_cert_file=$work/server.pem -c ssl_key_file=$work/server.key" >/dev/null
  pg_port=$port
  pg_dsn="postgres://bench:$password@127.0.0.1:$port/postgres"
}

stop_private_pg() {
  [ -d "$1/pg" ] && as_postgres "$pgbin/pg_ctl" -D "$1/pg" -m immediate stop >/dev/null 2>&1
  return 0
}
