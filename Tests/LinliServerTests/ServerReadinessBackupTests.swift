import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hummingbird
import LinliClient
import LinliCore
import LinliCrypto
import LinliProtocol
@testable import LinliServer
import LinliStore
import LinliTesting
import Synchronization
import Testing

/// What an operator watches and does: the metrics from the first scrape,
/// readiness, a store outage answered with 503 and `Retry-After`, and a
/// backup taken while serving that restores without losing anything.
@Suite(.serialized) struct ServerReadinessBackupTests {
    let rootKey = SigningKey(seed: SecretBytes(copying: Data(repeating: 0xD7, count: 32)))
    var authority: DeviceIdentity { DeviceIdentity(device: Authority.deviceID(root: rootKey.publicKey), key: rootKey, user: "管理员") }
    let li = Fixtures.identity(91, user: "李明")
    let wang = Fixtures.identity(92, user: "王芳")

    /// The authority's replica with li and wang inspecting G1 and the
    /// shared test server enrolled.
    func authorityStore() throws -> ReplicaStore {
        let store = try ReplicaStore(path: nil, schema: Fixtures.schema, authority: rootKey.publicKey)
        try store.issueCertificate(as: authority, device: li.device, publicKey: li.key.publicKey, role: .inspector, grids: ["G1"])
        try store.issueCertificate(as: authority, device: wang.device, publicKey: wang.key.publicKey, role: .inspector, grids: ["G1"])
        try store.issueCertificate(as: authority, device: Fixtures.server.device, publicKey: Fixtures.server.key.publicKey,
                                   role: .server, grids: [])
        return store
    }

    func residents(_ store: ReplicaStore, as identity: DeviceIdentity, changeSets count: Int, from first: Int) throws {
        for index in first..<(first + count) {
            try store.write(as: identity) { tx in
                _ = try tx.create("person", ["grid": .text("G1"), "name": .text("居民\(index)"), "phone": .text("1380013\(index)")])
            }
        }
    }

    /// The value of one series in Prometheus text (`name{labels} value`).
    func value(_ series: String, in text: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    func get(_ server: RunningServer, _ path: String) async throws -> (Int, String, HTTPURLResponse?) {
        let (data, response) = try await URLSession.shared.data(from: URL(string: server.url.absoluteString + path)!)
        let http = response as? HTTPURLResponse
        return (http?.statusCode ?? 0, String(decoding: data, as: UTF8.self), http)
    }

    @Test func theFirstScrapeShowsEverySeriesAtZeroAndTheProcessItself() async throws {
        let server = try await RunningServer(authority: rootKey.publicKey)
        // The start waited on /healthz only: nothing has touched the store.
        let (status, first, _) = try await get(server, "/metrics")
        #expect(status == 200)
        for series in ["linli_pushes_total", "linli_pulls_total", "linli_pushed_change_sets_total", "linli_heads_total",
                       "linli_readiness_failures_total", #"linli_refusals_total{reason="fork"}"#,
                       #"linli_refusals_total{reason="bad_signature"}"#, #"linli_store_failures_total{operation="apply"}"#,
                       #"linli_store_seconds_count{operation="apply"}"#, #"linli_store_seconds_count{operation="log_end"}"#,
                       #"linli_store_operations_in_flight{operation="apply"}"#, "linli_push_commit_seconds_count"] {
            #expect(value(series, in: first) == 0, "\(series) is not at zero on the first scrape")
        }
        #expect((value("process_resident_memory_bytes", in: first) ?? 0) > 1_048_576)
        #expect((value("process_virtual_memory_bytes", in: first) ?? 0) >= value("process_resident_memory_bytes", in: first) ?? .infinity)
        #expect((value("process_open_fds", in: first) ?? 0) >= 3)
        #expect((value("process_max_fds", in: first) ?? 0) >= value("process_open_fds", in: first) ?? .infinity)
        #expect((value("process_cpu_seconds_total", in: first) ?? 0) > 0)
        let now = Date().timeIntervalSince1970
        let started = value("process_start_time_seconds", in: first) ?? 0
        #expect(started > now - 3_600 && started <= now + 1, "a start time of \(started), now \(now)")

        // Ready, and the check was a read of the store, counted.
        let (readyStatus, ready, _) = try await get(server, "/readyz")
        #expect(readyStatus == 200 && ready == "ready\n")
        let (_, second, _) = try await get(server, "/metrics")
        #expect((value(#"linli_store_seconds_count{operation="log_end"}"#, in: second) ?? 0) >= 1)
        #expect(value("linli_readiness_failures_total", in: second) == 0)
    }

    @Test func anOutageAnswers503WithRetryAfterAndTheDeviceWaitsAndComesBackByItself() async throws {
        let folder = Fixtures.TemporaryDirectory()
        let serverStore = try ReplicaStore(path: folder.path("server.sqlite"), schema: Fixtures.schema, authority: rootKey.publicKey)
        _ = try serverStore.apply(try authorityStore().changeSets(limit: 100).map { OfferedChangeSet(decoding: $0.envelope) })
        let down = Mutex(false)
        let refused = Mutex(0)
        let storage = MeasuredStorage(serverStore) { operation in
            if down.withLock({ $0 }) {
                refused.withLock { $0 += 1 }
                throw LinliError(.unavailable, "the store is out of service (\(operation))")
            }
        }
        let service = SyncService(storage: storage, identity: ServerIdentity(device: Fixtures.server.device, key: Fixtures.server.key),
                                  snapshotFolder: folder.path("snapshots"), invariants: [])

        // Readiness follows the store.
        #expect(await SyncServer.readiness(storage).status == .ok)
        down.withLock { $0 = true }
        let notReady = await SyncServer.readiness(storage)
        #expect(notReady.status == .serviceUnavailable)
        #expect(notReady.headers[.retryAfter] == String(Limits.retryAfterSeconds))

        // A device syncs into the outage: each answer is 503 with
        // Retry-After, and it waits that long before each try. The store
        // comes back during its third wait.
        let phone = try ReplicaStore(path: folder.path("li.sqlite"), schema: Fixtures.schema, authority: rootKey.publicKey)
        try residents(phone, as: li, changeSets: 12, from: 0)
        let pauses = Mutex<[UInt64]>([])
        let client = SyncClient(store: phone, identity: li, transport: InProcessTransport(service: service), name: URL(string: "sim://server")!,
                                clock: ReplicaStore.systemClock, pause: { nanoseconds in
                                    let count = pauses.withLock { $0.append(nanoseconds); return $0.count }
                                    if count == 3 { down.withLock { $0 = false } }
                                })
        let report = try await client.sync()
        let waited = pauses.withLock { $0 }
        #expect(refused.withLock { $0 } >= 3)
        #expect(waited.count >= 3 && report.retries >= 3, "\(waited) \(report)")
        // Each wait during the outage is Retry-After, plus up to half again.
        for pause in waited.prefix(3) {
            #expect(pause >= UInt64(Limits.retryAfterSeconds) * 1_000_000_000 && pause <= UInt64(Limits.retryAfterSeconds) * 1_500_000_000,
                    "a pause of \(pause) ns")
        }
        #expect(report.pushed == 12 && report.refused.isEmpty, "\(report)")
        #expect(try serverStore.stateDigest(scope: Scope("G1")) == phone.stateDigest(scope: Scope("G1")))
        #expect(await SyncServer.readiness(storage).status == .ok)
    }

    @Test func aBackupTakenWhileServingIsWholeAndARestoreOfItLosesNothing() async throws {
        let authorityStore = try authorityStore()
        let server = try await RunningServer(authority: rootKey.publicKey)
        #expect(try await SyncClient(store: authorityStore, identity: authority, server: server.url).sync().accepted == 3)
        let liPhone = try ReplicaStore(path: server.folder.path("li.sqlite"), schema: Fixtures.schema, authority: rootKey.publicKey)
        let liClient = SyncClient(store: liPhone, identity: li, server: server.url)
        try residents(liPhone, as: li, changeSets: 10, from: 0)
        try await liClient.sync()

        // Pushes go on while the backup is taken.
        let data = server.folder.path("data")
        let backup = server.folder.path("night.backup")
        let pushing = Task {
            for round in 0..<8 {
                try residents(liPhone, as: li, changeSets: 2, from: 100 + round * 2)
                try await liClient.sync()
            }
        }
        let taken = try Programs.run(Programs.built("linli-server"), ["backup", "--data", data, "--to", backup, "--json"])
        try await pushing.value
        #expect(taken.status == 0, "\(taken.error)")
        let report = try taken.json() as? [String: Any] ?? [:]
        let inBackup = report["change_sets"] as? Int ?? 0
        #expect(inBackup >= 13 && inBackup <= 29, "\(report)")
        #expect(try StoreBackup.check(backup).changeSets == Int64(inBackup))
        // A second backup to the same name is refused, the first one kept.
        let again = try Programs.run(Programs.built("linli-server"), ["backup", "--data", data, "--to", backup])
        #expect(again.status == 2 && again.error.contains("already exists") && again.error.contains("--force"), "\(again.error)")

        // More work after the backup, then the server's store is lost.
        try residents(liPhone, as: li, changeSets: 5, from: 200)
        try await liClient.sync()
        let everything = try liPhone.stateDigest(scope: Scope("G1"))
        let refusedWhileServing = try Programs.run(Programs.built("linli-server"), ["restore", "--from", backup, "--data", data])
        #expect(refusedWhileServing.status == 2 && refusedWhileServing.error.contains("a linli-server is serving"),
                "\(refusedWhileServing.error)")
        server.process.terminate()
        server.process.waitUntilExit()
        let restored = try Programs.run(Programs.built("linli-server"), ["restore", "--from", backup, "--data", data, "--json"])
        #expect(restored.status == 0, "\(restored.error)")
        let restoredReport = try restored.json() as? [String: Any] ?? [:]
        #expect(restoredReport["change_sets"] as? Int == inBackup)
        let kept = restoredReport["kept"] as? String ?? ""
        #expect(kept.contains("server.sqlite.before-restore-") && FileManager.default.fileExists(atPath: kept))

        // The restored server lacks li's last change sets; li's next sync
        // pushes them again, and a new phone gets everything.
        try await server.start()
        try await liClient.sync()
        let wangPhone = try ReplicaStore(path: server.folder.path("wang.sqlite"), schema: Fixtures.schema, authority: rootKey.publicKey)
        try await SyncClient(store: wangPhone, identity: wang, server: server.url).sync()
        #expect(try wangPhone.stateDigest(scope: Scope("G1")) == everything)
        #expect(try wangPhone.counts().changeSets == liPhone.counts().changeSets)
    }
}
