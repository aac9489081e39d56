#!/usr/bin/env bash
# Make sure this machine has what `make test` (or `make run`) needs outside Python, and that the
# services the tests talk to are up. Idempotent: it does nothing when everything is there.
#
#   scripts/ensure-system.sh test   Debian chromium (dashboard browser test), Mosquitto running on
#                                   127.0.0.1:1883, PostgreSQL running on 127.0.0.1:5432 with trust
#                                   authentication for local connections (a test machine)
#   scripts/ensure-system.sh run    the Mosquitto binary (`heartline serve` starts its own broker)
#
# As root it installs what is missing with apt-get (Debian/Ubuntu) and starts the services;
# otherwise it stops with one message naming everything to install or start.
# HEARTLINE_TEST_PG_URL set: that PostgreSQL is used as it is (nothing local is installed/started).
set -euo pipefail
mode="${1:-test}"
case "$mode" in test | run) ;; *) echo "usage: $0 [test|run]" >&2; exit 2 ;; esac
export DEBIAN_FRONTEND=noninteractive

say() { echo "ensure-system: $*"; }
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
mosquitto_bin() { command -v mosquitto 2>/dev/null || { [ -x /usr/sbin/mosquitto ] && echo /usr/sbin/mosquitto; } || true; }
pg_cluster_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n1; }

is_root=0
[ "$(id -u)" = 0 ] && is_root=1

# ---------------------------------------------------------------- packages
need_apt=()
command -v make >/dev/null 2>&1 || need_apt+=(make)
if ! command -v python3.11 >/dev/null 2>&1; then
  python3 -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null || need_apt+=(python3.11)
fi
python_bin="$(command -v python3.11 || command -v python3 || true)"
if [ -n "$python_bin" ] && ! "$python_bin" -c 'import ensurepip, venv' 2>/dev/null; then
  need_apt+=(python3-venv)
fi
[ -n "$(mosquitto_bin)" ] || need_apt+=(mosquitto mosquitto-clients)
if [ "$mode" = test ]; then
  # Debian's chromium for the Playwright dashboard test (Playwright's own download cannot work here)
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)
  if [ -z "${HEARTLINE_TEST_PG_URL:-}" ] && [ -z "$(pg_cluster_version)" ] && ! port_open 127.0.0.1 5432; then
    need_apt+=(postgresql)
  fi
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ $is_root = 1 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${need_apt[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "ensure-system: missing ${need_apt[*]}: install them (Debian: sudo apt-get install ${need_apt[*]}) or run $0 $mode as root, then rerun" >&2
    exit 1
  fi
fi

[ "$mode" = run ] && exit 0

# ---------------------------------------------------------------- services (test mode)
problems=()
if [ -z "${HEARTLINE_TEST_PG_URL:-}" ] && ! port_open 127.0.0.1 5432; then
  ver="$(pg_cluster_version)"
  if [ $is_root = 1 ] && [ -n "$ver" ]; then
    hba="/etc/postgresql/$ver/main/pg_hba.conf"
    # the test suite connects as postgres@127.0.0.1 without a password (a test machine only)
    if ! grep -Eq '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
      say "PostgreSQL $ver: trust authentication for 127.0.0.1 (test machine)"
      sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    fi
    say "starting PostgreSQL $ver"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
    for _ in $(seq 1 30); do port_open 127.0.0.1 5432 && break; sleep 0.5; done
  fi
  port_open 127.0.0.1 5432 || problems+=("PostgreSQL is not running on 127.0.0.1:5432 (start it: sudo pg_ctlcluster ${ver:-15} main start; or set HEARTLINE_TEST_PG_URL)")
fi

if ! port_open 127.0.0.1 1883; then
  say "starting Mosquitto on 127.0.0.1:1883"
  conf="$(mktemp -t heartline-mosquitto.XXXXXX.conf)"
  printf 'listener 1883 127.0.0.1\nallow_anonymous true\n' >"$conf"
  "$(mosquitto_bin)" -d -c "$conf" || true
  for _ in $(seq 1 20); do port_open 127.0.0.1 1883 && break; sleep 0.25; done
  port_open 127.0.0.1 1883 || problems+=("Mosquitto does not answer on 127.0.0.1:1883 (start it: mosquitto -d -p 1883)")
fi

if [ ${#problems[@]} -gt 0 ]; then
  echo "ensure-system: ${problems[*]}" >&2
  exit 1
fi
say "ok (chromium, Mosquitto on 127.0.0.1:1883, PostgreSQL${HEARTLINE_TEST_PG_URL:+ at \$HEARTLINE_TEST_PG_URL})"
