#!/usr/bin/env bash
# Runs hearth-bench against Hearth and Synapse side by side on loopback and
# prints a markdown table of the median of each figure over --runs runs,
# with the Hearth/Synapse ratio. See benches/README.md.
#
# Everything lives under one temporary directory (data dirs, configs, logs,
# raw JSON), removed at exit unless --keep. Only processes this script
# started are stopped, by their PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
    cat <<'EOF'
Usage: benches/compare.sh [options]

  --scale small|default|large  workload size                     [default]
  --runs N                     runs per server; medians reported  [3]
  --servers LIST               hearth,synapse | hearth | synapse  [hearth,synapse]
  --only-synapse               same as --servers synapse
  --only-hearth                same as --servers hearth
  --only SCENARIOS             passed to hearth-bench --only (send,sync,wake,fanout,idle,messages)
  --install-synapse            create the Synapse virtualenv and pip install matrix-synapse
  --synapse-venv DIR           Synapse virtualenv   [$SYNAPSE_VENV or target/synapse-venv]
  --synapse-bcrypt-rounds N    Synapse password hashing cost      [12, Synapse's default]
  --synapse-presence           leave Synapse presence on (off by default, see README)
  --out FILE                   also write the markdown table to FILE
  --keep                       keep the work directory (data, logs, raw JSON)
  -h, --help                   this text

Environment: HEARTH_BIN (default target/release/hearth, built if missing),
BENCH_BIN (default: build benches/hearth-bench), RUST_LOG for Hearth [warn].
EOF
}

SCALE=default
RUNS=3
SERVERS=hearth,synapse
ONLY=""
INSTALL_SYNAPSE=0
SYNAPSE_VENV=${SYNAPSE_VENV:-$ROOT/target/synapse-venv}
BCRYPT_ROUNDS=12
PRESENCE=false
OUT=""
KEEP=0

while [[ $# -gt 0 ]]; do
    case "$1" in
        --scale) SCALE=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --servers) SERVERS=$2; shift 2 ;;
        --only-synapse) SERVERS=synapse; shift ;;
        --only-hearth) SERVERS=hearth; shift ;;
        --only) ONLY=$2; shift 2 ;;
        --install-synapse) INSTALL_SYNAPSE=1; shift ;;
        --synapse-venv) SYNAPSE_VENV=$2; shift 2 ;;
        --synapse-bcrypt-rounds) BCRYPT_ROUNDS=$2; shift 2 ;;
        --synapse-presence) PRESENCE=true; shift ;;
        --out) OUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

case "$SCALE" in small|default|large) ;; *) echo "compare.sh: bad --scale $SCALE" >&2; exit 2 ;; esac
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: bad --runs $RUNS" >&2; exit 2; }
[[ "$BCRYPT_ROUNDS" =~ ^[0-9]+$ ]] || { echo "compare.sh: bad --synapse-bcrypt-rounds" >&2; exit 2; }
IFS=, read -r -a SERVER_LIST <<<"$SERVERS"
for s in "${SERVER_LIST[@]}"; do
    case "$s" in hearth|synapse) ;; *) echo "compare.sh: unknown server $s" >&2; exit 2 ;; esac
done
wants() { [[ ",$SERVERS," == *",$1,"* ]]; }

log() { echo "compare.sh: $*" >&2; }

# --- tools -------------------------------------------------------------------

if [[ -n "${BENCH_BIN:-}" ]]; then
    BENCH=$BENCH_BIN
else
    BENCH_TARGET=${CARGO_TARGET_DIR:-$ROOT/target/hearth-bench}
    log "building hearth-bench"
    CARGO_TARGET_DIR=$BENCH_TARGET cargo build --release --quiet \
        --manifest-path "$ROOT/benches/hearth-bench/Cargo.toml"
    BENCH=$BENCH_TARGET/release/hearth-bench
fi

if wants hearth; then
    HEARTH=${HEARTH_BIN:-$ROOT/target/release/hearth}
    if [[ ! -x "$HEARTH" ]]; then
        if [[ -n "${HEARTH_BIN:-}" ]]; then
            log "HEARTH_BIN=$HEARTH_BIN is not an executable"; exit 1
        fi
        log "building hearth (release)"
        (cd "$ROOT" && CARGO_TARGET_DIR="$ROOT/target" cargo build --release --quiet --bin hearth)
    fi
fi

if wants synapse; then
    if [[ $INSTALL_SYNAPSE == 1 ]]; then
        log "installing Synapse into $SYNAPSE_VENV"
        python3 -m venv "$SYNAPSE_VENV"
        "$SYNAPSE_VENV/bin/pip" install --quiet --upgrade pip
        "$SYNAPSE_VENV/bin/pip" install --quiet matrix-synapse
    fi
    if ! "$SYNAPSE_VENV/bin/python" -c 'import synapse' 2>/dev/null; then
        log "no Synapse in $SYNAPSE_VENV: pass --install-synapse (or --synapse-venv DIR)"
        exit 1
    fi
    SYNAPSE_VERSION=$("$SYNAPSE_VENV/bin/python" -c 'import synapse; print(synapse.__version__)')
fi

# --- work directory and process bookkeeping ------------------------------------

WORK=$(mktemp -d /tmp/hearth-compare.XXXXXX)
RESULTS=$WORK/results
mkdir -p "$RESULTS"
declare -A PID=()       # server -> pid of the process this script started
declare -A PORT=()
declare -A DATA=()

# alive PID: the process exists and is not a zombie waiting to be reaped.
alive() {
    local state
    state=$(sed -E 's/.*\) (.).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ "$state" != Z ]]
}

# stop SERVER: SIGTERM the PID we started, SIGKILL after 20 s, reap it.
stop() {
    local name=$1 pid=${PID[$1]:-}
    [[ -n "$pid" ]] || return 0
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 200); do alive "$pid" || break; sleep 0.1; done
        if alive "$pid"; then
            log "$name (pid $pid) ignored SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    unset "PID[$name]"
}

cleanup() {
    local s
    for s in "${!PID[@]}"; do stop "$s"; done
    if [[ $KEEP == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# 1000 long-polls at --scale large need more than the usual 1024 descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true

# --- servers -------------------------------------------------------------------

configure_synapse() {
    local dir=$WORK/synapse
    mkdir -p "$dir"
    "$SYNAPSE_VENV/bin/python" -m synapse.app.homeserver \
        --server-name localhost --config-path "$dir/homeserver.yaml" \
        --data-directory "$dir" --generate-config --report-stats=no \
        >"$WORK/synapse-generate.log" 2>&1
    # Start from the generated file (it holds the signing key path and
    # secrets) and override what matters for a loopback benchmark.
    "$SYNAPSE_VENV/bin/python" - "$dir" "${PORT[synapse]}" "$BCRYPT_ROUNDS" "$PRESENCE" <<'PY'
import sys, yaml
d, port, rounds, presence = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "true"
path = f"{d}/homeserver.yaml"
with open(path) as f:
    c = yaml.safe_load(f)
# Rate limits effectively off: the benchmark is the only client.
big = {"per_second": 1000000, "burst_count": 1000000}
c.update({
    "listeners": [{
        "port": port, "bind_addresses": ["127.0.0.1"], "type": "http",
        "tls": False, "x_forwarded": False,
        "resources": [{"names": ["client"], "compress": False}],
    }],
    "database": {"name": "sqlite3", "args": {"database": f"{d}/homeserver.db"}},
    "media_store_path": f"{d}/media_store",
    "enable_registration": True,
    "enable_registration_without_verification": True,
    "report_stats": False,
    "enable_metrics": False,
    "url_preview_enabled": False,
    # The media scenario uploads 200 MiB (Synapse's default limit is 50M).
    "max_upload_size": "300M",
    # Never reach out to matrix.org for keys: loopback only.
    "trusted_key_servers": [],
    "suppress_key_server_warning": True,
    "bcrypt_rounds": rounds,
    "presence": {"enabled": presence},
    # Identical /sync requests are answered from a 2-minute cache by
    # default, which would turn repeated measurements into cache reads.
    "caches": {"sync_response_cache_duration": 0},
    "rc_message": big,
    "rc_registration": big,
    "rc_registration_token_validity": big,
    "rc_login": {"address": big, "account": big, "failed_attempts": big},
    "rc_admin_redaction": big,
    "rc_joins": {"local": big, "remote": big},
    "rc_joins_per_room": big,
    "rc_3pid_validation": big,
    "rc_invites": {"per_room": big, "per_user": big, "per_issuer": big},
    "rc_third_party_invite": big,
    "rc_media_create": big,
    "rc_presence": {"per_user": big},
    "rc_delayed_event_mgmt": big,
    "rc_room_creation": big,
    "rc_reports": big,
    "rc_user_directory": big,
    "rc_profile": big,
    "rc_key_requests": big,
    "rc_federation": {"window_size": 1000, "sleep_limit": 100000, "sleep_delay": 0,
                      "reject_limit": 100000, "concurrent": 1000},
})
with open(path, "w") as f:
    yaml.safe_dump(c, f, sort_keys=False)
# Warnings only, to stderr (captured in the work dir): Synapse's default
# INFO file log writes a line per request, which would count against its
# disk-bytes-per-message figure. Hearth is run with RUST_LOG=warn alike.
with open(c["log_config"], "w") as f:
    f.write("""version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(message)s'
handlers:
  console:
    class: logging.StreamHandler
    formatter: precise
root:
  level: WARNING
  handlers: [console]
disable_existing_loggers: false
""")
PY
    DATA[synapse]=$dir
}

# start SERVER: spawn it in the background, record its PID, and set READY
# to the seconds until /_matrix/client/versions first answered 200. (Not
# printed: a $(…) subshell would lose the PID bookkeeping.)
READY=""
start() {
    local name=$1 t0
    t0=$(date +%s%N)
    case "$name" in
        hearth)
            RUST_LOG=${RUST_LOG:-warn} "$HEARTH" serve --config "$WORK/hearth.toml" \
                --listen "127.0.0.1:${PORT[hearth]}" \
                --data-dir "${DATA[hearth]}" --server-name localhost \
                >>"$WORK/hearth.log" 2>&1 &
            ;;
        synapse)
            "$SYNAPSE_VENV/bin/python" -m synapse.app.homeserver \
                -c "${DATA[synapse]}/homeserver.yaml" >>"$WORK/synapse.log" 2>&1 &
            ;;
    esac
    PID[$name]=$!
    if ! READY=$("$BENCH" --url "http://127.0.0.1:${PORT[$name]}" --wait-ready \
            --pid "${PID[$name]}" --spawned-at-ns "$t0" --ready-timeout 180); then
        log "$name did not come up; last log lines:"
        tail -n 20 "$WORK/$name.log" >&2 || true
        {
            echo "did not come up (spawned as pid ${PID[$name]}); last log lines:"
            tail -n 3 "$WORK/$name.log" 2>/dev/null || true
        } >>"$RESULTS/$name.start-failed"
        return 1
    fi
}

for s in "${SERVER_LIST[@]}"; do
    PORT[$s]=$(free_port)
    case "$s" in
        hearth)
            DATA[hearth]=$WORK/hearth-data; mkdir -p "${DATA[hearth]}"
            # The media scenario uploads 200 MiB (the default limit is 100).
            echo "max_upload_mb = 300" >"$WORK/hearth.toml"
            ;;
        synapse) configure_synapse ;;
    esac
done

declare -A UP=()
for s in "${SERVER_LIST[@]}"; do
    log "starting $s on 127.0.0.1:${PORT[$s]}"
    if start "$s"; then
        echo "$READY" >"$RESULTS/$s.first-start"
        UP[$s]=1
        log "$s answered after ${READY} s (empty data dir)"
    else
        stop "$s"
    fi
done

# --- runs ----------------------------------------------------------------------

for run in $(seq "$RUNS"); do
    for s in "${SERVER_LIST[@]}"; do
        [[ -n "${UP[$s]:-}" ]] || continue
        log "run $run/$RUNS: $s (scale $SCALE)"
        args=(--url "http://127.0.0.1:${PORT[$s]}" --pid "${PID[$s]}"
              --data-dir "${DATA[$s]}" --scale "$SCALE" --json)
        [[ -n "$ONLY" ]] && args+=(--only "$ONLY")
        # Exit status 1 only means some scenario failed; the JSON says which.
        "$BENCH" "${args[@]}" >"$RESULTS/$s.run$run.json" 2>"$RESULTS/$s.run$run.log" || true
        if [[ ! -s "$RESULTS/$s.run$run.json" ]]; then
            log "$s run $run produced no result:"; tail -n 5 "$RESULTS/$s.run$run.log" >&2
        fi
        # Restart on the now populated data dir: that is the start-up time
        # that matters (a Pi rebooting), and each run starts from a fresh
        # process so "RSS at start" means the same thing every time.
        stop "$s"
        if start "$s"; then
            echo "$READY" >"$RESULTS/$s.startup.run$run"
            log "$s restarted in ${READY} s"
        else
            unset "UP[$s]"
            stop "$s"
        fi
    done
done
for s in "${SERVER_LIST[@]}"; do stop "$s"; done

# --- summary -------------------------------------------------------------------

CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
TABLE=$(python3 - "$RESULTS" "$SERVERS" "$SCALE" "$RUNS" "$(nproc) × ${CPU_MODEL:-unknown CPU}" \
        "${SYNAPSE_VERSION:-}" <<'PY'
import glob, json, os, statistics, sys

results, servers, scale, runs, machine, synapse_version = sys.argv[1:7]
servers = servers.split(",")
names = {"hearth": "Hearth", "synapse": "Synapse"}

order, meta, values, failures, server_strings = [], {}, {}, {}, {}
def add(server, key, label, unit, better, value):
    if key not in meta:
        order.append(key)
        meta[key] = (label, unit, better)
    values.setdefault((server, key), []).append(value)

for s in servers:
    for path in sorted(glob.glob(f"{results}/{s}.first-start")):
        add(s, "startup.first_s", "start-up: empty data dir → first 200 from /versions", "s", "lower",
            float(open(path).read()))
    for path in sorted(glob.glob(f"{results}/{s}.startup.run*")):
        add(s, "startup.s", "start-up: populated data dir → first 200 from /versions", "s", "lower",
            float(open(path).read()))
for s in servers:
    for path in glob.glob(f"{results}/{s}.start-failed"):
        lines = [l.strip() for l in open(path) if l.strip()]
        failures.setdefault((s, "start"), set()).add(" / ".join(lines[:4]))
    for path in sorted(glob.glob(f"{results}/{s}.run*.json")):
        try:
            doc = json.load(open(path))
        except (OSError, ValueError):
            failures.setdefault((s, "(tool)"), set()).add(f"no JSON in {os.path.basename(path)}")
            continue
        if doc.get("server"):
            server_strings[s] = doc["server"]
        for m in doc.get("metrics", []):
            add(s, m["key"], m["label"], m["unit"], m["better"], m["value"])
        for sc in doc.get("scenarios", []):
            for e in sc.get("errors", []):
                failures.setdefault((s, sc["name"]), set()).add(e)

def fmt(v):
    if v is None:
        return "—"
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}"

out = []
who = ", ".join(f"{names[s]} ({server_strings.get(s, 'version unknown')})" for s in servers)
if "synapse" in servers and synapse_version:
    who = who.replace("Synapse (", f"Synapse {synapse_version} (", 1)
out.append(f"hearth-bench, scale {scale}, median of {runs} run(s) per server, on {machine}")
out.append(f"servers: {who}")
out.append("")
head = ["figure", "unit", "better"] + [names[s] for s in servers]
both = servers == ["hearth", "synapse"] or servers == ["synapse", "hearth"]
if both:
    head.append("Hearth/Synapse")
out.append("| " + " | ".join(head) + " |")
out.append("|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|")
for key in order:
    label, unit, better = meta[key]
    med = {}
    for s in servers:
        vs = values.get((s, key))
        med[s] = statistics.median(vs) if vs else None
    row = [label, unit, {"higher": "↑", "lower": "↓"}.get(better, "")]
    row += [fmt(med[s]) for s in servers]
    if both:
        h, y = med.get("hearth"), med.get("synapse")
        row.append(f"{h / y:.2f}×" if h is not None and y not in (None, 0) else "—")
    out.append("| " + " | ".join(row) + " |")
if failures:
    out.append("")
    out.append("Failures (a figure missing above comes from one of these):")
    for (s, scenario), errs in sorted(failures.items()):
        for e in sorted(errs)[:3]:
            out.append(f"- {names[s]} {scenario}: {e}")
print("\n".join(out))
PY
)
echo "$TABLE"
if [[ -n "$OUT" ]]; then
    echo "$TABLE" >"$OUT"
    log "table written to $OUT"
fi
