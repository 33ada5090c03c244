import ArgumentParser
import Foundation
import LinliClient
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting

/// `linli-bench sync`: the real `linli-server` (built beside this tool) on
/// loopback, measured the way devices use it.
///
/// (a) An inspector's round: 20 change sets up and 500 down (another
///     inspector of the grid made them since the last round), repeated;
///     the time is the whole `sync()` as the device sees it, push, pull and
///     merge into its on-disk replica.
/// (b) A night storm: thousands of devices, each with its own certificate,
///     each doing one round (push 5 change sets, pull what its grid's peers
///     pushed since the last night) at a fixed concurrency; the server's
///     peak resident memory is read from /proc.
struct SyncBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Inspector rounds and a night storm against linli-server on loopback.")

    @Option(help: "Inspector rounds to time.") var rounds = 200
    @Option(help: "Change sets an inspector pushes per round.") var up = 20
    @Option(help: "Change sets an inspector pulls per round.") var down = 500
    @Option(help: "Devices in the night storm.") var stormDevices = 2_000
    @Option(help: "Devices syncing at once in the storm.") var concurrency = 64
    @Option(help: "Grids the storm devices are spread over.") var stormGrids = 50
    @Option(help: "The linli-server executable (default: beside linli-bench).") var server: String?
    @Option(help: "Keep the server's log (one line per request, with its time on the server) in this file.") var serverLog: String?
    @Flag(help: "Print one JSON object.") var json = false

    func run() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("linli-bench-sync-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let schema = Fixtures.schema

        // The deployment: an authority, two inspectors of G1, the storm's devices.
        let root = SigningKey.generate()
        let authority = DeviceIdentity(device: Authority.deviceID(root: root.publicKey), key: root, user: "admin")
        let authorityStore = try ReplicaStore(path: nil, schema: schema, authority: root.publicKey)
        let inspector = DeviceIdentity(device: .random(), key: .generate(), user: "巡查员甲")
        let neighbour = DeviceIdentity(device: .random(), key: .generate(), user: "巡查员乙")
        let storm = (0..<stormDevices).map { DeviceIdentity(device: .random(), key: .generate(), user: "终端\($0)") }
        log("certifying \(storm.count + 2) devices…")
        for device in [inspector, neighbour] {
            try authorityStore.issueCertificate(as: authority, device: device.device, publicKey: device.key.publicKey, role: .inspector, grids: ["G1"])
        }
        for (index, device) in storm.enumerated() {
            try authorityStore.issueCertificate(as: authority, device: device.device, publicKey: device.key.publicKey, role: .inspector,
                                                grids: [stormGrid(index)])
        }
        try authorityStore.issueCertificate(as: authority, device: Fixtures.server.device, publicKey: Fixtures.server.key.publicKey,
                                            role: .server, grids: [])

        let process = try startServer(folder: folder, root: root.publicKey, schema: schema)
        defer { process.terminate(); process.waitUntilExit() }
        let url = URL(string: "http://127.0.0.1:\(port)")!
        let trust = try await SyncClient(store: authorityStore, identity: authority, server: url).sync()
        guard trust.refused.isEmpty else { throw ValidationError("the server refused certificates: \(trust.refused.prefix(3))") }

        // (a) Inspector rounds.
        let inspectorStore = try ReplicaStore(path: folder.appendingPathComponent("inspector.sqlite").path, schema: schema, authority: root.publicKey)
        let neighbourStore = try ReplicaStore(path: nil, schema: schema, authority: root.publicKey)
        let inspectorClient = SyncClient(store: inspectorStore, identity: inspector, server: url)
        let neighbourClient = SyncClient(store: neighbourStore, identity: neighbour, server: url)
        try await inspectorClient.sync()
        try await neighbourClient.sync()
        log("\(rounds) inspector rounds of \(up) up, \(down) down…")
        var roundMilliseconds: [Double] = []
        var phases: [String: [Double]] = [:]
        var counter = 0
        for round in 0..<rounds {
            for _ in 0..<down { try record(neighbourStore, as: neighbour, grid: "G1", number: &counter) }
            try await neighbourClient.sync()
            for _ in 0..<up { try record(inspectorStore, as: inspector, grid: "G1", number: &counter) }
            let started = DispatchTime.now().uptimeNanoseconds
            let report = try await inspectorClient.sync()
            roundMilliseconds.append(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6)
            for (phase, ms) in report.milliseconds { phases[phase, default: []].append(ms) }
            guard report.accepted == up, report.pulled == down else {
                throw ValidationError("round \(round) moved \(report.accepted) up and \(report.pulled) down")
            }
        }
        let roundSorted = roundMilliseconds.sorted()
        log("rounds: p50 \(round3(percentile(roundSorted, 0.50))) ms, p99 \(round3(percentile(roundSorted, 0.99))) ms")

        // (b) The night storm. Each device synced last night: its replica
        // holds the district's trust records (every certificate, as a
        // field device's does after its first sync) and its cursor is where
        // the server is now. The replicas are copies of one file that
        // applied the authority's change sets once.
        log("preparing \(storm.count) storm devices…")
        let position = try await serverPosition(url: url, probe: inspector, store: inspectorStore)
        var replicas: [ReplicaStore] = []
        let templatePath = folder.appendingPathComponent("storm-template.sqlite").path
        do {
            let template = try ReplicaStore(path: templatePath, schema: schema, authority: root.publicKey)
            let outcomes = try template.apply(try authorityStore.changeSets(scopes: [.system], limit: Int.max).map(\.envelope))
            guard outcomes.allSatisfy({ $0.status == .applied }) else { throw ValidationError("the storm template refused a trust record") }
            try template.checkpoint()
        }
        for (index, device) in storm.enumerated() {
            let path = folder.appendingPathComponent("storm-\(index).sqlite").path
            try FileManager.default.copyItem(atPath: templatePath, toPath: path)
            let store = try ReplicaStore(path: path, schema: schema, authority: root.publicKey)
            _ = try store.applyPage([Data](), cursor: SyncCursor(name: SyncClient.cursorName(url), position: position))
            for _ in 0..<5 { try record(store, as: device, grid: stormGrid(index), number: &counter) }
            replicas.append(store)
        }
        log("storm: \(storm.count) devices, \(concurrency) at once…")
        let stormStarted = DispatchTime.now().uptimeNanoseconds
        var stormMilliseconds: [Double] = []
        var errors: [String] = []
        let peak = PeakMemory(pid: process.processIdentifier)
        await withTaskGroup(of: (Double, String?).self) { group in
            var next = 0
            func launch() {
                let index = next
                next += 1
                let client = SyncClient(store: replicas[index], identity: storm[index], server: url, attemptsMax: 1)
                group.addTask {
                    let started = DispatchTime.now().uptimeNanoseconds
                    do {
                        let report = try await client.sync()
                        let ms = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6
                        return (ms, report.accepted == 5 ? nil : "device \(index): \(report.accepted) accepted, refused \(report.refused)")
                    } catch {
                        return (Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6, "device \(index): \(error)")
                    }
                }
            }
            while next < min(concurrency, storm.count) { launch() }
            for await (ms, error) in group {
                stormMilliseconds.append(ms)
                if let error { errors.append(error) }
                peak.sample()
                if next < storm.count { launch() }
            }
        }
        let stormSeconds = Double(DispatchTime.now().uptimeNanoseconds - stormStarted) / 1e9
        peak.sample()
        let stormSorted = stormMilliseconds.sorted()
        if !errors.isEmpty { log("storm errors: \(errors.prefix(5))") }

        let result: [String: Any] = [
            "benchmark": "sync",
            "rounds": rounds, "round_up": up, "round_down": down,
            "round_p50_ms": round3(percentile(roundSorted, 0.50)),
            "round_p99_ms": round3(percentile(roundSorted, 0.99)),
            "round_max_ms": round3(roundSorted.last ?? 0),
            "round_push_p50_ms": round3(percentile((phases["push"] ?? []).sorted(), 0.5)),
            "round_pull_wait_p50_ms": round3(percentile((phases["pull"] ?? []).sorted(), 0.5)),
            "round_apply_p50_ms": round3(percentile((phases["apply"] ?? []).sorted(), 0.5)),
            "storm_devices": storm.count, "storm_concurrency": concurrency,
            "storm_seconds": round3(stormSeconds),
            "storm_errors": errors.count,
            "storm_p50_ms": round3(percentile(stormSorted, 0.50)),
            "storm_p99_ms": round3(percentile(stormSorted, 0.99)),
            "storm_rss_mib": round3(Double(peak.peakKibibytes) / 1024),
            "server_log_change_sets": Int(try await serverPosition(url: url, probe: inspector, store: inspectorStore)),
            "cores": ProcessInfo.processInfo.activeProcessorCount,
        ]
        if json {
            printJSON(result)
        } else {
            for key in result.keys.sorted() { print("\(key): \(result[key]!)") }
        }
    }

    func stormGrid(_ index: Int) -> String { "S\(index % stormGrids)" }

    /// One change set: a resident of `grid` with six fields.
    func record(_ store: ReplicaStore, as identity: DeviceIdentity, grid: String, number: inout Int) throws {
        number += 1
        let n = number
        try store.write(as: identity) { tx in
            _ = try tx.create("person", [
                "grid": .text(grid), "name": .text("居民\(n)"), "phone": .text("138\(String(format: "%08d", n % 100_000_000))"),
                "birth_date": .text("1980-01-01"), "care": .boolean(n % 7 == 0), "visits": .integer(Int64(n % 5)),
            ])
        }
    }

    /// The server's newest log position, as a device that reads everything
    /// in G1 sees it after a pull (the storm's devices start from there).
    func serverPosition(url: URL, probe: DeviceIdentity, store: ReplicaStore) async throws -> Int64 {
        let client = SyncClient(store: store, identity: probe, server: url)
        return try await client.sync().cursor
    }

    var port: Int { ServerProcess.port }

    func startServer(folder: URL, root: PublicKey, schema: Schema) throws -> Process {
        try ServerProcess.start(executable: server, folder: folder, root: root, schema: schema,
                                arguments: try Fixtures.serverKeyArguments(in: folder.path), log: serverLog)
    }
}

func percentile(_ sorted: [Double], _ share: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count) * share).rounded(.up)) - 1)]
}

/// A process's peak resident memory (VmHWM), from /proc.
final class PeakMemory: @unchecked Sendable {
    let pid: Int32
    private(set) var peakKibibytes = 0

    init(pid: Int32) { self.pid = pid }

    func sample() {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let digits = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            peakKibibytes = max(peakKibibytes, digits)
        }
    }
}
