#!/usr/bin/env bash
# make demo: a short district day with the real programs.
#
# The administrator creates the authority with linli-admin and enrols the
# server, two inspectors of neighbouring grids (李明 covers grid G1; 王芳
# covers G2 and stands in for G1 next door), a kiosk in the community hall
# (serving G1) and a staff member (张伟). linli-server starts on loopback on
# embedded SQLite. Staff publish a team, an activity and a notice; the
# inspectors register houses, residents, a rental with two tenants and
# volunteers, offline; both edit the same resident's phone while apart; the
# kiosk takes a volunteer sign-up; everyone syncs; the conflict appears; 李明
# verifies the sign-up at the door. At the street office 刘洁 settles the
# conflict with linli-desk; everyone syncs and the replicas converge on the
# chosen value. A summary compares the replicas; linli-admin audit verifies
# the resolution.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/debug
admin=$bin/linli-admin
server=$bin/linli-server
linli=$bin/linli
kiosk=$bin/linli-kiosk
desk=$bin/linli-desk
sim=$bin/linli-sim
demo=${LINLI_DEMO_DATA:-demo-data}
rm -rf "$demo"
mkdir -p "$demo"
printf 'street office demo passphrase\n' > "$demo/passphrase"
printf '2468\n' > "$demo/pin"
auth=(--dir "$demo/authority" --passphrase-file "$demo/passphrase")
li=(--data "$demo/li" --pin-file "$demo/pin")
wang=(--data "$demo/wang" --pin-file "$demo/pin")
zhang=(--data "$demo/zhang" --pin-file "$demo/pin")
hall=(--data "$demo/kiosk" --pin-file "$demo/pin")
office=(--data "$demo/desk" --pin-file "$demo/pin")
port=$(( 20000 + RANDOM % 30000 ))
url="http://127.0.0.1:$port"
step() { printf '\n== %s\n' "$*"; }
# The id a command printed as JSON.
id_of() { sed -n 's/^ *"id" : "\([0-9a-f]*\)".*/\1/p' | head -1; }

step "the administrator creates the authority and registers two neighbouring grids"
"$admin" authority init "${auth[@]}" --administrator "管理员" --server "$url" --kdf interactive
"$admin" grid add G1 --dir "$demo/authority" --label "幸福社区第一网格"
"$admin" grid add G2 --dir "$demo/authority" --label "幸福社区第二网格"

step "each device makes its key and enrolment request; the administrator enrols it"
"$admin" device request --out "$demo/server.req" --key "$demo/server.key" --pin-file "$demo/pin" --label "同步服务器"
"$linli" init "${li[@]}" --label "李明的终端"
"$linli" init "${wang[@]}" --label "王芳的终端"
"$linli" init "${zhang[@]}" --label "张伟的电脑"
"$desk" init "${office[@]}" --label "街道办冲突处理台"
"$kiosk" init "${hall[@]}" --label "幸福社区服务站"
"$admin" device enroll "$demo/server.req" "${auth[@]}" --role server --out "$demo/server.bundle"
"$admin" device enroll "$demo/li/request.json" "${auth[@]}" --role inspector --grid G1 --out "$demo/li.bundle"
"$admin" device enroll "$demo/wang/request.json" "${auth[@]}" --role inspector --grid G2 --grid G1 --out "$demo/wang.bundle"
"$admin" device enroll "$demo/zhang/request.json" "${auth[@]}" --role staff --out "$demo/zhang.bundle"
"$admin" device enroll "$demo/kiosk/request.json" "${auth[@]}" --role kiosk --grid G1 --out "$demo/kiosk.bundle"
"$admin" device enroll "$demo/desk/request.json" "${auth[@]}" --role staff --out "$demo/desk.bundle"
"$linli" enrol "$demo/li.bundle" "${li[@]}" --user "李明"
"$linli" enrol "$demo/wang.bundle" "${wang[@]}" --user "王芳"
"$linli" enrol "$demo/zhang.bundle" "${zhang[@]}" --user "张伟"
"$kiosk" enrol "$demo/kiosk.bundle" "${hall[@]}" --name "幸福社区服务站自助终端"
"$desk" enrol "$demo/desk.bundle" "${office[@]}" --user "刘洁"

step "linli-server starts on loopback (embedded SQLite) and receives the trust records"
root=$("$admin" authority show --dir "$demo/authority" --json | sed -n 's/.*"root_public_key" *: *"\([0-9a-f]*\)".*/\1/p')
server_device=$(sed -n 's/.*"device" *: *"\([0-9a-f]*\)".*/\1/p' "$demo/server.req")
"$server" serve --data "$demo/server" --listen "127.0.0.1:$port" --authority "$root" \
  --schema Protocol/schema/community-v1.json \
  --device "$server_device" --key "$demo/server.key" --key-passphrase-file "$demo/pin" 2> "$demo/server.log" &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
"$admin" sync "${auth[@]}" --server "$url"

step "morning: staff publish a volunteer team, an activity and a notice; every device syncs (first sync: a signed snapshot)"
team=$("$linli" add volunteer_team "${zhang[@]}" number=XF-01 name=幸福社区志愿服务队 association=街道志愿者协会 area=幸福社区 --json | id_of)
"$linli" add activity "${zhang[@]}" content=关爱独居老人上门服务 "time=2026-11-28 09:00" place=幸福社区服务站 team="$team" --json > /dev/null
"$linli" add notice "${zhang[@]}" title=冬季消防安全提示 body=请勿在楼道堆放杂物，电动车不得入户充电。 published=today > /dev/null
for who in zhang li wang; do "$linli" sync --data "$demo/$who" --pin-file "$demo/pin" --quiet; done
"$kiosk" sync "${hall[@]}"
"$kiosk" info "${hall[@]}"

step "李明 (G1) registers a house, a resident, a rental with two tenants and a volunteer, offline"
house=$("$linli" add house "${li[@]}" address=幸福路12号 unit=2单元 room=301 use=出租 owner_name=赵建国 owner_id_number=11010519491231002X owner_phone=13911112222 --json | id_of)
resident=$("$linli" add person "${li[@]}" name=张秀英 id_number=110105195803120029 gender=女 ethnicity=汉族 birth_date=1958-03-12 residence_type=户籍人口 phone=13800001111 house="$house" care_tags=独居老人 --json | id_of)
rental=$("$linli" add rental "${li[@]}" house="$house" landlord=赵建国 landlord_phone=13911112222 lease_start=2026-09-01 lease_end=2027-08-31 rent=2800 --json | id_of)
# Ages as on the day: the server checks each against the year of birth in the ID.
year=$(date +%Y)
"$linli" add tenant "${li[@]}" rental="$rental" name=刘洋 gender=男 age=$((year - 1998)) ethnicity=汉族 id_number=320102199801010019 phone=15000001234 occupation=程序员 moved_in=2026-09-01 > /dev/null
"$linli" add tenant "${li[@]}" rental="$rental" name=陈思 gender=女 age=$((year - 2000)) ethnicity=回族 id_number=320102200001010024 phone=15000005678 occupation=教师 moved_in=2026-09-01 > /dev/null
volunteer=$("$linli" add volunteer "${li[@]}" person="$resident" name=张秀英 phone=13800001111 team="$team" joined=today --json | id_of)
"$linli" volunteer hours "$volunteer" "${li[@]}" --hours 2.5
"$linli" add visit "${li[@]}" house="$house" notes=走访出租屋，核对承租人信息 > /dev/null
"$linli" show "$rental" "${li[@]}"

step "王芳 (G2) registers a house and a resident in her grid, offline"
house2=$("$linli" add house "${wang[@]}" grid=G2 address=和平街8号 room=102 use=自住 --json | id_of)
"$linli" add person "${wang[@]}" grid=G2 name=王建华 id_number=110105196507070033 gender=男 birth_date=1965-07-07 residence_type=非户籍常住人口 phone=13600003333 house="$house2" > /dev/null
"$linli" add problem "${wang[@]}" grid=G2 category=消防 description=楼道堆放杂物 location=和平街8号 > /dev/null

step "both inspectors sync; then, apart and offline, both change 张秀英's phone"
"$linli" sync "${li[@]}" --quiet
"$linli" sync "${wang[@]}" --quiet
"$linli" edit "$resident" "${li[@]}" phone=13900002222 > /dev/null
"$linli" edit "$resident" "${wang[@]}" phone=13700003333 > /dev/null

step "at the community hall a resident signs up as a volunteer at the kiosk (offline)"
"$kiosk" signup "${hall[@]}" name=陈静 phone=13512345678 address=幸福路15号 skills=中医推拿

step "night: the kiosk syncs once inside its window, at a random moment"
now=$(date +%s)
window="$(date -d "@$now" +%H:%M:%S)-$(date -d "@$((now + 6))" +%H:%M:%S)"
# The moment is random: on a loaded machine a sync late in a short window is
# cut at its end (as it must be) and waits for the next; here the next comes
# at once, at most three more times.
for night in 1 2 3 4; do
  if "$kiosk" run "${hall[@]}" --window "$window" --once --log "$demo/kiosk.log"; then break; fi
  [ "$night" -lt 4 ] || { echo "the kiosk did not sync in four windows; see $demo/kiosk.log" >&2; exit 1; }
  now=$(date +%s)
  window="$(date -d "@$now" +%H:%M:%S)-$(date -d "@$((now + 6))" +%H:%M:%S)"
done
cat "$demo/kiosk.log"

step "everyone syncs"
for round in 1 2; do
  for who in li wang zhang; do "$linli" sync --data "$demo/$who" --pin-file "$demo/pin" --quiet > /dev/null; done
done
"$kiosk" sync "${hall[@]}" > /dev/null

step "the conflict appears: staff see both phones; so does 李明"
"$linli" status "${zhang[@]}"
"$linli" status "${li[@]}"

step "李明 verifies the kiosk sign-up at the door: it becomes a volunteer of G1"
submission=$("$linli" pending "${li[@]}" --json | id_of)
"$linli" verify "$submission" "${li[@]}" skills=中医推拿、理疗
"$linli" sync "${li[@]}" --quiet
for who in wang zhang; do "$linli" sync --data "$demo/$who" --pin-file "$demo/pin" --quiet > /dev/null; done
"$kiosk" sync "${hall[@]}" > /dev/null

step "李明 covers only G1: 王芳's G2 records are not on his device, and he cannot write there"
"$linli" find 王建华 "${li[@]}"
if "$linli" add person "${li[@]}" grid=G2 name=某人 residence_type=户籍人口 2> "$demo/refused.txt"; then
  echo "an inspector wrote into a grid it does not cover" >&2; exit 1
fi
cat "$demo/refused.txt"

step "the conflict desk: 刘洁 at the street office sees the queue, calls 张秀英, and keeps 王芳's number"
"$desk" queue "${office[@]}"
item=$("$desk" queue "${office[@]}" --kind conflict --table person --field phone --json | sed -n 's/^ *"id" : "\(c[0-9a-f]*\)".*/\1/p' | head -1)
"$desk" show "$item" "${office[@]}"
pick=$("$desk" show "$item" "${office[@]}" | sed -n 's/^ *\[\([0-9]\)\] 13700003333 .*/\1/p')
"$desk" resolve "$item" "${office[@]}" --pick "$pick" --note "电话回访张秀英本人：13700003333 为现用号码"
"$desk" queue "${office[@]}"

step "everyone syncs: the resolution reaches every replica in G1; the conflict is gone"
for who in li wang zhang; do "$linli" sync --data "$demo/$who" --pin-file "$demo/pin" --quiet > /dev/null; done
"$linli" show "$resident" "${li[@]}" --reveal
"$linli" status "${zhang[@]}" | grep conflicts
"$admin" audit --data "$demo/server/server.sqlite" --dir "$demo/authority" | tail -3

step "summary"
"$sim" summary --device "$demo/li" --device "$demo/wang" --device "$demo/zhang" --device "$demo/kiosk"

step "the server stops on SIGTERM"
kill -TERM $server_pid
wait $server_pid
trap - EXIT
echo "server log: $(grep -c ' request' "$demo/server.log") requests, last line: $(tail -1 "$demo/server.log")"
