import Foundation
import GRDB
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LinliClient
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting
import SwiftProtobuf
import Testing

/// A real `linli-server` process on loopback, with its own store.
final class RunningServer: @unchecked Sendable {
    static let executable = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/debug/linli-server").path

    let folder = Fixtures.TemporaryDirectory()
    /// Chosen at random; chosen again when the first start finds it taken.
    private(set) var port: Int
    var url: URL { URL(string: "http://127.0.0.1:\(port)")! }
    private var started = false
    private var portTries = 0

    var process = Process()
    let authority: PublicKey
    /// More settings for the configuration file (the server's key, say).
    let settings: [String: String]
    /// What the server logged (standard error), one JSON-ish line per event.
    var logPath: String { folder.path("server.log") }

    init(authority: PublicKey, settings: [String: String] = [:]) async throws {
        port = Int.random(in: 20_000..<60_000)
        self.authority = authority
        self.settings = settings
        try await start()
    }

    /// Starts (or restarts, on the same data) the server process. The
    /// settings come from a configuration file, the way an operator runs it.
    func start() async throws {
        let schemaPath = folder.path("schema.json")
        try JSONEncoder().encode(Fixtures.schema).write(to: URL(fileURLWithPath: schemaPath))
        let configPath = folder.path("server.json")
        var configuration = ["data": folder.path("data"), "listen": "127.0.0.1:\(port)", "authority": authority.hex, "schema": schemaPath]
        // Every server signs its answers: the shared test identity unless
        // the settings name another.
        configuration.merge(try Fixtures.serverKeySettings(in: folder.path(""))) { _, new in new }
        configuration.merge(settings) { _, new in new }
        try JSONSerialization.data(withJSONObject: configuration).write(to: URL(fileURLWithPath: configPath))
        process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executable)
        process.arguments = ["serve", "--config", configPath]
        if !FileManager.default.fileExists(atPath: logPath) { FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try log.seekToEnd()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        for _ in 0..<600 { // up to 60 s: a loaded machine starts it slowly
            if let (_, response) = try? await URLSession.shared.data(from: url.appendingPathComponent("healthz")),
               (response as? HTTPURLResponse)?.statusCode == 200 {
                started = true
                return
            }
            if !process.isRunning {
                // Another test's server or proxy took the random port
                // first: a first start tries another; a restart keeps its
                // port, which its devices know.
                let logged = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                if !started, portTries < 5, logged.contains("in use") || logged.contains("EADDRINUSE") || logged.contains("bind") {
                    portTries += 1
                    port = Int.random(in: 20_000..<60_000)
                    try await start()
                    return
                }
                throw LinliError(.storage, "linli-server on port \(port) ended with status \(process.terminationStatus); its log:\n\(logged.suffix(2_000))")
            }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        process.terminate()
        let logged = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        throw LinliError(.storage, "linli-server did not start on port \(port); its log:\n\(logged.suffix(2_000))")
    }

    deinit {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    /// A raw request, for the refusal tests.
    func send(_ method: String, _ path: String, body: Data, headers: [(String, String)]) async throws -> (Int, [String: String]) {
        var request = URLRequest(url: URL(string: path, relativeTo: url)!)
        request.httpMethod = method
        if !body.isEmpty { request.httpBody = body }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: String] ?? [:]
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, object)
    }
}

@Suite(.serialized) struct ServerIntegrationTests {
    @Test func killedMidPushTheServerKeepsEveryAcknowledgedChangeSetAndClientsConverge() async throws {
        let (server, _) = try await deployment()
        let phones = try [phone(server, "li"), phone(server, "wang")]
        let people = [li, wang]
        let clients = zip(phones, people).map { SyncClient(store: $0, identity: $1, server: server.url, attemptsMax: 2) }
        for client in clients { try await client.sync() }
        for (phone, person) in zip(phones, people) {
            for index in 0..<300 {
                try phone.write(as: person) { tx in try tx.create("person", ["grid": .text("G1"), "name": .text("\(person.user)\(index)")]) }
            }
        }
        // Both push at once; the server is killed while they do.
        async let first: SyncReport? = try? clients[0].sync()
        async let second: SyncReport? = try? clients[1].sync()
        try await Task.sleep(nanoseconds: 150_000_000)
        kill(server.process.processIdentifier, SIGKILL)
        server.process.waitUntilExit()
        _ = await (first, second)
        // What the phones hold as acknowledged must be in the server's store.
        let store = try ReplicaStore(path: server.folder.path("data/server.sqlite"), schema: Fixtures.schema, authority: rootKey.publicKey)
        let integrity = try await store.database.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") }
        #expect(integrity == "ok")
        let heads = try store.heads()
        for (phone, person) in zip(phones, people) {
            let unacknowledged = try phone.outbox(device: person.device, peer: "server:" + server.url.absoluteString, limit: 10_000).count
            let acknowledged = 300 - unacknowledged
            #expect(Int(heads[person.device]?.seq ?? 0) >= acknowledged, "acknowledged change sets were lost")
        }
        // Restart on the same data; the clients retry and everyone converges.
        try await server.start()
        for client in clients { try await client.sync() }
        for client in clients { try await client.sync() }
        #expect(try phones[0].stateDigest() == phones[1].stateDigest())
        #expect(try phones[0].counts().changeSets == 4 + 600)
    }

    let rootKey = SigningKey(seed: SecretBytes(copying: Data(repeating: 0xD0, count: 32)))
    var authority: DeviceIdentity { DeviceIdentity(device: Authority.deviceID(root: rootKey.publicKey), key: rootKey, user: "admin") }
    let li = Fixtures.identity(61, user: "李明")
    let wang = Fixtures.identity(62, user: "王芳")
    let zhang = Fixtures.identity(63, user: "张强")

    func deployment() async throws -> (RunningServer, ReplicaStore) {
        let authorityStore = try ReplicaStore(path: nil, schema: Fixtures.schema, authority: rootKey.publicKey)
        try authorityStore.issueCertificate(as: authority, device: li.device, publicKey: li.key.publicKey, role: .inspector, grids: ["G1"])
        try authorityStore.issueCertificate(as: authority, device: wang.device, publicKey: wang.key.publicKey, role: .inspector, grids: ["G1"])
        try authorityStore.issueCertificate(as: authority, device: zhang.device, publicKey: zhang.key.publicKey, role: .staff, grids: [])
        try authorityStore.issueCertificate(as: authority, device: Fixtures.server.device, publicKey: Fixtures.server.key.publicKey, role: .server, grids: [])
        let server = try await RunningServer(authority: rootKey.publicKey)
        let report = try await SyncClient(store: authorityStore, identity: authority, server: server.url).sync()
        #expect(report.accepted == 4 && report.refused.isEmpty, "\(report)")
        return (server, authorityStore)
    }

    func phone(_ server: RunningServer, _ name: String) throws -> ReplicaStore {
        try ReplicaStore(path: server.folder.path("\(name).sqlite"), schema: Fixtures.schema, authority: rootKey.publicKey)
    }

    @Test func threeReplicasSyncThroughARealServerAndConvergeAfterAConflictIsSettled() async throws {
        let (server, _) = try await deployment()
        let phones = try [phone(server, "li"), phone(server, "wang"), phone(server, "zhang")]
        let clients = zip(phones, [li, wang, zhang]).map { SyncClient(store: $0, identity: $1, server: server.url) }
        for client in clients { try await client.sync() }
        #expect(try phones.allSatisfy { try $0.certificates().count == 4 })

        var resident = RowID.random()
        try phones[0].write(as: li) { tx in resident = try tx.create("person", ["grid": .text("G1"), "name": .text("陈静"), "phone": .text("13800138000")]) }
        try await clients[0].sync()
        try await clients[1].sync()
        #expect(try phones[1].row("person", resident)?["name"] == .text("陈静"))

        // Both change the phone while apart.
        try phones[0].write(as: li) { tx in try tx.update("person", resident, ["phone": .text("13800138001")]) }
        try phones[1].write(as: wang) { tx in try tx.update("person", resident, ["phone": .text("13900139002")]) }
        for client in clients { try await client.sync() }
        try await clients[0].sync()
        let conflicts = try phones[2].conflicts()
        #expect(conflicts.map(\.field) == ["phone"] && conflicts.first?.values.count == 2)
        // The server's status shows the same conflict to an inspector of the grid.
        let status = try await clients[0].status()
        let listed = status["conflicts"] as? [[String: Any]] ?? []
        #expect(listed.count == 1 && listed.first?["field"] as? String == "phone")

        // Staff settles it; everyone converges.
        try phones[2].write(as: zhang) { tx in try tx.update("person", resident, ["phone": .text("13800138001")]) }
        for client in clients.reversed() { try await client.sync() }
        let digests = try Set(phones.map { try $0.stateDigest() })
        #expect(digests.count == 1)
        #expect(try phones.allSatisfy { try $0.conflicts().isEmpty })
        #expect(try phones.allSatisfy { try $0.row("person", resident)?["phone"] == .text("13800138001") })
        // A second sync moves nothing: pushes are idempotent, the cursor holds.
        let again = try await clients[0].sync()
        #expect(again.pushed == 0 && again.pulled == 0)
        // The server counted it all.
        let (metricsData, _) = try await URLSession.shared.data(from: server.url.appendingPathComponent("metrics"))
        let metrics = String(decoding: metricsData, as: UTF8.self)
        #expect(metrics.contains("linli_pushes_total") && metrics.contains("linli_pulls_total") && metrics.contains("linli_push_commit_seconds"))
    }

    @Test func refusalsGetTheirDocumentedErrorsAndNothingIsLost() async throws {
        let (server, authorityStore) = try await deployment()
        let phone = try phone(server, "li")
        let client = SyncClient(store: phone, identity: li, server: server.url)
        try await client.sync()
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        let body = try { var r = Linli_V1_PushRequest(); r.changeSets = []; return try r.serializedBytes() as Data }()

        // Forged: signed with a key that is not li's.
        let other = SigningKey(seed: SecretBytes(copying: Data(repeating: 0x11, count: 32)))
        var forged = RequestSignature.sign(method: "POST", path: "/v1/push", body: body, device: li.device, key: other, time: now)
        forged.keyID = li.key.publicKey.keyID
        var (status, error) = try await server.send("POST", "/v1/push", body: body, headers: forged.headers)
        #expect(status == 401 && error["code"] == "bad_request_signature")

        // Replayed.
        let good = RequestSignature.sign(method: "POST", path: "/v1/push", body: body, device: li.device, key: li.key, time: now)
        (status, _) = try await server.send("POST", "/v1/push", body: body, headers: good.headers)
        #expect(status == 200)
        (status, error) = try await server.send("POST", "/v1/push", body: body, headers: good.headers)
        #expect(status == 401 && error["code"] == "replayed_request")

        // Stale.
        let stale = RequestSignature.sign(method: "POST", path: "/v1/push", body: body, device: li.device, key: li.key, time: now - 3_600_000)
        (status, error) = try await server.send("POST", "/v1/push", body: body, headers: stale.headers)
        #expect(status == 401 && error["code"] == "stale_request")

        // Unsigned.
        (status, error) = try await server.send("GET", "/v1/pull?after=0", body: Data(), headers: [])
        #expect(status == 401 && error["code"] == "bad_request_signature")

        // Out of scope: li's replica would refuse, so build the change set by hand.
        let intrusion = try Fixtures.signed(li, seq: 1, prev: Data(), hlc: now << 16, scope: .grid("G2"), rows: [
            RowChange(table: "person", row: RowID.random(), writes: [FieldWrite(field: "grid", value: .text("G2")), FieldWrite(field: "name", value: .text("x"))]),
        ])
        var push = Linli_V1_PushRequest()
        push.changeSets = [intrusion.envelope]
        let pushBody: Data = try push.serializedBytes()
        let signed = RequestSignature.sign(method: "POST", path: "/v1/push", body: pushBody, device: li.device, key: li.key, time: now)
        var request = URLRequest(url: server.url.appendingPathComponent("v1/push"))
        request.httpMethod = "POST"
        request.httpBody = pushBody
        for (name, value) in signed.headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, _) = try await URLSession.shared.data(for: request)
        let results = try Linli_V1_PushResponse(serializedBytes: data).results
        #expect(results.map(\.status) == ["refused"] && results.first?.code == "out_of_scope")
        // The author can see the refusal and its reason; the bytes are kept.
        let refused = try await client.status()["refused"] as? [[String: Any]] ?? []
        #expect(refused.count == 1 && refused.first?["code"] as? String == "out_of_scope")

        // Oversize body.
        let huge = Data(count: Limits.requestBodyBytesMax + 1)
        let hugeSignature = RequestSignature.sign(method: "POST", path: "/v1/push", body: huge, device: li.device, key: li.key, time: now)
        (status, error) = try await server.send("POST", "/v1/push", body: huge, headers: hugeSignature.headers)
        #expect(status == 413 && error["code"] == "over_limit")

        // Revoked: the authority revokes li; li's next request is refused.
        try authorityStore.revoke(as: authority, device: li.device, lastValidSeq: 0, reason: "lost")
        try await SyncClient(store: authorityStore, identity: authority, server: server.url).sync()
        do {
            try await client.sync()
            Issue.record("a revoked device synced")
        } catch let error as LinliError {
            #expect(error.code == .revoked)
        }
        let (metricsData, _) = try await URLSession.shared.data(from: server.url.appendingPathComponent("metrics"))
        #expect(String(decoding: metricsData, as: UTF8.self).contains("linli_refusals_total{reason=\"out_of_scope\"}"))
    }
}
