#!/usr/bin/env bash
# make demo: an administrator sets up the authority and enrols two inspectors
# and a staff member with linli-admin, starts linli-server on loopback and
# sends it the trust records; then the three replicas record offline, sync
# through the server, settle a conflict and converge; the staff replica is
# audited at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
admin=.build/debug/linli-admin
sim=.build/debug/linli-sim
server=.build/debug/linli-server
demo=demo-data
rm -rf "$demo"
mkdir -p "$demo"
printf 'street office demo passphrase\n' > "$demo/passphrase"
printf '2468\n' > "$demo/pin"
auth=(--dir "$demo/authority" --passphrase-file "$demo/passphrase")

echo "== the administrator creates the authority and registers the grid"
"$admin" authority init "${auth[@]}" --administrator "管理员" --kdf interactive
"$admin" grid add G1 --dir "$demo/authority" --label "幸福社区第一网格"

echo "== each device makes its key and an enrolment request; the administrator enrols it"
for person in li wang zhang; do
  "$admin" device request --out "$demo/$person.req" --key "$demo/$person.key" --pin-file "$demo/pin" --label "$person"
done
"$admin" device enroll "$demo/li.req" "${auth[@]}" --role inspector --grid G1 --out "$demo/li.bundle"
"$admin" device enroll "$demo/wang.req" "${auth[@]}" --role inspector --grid G1 --out "$demo/wang.bundle"
"$admin" device enroll "$demo/zhang.req" "${auth[@]}" --role staff --out "$demo/zhang.bundle"
"$admin" device list --dir "$demo/authority"

echo "== the server starts on loopback and receives the trust records"
port=$(( 20000 + RANDOM % 30000 ))
root=$("$admin" authority show --dir "$demo/authority" --json | sed -n 's/.*"root_public_key" *: *"\([0-9a-f]*\)".*/\1/p')
"$sim" schema --out "$demo/schema.json"
"$server" serve --data "$demo/server" --listen "127.0.0.1:$port" --authority "$root" --schema "$demo/schema.json" \
  2> "$demo/server.log" &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
"$admin" sync --dir "$demo/authority" --passphrase-file "$demo/passphrase" --server "http://127.0.0.1:$port"

echo "== a day: offline work, then syncs through the server"
"$sim" demo --data "$demo/day" --enrolled "$demo" --pin-file "$demo/pin" --server "http://127.0.0.1:$port"

echo "== the administrator audits the staff replica"
"$admin" audit --data "$demo/day/staff-zhang.sqlite" --dir "$demo/authority"

echo "== the server stops on SIGTERM"
kill -TERM $server_pid
wait $server_pid
trap - EXIT
echo "server log: $(grep -c ' request' "$demo/server.log") requests, last line: $(tail -1 "$demo/server.log")"
