#!/usr/bin/env bash
# make demo: an administrator sets up the authority and enrols two inspectors
# and a staff member with linli-admin; then the three replicas record
# offline, exchange change sets by file, settle a conflict and converge; the
# staff replica is audited at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
admin=.build/debug/linli-admin
sim=.build/debug/linli-sim
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

echo "== a day offline"
"$sim" demo --data "$demo/offline" --enrolled "$demo" --pin-file "$demo/pin"

echo "== the administrator audits the staff replica"
"$admin" audit --data "$demo/offline/staff-zhang.sqlite" --dir "$demo/authority"
