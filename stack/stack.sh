#!/usr/bin/env bash
# The local stack without Docker: an Apache Kafka broker (official jars from Maven Central, KRaft,
# single node) and a MariaDB server, both on loopback, their files under .stack/ (ignored by git).
#
#   stack/stack.sh up | down | status      (up also creates the database, its schema and the topics)
#   stack/stack.sh kafka-start | kafka-stop | db-start | db-stop
#   stack/stack.sh cluster-up | cluster-down | cluster-bootstrap | cluster-broker-start|stop|kill N
#
# Idempotent: `up` finds running services and returns at once. When DATABASE_URL or
# KAFKA_BOOTSTRAP_SERVERS are set to something other than the local defaults, that service is
# left to the user and not started here. Several brokers can run side by side by giving each its
# own STACK_KAFKA_NAME and STACK_KAFKA_PORT, and several database servers with STACK_DB_NAME and
# STACK_DB_PORT (tests start throwaway brokers and servers that way).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR=${STACK_DIR:-$ROOT/.stack}
KAFKA_NAME=${STACK_KAFKA_NAME:-kafka}
KAFKA_PORT=${STACK_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${STACK_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
KAFKA_HEAP=${STACK_KAFKA_HEAP:-768m}
NODE_ID=1
VOTERS=""
CLUSTER_ID=""
EXTRA_PROPS=""
CLUSTER_NAME=${STACK_CLUSTER_NAME:-kafka-cluster}
CLUSTER_PORT=${STACK_CLUSTER_PORT:-19092}
CLUSTER_SIZE=3
DB_PORT=${STACK_DB_PORT:-3306}
DB_USER=${STACK_DB_USER:-fcfs}
DB_PASSWORD=${STACK_DB_PASSWORD:-fcfs}
LOCAL_KAFKA="127.0.0.1:$KAFKA_PORT"
LOCAL_DB="mysql+pymysql://$DB_USER:$DB_PASSWORD@127.0.0.1:$DB_PORT/"

KAFKA_LIBS=$STACK_DIR/kafka-libs
KAFKA_HOME=$STACK_DIR/$KAFKA_NAME
DB_HOME=$STACK_DIR/${STACK_DB_NAME:-mariadb}

log() { printf '[stack] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {  # port seconds what
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    port_open "$1" && return 0
    sleep 0.1
  done
  log "$3 did not open port $1 within $2 s"
  return 1
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pid() {  # pidfile what
  if pid_alive "$1"; then
    local pid
    pid=$(cat "$1")
    kill "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    log "$2 stopped"
  fi
  rm -f "$1"
}

external_kafka() { [[ -n ${KAFKA_BOOTSTRAP_SERVERS:-} && $KAFKA_BOOTSTRAP_SERVERS != "$LOCAL_KAFKA" ]]; }
external_db() { [[ -n ${DATABASE_URL:-} && $DATABASE_URL != "$LOCAL_DB"* ]]; }

kafka_libs() {
  if [[ -f $KAFKA_LIBS/.complete ]]; then return 0; fi
  log "fetching the Apache Kafka jars from Maven Central (once)"
  rm -rf "$KAFKA_LIBS"
  mvn -q -B -f "$ROOT/stack/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_LIBS" -DincludeScope=runtime >&2
  touch "$KAFKA_LIBS/.complete"
}

kafka_start() {
  if external_kafka; then log "Kafka: using $KAFKA_BOOTSTRAP_SERVERS"; return 0; fi
  if pid_alive "$KAFKA_HOME/pid" && port_open "$KAFKA_PORT"; then
    log "Kafka $KAFKA_NAME already running on $LOCAL_KAFKA"; return 0
  fi
  if port_open "$KAFKA_PORT"; then log "port $KAFKA_PORT is taken by another process"; return 1; fi
  kafka_libs
  mkdir -p "$KAFKA_HOME"
  sed -e "s#@PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#g" \
    -e "s#@NODE_ID@#$NODE_ID#g" -e "s#@VOTERS@#${VOTERS:-1@127.0.0.1:$KAFKA_CONTROLLER_PORT}#g" \
    -e "s#@DATA@#$KAFKA_HOME/data#g" "$ROOT/stack/kafka/server.properties" > "$KAFKA_HOME/server.properties"
  [[ -z $EXTRA_PROPS ]] || printf '%s\n' "$EXTRA_PROPS" >> "$KAFKA_HOME/server.properties"
  sed -e "s#@LOG@#$KAFKA_HOME/server.log#g" "$ROOT/stack/kafka/log4j2.properties" > "$KAFKA_HOME/log4j2.properties"
  if [[ ! -f $KAFKA_HOME/data/meta.properties ]]; then
    local cluster_id=$CLUSTER_ID
    [[ -n $cluster_id ]] || cluster_id=$(java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$KAFKA_HOME/server.properties" > "$KAFKA_HOME/format.log" 2>&1
  fi
  log "starting Kafka $KAFKA_NAME on $LOCAL_KAFKA"
  nohup java "-Xmx$KAFKA_HEAP" "-Xms$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true "-Dlog4j2.configurationFile=$KAFKA_HOME/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_HOME/server.properties" \
    > "$KAFKA_HOME/stdout.log" 2>&1 < /dev/null &
  echo $! > "$KAFKA_HOME/pid"
  [[ ${1:-} == --no-wait ]] && return 0
  wait_port "$KAFKA_PORT" 60 Kafka || { tail -n 20 "$KAFKA_HOME/server.log" >&2; return 1; }
}

kafka_stop() { stop_pid "$KAFKA_HOME/pid" "Kafka $KAFKA_NAME"; }

# A 3-broker KRaft cluster on loopback (each node broker and controller), replication factor 3 and
# min.insync.replicas 2: broker N listens on STACK_CLUSTER_PORT + 2(N-1), its controller one above.
cluster_node() {  # node number -> sets the variables kafka_start uses
  local n=$1 i
  NODE_ID=$n
  KAFKA_NAME=$CLUSTER_NAME-$n
  KAFKA_HOME=$STACK_DIR/$KAFKA_NAME
  KAFKA_PORT=$((CLUSTER_PORT + 2 * (n - 1)))
  KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
  LOCAL_KAFKA="127.0.0.1:$KAFKA_PORT"
  VOTERS=""
  for ((i = 1; i <= CLUSTER_SIZE; i++)); do
    VOTERS+="${VOTERS:+,}$i@127.0.0.1:$((CLUSTER_PORT + 2 * (i - 1) + 1))"
  done
  EXTRA_PROPS=$'offsets.topic.replication.factor=3\ntransaction.state.log.replication.factor=3\ntransaction.state.log.min.isr=2\ndefault.replication.factor=3\nmin.insync.replicas=2\nshare.coordinator.state.topic.replication.factor=3\nshare.coordinator.state.topic.min.isr=2\nbroker.heartbeat.interval.ms=1000\nbroker.session.timeout.ms=4000'
}

cluster_bootstrap() {
  local i out=""
  for ((i = 0; i < CLUSTER_SIZE; i++)); do out+="${out:+,}127.0.0.1:$((CLUSTER_PORT + 2 * i))"; done
  echo "$out"
}

cluster_up() {
  unset KAFKA_BOOTSTRAP_SERVERS
  kafka_libs
  local id_file=$STACK_DIR/$CLUSTER_NAME.cluster-id n
  mkdir -p "$STACK_DIR"
  [[ -f $id_file ]] || java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1 > "$id_file"
  CLUSTER_ID=$(cat "$id_file")
  for ((n = 1; n <= CLUSTER_SIZE; n++)); do (cluster_node "$n"; kafka_start --no-wait); done
  for ((n = 1; n <= CLUSTER_SIZE; n++)); do wait_port $((CLUSTER_PORT + 2 * (n - 1))) 90 "Kafka node $n"; done
  log "cluster up: KAFKA_BOOTSTRAP_SERVERS=$(cluster_bootstrap) KAFKA_REPLICATION_FACTOR=3 KAFKA_MIN_INSYNC_REPLICAS=2"
}

cluster_down() {
  local n
  for ((n = 1; n <= CLUSTER_SIZE; n++)); do (cluster_node "$n"; kafka_stop); done
}

cluster_broker() {  # start|stop|kill N
  local action=$1 n=$2
  cluster_node "$n"
  case $action in
    start) unset KAFKA_BOOTSTRAP_SERVERS; CLUSTER_ID=$(cat "$STACK_DIR/$CLUSTER_NAME.cluster-id"); kafka_start ;;
    stop) kafka_stop ;;
    kill) if ! pid_alive "$KAFKA_HOME/pid"; then echo "[stack] node $n is not running: nothing to kill" >&2; exit 1; fi
          kill -9 "$(cat "$KAFKA_HOME/pid")"; log "node $n killed"
          rm -f "$KAFKA_HOME/pid" ;;
  esac
}

db_sql() { mariadb --protocol=socket -S "$DB_HOME/mysqld.sock" -uroot "$@"; }

db_start() {
  if external_db; then log "database: using the DATABASE_URL server"; return 0; fi
  if pid_alive "$DB_HOME/mysqld.pid" && port_open "$DB_PORT"; then
    log "MariaDB already running on 127.0.0.1:$DB_PORT"; return 0
  fi
  if port_open "$DB_PORT"; then log "port $DB_PORT is taken by another process"; return 1; fi
  command -v mariadbd > /dev/null || { log "mariadbd not found: apt-get install mariadb-server"; return 1; }
  mkdir -p "$DB_HOME"
  if [[ ! -d $DB_HOME/data/mysql ]]; then
    mariadb-install-db --user="$(id -un)" --datadir="$DB_HOME/data" --skip-test-db \
      --auth-root-authentication-method=socket > "$DB_HOME/install.log" 2>&1
  fi
  log "starting MariaDB on 127.0.0.1:$DB_PORT"
  nohup mariadbd --defaults-file="$ROOT/stack/mariadb.cnf" --user="$(id -un)" --datadir="$DB_HOME/data" \
    --bind-address=127.0.0.1 --port="$DB_PORT" --socket="$DB_HOME/mysqld.sock" \
    --pid-file="$DB_HOME/mysqld.pid" --log-error="$DB_HOME/error.log" \
    > /dev/null 2>&1 < /dev/null &
  wait_port "$DB_PORT" 60 MariaDB || { tail -n 20 "$DB_HOME/error.log" >&2; return 1; }
  for _ in $(seq 1 50); do [[ -S $DB_HOME/mysqld.sock ]] && break; sleep 0.1; done
  db_sql -e "CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
             CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
             GRANT ALL PRIVILEGES ON \`fcfs%\`.* TO '$DB_USER'@'127.0.0.1';
             GRANT ALL PRIVILEGES ON \`fcfs%\`.* TO '$DB_USER'@'localhost';"
}

db_stop() { stop_pid "$DB_HOME/mysqld.pid" MariaDB; }

status() {
  if external_kafka; then echo "kafka: external $KAFKA_BOOTSTRAP_SERVERS"
  elif pid_alive "$KAFKA_HOME/pid" && port_open "$KAFKA_PORT"; then echo "kafka: running $LOCAL_KAFKA"
  else echo "kafka: stopped"; fi
  if external_db; then echo "database: external"
  elif pid_alive "$DB_HOME/mysqld.pid" && port_open "$DB_PORT"; then echo "database: running 127.0.0.1:$DB_PORT"
  else echo "database: stopped"; fi
}

provision() {  # the database (created, migrated) and the topics, when the Python environment is there
  local python=${PYTHON:-$ROOT/.venv/bin/python}
  if [[ -x $python ]]; then
    (cd "$ROOT" && "$python" -m fcfs.provision)
  else
    log "no .venv yet: run scripts/bootstrap.sh, then 'python -m fcfs.provision' creates the database and topics"
  fi
}

case ${1:-} in
  up) db_start; kafka_start; provision ;;
  down) kafka_stop; db_stop ;;
  status) status ;;
  kafka-start) kafka_start ;;
  kafka-stop) kafka_stop ;;
  db-start) db_start ;;
  db-stop) db_stop ;;
  cluster-up) cluster_up ;;
  cluster-down) cluster_down ;;
  cluster-bootstrap) cluster_bootstrap ;;
  cluster-broker-start | cluster-broker-stop | cluster-broker-kill) cluster_broker "${1#cluster-broker-}" "${2:?node 1-3}" ;;
  *) echo "usage: $0 up|down|status|kafka-start|kafka-stop|db-start|db-stop|cluster-up|cluster-down|cluster-bootstrap|cluster-broker-start|stop|kill N" >&2; exit 2 ;;
esac
