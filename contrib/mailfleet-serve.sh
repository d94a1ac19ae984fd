#!/bin/sh
# Running `mailfleet serve` without systemd (a container, an init without units): start, stop
# and reload it by its PID file with Debian's start-stop-daemon.
#   mailfleet-serve.sh start|stop|reload|status
set -eu
CONFIG=${MAILFLEET_CONFIG:-/etc/mailfleet/mailfleet.toml}
PIDFILE=${MAILFLEET_PIDFILE:-/run/mailfleet.pid}
LOG=${MAILFLEET_LOGFILE:-/var/log/mailfleet.log}
BIN=${MAILFLEET_BIN:-/usr/bin/mailfleet}
case "${1:-}" in
  start)
    "$BIN" --config "$CONFIG" config check >/dev/null
    mkdir -p /var/lib/mailfleet
    start-stop-daemon --start --background --make-pidfile --pidfile "$PIDFILE" \
      --output "$LOG" --exec "$BIN" -- --config "$CONFIG" serve
    ;;
  stop)
    # SIGTERM, then up to 150 s: the requests in flight and the policy state (10 s), the
    # moves and upgrades the daemon runs reaching the end of their step (120 s).
    start-stop-daemon --stop --pidfile "$PIDFILE" --exec "$BIN" --retry TERM/150/KILL/5
    rm -f "$PIDFILE"
    ;;
  reload)
    start-stop-daemon --stop --signal HUP --pidfile "$PIDFILE" --exec "$BIN"
    ;;
  status)
    start-stop-daemon --status --pidfile "$PIDFILE" --exec "$BIN" && echo running || echo "not running"
    ;;
  *)
    echo "usage: $0 start|stop|reload|status" >&2
    exit 2
    ;;
esac
