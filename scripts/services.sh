#!/usr/bin/env bash
# Start the shared servers the integration tests use, if they are not answering already:
# PostgreSQL 127.0.0.1:5432 (trust, db `test`), MariaDB 127.0.0.1:3306 (root, no password, db `test`),
# Redis 127.0.0.1:6379, NATS with JetStream 127.0.0.1:4222, RabbitMQ 127.0.0.1:5672 (guest/guest)
# with its management API on 15672. Tests that stop or break a server
# start private instances of their own instead.
set -euo pipefail
log() { printf '[services] %s\n' "$*" >&2; }
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_up() {
  for _ in $(seq 1 100); do up "$1" && return 0; sleep 0.1; done
  log "$2 did not come up on port $1"; return 1
}

if ! up 5432; then
  log "starting PostgreSQL"
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
  if [ -z "$version" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
    pg_createcluster "$version" main >/dev/null
  fi
  conf=/etc/postgresql/$version/main
  grep -q "^host all all 127.0.0.1/32 trust" "$conf/pg_hba.conf" || \
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$conf/pg_hba.conf"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_up 5432 PostgreSQL
fi
for db in test root; do
  runuser -u postgres -- psql -h 127.0.0.1 -tAc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1 || \
    runuser -u postgres -- createdb -h 127.0.0.1 "$db"
done
runuser -u postgres -- psql -h 127.0.0.1 -tAc "SELECT 1 FROM pg_roles WHERE rolname='root'" | grep -q 1 || \
  runuser -u postgres -- psql -h 127.0.0.1 -qc "CREATE ROLE root SUPERUSER LOGIN"

if ! up 3306; then
  log "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_up 3306 MariaDB
  # a fresh install lets root in over the socket only
  mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES" 2>/dev/null || true
fi
mariadb -uroot -h127.0.0.1 -e "CREATE DATABASE IF NOT EXISTS test" 2>/dev/null || mariadb -uroot -e "CREATE DATABASE IF NOT EXISTS test"

if ! up 6379; then
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_up 6379 Redis
fi

if ! up 4222; then
  log "starting NATS"
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_up 4222 NATS
fi

if ! up 5672; then
  log "starting RabbitMQ"
  rabbitmq-server -detached
  wait_up 5672 RabbitMQ
fi
if ! up 15672; then
  # the amqp probe reads unacknowledged messages from the management API
  log "enabling RabbitMQ's management plugin"
  for _ in $(seq 1 30); do rabbitmq-plugins enable rabbitmq_management >/dev/null 2>&1 && break; sleep 1; done
  wait_up 15672 "RabbitMQ management"
fi
