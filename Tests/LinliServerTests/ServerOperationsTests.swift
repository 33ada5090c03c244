import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GRDB
import LinliClient
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting
import SwiftProtobuf
import Testing

/// The server as operators run it: behind nginx with TLS, stopped with
/// SIGTERM, reached over a network that cuts transfers, bootstrapping new
/// devices from signed snapshots, and many devices pushing at once.
@Suite(.serialized) struct ServerOperationsTests {
    let rootKey = SigningKey(seed: SecretBytes(copying: Data(repeating: 0xD1, count: 32)))
    var authority: DeviceIdentity { DeviceIdentity(device: Authority.deviceID(root: rootKey.publicKey), key: rootKey, user: "admin") }
    let li = Fixtures.identity(71, user: "李明")
    let wang = Fixtures.identity(72, user: "王芳")
    let zhang = Fixtures.identity(73, user: "张强")
    let zhao = Fixtures.identity(74, user: "赵磊")
    let serverIdentity = Fixtures.identity(75, user: "server")

    /// A server whose certificates the authority has pushed: li and wang
    /// inspect G1, zhao G2, zhang is staff; the server itself is enrolled
    /// with the role server and signs snapshots with its sealed key.
    func deployment() async throws -> (RunningServer, ReplicaStore) {
        let authorityStore = try ReplicaStore(path: nil, schema: Fixtures.schema, authority: rootKey.publicKey)
        try authorityStore.issueCertificate(as: authority, device: li.device, publicKey: li.key.publicKey, role: .inspector, grids: ["G1"])
        try authorityStore.issueCertificate(as: authority, device: wang.device, publicKey: wang.key.publicKey, role: .inspector, grids: ["G1"])
        try authorityStore.issueCertificate(as: authority, device: zhao.device, publicKey: zhao.key.publicKey, role: .inspector, grids: ["G2"])
        try authorityStore.issueCertificate(as: authority, device: zhang.device, publicKey: zhang.key.publicKey, role: .staff, grids: [])
        try authorityStore.issueCertificate(as: authority, device: serverIdentity.device, publicKey: serverIdentity.key.publicKey, role: .server, grids: [])
        let keys = Fixtures.TemporaryDirectory()
        let keyPath = keys.path("server.key")
        try SealedKeyFile.write(try SealedKey.seal(serverIdentity.key, passphrase: "server passphrase", label: "server", strength: .interactive), to: keyPath)
        try Data("server passphrase\n".utf8).write(to: URL(fileURLWithPath: keys.path("passphrase")))
        let server = try await RunningServer(authority: rootKey.publicKey, settings: [
            "device": serverIdentity.device.hex, "key": keyPath, "key_passphrase_file": keys.path("passphrase"),
        ])
        let report = try await SyncClient(store: authorityStore, identity: authority, server: server.url).sync()
        #expect(report.accepted == 5 && report.refused.isEmpty, "\(report)")
        return (server, authorityStore)
    }

    func replica(_ server: RunningServer, _ name: String) throws -> ReplicaStore {
        try ReplicaStore(path: server.folder.path("\(name).sqlite"), schema: Fixtures.schema, authority: rootKey.publicKey)
    }

    /// `count` change sets of five residents each, with incompressible
    /// names: about 1.6 KB a change set.
    func record(_ store: ReplicaStore, as identity: DeviceIdentity, grid: String, changeSets count: Int, seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        for _ in 0..<count {
            try store.write(as: identity) { tx in
                for _ in 0..<5 {
                    let name = (0..<224).map { _ in UInt8.random(in: 0...255, using: &random) }
                    _ = try tx.create("person", ["grid": .text(grid), "name": .text(Data(name).base64EncodedString())])
                }
            }
        }
    }

    @Test func aPullCutOffMidPageResumesFromItsCursorWithNoGapAndNoDuplicate() async throws {
        let (server, _) = try await deployment()
        let liPhone = try replica(server, "li")
        try await SyncClient(store: liPhone, identity: li, server: server.url).sync()
        try record(liPhone, as: li, grid: "G1", changeSets: 2_500, seed: 1)
        let pushed = try await SyncClient(store: liPhone, identity: li, server: server.url).sync()
        #expect(pushed.accepted == 2_500)

        // wang pulls through a link that breaks after about 2.25 MB: past
        // the first page (about 1.5 MB compressed), inside the second.
        let proxy = try CuttingProxy(upstreamPort: server.port)
        defer { proxy.close() }
        proxy.cutAfterBytes = 2_250_000
        let wangPhone = try replica(server, "wang")
        let viaProxy = URL(string: "http://127.0.0.1:\(proxy.port)")!
        let cut = SyncClient(store: wangPhone, identity: wang, server: viaProxy, attemptsMax: 1)
        do {
            try await cut.sync()
            Issue.record("the sync went through a link that cuts every transfer")
        } catch let error as LinliError {
            #expect(error.code == .unreachable, "\(error)")
        }
        #expect(proxy.cuts >= 1)
        let cursorAfterCut = try wangPhone.cursor(cut.cursorName)
        let storedAfterCut = try wangPhone.counts().changeSets
        #expect(cursorAfterCut > 0, "the first page was not kept")
        #expect(storedAfterCut < 2_500 + 5, "the cut did not happen mid-transfer")

        // The link comes back; the same client resumes from its cursor.
        proxy.cutAfterBytes = nil
        let resumed = try await cut.sync()
        let after = try wangPhone.counts()
        #expect(after.changeSets == storedAfterCut + resumed.pulled, "a change set was pulled twice")
        #expect(after.changeSets == 2_500 + 5, "a change set is missing")
        #expect(after.held == 0 && after.quarantined == 0)
        #expect(try wangPhone.heads()[li.device]?.seq == 2_500)
        #expect(try wangPhone.stateDigest() == liPhone.stateDigest())
    }

    @Test func syncsThroughNginxTerminatingTLSWithTheDistrictsOwnCertificate() async throws {
        let (server, _) = try await deployment()
        let nginx = try NginxFront(upstreamPort: server.port)
        defer { nginx.stop() }
        let secure = ServerConnection(url: URL(string: "https://127.0.0.1:\(nginx.port)")!, certificateAuthorityFile: nginx.certificatePath)

        let liPhone = try replica(server, "li")
        try liPhone.write(as: li) { tx in _ = try tx.create("person", ["grid": .text("G1"), "name": .text("陈静"), "phone": .text("13800138000")]) }
        let liClient = SyncClient(store: liPhone, identity: li, connection: secure)
        let report = try await liClient.sync()
        #expect(report.accepted == 1 && report.pulled == 5)

        let wangPhone = try replica(server, "wang")
        try await SyncClient(store: wangPhone, identity: wang, connection: secure).sync()
        #expect(try wangPhone.stateDigest() == liPhone.stateDigest())
        let status = try await liClient.status()
        #expect(status["device"] as? String == li.device.hex)

        // Without the district's certificate the client trusts nothing the
        // front offers: the self-signed certificate is refused.
        let untrusted = SyncClient(store: wangPhone, identity: wang, connection: ServerConnection(url: secure.url), attemptsMax: 1)
        await #expect(throws: LinliError.self) { try await untrusted.sync() }
        // nginx passed the signed requests on unchanged.
        let access = try String(contentsOfFile: nginx.folder.path("access.log"), encoding: .utf8)
        #expect(access.contains("POST /v1/push") && access.contains("GET /v1/pull"))

        // Metrics: the operator's own host (127.0.0.1) reads /metrics; every
        // other spelling is not served, whoever asks.
        #expect(try nginx.status("127.0.0.1", "/metrics") == 200)
        for path in ["/metrics/", "/metrics//x", "//metrics", "/metrics%2F", "/%6Detrics"] {
            #expect(try nginx.status("127.0.0.1", path) == 404, "\(path) from 127.0.0.1")
        }
        // Any other address (the devices' side; here ::1) is denied by nginx,
        // with or without a trailing slash.
        if NginxFront.hasIPv6Loopback {
            for path in ["/metrics", "/metrics/", "/metrics/x", "//metrics", "/%6Detrics/"] {
                #expect(try nginx.status("::1", path) == 403, "\(path) from ::1")
            }
            #expect(try nginx.status("::1", "/healthz") == 200)
        }
    }

    @Test func sigtermFinishesThePushInFlightThenStops() async throws {
        let (server, _) = try await deployment()
        let liPhone = try replica(server, "li")
        // Through a pass-through proxy, to see when the push is on its way.
        let proxy = try CuttingProxy(upstreamPort: server.port)
        defer { proxy.close() }
        let client = SyncClient(store: liPhone, identity: li, server: URL(string: "http://127.0.0.1:\(proxy.port)")!, attemptsMax: 1)
        try await client.sync()
        // One push of 1,000 change sets of 20 residents: it takes the server
        // a noticeable while to verify and commit.
        var random = SeededRandom(seed: 9)
        for _ in 0..<1_000 {
            try liPhone.write(as: li) { tx in
                for _ in 0..<20 {
                    _ = try tx.create("person", ["grid": .text("G1"), "name": .text("居民\(UInt32.random(in: 0...UInt32.max, using: &random))")])
                }
            }
        }
        let connected = proxy.connections
        async let pushing = client.sync()
        while proxy.connections == connected { try await Task.sleep(nanoseconds: 5_000_000) }
        // The 1 MB body crosses loopback in milliseconds; the commit takes
        // far longer.
        try await Task.sleep(nanoseconds: 100_000_000)
        kill(server.process.processIdentifier, SIGTERM)
        // The push in flight is answered; the pull after it finds the
        // server gone, which the client reports as unreachable.
        do {
            _ = try await pushing
        } catch let error as LinliError {
            #expect(error.code == .unreachable)
        }
        let unacknowledged = try liPhone.outbox(device: li.device, peer: client.cursorName, limit: 2_000)
        #expect(unacknowledged.isEmpty, "\(unacknowledged.count) change sets of the push in flight were not acknowledged")
        server.process.waitUntilExit()
        #expect(server.process.terminationReason == .exit && server.process.terminationStatus == 0)
        let log = try String(contentsOfFile: server.logPath, encoding: .utf8)
        #expect(log.contains("stopped"))
        #expect(log.contains("path=/v1/push") && log.contains("status=200"), "no structured request line in the log")
        // What was acknowledged is in the store.
        let store = try ReplicaStore(path: server.folder.path("data/server.sqlite"), schema: Fixtures.schema, authority: rootKey.publicKey)
        #expect(try store.heads()[li.device]?.seq == 1_000)
    }

    @Test func aNewDeviceBootstrapsFromASignedSnapshotOfItsScopesAndPullsOnFromItsCursor() async throws {
        let (server, _) = try await deployment()
        let liPhone = try replica(server, "li")
        let zhaoPhone = try replica(server, "zhao")
        let zhangDesk = try replica(server, "zhang")
        let secret = "G2居民的身份证号110101199003074518"
        try record(liPhone, as: li, grid: "G1", changeSets: 50, seed: 2)
        try zhaoPhone.write(as: zhao) { tx in _ = try tx.create("person", ["grid": .text("G2"), "name": .text(secret)]) }
        // Staff writes in G1, then G2, then G1: the G1 replicas never see
        // the middle one.
        for grid in ["G1", "G2", "G1"] {
            try zhangDesk.write(as: zhang) { tx in _ = try tx.create("person", ["grid": .text(grid), "name": .text("staff in \(grid)")]) }
        }
        for (store, identity) in [(liPhone, li), (zhaoPhone, zhao), (zhangDesk, zhang)] {
            try await SyncClient(store: store, identity: identity, server: server.url).sync()
        }
        try await SyncClient(store: liPhone, identity: li, server: server.url).sync()
        #expect(try liPhone.counts().held == 0, "li holds staff change sets for a gap it can never fill")

        // wang is new: it bootstraps from the server's snapshot.
        let wangPath = server.folder.path("wang.sqlite")
        let wangPhone = try await SyncClient.bootstrap(
            connection: ServerConnection(url: server.url), identity: wang, authority: rootKey.publicKey, schema: Fixtures.schema, at: wangPath)
        #expect(try wangPhone.stateDigest() == liPhone.stateDigest())
        #expect(try wangPhone.counts().changeSets == liPhone.counts().changeSets)
        // Nothing of G2 is in wang's file, not even in free pages.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: wangPath))
        #expect(bytes.range(of: Data(secret.utf8)) == nil, "G2's data reached a G1 device")
        #expect(bytes.range(of: Data("staff in G2".utf8)) == nil)

        // Then it pulls on from the snapshot's cursor, across staff's
        // change sets in G2.
        try zhangDesk.write(as: zhang) { tx in _ = try tx.create("person", ["grid": .text("G2"), "name": .text("staff in G2 again")]) }
        try zhangDesk.write(as: zhang) { tx in _ = try tx.create("person", ["grid": .text("G1"), "name": .text("staff in G1 again")]) }
        try await SyncClient(store: zhangDesk, identity: zhang, server: server.url).sync()
        let wangClient = SyncClient(store: wangPhone, identity: wang, server: server.url)
        let report = try await wangClient.sync()
        #expect(report.pulled == 1, "wang pulled \(report.pulled), not just the one G1 change set after its snapshot")
        try await SyncClient(store: liPhone, identity: li, server: server.url).sync()
        #expect(try wangPhone.counts().held == 0)
        #expect(try wangPhone.stateDigest() == liPhone.stateDigest())
        #expect(try wangPhone.heads()[zhang.device]?.seq == 5)
    }

    @Test func aSnapshotThatDoesNotVerifyIsRefused() async throws {
        let (server, _) = try await deployment()
        let liPhone = try replica(server, "li")
        try record(liPhone, as: li, grid: "G1", changeSets: 5, seed: 3)
        try await SyncClient(store: liPhone, identity: li, server: server.url).sync()
        let snapshotPath = server.folder.path("data/snapshots")
        let target = server.folder.path("wang-from-tampered.sqlite")
        // A good snapshot, taken apart: manifest, signature, file.
        let good = try await SyncClient.bootstrap(connection: ServerConnection(url: server.url), identity: wang, authority: rootKey.publicKey,
                                                  schema: Fixtures.schema, at: server.folder.path("wang-good.sqlite"))
        #expect(try good.stateDigest() == liPhone.stateDigest())
        let files = try FileManager.default.contentsOfDirectory(atPath: snapshotPath).filter { $0.hasSuffix(".sqlite") }
        #expect(files.count == 1)
        let served = snapshotPath + "/" + files[0]
        let hasher = Blake2b256()
        let original = try Data(contentsOf: URL(fileURLWithPath: served))
        hasher.update(original)
        var manifest = Linli_V1_SnapshotManifest()
        manifest.format = 1
        manifest.serverDevice = serverIdentity.device.data
        manifest.cursor = 1
        manifest.takenAtMs = UInt64(Date().timeIntervalSince1970 * 1000)
        manifest.fileHash = hasher.finalize()
        manifest.fileBytes = UInt64(original.count)
        let manifestBytes: Data = try manifest.serializedBytes()

        func attempt(file: Data, signer: SigningKey) throws {
            let copy = server.folder.path("download")
            try file.write(to: URL(fileURLWithPath: copy))
            _ = try ReplicaStore.adoptSnapshot(file: copy, manifest: manifestBytes, signature: signer.sign(SnapshotWire.signingMessage(manifestBytes)),
                                               authority: rootKey.publicKey, schema: Fixtures.schema, at: target, cursorName: "server:test")
        }
        // Signed by someone other than the server.
        do { try attempt(file: original, signer: li.key); Issue.record("a snapshot signed by an inspector was adopted") } catch let error as LinliError {
            #expect(error.code == .badSignature)
        }
        // One byte of the file changed.
        var tampered = original
        tampered[tampered.count / 2] ^= 0x01
        do { try attempt(file: tampered, signer: serverIdentity.key); Issue.record("a changed snapshot was adopted") } catch let error as LinliError {
            #expect(error.code == .damagedFile)
        }
        #expect(!FileManager.default.fileExists(atPath: target), "a refused snapshot became a replica")
        // The genuine file with a genuine signature is adopted.
        try attempt(file: original, signer: serverIdentity.key)
        #expect(FileManager.default.fileExists(atPath: target))
    }

    @Test func manyDevicesPushingAtOnceAreAllAcceptedAndConverge() async throws {
        let authorityStore = try ReplicaStore(path: nil, schema: Fixtures.schema, authority: rootKey.publicKey)
        let devices = (0..<16).map { Fixtures.identity(UInt8(100 + $0), user: "巡查员\($0)") }
        for device in devices {
            try authorityStore.issueCertificate(as: authority, device: device.device, publicKey: device.key.publicKey, role: .inspector, grids: ["G1"])
        }
        try authorityStore.issueCertificate(as: authority, device: Fixtures.server.device, publicKey: Fixtures.server.key.publicKey, role: .server, grids: [])
        let server = try await RunningServer(authority: rootKey.publicKey)
        try await SyncClient(store: authorityStore, identity: authority, server: server.url).sync()
        var phones: [ReplicaStore] = []
        for (index, device) in devices.enumerated() {
            let phone = try replica(server, "phone\(index)")
            try record(phone, as: device, grid: "G1", changeSets: 20, seed: UInt64(index))
            phones.append(phone)
        }
        let reports = try await withThrowingTaskGroup(of: SyncReport.self) { group in
            for (phone, device) in zip(phones, devices) {
                group.addTask { try await SyncClient(store: phone, identity: device, server: server.url).sync() }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(reports.allSatisfy { $0.accepted == 20 && $0.refused.isEmpty })
        // Every push went through a group commit (GroupCommitTests shows
        // the grouping itself, deterministically).
        let (metricsData, _) = try await URLSession.shared.data(from: server.url.appendingPathComponent("metrics"))
        let metrics = String(decoding: metricsData, as: UTF8.self)
        let sum = metrics.split(separator: "\n").first { $0.hasPrefix("linli_group_commit_pushes_sum ") }
        let pushed = sum.flatMap { Double($0.split(separator: " ").last!) }.map { Int($0.rounded()) }
        #expect(pushed == 17, "\(String(describing: sum))")
        for phone in phones { try await SyncClient(store: phone, identity: devices[phones.firstIndex { $0 === phone }!], server: server.url).sync() }
        #expect(try Set(phones.map { try $0.stateDigest() }).count == 1)
    }
}

/// nginx from Debian's packages in front of a server: TLS with a
/// self-signed certificate made for the test, and the site configuration
/// the project ships (`deploy/nginx/linli.conf`).
final class NginxFront: @unchecked Sendable {
    let folder = Fixtures.TemporaryDirectory()
    let port = Int.random(in: 20_000..<60_000)
    let process = Process()
    var certificatePath: String { folder.path("cert.pem") }

    static let shipped = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("deploy/nginx/linli.conf").path

    init(upstreamPort: Int) throws {
        guard let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw LinliError(.notFound, "nginx is not installed", hint: "make deps installs it (apt-get install nginx-light)")
        }
        try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                     "-keyout", folder.path("key.pem"), "-out", certificatePath, "-days", "2",
                                     "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        var site = try String(contentsOfFile: Self.shipped, encoding: .utf8)
        // Also on ::1 when there is one: a client address other than the
        // 127.0.0.1 the configuration allows for metrics.
        if Self.hasIPv6Loopback {
            site = site.replacingOccurrences(of: "listen @LISTEN@ ssl;", with: "listen 127.0.0.1:\(port) ssl;\n    listen [::1]:\(port) ssl;")
        }
        for (placeholder, value) in [("@UPSTREAM@", "127.0.0.1:\(upstreamPort)"), ("@LISTEN@", "127.0.0.1:\(port)"),
                                     ("@CERTIFICATE@", certificatePath), ("@CERTIFICATE_KEY@", folder.path("key.pem")),
                                     ("@ACCESS_LOG@", folder.path("access.log"))] {
            site = site.replacingOccurrences(of: placeholder, with: value)
        }
        try site.write(toFile: folder.path("linli.conf"), atomically: true, encoding: .utf8)
        let temp = folder.path("tmp")
        try FileManager.default.createDirectory(atPath: temp, withIntermediateDirectories: true)
        let main = """
            worker_processes 1;
            pid \(folder.path("nginx.pid"));
            error_log \(folder.path("error.log")) notice;
            events { worker_connections 256; }
            http {
                client_body_temp_path \(temp)/body;
                proxy_temp_path \(temp)/proxy;
                fastcgi_temp_path \(temp)/fastcgi;
                uwsgi_temp_path \(temp)/uwsgi;
                scgi_temp_path \(temp)/scgi;
                include \(folder.path("linli.conf"));
            }
            """
        try main.write(toFile: folder.path("nginx.conf"), atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: nginx)
        process.arguments = ["-p", folder.url.path, "-c", folder.path("nginx.conf"), "-g", "daemon off;"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Ready when the port answers.
        for _ in 0..<50 {
            if CuttingProxy.canConnect(port: port) { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        stop()
        let errors = (try? String(contentsOfFile: folder.path("error.log"), encoding: .utf8)) ?? ""
        throw LinliError(.storage, "nginx did not start on port \(port): \(errors)")
    }

    /// Whether this machine has the IPv6 loopback address.
    static let hasIPv6Loopback: Bool = {
        let interfaces = (try? String(contentsOfFile: "/proc/net/if_inet6", encoding: .utf8)) ?? ""
        return interfaces.split(separator: "\n").contains { $0.hasPrefix("00000000000000000000000000000001 ") }
    }()

    /// The HTTP status of a GET of `path` sent to nginx from `address`
    /// (127.0.0.1 or ::1), by curl, with the path exactly as written (the
    /// certificate is the test's own; what is tested here is the routing).
    func status(_ address: String, _ path: String) throws -> Int {
        let host = address.contains(":") ? "[\(address)]" : address
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        curl.arguments = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--path-as-is", "--globoff", "--insecure",
                          "https://\(host):\(port)\(path)"]
        let output = Pipe()
        curl.standardOutput = output
        curl.standardError = FileHandle.nullDevice
        try curl.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        curl.waitUntilExit()
        return Int(String(decoding: data, as: UTF8.self)) ?? 0
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    deinit { stop() }

    private func run(_ path: String, _ arguments: [String]) throws {
        let tool = Process()
        tool.executableURL = URL(fileURLWithPath: path)
        tool.arguments = arguments
        tool.standardOutput = FileHandle.nullDevice
        tool.standardError = FileHandle.nullDevice
        try tool.run()
        tool.waitUntilExit()
        guard tool.terminationStatus == 0 else { throw LinliError(.storage, "\(path) \(arguments.joined(separator: " ")) failed") }
    }
}
