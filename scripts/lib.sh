# Shared helpers for the scripts: idempotent installs, nothing done twice.

# The Rust toolchain (rustup's stable) must be on PATH; Debian's own rustc is too old.
need_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found. Install Rust with rustup (stable >= 1.85)." >&2
    exit 1
  fi
}

# apt-get install the given packages if any is missing (runs apt-get update once).
apt_need() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
}

# PostgreSQL and NATS (JetStream) on loopback for the tests that need them: installed from
# Debian if missing, started if not running, waited for; database `test` created; then
# GAROU_TEST_PG and GAROU_TEST_NATS exported unless already set (so those tests run instead
# of skipping). Idempotent. The tests connect as `postgres` without a password over TCP, so
# loopback connections of that user are trusted (this is a test machine's database).
need_services() {
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ -z "${GAROU_TEST_PG:-}" ]; then
    apt_need postgresql
    local version
    version=$(ls /etc/postgresql | sort -V | tail -1)
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
      $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    fi
    wait_until "PostgreSQL" pg_isready -q -h 127.0.0.1 -p 5432
    if ! psql -h 127.0.0.1 -U postgres -d postgres -w -tAc 'SELECT 1' >/dev/null 2>&1; then
      local hba="/etc/postgresql/$version/main/pg_hba.conf"
      $sudo sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
      $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main reload
      wait_until "PostgreSQL trusting loopback" psql -h 127.0.0.1 -U postgres -d postgres -w -tAc 'SELECT 1'
    fi
    if [ "$(psql -h 127.0.0.1 -U postgres -d postgres -w -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'")" != 1 ]; then
      psql -h 127.0.0.1 -U postgres -d postgres -w -qc 'CREATE DATABASE test'
    fi
    export GAROU_TEST_PG=postgres://postgres@127.0.0.1:5432/test
  fi
  if [ -z "${GAROU_TEST_NATS:-}" ]; then
    apt_need nats-server
    if ! nats_answers; then
      $sudo mkdir -p /var/lib/nats-server
      $sudo start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
        -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
    fi
    wait_until "NATS" nats_answers
    export GAROU_TEST_NATS=nats://127.0.0.1:4222
  fi
}

# NATS greets every client with an INFO line.
nats_answers() {
  timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222 && head -c 4 <&3' 2>/dev/null | grep -q INFO
}

# Run "$2..." until it succeeds, at most 30 s; fail naming $1.
wait_until() {
  local what=$1; shift
  for _ in $(seq 60); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "error: $what does not answer" >&2
  exit 1
}
