import Foundation
import LinliClient
import LinliCore
import LinliStore
import LinliTesting
import Testing

/// The field clients end to end: the built `linli`, `linli-kiosk`,
/// `linli-admin` and `linli-server` programs on loopback, run as people and
/// scripts run them.
@Suite(.serialized) struct FieldClientTests {
    // Valid GB 11643 numbers (check digits computed), with what they encode.
    static let zhangXiuying = "110105195803120029"  // 1958-03-12, female
    static let liuYang = "320102199801010019"  // 1998-01-01, male
    static let chenSi = "320102200001010024"  // 2000-01-01, female
    static let wangJianhua = "110105196507070033"  // 1965-07-07, male

    @Test func anInspectorRecordsOfflineAndSyncsThroughAConnectionThatIsCut() async throws {
        let district = try await District()
        // Offline first day: nothing has been synced yet, and every record
        // type of an inspector's round can be made.
        let house = try district.add("li", "house", ["address=幸福路12号", "room=301", "use=出租", "owner_name=赵建国",
                                                     "owner_id_number=11010519491231002X", "owner_phone=13911112222"])
        let person = try district.add("li", "person", ["name=张秀英", "id_number=\(Self.zhangXiuying)", "gender=女", "birth_date=1958-03-12",
                                                       "ethnicity=汉族", "residence_type=户籍人口", "phone=13800001111", "house=\(house)"])
        let rental = try district.add("li", "rental", ["house=\(house.prefix(8))", "landlord=赵建国", "lease_start=2026-09-01",
                                                       "lease_end=2027-08-31", "rent=2800"])
        for tenant in [["name=刘洋", "gender=男", "id_number=\(Self.liuYang)", "phone=15000001234"],
                       ["name=陈思", "gender=女", "id_number=\(Self.chenSi)", "phone=15000005678"]] {
            _ = try district.add("li", "tenant", ["rental=\(rental)", "moved_in=2026-09-01"] + tenant)
        }
        let volunteer = try district.add("li", "volunteer", ["person=\(person)", "name=张秀英", "phone=13800001111"])
        let hours = try district.json("li", ["volunteer", "hours", volunteer, "--hours", "2.5"]) as? [String: Any]
        #expect(hours?["total_hours"] as? Double == 2.5)
        _ = try district.add("li", "visit", ["house=\(house)", "notes=核对承租人"])
        _ = try district.add("li", "problem", ["category=消防", "description=楼道堆放杂物"])
        let renewed = try district.json("li", ["rental", "renew", rental, "--until", "2028-08-31"]) as? [String: Any]
        #expect((renewed?["fields"] as? [String: Any])?["status"] as? String == "已续租")
        #expect(try district.status("li")["unsynced"] as? Int == 10)

        // Masked unless --reveal, and the reveal is noted.
        let shown = try district.run("li", ["show", person])
        #expect(shown.output.contains("110105********0029") && !shown.output.contains(Self.zhangXiuying))
        #expect(try district.run("li", ["show", person, "--reveal"]).output.contains(Self.zhangXiuying))
        #expect(try String(contentsOfFile: district.folder.path("li/reveal.log"), encoding: .utf8).contains("show \(person)"))
        let found = try district.json("li", ["find", "张秀"]) as? [[String: Any]]
        #expect(found?.contains { $0["id"] as? String == person } == true)
        #expect((try district.json("li", ["find", "0029", "--table", "person"]) as? [[String: Any]])?.count == 1)

        // Staff record a lot for G1 (2,500 change sets) while li is away.
        let zhang = try FieldDevice.open(folder: district.folder.path("zhang"))
        let zhangIdentity = try zhang.identity(pin: "2468")
        func staffRecord(_ count: Int, from first: Int) throws {
            let store = try zhang.store()
            for index in first..<(first + count) {
                try store.write(as: zhangIdentity) { tx in
                    try tx.create("person", ["grid": .text("G1"), "name": .text("居民\(index)"), "residence_type": .text("流动人口")])
                }
            }
            #expect(try district.sync("zhang")["accepted"] as? Int == count)
        }
        try staffRecord(2_500, from: 0)

        // li syncs from a basement: each connection is cut after 200 kB of
        // answers. Requests cut mid-page are tried again on a new connection,
        // and the pull goes on from the last page kept.
        let proxy = try CuttingProxy(upstreamPort: district.port)
        defer { proxy.close() }
        proxy.cutAfterBytes = 200_000
        let flaky = "http://127.0.0.1:\(proxy.port)"
        let first = try district.json("li", ["sync", "--server", flaky, "--attempts", "8"]) as? [String: Any] ?? [:]
        #expect(proxy.cuts >= 1)
        #expect(first["retries"] as? Int ?? 0 >= 1, "\(first)")
        #expect(first["accepted"] as? Int == 10 && first["pulled"] as? Int ?? 0 >= 2_500, "\(first)")
        #expect((try district.status("li")["records"] as? [String: Int])?["person"] == 2_501)

        // More news; this time the link drops for good mid-pull.
        try staffRecord(2_500, from: 2_500)
        let cut = try district.run("li", ["sync", "--attempts", "1", "--quiet"])
        #expect(cut.status == 1)
        #expect(cut.error.contains("nothing is lost"), "\(cut.error)")
        let personsKept = (try district.status("li")["records"] as? [String: Int])?["person"] ?? 0
        #expect(personsKept > 2_501 && personsKept < 5_001, "\(personsKept)")
        // The network comes back: the next sync resumes after the last page kept.
        proxy.cutAfterBytes = nil
        let resumed = try district.sync("li")
        #expect((resumed["pulled"] as? Int ?? 0) == 5_001 - personsKept, "\(resumed)")
        #expect((try district.status("li")["records"] as? [String: Int])?["person"] == 5_001)
        _ = try district.sync("zhang")
        #expect(try district.digests("li")["grid:G1"] == district.digests("zhang")["grid:G1"])
        #expect(try district.digests("li")["grid:G1"] != nil)
    }

    @Test func theKioskHoldsNoOtherResidentsDataAfterANightSync() async throws {
        let district = try await District()
        // Residents recorded by the inspectors and staff, with ID numbers,
        // phones and tenants' names.
        let house = try district.add("li", "house", ["address=幸福路12号"])
        let rental = try district.add("li", "rental", ["house=\(house)", "landlord=赵建国", "landlord_phone=13911112222",
                                                       "lease_start=2026-09-01", "lease_end=2027-08-31"])
        _ = try district.add("li", "tenant", ["rental=\(rental)", "name=刘洋", "id_number=\(Self.liuYang)", "phone=15000001234"])
        _ = try district.add("li", "person", ["name=张秀英", "id_number=\(Self.zhangXiuying)", "residence_type=户籍人口", "phone=13800001111"])
        _ = try district.add("wang", "person", ["name=王建华", "id_number=\(Self.wangJianhua)", "residence_type=户籍人口", "phone=13600003333"])
        _ = try district.add("zhang", "notice", ["title=冬季消防安全提示", "published=2026-11-20"])
        for who in ["li", "wang", "zhang"] { _ = try district.sync(who) }

        // The kiosk takes a sign-up offline, then syncs in its night window.
        let signup = try district.json("kiosk", ["signup", "name=陈静", "phone=13512345678", "address=幸福路15号", "skills=推拿"]) as? [String: Any]
        #expect((signup?["receipt"] as? String)?.count == 8)
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss"
        // A short window starting now. Its moment is random, and on a loaded
        // machine a sync late in it may be cut at its end, as it must be
        // (KioskWindowTests): then the next window is tried, at most four.
        var night: Programs.Result?
        for _ in 0..<4 where night?.status != 0 {
            let now = Date()
            let window = "\(formatter.string(from: now))-\(formatter.string(from: now.addingTimeInterval(6)))"
            night = try district.run("kiosk", ["run", "--window", window, "--once", "--log", district.folder.path("kiosk.log")])
        }
        #expect(night?.status == 0, "\(night?.error ?? "")")
        let log = try String(contentsOfFile: district.folder.path("kiosk.log"), encoding: .utf8)
        #expect(log.contains("next sync at") && log.contains("synced: sent 1 (accepted 1"), "\(log)")
        _ = try district.sync("kiosk")

        // Public information arrived.
        let info = try district.json("kiosk", ["info"]) as? [String: Any]
        #expect((info?["notice"] as? [Any])?.count == 1)
        // Every file of the kiosk's replica, searched byte by byte.
        let bytes = try district.replicaBytes("kiosk")
        #expect(bytes.count > 10_000)
        #expect(bytes.contains("13512345678"), "the search must find what the kiosk did take")
        for secret in [Self.liuYang, Self.zhangXiuying, Self.wangJianhua, "15000001234", "13800001111", "13600003333", "13911112222",
                       "刘洋", "张秀英", "王建华", "赵建国"] {
            #expect(!bytes.contains(secret), "the kiosk's files hold \(secret)")
        }
        // The inspector of the kiosk's grid got the submission to verify;
        // the other grid's inspector did not.
        _ = try district.sync("li")
        _ = try district.sync("wang")
        #expect(try district.status("li")["pending_submissions"] as? Int == 1)
        #expect(try district.status("wang")["pending_submissions"] as? Int == 0)
        let pending = try #require(try district.json("li", ["pending"]) as? [[String: Any]])
        let submission = try #require(pending.first?["id"] as? String)
        let volunteer = try district.json("li", ["verify", submission, "skills=推拿、理疗"]) as? [String: Any]
        let fields = volunteer?["fields"] as? [String: Any]
        #expect(volunteer?["table"] as? String == "volunteer" && fields?["submission"] as? String == submission)
        #expect(fields?["phone"] as? String == "135****5678")
        #expect(try district.status("li")["pending_submissions"] as? Int == 0)
        let again = try district.run("li", ["verify", submission])
        #expect(again.status == 2 && again.error.contains("already verified"))
        // Declining it now is refused the same way; without a reason it is refused first.
        let late = try district.run("li", ["reject", submission, "--reason", "非本社区居民"])
        #expect(late.status == 2 && late.error.contains("already verified"), "\(late.error)")
        let bare = try district.run("li", ["reject", submission, "--reason", " "])
        #expect(bare.status == 2 && bare.error.contains("say why"), "\(bare.error)")
    }

    @Test func anInspectorCannotSeeOrChangeRecordsOutsideItsGrids() async throws {
        let district = try await District()
        let house = try district.add("wang", "house", ["grid=G2", "address=和平街8号"])
        let person = try district.add("wang", "person", ["name=王建华", "id_number=\(Self.wangJianhua)", "residence_type=户籍人口", "house=\(house)"])
        let rental = try district.add("wang", "rental", ["house=\(house)", "landlord=王建华", "lease_start=2026-01-01", "lease_end=2026-12-31"])
        let volunteer = try district.add("wang", "volunteer", ["name=王建华"])
        _ = try district.add("li", "person", ["name=张秀英", "residence_type=户籍人口"])
        for who in ["wang", "li", "zhang", "li"] { _ = try district.sync(who) }
        // Staff see both grids, so the records are on the server.
        #expect((try district.json("zhang", ["find", "王建华"]) as? [Any])?.isEmpty == false)

        // li covers G1 only: through every command, G2 is out of reach.
        #expect((try district.json("li", ["find", "王建华"]) as? [Any])?.isEmpty == true)
        #expect((try district.json("li", ["find", "0033"]) as? [Any])?.isEmpty == true)
        #expect((try district.json("li", ["list", "person", "--reveal"]) as? [[String: Any]])?.allSatisfy { $0["scope"] as? String == "grid:G1" } == true)
        let attempts: [[String]] = [
            ["show", person], ["show", person, "--reveal"], ["edit", person, "phone=13900009999"], ["delete", person],
            ["rental", "renew", rental, "--until", "2027-12-31"], ["rental", "terminate", rental],
            ["volunteer", "hours", volunteer, "--hours", "1"], ["add", "tenant", "rental=\(rental)", "name=某人"],
            ["add", "person", "grid=G2", "name=某人", "residence_type=户籍人口"],
            ["add", "house", "grid=G2", "address=和平街9号"],
            ["add", "notice", "title=越权公告"], ["verify", person],
        ]
        for arguments in attempts {
            let result = try district.run("li", arguments)
            #expect(result.status != 0, "li \(arguments.joined(separator: " ")) succeeded")
            #expect(result.error.contains("on this device") || result.error.contains("covers G1") || result.error.contains("only into its grids"),
                    "\(arguments): \(result.error)")
        }
        // Nothing was written, and the replica's files hold no G2 resident.
        #expect(try district.status("li")["unsynced"] as? Int == 0)
        #expect(!(try district.replicaBytes("li")).contains("王建华"))
        #expect(try district.digests("li")["grid:G2"] == nil)
        // The server's copy of G2 is untouched by li.
        _ = try district.sync("wang")
        #expect(try district.digests("wang")["grid:G2"] == district.digests("zhang")["grid:G2"])
    }

    @Test func badInputIsRefusedWithTheFieldNamedAndNothingSaved() async throws {
        let district = try await District()
        let volunteer = try district.add("li", "volunteer", ["name=张秀英"])
        let cases: [([String], String)] = [
            (["add", "person", "name=张三", "residence_type=户籍人口", "id_number=110105195803120020"], "check character"),
            (["add", "person", "name=张三", "residence_type=户籍人口", "phone=1380000111"], "phone"),
            (["add", "person", "name=张三", "residence_type=本地"], "must be one of"),
            (["add", "person", "residence_type=户籍人口"], "required"),
            (["add", "person", "name=张三", "residence_type=户籍人口", "ethnicity=火星族"], "ethnic"),
            (["add", "service_record", "volunteer=\(volunteer)", "date=2026-11-20", "hours=30"], "between 0 and 24"),
            (["add", "house", "address=幸福路1号", "owner_id_number=11010519491231002X", "floor=3"], "no field floor"),
            (["add", "person", "name=张三", "residence_type=户籍人口", "birth_date=2026-02-30"], "date"),
        ]
        for (arguments, expected) in cases {
            let result = try district.run("li", arguments)
            #expect(result.status == 2, "\(arguments): \(result.status) \(result.error)")
            #expect(result.error.lowercased().contains(expected.lowercased()), "\(arguments): \(result.error)")
        }
        #expect(try district.status("li")["unsynced"] as? Int == 1)

        // The form in Chinese asks again until an answer fits, then saves.
        let answers = ["", "张三", "123", Self.zhangXiuying, "女", "汉族", "1958-03-12", "", "户籍人口", "13800001111"] + Array(repeating: "", count: 10)
        let form = try district.run("li", ["add", "person", "-i", "--json"], input: answers.joined(separator: "\n") + "\n")
        #expect(form.status == 0, "\(form.error)")
        #expect(form.output.contains("公民身份号码") && form.output.contains("✗"), "\(form.output)")
        #expect(try district.status("li")["unsynced"] as? Int == 2)
        // Input that ends early saves nothing.
        let cutShort = try district.run("li", ["add", "person", "-i"], input: "李四\n")
        #expect(cutShort.status == 2 && cutShort.error.contains("nothing was saved"))
        #expect(try district.status("li")["unsynced"] as? Int == 2)
    }

    @Test func aChangeTheServerRefusesIsKeptAndShownToItsAuthorWithTheReason() async throws {
        let district = try await District()
        // li runs a pack without the cross-field rules (an older build), so
        // the device cannot foresee that the server refuses a birth date
        // the ID number does not encode.
        var pack = try JSONSerialization.jsonObject(
            with: Data(contentsOf: Programs.root.appendingPathComponent("Protocol/schema/community-v1.json"))) as? [String: Any] ?? [:]
        pack["tables"] = (pack["tables"] as? [[String: Any]] ?? []).map { $0.filter { $0.key != "rules" } }
        let packPath = district.folder.path("pack-without-rules.json")
        try JSONSerialization.data(withJSONObject: pack).write(to: URL(fileURLWithPath: packPath))
        let settingsPath = district.folder.path("li/device.json")
        var settings = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: settingsPath))) as? [String: Any] ?? [:]
        settings["schema_file"] = packPath
        try JSONSerialization.data(withJSONObject: settings).write(to: URL(fileURLWithPath: settingsPath))

        let person = try district.add("li", "person", ["name=张秀英", "id_number=\(Self.zhangXiuying)", "birth_date=1960-01-01",
                                                       "residence_type=户籍人口"])
        let report = try district.sync("li")
        #expect((report["refused"] as? [String])?.count == 1, "\(report)")
        let status = try district.status("li")
        let refused = try #require((status["refused"] as? [[String: Any]])?.first)
        #expect(refused["code"] as? String == "schema_violation")
        #expect((refused["message"] as? String)?.contains("encodes birth date 1958-03-12") == true, "\(refused)")
        // Kept: on the device, as its author made it, and nothing waits.
        #expect(status["unsynced"] as? Int == 0)
        #expect(try district.run("li", ["show", person]).status == 0)
        // The device's chain goes on: the corrected record is accepted. The
        // refused one is still on the device, so the same number is refused
        // as a duplicate (exit 2, naming it) unless the inspector says so.
        let duplicate = try district.run("li", ["add", "person", "name=张秀英", "id_number=\(Self.zhangXiuying)", "birth_date=1958-03-12",
                                                "residence_type=户籍人口"])
        #expect(duplicate.status == 2 && duplicate.error.contains(String(person.prefix(8))) && duplicate.error.contains("--duplicate-ok"),
                "\(duplicate.error)")
        _ = try district.add("li", "person", ["name=张秀英", "id_number=\(Self.zhangXiuying)", "birth_date=1958-03-12",
                                              "residence_type=户籍人口", "--duplicate-ok"])
        let next = try district.sync("li")
        #expect(next["accepted"] as? Int == 1 && (next["refused"] as? [String])?.isEmpty == true, "\(next)")
        // Staff see only the accepted record.
        _ = try district.sync("zhang")
        #expect((try district.json("zhang", ["find", "张秀英"]) as? [Any])?.count == 1)
    }

    @Test func aDeviceOnAnOlderSchemaKeepsWhatANewerOneWritesAndShowsItOnceUpgraded() async throws {
        let district = try await District()
        // Version 2 of the pack adds a field to person and a new table.
        var pack = try JSONSerialization.jsonObject(
            with: Data(contentsOf: Programs.root.appendingPathComponent("Protocol/schema/community-v1.json"))) as? [String: Any] ?? [:]
        pack["version"] = 2
        var tables = pack["tables"] as? [[String: Any]] ?? []
        let person = try #require(tables.firstIndex { $0["name"] as? String == "person" })
        tables[person]["fields"] = (tables[person]["fields"] as? [[String: Any]] ?? []) + [["name": "wechat", "type": "text", "label": "微信号", "personal": true]]
        tables.append(["name": "parking", "label": "停车位", "scope": ["kind": "grid", "field": "grid"],
                       "fields": [["name": "grid", "type": "text", "label": "网格", "required": true], ["name": "plate", "type": "text", "label": "车牌号"]]])
        pack["tables"] = tables
        let v2 = district.folder.path("community-v2.json")
        try JSONSerialization.data(withJSONObject: pack).write(to: URL(fileURLWithPath: v2))
        // A pack that removes a field is not an upgrade.
        var broken = pack
        broken["version"] = 3
        var brokenTables = tables
        brokenTables[person]["fields"] = (brokenTables[person]["fields"] as? [[String: Any]] ?? []).filter { $0["name"] as? String != "phone" }
        broken["tables"] = brokenTables
        try JSONSerialization.data(withJSONObject: broken).write(to: URL(fileURLWithPath: district.folder.path("broken.json")))
        let refused = try district.run("li", ["schema", district.folder.path("broken.json")])
        #expect(refused.status != 0 && refused.error.contains("phone"), "\(refused.error)")

        #expect(try district.run("li", ["schema", v2]).output.contains("version 1 → 2"))
        let id = try district.add("li", "person", ["name=张秀英", "residence_type=户籍人口", "wechat=zxy1958"])
        _ = try district.add("li", "parking", ["plate=京A12345"])
        #expect(try district.sync("li")["accepted"] as? Int == 2)
        // The server and staff run version 1: they keep what they do not know.
        _ = try district.sync("zhang")
        #expect(try district.status("zhang")["schema_version"] as? Int == 1)
        let old = try district.json("zhang", ["show", id, "--reveal"]) as? [String: Any]
        #expect((old?["fields"] as? [String: Any])?["name"] as? String == "张秀英")
        #expect((old?["fields"] as? [String: Any])?["wechat"] == nil)
        // Staff edit the record on version 1; the wechat value survives.
        _ = try district.json("zhang", ["edit", id, "phone=13800001111"])
        _ = try district.sync("zhang")
        #expect(try district.run("zhang", ["schema", v2]).status == 0)
        let upgraded = try district.json("zhang", ["show", id, "--reveal"]) as? [String: Any]
        #expect((upgraded?["fields"] as? [String: Any])?["wechat"] as? String == "zxy1958")
        #expect((try district.json("zhang", ["list", "parking"]) as? [Any])?.count == 1)
        _ = try district.sync("li")
        #expect(try district.digests("li")["grid:G1"] == district.digests("zhang")["grid:G1"])
    }

    @Test func makeDemoPlaysTheDistrictDayAndExitsZero() throws {
        let folder = Fixtures.TemporaryDirectory()
        let result = try Programs.run("/bin/bash", [Programs.root.appendingPathComponent("Tools/demo.sh").path],
                                      environment: ["LINLI_DEMO_DATA": folder.path("demo")], directory: Programs.root)
        #expect(result.status == 0, "\(result.output.suffix(3000))\n\(result.error.suffix(3000))")
        #expect(result.output.contains("every scope is equal on every replica that holds it"))
        #expect(result.output.contains("conflicts: 1"))
    }
}
