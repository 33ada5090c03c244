#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target, Fuzz/corpus/<target>/, from
the golden vectors (Protocol/vectors, Protocol/vectors/protocol,
Protocol/vectors/trust) and the schema pack Protocol/schema/community-v1.json.

Reproducible: the same files each time. Run it after `make vectors` or a
change of the schema pack, then commit Fuzz/corpus. The line format of the
targets that take several values is FuzzInput's (Fuzz/Support/Input.swift):
fields separated by a newline, one NUL byte for an absent value, then bytes.
"""
import base64
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Fuzz", "corpus")


def vector(name):
    with open(os.path.join(ROOT, "Protocol", "vectors", name + ".json")) as f:
        return json.load(f)


def body(name):
    return bytes.fromhex(vector(name)["bytes_hex"])


def lines(fields, rest=b""):
    out = b""
    for field in fields:
        out += (b"\0" if field is None else field.encode()) + b"\n"
    return out + rest


def write(target, name, data):
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data)


# Inputs a run found that crashed a target are kept beside the seeds, named
# crash-<sha1> as libFuzzer names them, so every run replays them: only the
# generated seeds are written anew.
# envelope: change sets that decode (accepted or refused by a store later).
for name in ["accept-first", "accept-second", "refuse-broken-chain", "refuse-extra-envelope-field", "refuse-fork",
             "refuse-tampered-byte", "refuse-wrong-key", "trust/accept-certificate", "trust/refuse-after-revocation"]:
    write("envelope", name.replace("/", "-"), body(name))

# request: the three signed request vectors, and one without its signature.
HEADERS = ["Linli-Device", "Linli-Key", "Linli-Time", "Linli-Nonce", "Linli-Signature"]
for name in ["push-request", "pull-request", "status-request"]:
    v = vector("protocol/" + name)
    fields = [v["headers"][h] for h in HEADERS] + [v["method"], v["path"], v["headers"]["Linli-Time"]]
    write("request", name, lines(fields, body("protocol/" + name)))
v = vector("protocol/pull-request")
write("request", "unsigned", lines([v["headers"][h] for h in HEADERS[:4]] + [None, v["method"], v["path"], ""]))

# answer: the signed answers, and the answer bodies under the same headers.
ANSWER = ["Linli-Answer-Device", "Linli-Answer-Key", "Linli-Answer-Signature"]
for name, kind in [("answer-pull", "pull"), ("answer-error", "status")]:
    v = vector("protocol/" + name)
    write("answer", name, lines([kind, str(v["status"])] + [v["headers"][h] for h in ANSWER], body("protocol/" + name)))
signed = vector("protocol/answer-pull")["headers"]
for name, kind in [("push-response", "push"), ("pull-response", "trust"), ("pull-response", "repair"), ("heads-response", "heads")]:
    write("answer", kind + "-" + name, lines([kind, "200"] + [signed[h] for h in ANSWER], body("protocol/" + name)))

# snapshot: the signed manifest with the file it describes, and with a stray scope.
v = vector("protocol/snapshot-manifest")
message = json.loads(v["message_json"])
file_hash = base64.b64decode(message["fileHash"]).hex()
write("snapshot", "snapshot-manifest", lines([v["signature_hex"], message["fileBytes"], file_hash, ",".join(message["scopes"])], body("protocol/snapshot-manifest")))
write("snapshot", "stray-scope", lines([v["signature_hex"], message["fileBytes"], file_hash, "grid:G2"], body("protocol/snapshot-manifest")))

# field: typed text for fields of the community pack and of the target's own
# table (Fuzz/Targets/field.swift: the pack's fields in order, then its own).
with open(os.path.join(ROOT, "Protocol", "schema", "community-v1.json")) as f:
    pack = json.load(f)
fields = [(t["name"], fl["name"]) for t in pack["tables"] for fl in t["fields"]]
fields += [("extra", "any_" + t) for t in ["text", "integer", "real", "boolean", "date", "timestamp", "bytes", "reference"]]
fields += [("extra", "format_" + f) for f in ["citizen_id", "mobile", "phone", "ethnicity"]]
fields += [("extra", n) for n in ["choice", "small", "huge", "ratio", "name", "start", "end", "id_number", "birth", "gender"]]
typed = {
    ("person", "id_number"): "11010519491231002X", ("person", "phone"): "13800138000", ("person", "birth_date"): "1949-12-31",
    ("person", "ethnicity"): "汉族", ("person", "gender"): "男", ("house", "owner_phone"): "0755-8765432-801",
    ("building", "floors"): "12", ("rental", "rent"): "1500.50", ("activity", "time"): "2026-12-01 08:30",
    ("person", "house"): "00112233445566778899aabbccddeeff", ("extra", "any_boolean"): "是", ("extra", "any_bytes"): "00ff10",
    ("extra", "any_timestamp"): "2026-12-01T08:30", ("extra", "any_date"): "today", ("extra", "format_phone"): "010-12345678",
    ("extra", "huge"): "-9223372036854775808",
}
for (table, field), text in sorted(typed.items()):
    index = fields.index((table, field))
    write("field", f"{table}.{field}", bytes([0, index]) + text.encode())
tables = [t["name"] for t in pack["tables"]]
write("field", "assign-person", bytes([0x80 | tables.index("person")]) +
      "grid=G1\nname=张三\nid_number=11010519491231002X\n出生日期=1949-12-31\ngender=男\nresidence_type=户籍人口".encode())
write("field", "assign-rental", bytes([0x80 | tables.index("rental")]) +
      "grid=G1\nlease_start=2026-01-01\nlease_end=2026-12-31\nrent=800".encode())

# schema: the community pack, and a small pack with each kind of rule.
with open(os.path.join(ROOT, "Protocol", "schema", "community-v1.json"), "rb") as f:
    write("schema", "community-v1.json", f.read())
small = {"name": "community", "version": 2, "tables": [{
    "name": "person", "label": "人员", "scope": {"kind": "grid", "field": "grid"},
    "fields": [{"name": "grid", "type": "text", "required": True}, {"name": "id_number", "type": "text", "format": "citizen_id"},
               {"name": "birth_date", "type": "date"}, {"name": "gender", "type": "text", "choices": ["男", "女"]},
               {"name": "moved_in", "type": "date"}, {"name": "moved_out", "type": "date"},
               {"name": "age", "type": "integer", "minimum": 0, "maximum": 150}, {"name": "house", "type": "reference", "references": "person"}],
    "rules": [{"kind": "citizen_id_matches", "id": "id_number", "birth_date": "birth_date", "gender": "gender"},
              {"kind": "date_order", "start": "moved_in", "end": "moved_out", "strict": True}]}]}
write("schema", "small.json", json.dumps(small, ensure_ascii=False, sort_keys=True).encode())
