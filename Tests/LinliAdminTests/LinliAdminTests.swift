import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting
import Testing

/// Runs the real `linli-admin` executable, as an administrator would.
struct Admin {
    static let executable = Programs.built("linli-admin")

    let folder = Fixtures.TemporaryDirectory()
    var dir: String { folder.path("authority") }
    var passFile: String { folder.path("pass") }

    init() throws {
        try "a long authority passphrase\n".write(toFile: folder.path("pass"), atomically: true, encoding: .utf8)
        try "wrong passphrase for sure\n".write(toFile: folder.path("wrong"), atomically: true, encoding: .utf8)
        try "2468\n".write(toFile: folder.path("pin"), atomically: true, encoding: .utf8)
    }

    typealias Result = Programs.Result

    /// Runs linli-admin in the test's folder; no LINLI_* variable of the
    /// calling environment (a passphrase, say) reaches it.
    @discardableResult
    func run(_ arguments: [String]) throws -> Result {
        try Programs.run(Self.executable, arguments, directory: folder.url)
    }

    func json(_ arguments: [String]) throws -> [String: Any] {
        let result = try run(arguments + ["--json"])
        #expect(result.status == 0, "\(arguments): \(result.error)")
        return try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any] ?? [:]
    }

    func initAuthority() throws -> String {
        let created = try json(["authority", "init", "--dir", dir, "--passphrase-file", passFile, "--kdf", "interactive", "--server", "https://127.0.0.1:8443"])
        try run(["grid", "add", "G1", "--dir", dir, "--label", "幸福社区第一网格"])
        try run(["grid", "add", "G2", "--dir", dir])
        return created["authority_public_key"] as? String ?? ""
    }

    func request(_ name: String) throws -> String {
        let result = try run(["device", "request", "--out", "\(name).req", "--key", "\(name).key", "--pin-file", folder.path("pin"), "--label", name])
        #expect(result.status == 0, "\(result.error)")
        return folder.path("\(name).req")
    }

    func enroll(_ request: String, role: String, grids: [String], out: String) throws -> Result {
        try run(["device", "enroll", request, "--dir", dir, "--passphrase-file", passFile, "--role", role, "--out", out]
                + grids.flatMap { ["--grid", $0] })
    }
}

@Suite(.serialized) struct LinliAdminTests {
    @Test func everyCommandHasHelp() throws {
        let admin = try Admin()
        for command in [[], ["authority"], ["authority", "init"], ["authority", "rotate"], ["authority", "show"], ["grid", "add"],
                        ["grid", "list"], ["device"], ["device", "request"], ["device", "enroll"], ["device", "rotate"],
                        ["device", "revoke"], ["device", "list"], ["audit"]] {
            let result = try admin.run(command + ["--help"])
            #expect(result.status == 0, "\(command)")
            #expect(result.output.contains("USAGE"), "\(command): \(result.output)")
        }
    }

    @Test func anAdministratorSetsUpTheAuthorityEnrolsDevicesAndTheBundleVerifiesOffline() throws {
        let admin = try Admin()
        let root = try admin.initAuthority()
        #expect(root.count == 64)
        let request = try admin.request("li")
        let enrolled = try admin.enroll(request, role: "inspector", grids: ["G1"], out: "li.bundle")
        #expect(enrolled.status == 0, "\(enrolled.error) \(enrolled.output)")

        // The device imports the bundle and works offline with its key.
        let bundle = try EnrolmentBundle.decode(Data(contentsOf: admin.folder.url.appendingPathComponent("li.bundle")))
        #expect(bundle.authorityPublicKey == root && bundle.role == "inspector" && bundle.grids == ["G1"])
        let key = try SealedKeyFile.open(admin.folder.path("li.key"), passphrase: "2468")
        let device = try #require(DeviceID(hex: bundle.device))
        let phone = try ReplicaStore(path: nil, schema: Fixtures.schema, authority: PublicKey(hex: root))
        #expect(try phone.apply(bundle.trustRecords.map { Hex.decodeData($0)! }).allSatisfy { $0.status == .applied })
        let identity = DeviceIdentity(device: device, key: key, user: "李明")
        let made = try phone.write(as: identity) { tx in try tx.create("person", ["grid": .text("G1"), "name": .text("陈静")]) }
        #expect(throws: LinliError.self) { try phone.write(as: identity) { tx in try tx.create("person", ["grid": .text("G2"), "name": .text("x")]) } }

        // Another replica with the same bundle's trust records accepts it.
        let server = try ReplicaStore(path: admin.folder.path("server.sqlite"), schema: Fixtures.schema, authority: PublicKey(hex: root))
        _ = try server.apply(bundle.trustRecords.map { Hex.decodeData($0)! })
        #expect(try server.apply(made).first?.status == .applied)

        let listed = try admin.json(["device", "list", "--dir", admin.dir])
        #expect((listed["devices"] as? [[String: Any]])?.first?["device"] as? String == device.hex)

        // Revoke after change set 1, then audit the server's store.
        #expect(try admin.run(["device", "revoke", device.hex, "--dir", admin.dir, "--passphrase-file", admin.passFile,
                               "--after-seq", "1", "--reason", "lost"]).status == 0)
        let audit = try admin.json(["audit", "--data", admin.folder.path("server.sqlite"), "--dir", admin.dir])
        #expect(audit["clean"] as? Bool == true && audit["change_sets"] as? Int == 2)
    }

    @Test func badInputIsRefusedClearlyAndLeavesNoFiles() throws {
        let admin = try Admin()
        _ = try admin.initAuthority()
        let request = try admin.request("wang")

        let unknownGrid = try admin.enroll(request, role: "inspector", grids: ["G9"], out: "wang.bundle")
        #expect(unknownGrid.status != 0 && unknownGrid.error.contains("unknown grid G9"))
        #expect(!FileManager.default.fileExists(atPath: admin.folder.path("wang.bundle")))

        try "{\"format\": \"nonsense\"}".write(toFile: admin.folder.path("bad.req"), atomically: true, encoding: .utf8)
        let malformed = try admin.enroll(admin.folder.path("bad.req"), role: "staff", grids: [], out: "bad.bundle")
        #expect(malformed.status != 0 && malformed.error.contains("enrolment request"))
        #expect(!FileManager.default.fileExists(atPath: admin.folder.path("bad.bundle")))

        let wrong = try admin.run(["device", "enroll", request, "--dir", admin.dir, "--passphrase-file", admin.folder.path("wrong"),
                                   "--role", "staff", "--out", "w.bundle"])
        #expect(wrong.status != 0 && wrong.error.contains("passphrase is wrong"))
        #expect(!FileManager.default.fileExists(atPath: admin.folder.path("w.bundle")))

        let badRole = try admin.enroll(request, role: "mayor", grids: [], out: "m.bundle")
        #expect(badRole.status != 0 && badRole.error.contains("unknown role"))

        let twice = try admin.run(["authority", "init", "--dir", admin.dir, "--passphrase-file", admin.passFile, "--server", "https://127.0.0.1:8443"])
        #expect(twice.status != 0 && twice.error.contains("already holds an authority"))

        let leftovers = try FileManager.default.contentsOfDirectory(atPath: admin.folder.url.path).filter { $0.hasSuffix(".tmp") }
        #expect(leftovers.isEmpty)
    }

    @Test func theSameRequestTwiceIsOneEnrolmentAndNoBundleIsOverwritten() throws {
        let admin = try Admin()
        _ = try admin.initAuthority()
        let request = try admin.request("li")
        #expect(try admin.enroll(request, role: "inspector", grids: ["G1"], out: "li.bundle").status == 0)
        let first = try Data(contentsOf: URL(fileURLWithPath: admin.folder.path("li.bundle")))

        // The bundle is not overwritten without --force.
        let over = try admin.enroll(request, role: "inspector", grids: ["G1"], out: "li.bundle")
        #expect(over.status != 0 && over.error.contains("already exists") && over.error.contains("--force"), "\(over.error)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: admin.folder.path("li.bundle"))) == first)

        // The same request again: no second certificate, the bundle written again.
        let again = try admin.run(["device", "enroll", request, "--dir", admin.dir, "--passphrase-file", admin.passFile,
                                   "--role", "inspector", "--grid", "G1", "--out", "li.bundle", "--force", "--json"])
        #expect(again.status == 0, "\(again.error)")
        #expect((try again.json() as? [String: Any])?["already_enrolled"] as? Bool == true, "\(again.output)")
        let listed = try admin.json(["device", "list", "--dir", admin.dir, "--passphrase-file", admin.passFile])
        #expect((listed["devices"] as? [[String: Any]])?.count == 1, "\(listed)")

        // The same device for another role is a contradiction, refused.
        let kiosk = try admin.enroll(request, role: "kiosk", grids: ["G1"], out: "kiosk.bundle")
        #expect(kiosk.status != 0 && kiosk.error.contains("already enrolled as inspector for G1"), "\(kiosk.error)")
        #expect(!FileManager.default.fileExists(atPath: admin.folder.path("kiosk.bundle")))
    }

    @Test func wrongPassphrasesAreLimitedBeforeADelay() throws {
        let admin = try Admin()
        _ = try admin.initAuthority()
        for attempt in 1...3 {
            let result = try admin.run(["authority", "rotate", "--dir", admin.dir, "--passphrase-file", admin.folder.path("wrong")])
            #expect(result.status != 0 && result.error.contains("wrong"), "attempt \(attempt)")
        }
        // The fourth try must wait, even with the right passphrase.
        let waiting = try admin.run(["authority", "rotate", "--dir", admin.dir, "--passphrase-file", admin.passFile])
        #expect(waiting.status != 0 && waiting.error.contains("wait"))
    }

    @Test func theAuthorityKeyRotatesAndDevicesEnrolledAfterwardsVerifyEverywhere() throws {
        let admin = try Admin()
        let root = try admin.initAuthority()
        let rotated = try admin.json(["authority", "rotate", "--dir", admin.dir, "--passphrase-file", admin.passFile])
        #expect((rotated["new_public_key"] as? String)?.count == 64)
        let request = try admin.request("zhang")
        #expect(try admin.enroll(request, role: "staff", grids: [], out: "zhang.bundle").status == 0)
        let bundle = try EnrolmentBundle.decode(Data(contentsOf: admin.folder.url.appendingPathComponent("zhang.bundle")))
        let replica = try ReplicaStore(path: nil, schema: Fixtures.schema, authority: PublicKey(hex: root))
        #expect(try replica.apply(bundle.trustRecords.map { Hex.decodeData($0)! }).allSatisfy { $0.status == .applied })
        #expect(try replica.certificates().count == 1)
        let audit = try admin.run(["audit", "--data", admin.folder.path("authority/authority.sqlite"), "--dir", admin.dir])
        #expect(audit.status == 0, "\(audit.output)")
    }
}
