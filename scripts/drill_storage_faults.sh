#!/bin/bash
# The four storage-fault scenarios of issue 9 against the real CLI, with real faults (root only:
# a 3 MiB tmpfs and chattr +i). Not a test: it takes ~6 minutes and prints one line per run.
#   sudo scripts/drill_storage_faults.sh [path/to/kestra-trio]
set -u
KT=${1:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/kestra-trio}
[ "$(id -u)" = 0 ] || { echo "drill_storage_faults: needs root (tmpfs mounts, chattr)" >&2; exit 2; }
W=$(mktemp -d /tmp/kestra-drill.XXXXXX); cd "$W"; mkdir db ro
cleanup() { chattr -i ro/* 2>/dev/null; umount "$W/db" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
line() { echo "seq 1 $1 | sed 's/^/$2 padding-padding-padding-padding line /'"; }
{ echo "id: big"; echo "tasks:"; for t in b1 b2 b3 b4; do
    echo "  - {id: $t, type: core/shell.run, inputs: {command: \"$(line 100000 $t)\"}}"; done; } > wf4.yaml
echo "id: sixty
tasks:
  - {id: t, type: core/shell.run, inputs: {command: \"$(line 60000 t)\"}}" > wf60.yaml
echo 'id: one
tasks:
  - id: a
    type: core/shell.run
    inputs: {command: "i=0; while [ $i -lt 20 ]; do seq 1 3000 | sed '"'"'s/^/a line /'"'"'; i=$((i+1)); sleep 0.5; done"}' > wf1.yaml
fresh() { umount "$W/db" 2>/dev/null; mount -t tmpfs -o size=3m tmpfs "$W/db"; }
wait_fault() { until grep -q "cannot write" "$1" || ! kill -0 "$2" 2>/dev/null; do sleep 0.1; done; }
since() { echo "$(date +%s.%N) - $1" | bc | cut -c1-5; }
q() { sqlite3 -separator ' ' "$1" "$2" | tr '\n' ' '; }
echo "== 1. 4 x 100k lines, 3 MiB tmpfs, SIGTERM once the database refuses writes (kill grace 5 s + close grace 10 s)"
for i in 1 2 3; do
  fresh; "$KT" run wf4.yaml --db db/k.db > o.txt 2> e.txt & P=$!
  wait_fault e.txt $P; sleep 5; t0=$(date +%s.%N); kill -TERM $P; wait $P; rc=$?
  echo "run $i: exit $rc after $(since "$t0") s; state/reason/lost: $(q db/k.db 'select state, reason_code, log_entries_lost from executions')"
done
echo "== 2. same, the filesystem gets room again (100 MiB) 45 s after the start"
fresh; "$KT" run wf4.yaml --db db/k.db > o.txt 2> e.txt & P=$!
sleep 45; mount -o remount,size=100m "$W/db"; wait $P; rc=$?
echo "exit $rc; state/lost: $(q db/k.db 'select state, log_entries_lost from executions'); lines per task: $(q db/k.db "select task_id, count(*) from execution_logs where source like 'plugin:%' group by task_id")"
echo "== 3. one task of 60,000 lines on a fresh 3 MiB tmpfs, SIGTERM after 30 s"
fresh; "$KT" run wf60.yaml --db db/k.db > o.txt 2> e.txt & P=$!
sleep 30; echo "after 30 s: engine alive=$(kill -0 $P 2>/dev/null && echo yes || echo no), state=$(q db/k.db 'select state from executions')"
t0=$(date +%s.%N); kill -TERM $P; wait $P; rc=$?
echo "SIGTERM: exit $rc after $(since "$t0") s; state/reason/stored/lost: $(q db/k.db 'select state, reason_code, log_entry_count, log_entries_lost from executions')"
echo "last stderr line: $(tail -1 e.txt)"
umount "$W/db"
echo "== 4. read-only mid-run (chattr +i on the db and -wal 2 s after the start), SIGTERM once refused, x6"
for i in 1 2 3 4 5 6; do
  rm -f ro/*; "$KT" run wf1.yaml --db ro/k.db > o.txt 2> e.txt & P=$!
  until [ -f ro/k.db-wal ]; do sleep 0.1; done; sleep 2; chattr +i ro/k.db ro/k.db-wal
  wait_fault e.txt $P; t0=$(date +%s.%N); kill -TERM $P; wait $P; rc=$?
  echo "run $i: exit $rc after $(since "$t0") s, $(wc -l < e.txt) stderr lines"
  chattr -i ro/k.db ro/k.db-wal
done
