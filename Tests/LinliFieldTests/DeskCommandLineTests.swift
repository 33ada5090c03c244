import Foundation
import LinliClient
import LinliCore
import LinliStore
import LinliTesting
import Testing

/// The conflict desk on the command line, with the real programs on
/// loopback: inspectors make conflicts, staff settle them with
/// `linli-desk`, every replica converges, and `linli-admin audit`
/// verifies the resolutions.
@Suite("linli-desk", .serialized)
struct DeskCommandLineTests {
    /// A second inspector of G1, so two inspectors can edit one record.
    static func addInspector(_ district: District, _ name: String, user: String) throws {
        try district.expectSuccess("linli", ["init", "--label", name] + district.device(name))
        try district.admin(["device", "enroll", district.folder.path("\(name)/request.json")] + district.auth
                           + ["--role", "inspector", "--grid", "G1", "--out", district.folder.path("\(name).bundle")])
        try district.expectSuccess("linli", ["enrol", district.folder.path("\(name).bundle"), "--user", user] + district.device(name))
    }

    /// A staff desk enrolled with `linli-desk`.
    static func addDesk(_ district: District, _ name: String = "desk", user: String = "陈静") throws {
        try district.expectSuccess("linli-desk", ["init", "--label", name] + district.device(name))
        try district.admin(["device", "enroll", district.folder.path("\(name)/request.json")] + district.auth
                           + ["--role", "staff", "--out", district.folder.path("\(name).bundle")])
        try district.expectSuccess("linli-desk", ["enrol", district.folder.path("\(name).bundle"), "--user", user] + district.device(name))
    }

    static func desk(_ district: District, _ arguments: [String], who: String = "desk") throws -> Programs.Result {
        try Programs.run(Programs.built("linli-desk"), arguments + district.device(who))
    }

    static func queue(_ district: District, _ filters: [String] = []) throws -> [[String: Any]] {
        let result = try desk(district, ["queue", "--json"] + filters)
        #expect(result.status == 0, "linli-desk queue: \(result.error)")
        return try result.json() as? [[String: Any]] ?? []
    }

    /// The shown phone of a person on `who`'s replica, and its conflicts.
    static func phone(_ district: District, _ who: String, _ id: String) throws -> (String?, Int) {
        let record = try district.json(who, ["show", id, "--reveal"]) as? [String: Any]
        let fields = record?["fields"] as? [String: Any] ?? record ?? [:]
        let status = try district.status(who)
        return (fields["phone"] as? String, (status["conflicts"] as? [Any])?.count ?? -1)
    }

    /// li and zhao edit the same person's phone offline; both sync.
    static func makeConflict(_ district: District, name: String, idNumber: String) throws -> String {
        let person = try district.add("li", "person", ["name=\(name)", "id_number=\(idNumber)", "residence_type=户籍人口"])
        _ = try district.sync("li")
        _ = try district.sync("zhao")
        _ = try district.json("li", ["edit", person, "phone=13800000001"])
        _ = try district.json("zhao", ["edit", person, "phone=13900000002"])
        _ = try district.sync("li")
        _ = try district.sync("zhao")
        _ = try district.sync("li")
        return person
    }

    @Test("two inspectors make a conflict; staff settle it with linli-desk; every replica shows the chosen value, and audit verifies it")
    func resolveOnTheCommandLine() async throws {
        let district = try await District()
        try Self.addInspector(district, "zhao", user: "赵军")
        try Self.addDesk(district)
        try district.admin(["sync"] + district.auth + ["--server", district.url])
        let person = try Self.makeConflict(district, name: "孙丽", idNumber: "11010519491231002X")
        #expect(try Self.phone(district, "li", person).1 == 1)
        #expect(try Self.phone(district, "zhao", person).1 == 1)

        let items = try Self.queue(district)
        #expect(items.count == 1)
        let item = try #require(items.first)
        #expect(item["kind"] as? String == "conflict")
        #expect(item["grid"] as? String == "G1")
        #expect(item["table"] as? String == "person")
        #expect(item["field"] as? String == "phone")
        let values = item["values"] as? [[String: Any]] ?? []
        #expect(Set(values.compactMap { $0["user"] as? String }) == ["李明", "赵军"])
        let id = try #require(item["id"] as? String)

        // Side by side, with the field's history; a start of the id is enough.
        let shown = try Self.desk(district, ["show", String(id.prefix(6))])
        #expect(shown.status == 0, "\(shown.error)")
        #expect(shown.output.contains("13800000001") && shown.output.contains("13900000002"))
        #expect(shown.output.contains("李明") && shown.output.contains("赵军"))
        #expect(shown.output.contains("history"))

        // Bad input is named, and changes nothing.
        let noNote = try Self.desk(district, ["resolve", id, "--pick", "1", "--note", "  "])
        #expect(noNote.status == 2 && noNote.error.contains("note"))
        let badPick = try Self.desk(district, ["resolve", id, "--pick", "3", "--note", "x"])
        #expect(badPick.status == 2 && badPick.error.contains("no value 3"))
        let badValue = try Self.desk(district, ["resolve", id, "--value", "12", "--note", "x"])
        #expect(badValue.status == 2 && badValue.error.contains("phone"))
        #expect(try Self.queue(district).count == 1)

        // Keep 赵军's number.
        let index = try #require(values.firstIndex { $0["user"] as? String == "赵军" })
        let resolved = try Self.desk(district, ["resolve", id, "--pick", String(index + 1), "--note", "电话核实：赵军登记的号码正确"])
        #expect(resolved.status == 0, "\(resolved.error)")
        #expect(try Self.queue(district).isEmpty)
        let gone = try Self.desk(district, ["show", id])
        #expect(gone.status == 1 && gone.error.contains("no open item"))

        // Every replica converges on the chosen value, with no conflict.
        for who in ["li", "zhao", "zhang"] {
            _ = try district.sync(who)
            let (phone, conflicts) = try Self.phone(district, who, person)
            #expect(phone == "13900000002", "\(who)")
            #expect(conflicts == 0, "\(who)")
        }

        // The audit trail: who, what was replaced, why; verified.
        let audit = try Programs.run(Programs.built("linli-admin"), ["audit", "--data", district.folder.path("server/server.sqlite"),
                                                                     "--dir", district.folder.path("authority"), "--json"])
        #expect(audit.status == 0, "\(audit.output) \(audit.error)")
        let report = try audit.json() as? [String: Any] ?? [:]
        let resolutions = report["resolutions"] as? [[String: Any]] ?? []
        #expect(resolutions.count == 1)
        let entry = try #require(resolutions.first)
        #expect(entry["user"] as? String == "陈静")
        #expect(entry["decision"] as? String == "chosen")
        #expect(entry["verified"] as? Bool == true)
        #expect(entry["note"] as? String == "电话核实：赵军登记的号码正确")
        #expect((entry["replaced"] as? String ?? "").contains("13800000001"))
        #expect(report["clean"] as? Bool == true)
    }

    @Test("bulk: a preview changes nothing; --apply settles every conflict of the field by newest wins")
    func bulkNewestWins() async throws {
        let district = try await District()
        try Self.addInspector(district, "zhao", user: "赵军")
        try Self.addDesk(district)
        try district.admin(["sync"] + district.auth + ["--server", district.url])
        var people: [String] = []
        for (name, id) in [("周一", "11010519491231002X"), ("吴二", "110105194912310046"), ("郑三", "110105194912310062")] {
            people.append(try Self.makeConflict(district, name: name, idNumber: id))
        }
        // Typos are named, with what was meant, not answered with "0 conflicts".
        let typo = try Self.desk(district, ["bulk", "--grid", "G1", "--table", "persn", "--field", "phone"])
        #expect(typo.status != 0 && typo.error.contains("no table persn") && typo.error.contains("did you mean person?"), "\(typo.error)")
        let fieldTypo = try Self.desk(district, ["bulk", "--grid", "G1", "--table", "person", "--field", "phne"])
        #expect(fieldTypo.status != 0 && fieldTypo.error.contains("did you mean phone?"), "\(fieldTypo.error)")
        let gridTypo = try Self.desk(district, ["queue", "--grid", "G9"])
        #expect(gridTypo.status != 0 && gridTypo.error.contains("grid G9"), "\(gridTypo.error)")
        // A Chinese label names its table.
        let byLabel = try Self.desk(district, ["queue", "--table", "人口", "--json"])
        #expect(byLabel.status == 0, "\(byLabel.error)")
        let preview = try Self.desk(district, ["bulk", "--grid", "G1", "--table", "person", "--field", "phone"])
        #expect(preview.status == 0, "\(preview.error)")
        #expect(preview.output.contains("3 conflicts of person.phone"))
        #expect(preview.output.contains("nothing changed"))
        #expect(try Self.queue(district, ["--field", "phone"]).count == 3)

        let applied = try Self.desk(district, ["bulk", "--grid", "G1", "--table", "person", "--field", "phone", "--apply", "--note", "以最新登记为准"])
        #expect(applied.status == 0, "\(applied.error)")
        #expect(applied.output.contains("resolved 3"))
        #expect(try Self.queue(district).isEmpty)
        // zhao's edits were made after li's, so zhao's number is the newest.
        _ = try district.sync("li")
        for person in people { #expect(try Self.phone(district, "li", person) == ("13900000002", 0)) }
    }

    @Test("an age past ten years, or past what a UInt64 holds, is refused before anything is opened or sent")
    func absurdAges() throws {
        let folder = Fixtures.TemporaryDirectory()
        for age in ["99999999999999999d", "18446744073709551615s", "3651d"] {
            let refused = try Programs.run(Programs.built("linli-desk"), ["queue", "--older-than", age, "--data", folder.path("none")])
            #expect(refused.status == 2, "\(age): status \(refused.status) \(refused.error)")
            #expect(refused.error.contains("deskOlderSecondsMax"), "\(age): \(refused.error)")
        }
    }

    @Test("only staff read the queue: inspectors and kiosks are refused by the server; a non-staff device cannot use linli-desk")
    func onlyStaff() async throws {
        let district = try await District()
        for who in ["li", "kiosk"] {
            let device = try FieldDevice.open(folder: district.folder.path(who))
            let client = SyncClient(store: try device.store(), identity: try device.identity(pin: "2468"), connection: try device.connection)
            await #expect(throws: LinliError.self) { _ = try await client.reviewQueue(ReviewFilter()) }
            do {
                _ = try await client.reviewQueue(ReviewFilter())
            } catch let error as LinliError {
                #expect(error.code == .notPermitted, "\(who): \(error)")
                #expect(error.message.contains("only central staff"))
            }
        }
        let refused = try Self.desk(district, ["queue"], who: "li")
        #expect(refused.status == 1)
        #expect(refused.error.contains("staff"))
        // An inspector's key cannot sign a resolution either: refused before anything is signed.
        let device = try FieldDevice.open(folder: district.folder.path("li"))
        let store = try device.store()
        do {
            try store.write(as: try device.identity(pin: "2468")) { tx in
                try tx.record(ReviewSchema.resolution, scope: .grid("G1"),
                              ["kind": .text("conflict"), "item": .text("c0000000000"), "decision": .text("chosen"), "note": .text("x")])
            }
            Issue.record("an inspector recorded a resolution")
        } catch let error as LinliError {
            #expect(error.code == .notPermitted)
        }
        #expect(try store.outboxCount(device: device.device, peer: device.peerName) == 0)
    }
}
