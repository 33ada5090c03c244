import Foundation
import LinliClient
import LinliCore
import LinliTesting
import Testing

/// A small district run with the real programs: an authority made with
/// `linli-admin`, a `linli-server` on loopback (embedded SQLite, the
/// community schema pack, its own key for snapshots), and field devices
/// enrolled with `linli` and `linli-kiosk`, each in its own folder:
///
/// - li: inspector of G1
/// - wang: inspector of G2
/// - zhang: staff
/// - kiosk: the community hall kiosk, serving G1
final class District: @unchecked Sendable {
    let folder = Fixtures.TemporaryDirectory()
    let port = Int.random(in: 20_000..<60_000)
    var url: String { "http://127.0.0.1:\(port)" }
    var server = Process()
    var pin: String { folder.path("pin") }
    var auth: [String] { ["--dir", folder.path("authority"), "--passphrase-file", folder.path("pass")] }

    init() async throws {
        try "street office passphrase\n".write(toFile: folder.path("pass"), atomically: true, encoding: .utf8)
        try "2468\n".write(toFile: pin, atomically: true, encoding: .utf8)
        try admin(["authority", "init"] + auth + ["--administrator", "管理员", "--server", url, "--kdf", "interactive"])
        try admin(["grid", "add", "G1", "--dir", folder.path("authority"), "--label", "第一网格"])
        try admin(["grid", "add", "G2", "--dir", folder.path("authority"), "--label", "第二网格"])
        try admin(["device", "request", "--out", folder.path("server.req"), "--key", folder.path("server.key"), "--pin-file", pin])
        try admin(["device", "enroll", folder.path("server.req")] + auth + ["--role", "server", "--out", folder.path("server.bundle")])
        for (name, role, grids, user) in [("li", "inspector", ["G1"], "李明"), ("wang", "inspector", ["G2"], "王芳"),
                                          ("zhang", "staff", [], "张伟"), ("kiosk", "kiosk", ["G1"], "服务站终端")] {
            let program = role == "kiosk" ? "linli-kiosk" : "linli"
            try expectSuccess(program, ["init", "--label", name] + device(name))
            try admin(["device", "enroll", folder.path("\(name)/request.json")] + auth
                      + ["--role", role, "--out", folder.path("\(name).bundle")] + grids.flatMap { ["--grid", $0] })
            try expectSuccess(program, ["enrol", folder.path("\(name).bundle"), role == "kiosk" ? "--name" : "--user", user] + device(name))
        }
        try await startServer()
        try admin(["sync"] + auth + ["--server", url])
    }

    func startServer() async throws {
        let request = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder.path("server.req")))) as? [String: Any]
        server = Process()
        server.executableURL = URL(fileURLWithPath: Programs.built("linli-server"))
        server.arguments = ["serve", "--data", folder.path("server"), "--listen", "127.0.0.1:\(port)",
                            "--authority", try authorityKey(), "--schema", Programs.root.appendingPathComponent("Protocol/schema/community-v1.json").path,
                            "--device", request?["device"] as? String ?? "", "--key", folder.path("server.key"), "--key-passphrase-file", pin]
        FileManager.default.createFile(atPath: folder.path("server.log"), contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: folder.path("server.log")))
        server.standardOutput = log
        server.standardError = log
        try server.run()
        for _ in 0..<600 { // up to 60 s: a loaded machine starts it slowly
            if CuttingProxy.canConnect(port: port) { return }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        throw LinliError(.unreachable, "linli-server did not start: \((try? String(contentsOfFile: folder.path("server.log"), encoding: .utf8)) ?? "")")
    }

    func authorityKey() throws -> String {
        let shown = try Programs.run(Programs.built("linli-admin"), ["authority", "show", "--dir", folder.path("authority"), "--json"])
        return (try shown.json() as? [String: Any])?["root_public_key"] as? String ?? ""
    }

    deinit {
        if server.isRunning {
            server.terminate()
            server.waitUntilExit()
        }
    }

    /// The folder and PIN options of a device.
    func device(_ name: String) -> [String] { ["--data", folder.path(name), "--pin-file", pin] }

    @discardableResult
    func admin(_ arguments: [String]) throws -> Programs.Result {
        try expectSuccess("linli-admin", arguments)
    }

    @discardableResult
    func expectSuccess(_ program: String, _ arguments: [String], input: String? = nil) throws -> Programs.Result {
        let result = try Programs.run(Programs.built(program), arguments, input: input)
        #expect(result.status == 0, "\(program) \(arguments.joined(separator: " ")): \(result.error)")
        if result.status != 0 { throw LinliError(.invalidInput, "\(program) \(arguments.first ?? "") failed: \(result.error)") }
        return result
    }

    /// Runs `linli` (or `linli-kiosk` for the kiosk) as `who`.
    func run(_ who: String, _ arguments: [String], input: String? = nil) throws -> Programs.Result {
        try Programs.run(Programs.built(who == "kiosk" ? "linli-kiosk" : "linli"), arguments + device(who), input: input)
    }

    /// Runs it, expecting success, and returns the output parsed as JSON.
    func json(_ who: String, _ arguments: [String]) throws -> Any {
        let result = try run(who, arguments + ["--json"])
        #expect(result.status == 0, "\(who) \(arguments.joined(separator: " ")): \(result.error)")
        if result.status != 0 { throw LinliError(.invalidInput, "\(arguments.first ?? "") failed: \(result.error)") }
        return try result.json()
    }

    /// Adds a record as `who`; returns its id.
    func add(_ who: String, _ table: String, _ fields: [String]) throws -> String {
        let object = try json(who, ["add", table] + fields) as? [String: Any]
        return object?["id"] as? String ?? ""
    }

    func sync(_ who: String, through url: String? = nil) throws -> [String: Any] {
        try json(who, ["sync"] + (url.map { ["--server", $0] } ?? [])) as? [String: Any] ?? [:]
    }

    func status(_ who: String) throws -> [String: Any] { try json(who, ["status"]) as? [String: Any] ?? [:] }

    /// The state digest of each scope on `who`'s replica.
    func digests(_ who: String) throws -> [String: String] { try status(who)["digests"] as? [String: String] ?? [:] }

    /// Every byte of the files in a device's folder that hold its replica.
    func replicaBytes(_ who: String) throws -> Data {
        var bytes = Data()
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path(who)) where name.hasPrefix("replica.sqlite") {
            bytes += try Data(contentsOf: URL(fileURLWithPath: folder.path("\(who)/\(name)")))
        }
        return bytes
    }
}

extension Data {
    func contains(_ text: String) -> Bool { range(of: Data(text.utf8)) != nil }
}
