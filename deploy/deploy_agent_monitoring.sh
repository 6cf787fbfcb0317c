#!/usr/bin/env bash
# Deploy agent monitoring on this host: agent-exporter's package and systemd units, then its scrape
# job and alert rules in the local Prometheus. The reference setup's quick deploy, made safe: every
# step says what it does and is skipped when already done, a new Prometheus configuration is
# checked with promtool before it replaces the old one (kept as a backup), Prometheus is reloaded,
# not restarted, and --dry-run shows all of it without changing anything.
set -euo pipefail

PROG=${0##*/}
DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$DEPLOY_DIR")
STAMP=$(date +%Y%m%d-%H%M%S)

DRY_RUN=0
SCOPE=""
VENV=""
PYTHON=""
PACKAGE=$REPO_DIR
LISTEN=127.0.0.1:9200
PROM_CONFIG=/etc/prometheus/prometheus.yml
PROM_URL=http://127.0.0.1:9090
SKIP_INSTALL=0
SKIP_PROMETHEUS=0
WAIT=30
INSTALL_ARGS=()
CHANGED=0
TMP_FILES=()

usage() {
  cat <<EOF
Usage: $PROG [options] [-- options for agent-exporter install]

Steps (each says what it does, and is skipped when there is nothing to do):
  1. install the agent-exporter package into a virtual environment of its own
  2. agent-exporter install: the writer's timer and the server's socket, enabled and started
  3. copy the alert rules (prometheus-alerts.yml) next to the Prometheus configuration
  4. add the agent-monitoring scrape job and the rule file to the Prometheus configuration,
     checked with promtool before it replaces the old one (kept as FILE.bak.TIMESTAMP)
  5. reload Prometheus (HTTP API, else systemctl reload) and wait for the target to be up

Options:
  --dry-run                 print what would be done and change nothing
  --user | --system         scope of the units (default: --system as root, --user otherwise)
  --venv DIR                virtual environment for the package (default: /opt/agent-exporter for
                            --system, \${XDG_DATA_HOME:-~/.local/share}/agent-exporter/venv for --user)
  --python FILE             the interpreter the environment is made from (default: the first of
                            /usr/bin/python3, /usr/local/bin/python3 and python3 on PATH that the
                            units can run: 3.11 or later with the venv module, a real binary, not
                            under /tmp, and for --system readable by every user outside /home and
                            /root); the script stops at once, with the reason, when none is
  --package SPEC            what pip installs (default: this checkout, $REPO_DIR)
  --listen-address ADDR     the server's address and Prometheus's target (default: $LISTEN)
  --prometheus-config FILE  the Prometheus configuration to edit (default: $PROM_CONFIG)
  --prometheus-url URL      the Prometheus to reload and ask (default: $PROM_URL)
  --wait SECONDS            how long to wait for the server and the target to answer (default: $WAIT)
  --skip-install            skip steps 1 and 2 (package and units are in place already)
  --skip-prometheus         skip steps 3 to 5 (Prometheus runs elsewhere: use deploy/prometheus/)
  -h, --help                this help

Anything after -- is passed to agent-exporter install, e.g.
  $PROG -- --config /etc/agent-exporter/config.yml --interval 10
EOF
}

say() { printf '%s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
show() { printf '    $'; printf ' %q' "$@"; printf '\n'; }

# Run a command that changes something, or under --dry-run only show it.
run() {
  show "$@"
  if [ "$DRY_RUN" = 1 ]; then
    return 0
  fi
  "$@"
}

cleanup() {
  local f
  for f in "${TMP_FILES[@]}"; do
    rm -f -- "$f"
  done
}
trap cleanup EXIT

need_value() {
  if [ "$#" -lt 2 ] || [ -z "$2" ]; then
    die "$1 needs a value (see --help)"
  fi
}

while [ "$#" -gt 0 ]; do
  case $1 in
    --dry-run) DRY_RUN=1 ;;
    --user) SCOPE=user ;;
    --system) SCOPE=system ;;
    --venv) need_value "$@"; VENV=$2; shift ;;
    --python) need_value "$@"; PYTHON=$2; shift ;;
    --package) need_value "$@"; PACKAGE=$2; shift ;;
    --listen-address) need_value "$@"; LISTEN=$2; shift ;;
    --prometheus-config) need_value "$@"; PROM_CONFIG=$2; shift ;;
    --prometheus-url) need_value "$@"; PROM_URL=${2%/}; shift ;;
    --wait) need_value "$@"; WAIT=$2; shift ;;
    --skip-install) SKIP_INSTALL=1 ;;
    --skip-prometheus) SKIP_PROMETHEUS=1 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; INSTALL_ARGS=("$@"); break ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

case $WAIT in
  '' | *[!0-9]*) die "--wait takes whole seconds, got $WAIT" ;;
esac
if [ -z "$SCOPE" ]; then
  if [ "$(id -u)" = 0 ]; then SCOPE=system; else SCOPE=user; fi
fi
if [ -z "$VENV" ]; then
  if [ "$SCOPE" = system ]; then
    VENV=/opt/agent-exporter
  else
    VENV=${XDG_DATA_HOME:-$HOME/.local/share}/agent-exporter/venv
  fi
fi
EXE=$VENV/bin/agent-exporter
PROM_DIR=$(dirname "$PROM_CONFIG")
RULES_SRC=$DEPLOY_DIR/prometheus/prometheus-alerts.yml
RULES_DST=$PROM_DIR/prometheus-alerts.yml

# A Python with PyYAML for the configuration edit: the package's own environment has it.
find_python() {
  local py
  for py in "$VENV/bin/python" python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import yaml' >/dev/null 2>&1; then
      printf '%s\n' "$py"
      return 0
    fi
  done
  return 1
}

# Why the system units could not use the file or directory $2 (named $1 in the message), by where
# it is; nothing when they can. They run as users of their own (the writer's static user, the
# server's DynamicUser=) with ProtectHome= and a private /tmp. (User units run as you: install
# leaves /tmp and your home open to them when it must.)
place_problem() {
  local name=$1 path=$2 dir mode
  [ "$SCOPE" = system ] || return 0
  case $path in
    /tmp/* | /var/tmp/* | /dev/shm/*)
      printf '%s is in a temporary directory: the system units see a private one (PrivateTmp=)' "$name"
      return ;;
    /home/* | /root/* | /run/user/*)
      printf '%s is in a home directory: the system units cannot read it (ProtectHome=)' "$name"
      return ;;
  esac
  dir=$(dirname -- "$path")
  while [ "$dir" != / ]; do
    if [ -d "$dir" ]; then
      mode=$(stat -c %A -- "$dir")
      if [ "${mode:9:1}" != x ] && [ "${mode:9:1}" != t ]; then
        printf '%s is in %s, closed to other users (%s): the system units run as users of their own' \
          "$name" "$dir" "$mode"
        return
      fi
    fi
    dir=$(dirname -- "$dir")
  done
}

# Why the units could not run the interpreter $1 (through a venv made from it); nothing when they
# can. A version manager's shim (a script that finds the interpreter in the caller's environment)
# or an interpreter the units cannot reach would fail only once installed.
python_problem() {
  local py=$1 real name version
  real=$(readlink -f -- "$py" 2>/dev/null) || true
  if [ -z "$real" ] || [ ! -f "$real" ] || [ ! -x "$real" ]; then
    printf '%s is not an executable file' "$py"
    return
  fi
  name=$py
  [ "$real" = "$py" ] || name="$py ($real)"
  if [ "$(head -c 2 -- "$real")" = '#!' ]; then
    printf '%s is a script, not an interpreter: a version manager'"'"'s shim runs only in your shell' "$name"
    return
  fi
  version=$("$real" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || version=""
  if [ -z "$version" ] || ! "$real" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    printf '%s is Python %s: agent-exporter needs 3.11 or later' "$name" "${version:-of an unknown version}"
    return
  fi
  if ! "$real" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    printf '%s has no venv module (apt-get install python3-venv)' "$name"
    return
  fi
  place_problem "$name" "$real"
}

# The interpreter for a new environment: --python, else the first good one of the usual places;
# an existing environment's own interpreter must be good too. Stops with every reason otherwise.
pick_python() {
  local py why reasons=""
  if [ -x "$VENV/bin/python" ]; then
    why=$(python_problem "$VENV/bin/python")
    [ -z "$why" ] || die "$VENV exists, made from an interpreter the $SCOPE units cannot use: $why (remove it, or choose another --venv)"
    printf '%s\n' "$VENV/bin/python"
    return
  fi
  if [ -n "$PYTHON" ]; then
    why=$(python_problem "$PYTHON")
    [ -z "$why" ] || die "--python: $why"
    printf '%s\n' "$PYTHON"
    return
  fi
  for py in /usr/bin/python3 /usr/local/bin/python3 "$(command -v python3 || true)"; do
    [ -n "$py" ] || continue
    why=$(python_problem "$py")
    if [ -z "$why" ]; then
      printf '%s\n' "$py"
      return
    fi
    reasons="$reasons; $why"
  done
  die "no Python the $SCOPE units can use${reasons:+: ${reasons#; }} (apt-get install python3-venv, or --python FILE)"
}

# Wait until a URL answers 2xx, at most $WAIT seconds.
wait_for_url() {
  local url=$1 deadline=$((SECONDS + WAIT))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  return 1
}

# Health of the agent-monitoring target as Prometheus sees it: "up", "down: <error>", or "" (not there).
target_health() {
  curl -fsS --max-time 5 "$PROM_URL/api/v1/targets?state=active" 2>/dev/null | "$PY" -c '
import json, sys
doc = json.load(sys.stdin)
for t in doc["data"]["activeTargets"]:
    if t["labels"].get("job") == "agent-monitoring" and t["labels"].get("instance") == sys.argv[1]:
        print(t["health"] if t["health"] == "up" else t["health"] + ": " + (t.get("lastError") or "not scraped yet"))
        break
' "$LISTEN" || true
}

# ---------------------------------------------------------------------------------------------
# Checks first: nothing is changed unless every step can run.

if [ "$DRY_RUN" = 1 ]; then
  say "Dry run: nothing is changed; every command that would change something is shown with \$."
fi
if [ "$SKIP_INSTALL" = 0 ]; then
  if [ "$SCOPE" = system ] && [ "$(id -u)" != 0 ] && [ "$DRY_RUN" = 0 ]; then
    die "--system units need root: run with sudo, or use --user"
  fi
  why=$(place_problem "$VENV" "$(readlink -m -- "$VENV")")
  [ -z "$why" ] || die "--venv: $why (the default: /opt/agent-exporter)"
  BASE_PYTHON=$(pick_python)
  say "Python for $VENV: $BASE_PYTHON ($("$BASE_PYTHON" -c 'import sys; print(sys.version.split()[0])'))"
fi
if [ "$SKIP_PROMETHEUS" = 0 ]; then
  [ -f "$PROM_CONFIG" ] || die "$PROM_CONFIG does not exist: is Prometheus installed here? (--prometheus-config FILE, or --skip-prometheus)"
  command -v promtool >/dev/null || die "promtool is missing (apt-get install prometheus)"
  command -v curl >/dev/null || die "curl is missing (apt-get install curl)"
  if [ "$DRY_RUN" = 0 ] && [ ! -w "$PROM_DIR" ]; then
    die "cannot write to $PROM_DIR: run as its owner (sudo), or with --skip-prometheus"
  fi
fi

# ---------------------------------------------------------------------------------------------

if [ "$SKIP_INSTALL" = 1 ]; then
  step "1/5 Package: skipped (--skip-install)"
  step "2/5 Units: skipped (--skip-install)"
else
  step "1/5 Install the agent-exporter package into $VENV"
  say "    A virtual environment of its own, so no other Python on the host changes. pip installs"
  say "    $PACKAGE there (again: it updates it)."
  if [ -x "$VENV/bin/python" ]; then
    say "    $VENV exists already."
  else
    run "$BASE_PYTHON" -m venv "$VENV"
  fi
  run "$VENV/bin/pip" install --quiet --disable-pip-version-check "$PACKAGE"

  step "2/5 Install the systemd units: agent-exporter install --scope $SCOPE --now"
  say "    The writer's timer (agents.prom into node_exporter's textfile directory every 10 s) and"
  say "    the server's socket on $LISTEN, enabled so they start at boot, and started now. Running"
  say "    it again changes only what differs."
  if [ "$DRY_RUN" = 1 ]; then
    show "$EXE" install --scope "$SCOPE" --now --web.listen-address "$LISTEN" "${INSTALL_ARGS[@]}"
    if [ -x "$EXE" ]; then
      say "    The units it would write (agent-exporter install --dry-run):"
      "$EXE" install --scope "$SCOPE" --dry-run --web.listen-address "$LISTEN" "${INSTALL_ARGS[@]}" | sed 's/^/    | /'
    fi
  else
    "$EXE" install --help >/dev/null 2>&1 || die "$EXE has no install command (an older agent-exporter?)"
    run "$EXE" install --scope "$SCOPE" --now --web.listen-address "$LISTEN" "${INSTALL_ARGS[@]}"
    say "    Waiting for http://$LISTEN/health (200 once the writer's file is fresh)..."
    if wait_for_url "http://$LISTEN/health"; then
      say "    The server answers and the writer's file is fresh."
    else
      warn "http://$LISTEN/health did not answer 200 within ${WAIT}s: see systemctl $([ "$SCOPE" = user ] && printf -- '--user ')status agent-exporter.timer agent-exporter-server.socket"
    fi
  fi
fi

if [ "$SKIP_PROMETHEUS" = 1 ]; then
  step "3/5 Alert rules: skipped (--skip-prometheus)"
  step "4/5 Scrape job: skipped (--skip-prometheus)"
  step "5/5 Reload: skipped (--skip-prometheus)"
  say ""
  say "Done. Prometheus elsewhere: add the job and rules from $DEPLOY_DIR/prometheus/ there."
  exit 0
fi

step "3/5 Alert rules: $RULES_DST"
say "    Checked with promtool check rules, then copied next to the configuration, which refers to it"
say "    by this relative name."
promtool check rules "$RULES_SRC" >/dev/null || die "$RULES_SRC does not pass promtool check rules"
if [ -f "$RULES_DST" ] && cmp -s "$RULES_SRC" "$RULES_DST"; then
  say "    Already up to date."
else
  if [ -f "$RULES_DST" ]; then
    say "    $RULES_DST differs from this version; the old one is kept as $RULES_DST.bak.$STAMP."
    run cp -p -- "$RULES_DST" "$RULES_DST.bak.$STAMP"
  fi
  run install -m 0644 -- "$RULES_SRC" "$RULES_DST"
  CHANGED=1  # under --dry-run: would change
fi

step "4/5 Scrape job agent-monitoring ($LISTEN) and the rule file in $PROM_CONFIG"
say "    The file is edited as text, so its comments stay; the result must parse to the old"
say "    configuration plus the job, and pass promtool check config, before it replaces the old one."
PY=$(find_python) || die "no Python with PyYAML for editing $PROM_CONFIG (apt-get install python3-yaml)"
if [ "$DRY_RUN" = 1 ]; then
  NEW=$(mktemp)
else
  # In the same directory: relative paths in it (the rule file) resolve the same for promtool,
  # and the final rename is atomic.
  NEW=$(mktemp "$PROM_DIR/.${PROM_CONFIG##*/}.agent-exporter.XXXXXX")
fi
TMP_FILES+=("$NEW")
rc=0
"$PY" "$DEPLOY_DIR/prometheus_config.py" "$PROM_CONFIG" --output "$NEW" --target "$LISTEN" \
  --job agent-monitoring --rule-file prometheus-alerts.yml || rc=$?
case $rc in
  3) say "    Already there: job agent-monitoring and rule file prometheus-alerts.yml." ;;
  0)
    say "    The change:"
    diff -u "$PROM_CONFIG" "$NEW" | sed 's/^/    | /' || true
    if [ "$DRY_RUN" = 1 ]; then
      say "    It would be checked with promtool check config, the old file kept as"
      say "    $PROM_CONFIG.bak.$STAMP, and the new one renamed over it."
      CHANGED=1
    else
      promtool check config "$NEW" | sed 's/^/    | /'
      chmod --reference="$PROM_CONFIG" -- "$NEW"
      chown --reference="$PROM_CONFIG" -- "$NEW" 2>/dev/null || true
      run cp -p -- "$PROM_CONFIG" "$PROM_CONFIG.bak.$STAMP"
      run mv -- "$NEW" "$PROM_CONFIG"
      CHANGED=1
    fi
    ;;
  *) die "$PROM_CONFIG was left as it was" ;;
esac

step "5/5 Reload Prometheus at $PROM_URL"
if [ "$CHANGED" = 0 ]; then
  say "    Nothing changed: no reload needed."
elif [ "$DRY_RUN" = 1 ]; then
  say "    A reload (not a restart: no scrape or alert state is lost) through the HTTP API, which"
  say "    needs --web.enable-lifecycle; else systemctl reload prometheus."
  show curl -fsS -X POST "$PROM_URL/-/reload"
elif ! curl -fsS -o /dev/null --max-time 5 "$PROM_URL/-/ready" 2>/dev/null; then
  warn "Prometheus does not answer at $PROM_URL: reload it yourself (systemctl reload prometheus, or SIGHUP)"
else
  reloaded=0
  show curl -fsS -X POST "$PROM_URL/-/reload"
  if curl -fsS -o /dev/null --max-time 30 -X POST "$PROM_URL/-/reload" 2>/dev/null; then
    reloaded=1
  elif [ -d /run/systemd/system ] && systemctl is-active --quiet prometheus 2>/dev/null; then
    say "    The HTTP API refused (Prometheus runs without --web.enable-lifecycle); systemd reloads it."
    run systemctl reload prometheus && reloaded=1
  else
    warn "Prometheus refused the reload (no --web.enable-lifecycle): reload it yourself (SIGHUP)"
  fi
  if [ "$reloaded" = 1 ]; then
    say "    Reloaded. Waiting for the target $LISTEN to be scraped..."
    deadline=$((SECONDS + WAIT))
    health=""
    while [ "$SECONDS" -lt "$deadline" ]; do
      health=$(target_health)
      [ "$health" = up ] && break
      sleep 1
    done
    if [ "$health" = up ]; then
      say "    Target agent-monitoring $LISTEN is up."
    else
      warn "target agent-monitoring $LISTEN is not up after ${WAIT}s (${health:-not listed}): see $PROM_URL/targets"
    fi
  fi
fi

say ""
if [ "$DRY_RUN" = 1 ]; then
  say "Dry run done: nothing was changed."
else
  say "Done. Dashboard: import $DEPLOY_DIR/grafana/dashboards/agent-monitoring.json into Grafana"
  say "(Dashboards > New > Import), or provision it with $DEPLOY_DIR/grafana/provisioning/."
fi
