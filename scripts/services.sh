#!/usr/bin/env bash
# Make sure the real PostgreSQL (127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672) run.
# Starts them when installed but stopped; fails with a clear message when missing.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do port_open "$port" && return 0; sleep 1; done
  echo "error: $name did not come up on 127.0.0.1:$port within 60 s" >&2
  exit 1
}

if ! port_open 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && ls /etc/postgresql >/dev/null 2>&1; then
    echo "starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    wait_port 5432 PostgreSQL
  else
    echo "error: PostgreSQL is not installed (need a server on 127.0.0.1:5432 with trust auth; on Debian: apt-get install postgresql)" >&2
    exit 1
  fi
fi

if ! port_open 5672; then
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "starting RabbitMQ" >&2
    rabbitmq-server -detached
    wait_port 5672 RabbitMQ
  else
    echo "error: RabbitMQ is not installed (need a broker on 127.0.0.1:5672, guest/guest; on Debian: apt-get install rabbitmq-server)" >&2
    exit 1
  fi
fi
