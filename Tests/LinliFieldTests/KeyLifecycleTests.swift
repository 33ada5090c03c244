import Foundation
import LinliClient
import LinliCore
import LinliTesting
import Testing

/// The key lifecycle as an administrator lives it, with the real programs:
/// the authority key rotated and a revocation published after it, reaching
/// every replica; a lost phone found by its label; the device list with
/// what the server last received; enrolment from the one line a QR code
/// carries.
@Suite(.serialized) struct KeyLifecycleTests {
    @Test func afterAnAuthorityRotationARevocationStillReachesEveryReplica() async throws {
        let district = try await District()
        for index in 1...2 { _ = try district.add("li", "person", ["name=居民\(index)", "residence_type=户籍人口"]) }
        #expect(try district.sync("li")["accepted"] as? Int == 2)
        _ = try district.sync("zhang")
        #expect((try district.status("zhang")["records"] as? [String: Int])?["person"] == 2)

        // The authority key is rotated, and the next publication still goes out.
        try district.admin(["authority", "rotate"] + district.auth)
        let afterRotation = try district.admin(["sync"] + district.auth + ["--server", district.url, "--json"])
        #expect((try afterRotation.json() as? [String: Any])?["accepted"] as? Int == 1, "\(afterRotation.output)")
        // Publishing again (the server now knows the new key) works too.
        try district.admin(["sync"] + district.auth + ["--server", district.url])

        // The device list: labels, roles, grids, and what the server last holds of each.
        let listed = try district.admin(["device", "list"] + district.auth + ["--server", district.url, "--json"])
        let devices = (try listed.json() as? [String: Any])?["devices"] as? [[String: Any]] ?? []
        let li = try #require(devices.first { $0["label"] as? String == "li" }, "\(listed.output)")
        #expect(li["role"] as? String == "inspector" && li["grids"] as? [String] == ["G1"])
        #expect(li["last_seq"] as? Int == 2, "\(li)")
        #expect(Set(devices.compactMap { $0["label"] as? String }).isSuperset(of: ["li", "wang", "zhang", "kiosk"]))
        let text = try district.admin(["device", "list"] + district.auth).output
        #expect(text.contains("li") && text.contains("inspector") && text.contains("G1"))

        // li's phone is lost: revoked by its label, after its change set 2.
        let unknown = try Programs.run(Programs.built("linli-admin"), ["device", "revoke", "李明的旧手机"] + district.auth
                                       + ["--after-seq", "2", "--reason", "x"])
        #expect(unknown.status != 0 && unknown.error.contains("no enrolled device"), "\(unknown.error)")
        try district.admin(["device", "revoke", "li"] + district.auth + ["--after-seq", "2", "--reason", "手机丢失"])
        try district.admin(["sync"] + district.auth + ["--server", district.url])

        // What the phone signs after that is refused by the server and
        // reaches no other replica; what it signed before stays.
        _ = try district.add("li", "person", ["name=丢失之后", "residence_type=户籍人口"])
        let late = try district.run("li", ["sync", "--json"])
        let refusedCodes = ((try? district.status("li"))?["refused"] as? [[String: Any]] ?? []).compactMap { $0["code"] as? String }
        #expect(late.status != 0 || refusedCodes.contains("revoked"), "\(late.output) \(late.error)")
        _ = try district.sync("zhang")
        let zhangRecords = try district.status("zhang")["records"] as? [String: Int]
        #expect(zhangRecords?["person"] == 2, "the staff replica holds li's two records from before the revocation only: \(String(describing: zhangRecords))")
        // Field devices learn the revocation: a new enrolment's bundle, and the
        // server's trust records, carry it.
        let trust = try district.admin(["authority", "show"] + district.auth + ["--json"])
        #expect(((try trust.json() as? [String: Any])?["trust_change_sets"] as? Int ?? 0) >= 7)
    }

    @Test func aDeviceRotatesItsKeyAndCarriesOnWithoutLosingARecord() async throws {
        let district = try await District()
        for index in 1...2 { _ = try district.add("li", "person", ["name=居民\(index)", "residence_type=户籍人口"]) }
        #expect(try district.sync("li")["accepted"] as? Int == 2)
        let request = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: district.folder.path("li/request.json")))) as? [String: Any]
        let device = try #require(request?["device"] as? String)

        // A rotation request made the old way names no first change set;
        // one from a change set the server already holds is refused.
        try district.admin(["device", "request", "--out", district.folder.path("old-way.req"), "--key", district.folder.path("old-way.key"),
                            "--previous-key", district.folder.path("li/device.key"), "--device", device, "--pin-file", district.pin])
        let tooEarly = try Programs.run(Programs.built("linli-admin"), ["device", "rotate", district.folder.path("old-way.req")] + district.auth
                                        + ["--from-seq", "2", "--server", district.url])
        #expect(tooEarly.status != 0 && tooEarly.error.contains("already holds change set 2"), "\(tooEarly.error)")
        let noSeq = try Programs.run(Programs.built("linli-admin"), ["device", "rotate", district.folder.path("old-way.req")] + district.auth)
        #expect(noSeq.status != 0 && noSeq.error.contains("--from-seq"), "\(noSeq.error)")

        // The device rotates its own key; it signs with the new one from change set 3.
        let rotated = try district.run("li", ["key", "rotate"])
        #expect(rotated.status == 0 && rotated.output.contains("from change set 3"), "\(rotated.output) \(rotated.error)")
        // Field work goes on before the administrator has certified the key.
        _ = try district.add("li", "person", ["name=轮换之后", "residence_type=户籍人口"])
        _ = try district.run("li", ["sync", "--json"])
        // The administrator certifies it; a --from-seq other than the one the device named is refused.
        let rotation = district.folder.path("li/rotation-request.json")
        let mismatch = try Programs.run(Programs.built("linli-admin"), ["device", "rotate", rotation] + district.auth + ["--from-seq", "5"])
        #expect(mismatch.status != 0 && mismatch.error.contains("from change set 3"), "\(mismatch.error)")
        try district.admin(["device", "rotate", rotation] + district.auth + ["--server", district.url])
        try district.admin(["sync"] + district.auth + ["--server", district.url])

        // The change set signed with the new key before its certificate is
        // taken now, and the device carries on.
        _ = try district.sync("li")
        _ = try district.add("li", "person", ["name=第四位", "residence_type=户籍人口"])
        #expect(try district.sync("li")["accepted"] as? Int == 1)
        _ = try district.sync("zhang")
        #expect((try district.status("zhang")["records"] as? [String: Int])?["person"] == 4, "every record li made reached staff")
        let status = try district.status("li")
        #expect((status["refused"] as? [Any])?.isEmpty == true, "\(status["refused"] ?? "")")
        #expect(status["in_step"] as? Bool == true, "\(status)")
    }

    @Test func aDeviceIsEnrolledFromTheOneLineOfItsQRCode() throws {
        let folder = Fixtures.TemporaryDirectory()
        try "a long authority passphrase\n".write(toFile: folder.path("pass"), atomically: true, encoding: .utf8)
        try "2468\n".write(toFile: folder.path("pin"), atomically: true, encoding: .utf8)
        let admin = Programs.built("linli-admin")
        let auth = ["--dir", folder.path("authority"), "--passphrase-file", folder.path("pass")]
        #expect(try Programs.run(admin, ["authority", "init"] + auth + ["--kdf", "interactive", "--server", "https://linli.example.gov.cn"]).status == 0)
        #expect(try Programs.run(admin, ["grid", "add", "G1", "--dir", folder.path("authority")]).status == 0)
        let request = try Programs.run(admin, ["device", "request", "--out", folder.path("phone.req"), "--key", folder.path("phone.key"),
                                               "--pin-file", folder.path("pin"), "--label", "李明的终端", "--text"])
        #expect(request.status == 0, "\(request.error)")
        let line = request.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!line.contains("\n") && !line.isEmpty)
        // The scanner's output, pasted into a file as it is, with its line break.
        try (line + "\n").write(toFile: folder.path("scanned.txt"), atomically: true, encoding: .utf8)
        let enrolled = try Programs.run(admin, ["device", "enroll", folder.path("scanned.txt")] + auth
                                        + ["--role", "inspector", "--grid", "G1", "--out", folder.path("phone.bundle"), "--user", "李明", "--json"])
        #expect(enrolled.status == 0, "\(enrolled.error)")
        // The label travels into the certificate and the list, with the user it was issued to.
        let listed = try Programs.run(admin, ["device", "list"] + auth + ["--json"])
        let devices = (try listed.json() as? [String: Any])?["devices"] as? [[String: Any]] ?? []
        #expect(devices.contains { $0["label"] as? String == "李明的终端" && $0["user"] as? String == "李明" }, "\(listed.output)")
        #expect(try Programs.run(admin, ["device", "list"] + auth).output.contains("李明的终端  李明  inspector"))
        let id = try #require(devices.first?["device"] as? String)
        // Handed over to 王芳: found by its user, then by her name.
        #expect(try Programs.run(admin, ["device", "assign", "李明"] + auth + ["--user", "王芳"]).status == 0)
        let reassigned = (try Programs.run(admin, ["device", "list"] + auth + ["--json"]).json() as? [String: Any])?["devices"] as? [[String: Any]]
        #expect(reassigned?.first { $0["device"] as? String == id }?["user"] as? String == "王芳")
        let byOldUser = try Programs.run(admin, ["device", "revoke", "李明"] + auth + ["--all", "--reason", "x"])
        #expect(byOldUser.status != 0 && byOldUser.error.contains("no enrolled device"), "\(byOldUser.error)")
        // The device is found by a start of its id, too.
        let revoked = try Programs.run(admin, ["device", "revoke", String(id.prefix(6))] + auth + ["--all", "--reason", "登记错误", "--json"])
        #expect(revoked.status == 0, "\(revoked.error)")
        // Garbage in the file is refused with a message, not a decoder's dump.
        try "这不是二维码\n".write(toFile: folder.path("garbage.txt"), atomically: true, encoding: .utf8)
        let garbage = try Programs.run(admin, ["device", "enroll", folder.path("garbage.txt")] + auth
                                       + ["--role", "inspector", "--grid", "G1", "--out", folder.path("x.bundle")])
        #expect(garbage.status != 0 && garbage.error.contains("enrolment request") && !garbage.error.contains("DecodingError"), "\(garbage.error)")
    }
}
