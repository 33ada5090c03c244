import Foundation
import GRDB
import LinliClient
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliServer
import LinliStore
import LinliTesting
import Synchronization

/// A deterministic simulation of a district (in the manner of
/// FoundationDB's simulator and TigerBeetle's VOPR): a server and several
/// devices in one process, the real stores on real SQLite files, the real
/// sync client and server logic, and a network, a clock and crashes
/// driven by one seed. No sockets, no wall clock, no waiting.
///
/// The network, per exchange: passes, loses the request, loses the
/// answer after the server acted, flips one byte of the request or of the
/// answer (body or signature header), delivers a copy first, or keeps the
/// request to deliver it again later (reordering, replays). Devices are
/// cut off for a while (partitions), devices and the server crash and
/// reopen their files, and the server is restored from an older copy of
/// its store.
///
/// Checked after every step: no change set a device holds as acknowledged
/// is missing from the server (unless the server was restored since);
/// a device that says it is in step is in step. Checked at the end, once
/// the network heals: every change set every device made is on the server
/// and on every replica whose scopes cover it, the replicas and the
/// server agree scope by scope, and every device says it is in step.
public final class Simulation: @unchecked Sendable {
    public struct Faults: Sendable, Equatable, CustomStringConvertible {
        public var exchanges = 0
        public var passed = 0
        public var lostRequests = 0
        public var lostAnswers = 0
        public var flippedRequests = 0
        public var flippedAnswers = 0
        public var duplicated = 0
        public var replayedLater = 0
        public var partitions = 0
        public var deviceCrashes = 0
        public var serverCrashes = 0
        public var serverRestores = 0
        public var failedSyncs = 0
        public var repairs = 0

        public var description: String {
            "exchanges \(exchanges) (passed \(passed), lost requests \(lostRequests), lost answers \(lostAnswers), flipped requests \(flippedRequests), "
                + "flipped answers \(flippedAnswers), duplicated \(duplicated), replayed later \(replayedLater)); partitions \(partitions), "
                + "device crashes \(deviceCrashes), server crashes \(serverCrashes), server restores \(serverRestores); "
                + "syncs that failed and were retried later \(failedSyncs); change sets repaired \(repairs)"
        }

        public static func + (a: Faults, b: Faults) -> Faults {
            var c = a
            c.exchanges += b.exchanges; c.passed += b.passed; c.lostRequests += b.lostRequests; c.lostAnswers += b.lostAnswers
            c.flippedRequests += b.flippedRequests; c.flippedAnswers += b.flippedAnswers; c.duplicated += b.duplicated
            c.replayedLater += b.replayedLater; c.partitions += b.partitions; c.deviceCrashes += b.deviceCrashes
            c.serverCrashes += b.serverCrashes; c.serverRestores += b.serverRestores; c.failedSyncs += b.failedSyncs; c.repairs += b.repairs
            return c
        }
    }

    /// A broken invariant, with the seed that replays it.
    public struct Failure: Error, CustomStringConvertible {
        public let seed: UInt64
        public let step: Int
        public let steps: Int
        public let message: String
        public var description: String {
            "seed \(seed), step \(step) of \(steps): \(message)\nreplay: swift run linli-sim simulate --seed \(seed) --steps \(steps)"
        }
    }

    struct Device {
        let identity: DeviceIdentity
        let grid: String?
        var store: ReplicaStore
        let path: String
        var offlineUntil = 0
        var scopes: Set<Scope> {
            if let grid { return [.grid(grid), .public, .system] }
            return []
        }
    }

    let seed: UInt64
    let steps: Int
    let folder: Fixtures.TemporaryDirectory
    let random: Mutex<SeededRandom>
    let now = SimulatedClock()
    let faults = Mutex(Faults())
    let root: SigningKey
    var authority: DeviceIdentity { DeviceIdentity(device: Authority.deviceID(root: root.publicKey), key: root, user: "管理员") }
    let schema = Fixtures.schema
    var devices: [Device] = []
    var serverStore: ReplicaStore
    var serverPaths: [String] = []
    var service: SyncService?
    var backup: String?
    var restoredAt: Int?
    /// Requests kept by the network to deliver again later.
    let stash = Mutex<[(method: String, target: String, headers: [(String, String)], body: Data)]>([])
    var step = 0
    /// Every change set a device made: (device, seq) → hash.
    var made: [DeviceID: [UInt64: Data]] = [:]
    var rows: [String: [RowID]] = [:]

    public init(seed: UInt64, steps: Int = 40) throws {
        self.seed = seed
        self.steps = steps
        // Real SQLite files, in memory-backed /dev/shm where there is one:
        // the simulation tests the logic, not the disk's fsync.
        let shm = URL(fileURLWithPath: "/dev/shm")
        folder = FileManager.default.isWritableFile(atPath: shm.path) ? Fixtures.TemporaryDirectory(in: shm) : Fixtures.TemporaryDirectory()
        random = Mutex(SeededRandom(seed: seed))
        root = SigningKey(seed: SecretBytes(copying: Data(repeating: 0xA7, count: 32)))
        let clock = now
        let serverPath = folder.path("server-0.sqlite")
        serverPaths = [serverPath]
        serverStore = try ReplicaStore(path: serverPath, schema: schema, authority: root.publicKey, clock: { clock.read() })
        let people: [(UInt8, String?, String)] = [(1, "G1", "李明"), (2, "G1", "王芳"), (3, "G2", "赵军"), (4, nil, "张伟")]
        let authorityStore = try ReplicaStore(path: nil, schema: schema, authority: root.publicKey, clock: { clock.read() })
        try authorityStore.issueCertificate(as: authority, device: Fixtures.server.device, publicKey: Fixtures.server.key.publicKey,
                                            role: .server, grids: [])
        for (number, grid, user) in people {
            let identity = Fixtures.identity(number, user: user)
            try authorityStore.issueCertificate(as: authority, device: identity.device, publicKey: identity.key.publicKey,
                                                role: grid == nil ? .staff : .inspector, grids: grid.map { [$0] } ?? [])
            let path = folder.path("device-\(number).sqlite")
            let store = try ReplicaStore(path: path, schema: schema, authority: root.publicKey, clock: { clock.read() })
            devices.append(Device(identity: identity, grid: grid, store: store, path: path))
        }
        // The administrator's first sync, before the day starts.
        _ = try serverStore.apply(try authorityStore.changeSets().map { OfferedChangeSet(decoding: $0.envelope) }, policy: .init(refuseFutureClocks: true))
        service = makeService()
    }

    func makeService() -> SyncService {
        let clock = now
        return SyncService(storage: serverStore, identity: ServerIdentity(device: Fixtures.server.device, key: Fixtures.server.key),
                           snapshotFolder: folder.path("snapshots"), invariants: [], clock: { clock.read() })
    }

    func roll(_ range: Range<Int>) -> Int { random.withLock { Int.random(in: range, using: &$0) } }
    func chance(_ percent: Int) -> Bool { roll(0..<100) < percent }

    /// Runs the day, then heals and checks the end state.
    public func run() async throws -> Faults {
        for index in 0..<steps {
            step = index
            now.advance(UInt64(roll(1_000..<120_000)))
            try await act()
            try checkAcknowledged()
        }
        step = steps
        try await heal()
        return faults.withLock { $0 }
    }

    func act() async throws {
        let device = roll(0..<devices.count)
        switch roll(0..<100) {
        case 0..<40: try write(device)
        case 40..<80: try await sync(device, faulty: true)
        case 80..<85:
            devices[device].offlineUntil = step + roll(1..<6)
            faults.withLock { $0.partitions += 1 }
        case 85..<90: try crashDevice(device)
        case 90..<94: try crashServer()
        case 94..<97:
            if backup == nil { try takeBackup() } else { try restoreServer() }
        default: try await deliverStash()
        }
    }

    /// A device records something: a new resident, or a change to one it
    /// knows (which races other devices' changes).
    func write(_ index: Int) throws {
        let device = devices[index]
        let grid = device.grid ?? (chance(50) ? "G1" : "G2")
        let known = rows[grid] ?? []
        let written: [SignedChangeSet]
        if !known.isEmpty, chance(50), let row = known.randomElementSeeded(roll), try device.store.row("person", row) != nil {
            written = try device.store.write(as: device.identity) { tx in
                try tx.update("person", row, ["phone": .text("13\(roll(100_000_000..<999_999_999))")])
            }
        } else {
            var created = RowID.random()
            written = try device.store.write(as: device.identity) { tx in
                created = try tx.create("person", ["grid": .text(grid), "name": .text("居民\(step)-\(index)")])
            }
            rows[grid, default: []].append(created)
        }
        for changeSet in written { made[device.identity.device, default: [:]][changeSet.header.seq] = changeSet.hash }
    }

    func client(_ index: Int, faulty: Bool) -> SyncClient {
        let network = Network(simulation: self, device: index, faulty: faulty)
        let clock = now
        return SyncClient(store: devices[index].store, identity: devices[index].identity, transport: network,
                          name: URL(string: "sim://server")!, attemptsMax: 4, clock: { clock.read() }, pause: { _ in })
    }

    func sync(_ index: Int, faulty: Bool) async throws {
        let client = client(index, faulty: faulty)
        do {
            let report = try await client.sync()
            faults.withLock { $0.repairs += report.repaired }
            if let step = report.step, step.inStep { try checkInStep(index, client) }
        } catch let error as LinliError {
            guard faulty else { throw fail("device \(index) could not sync on a healed network: \(error)") }
            faults.withLock { $0.failedSyncs += 1 }
        }
    }

    func crashDevice(_ index: Int) throws {
        let clock = now
        devices[index].store = try ReplicaStore(path: devices[index].path, schema: schema, authority: root.publicKey,
                                                clock: { clock.read() })
        faults.withLock { $0.deviceCrashes += 1 }
    }

    func crashServer() throws {
        service = nil
        let clock = now
        serverStore = try ReplicaStore(path: serverPaths.last!, schema: schema, authority: root.publicKey, clock: { clock.read() })
        service = makeService()
        faults.withLock { $0.serverCrashes += 1 }
    }

    func takeBackup() throws {
        let path = folder.path("backup-\(step).sqlite")
        try serverStore.database.writeWithoutTransaction { db in try db.execute(sql: "VACUUM INTO ?", arguments: [path]) }
        backup = path
    }

    /// The operator restores the server from the older copy: everything
    /// after it is gone from the server, and devices must notice.
    func restoreServer() throws {
        guard let backup else { return }
        service = nil
        let path = folder.path("server-\(serverPaths.count).sqlite")
        try FileManager.default.copyItem(atPath: backup, toPath: path)
        serverPaths.append(path)
        let clock = now
        serverStore = try ReplicaStore(path: path, schema: schema, authority: root.publicKey, clock: { clock.read() })
        service = makeService()
        self.backup = nil
        restoredAt = step
        faults.withLock { $0.serverRestores += 1 }
    }

    func deliverStash() async throws {
        let kept = stash.withLock { stash -> [(method: String, target: String, headers: [(String, String)], body: Data)] in
            defer { stash.removeAll() }
            return stash
        }
        guard let service else { return }
        for request in kept {
            _ = await service.handle(method: request.method, target: request.target, header: Network.lookup(request.headers), body: request.body)
        }
    }

    /// The network heals: every device syncs until nothing moves, then the
    /// end state is checked.
    func heal() async throws {
        for index in devices.indices { devices[index].offlineUntil = 0 }
        for _ in 0..<3 {
            for index in devices.indices { try await sync(index, faulty: false) }
        }
        let serverHeads = try serverStore.chainHeads()
        for (device, changeSets) in made {
            for (seq, hash) in changeSets {
                guard try serverHasChangeSet(device, seq, hash) else {
                    throw fail("the server lacks change set \(seq) of device \(device.hex.prefix(8)) (server head \(serverHeads[device]?.seq ?? 0))")
                }
            }
        }
        for (index, device) in devices.enumerated() {
            let client = client(index, faulty: false)
            guard let step = try SyncStep.last(in: device.store, cursorName: client.cursorName), step.inStep else {
                throw fail("device \(index) does not say it is in step after the network healed: \(String(describing: try SyncStep.last(in: device.store, cursorName: client.cursorName)))")
            }
            // With the server holding every change set, equal digests scope
            // by scope mean each replica holds everything of its scopes.
            for scope in [Scope.grid("G1"), .grid("G2"), .public] where device.grid == nil || device.scopes.contains(scope) {
                guard try device.store.stateDigest(scope: scope) == serverStore.stateDigest(scope: scope) else {
                    let access = try serverStore.access(device.identity.device)
                    let theirs = try serverStore.heads(scopes: access.readableScopes, asker: device.identity.device)
                        .map { "\($0.device.hex.prefix(6))#\($0.seq)" }.sorted()
                    let mine = try device.store.chainHeads().values.map { "\($0.device.hex.prefix(6))#\($0.seq)" }.sorted()
                    let quarantined = try device.store.quarantined().map { "\($0.device?.hex.prefix(6) ?? "?")#\($0.seq ?? 0) \($0.code.rawValue): \($0.message)" }
                    func seqs(_ store: ReplicaStore) throws -> [String] {
                        try store.database.read { db in
                            try Row.fetchAll(db, sql: "SELECT d.device, group_concat(l.seq) AS s FROM linli_log l JOIN linli_device d ON d.n = l.device_n WHERE l.scope = ? GROUP BY d.device", arguments: [scope.description]).map {
                                "\(Hex.encode(($0["device"] as Data).prefix(3))):\($0["s"] as String)"
                            } + (try Row.fetchAll(db, sql: "SELECT device, seq FROM linli_held")).map { "held \(Hex.encode(($0["device"] as Data).prefix(3)))#\($0["seq"] as Int64)" }
                        }
                    }
                    print("server \(try seqs(serverStore))\ndevice \(try seqs(device.store))")
                    throw fail("device \(index) and the server disagree on scope \(scope); server heads \(theirs), device holds \(mine), device quarantine \(quarantined)")
                }
            }
            let conflicts = try device.store.conflicts().filter { device.grid == nil || $0.scope == "grid:\(device.grid!)" }.count
            let serverConflicts = try serverStore.conflicts().filter { device.grid == nil || $0.scope == "grid:\(device.grid!)" }.count
            guard conflicts == serverConflicts else { throw fail("device \(index) shows \(conflicts) conflicts, the server \(serverConflicts)") }
        }
    }

    func serverHasChangeSet(_ device: DeviceID, _ seq: UInt64, _ hash: Data) throws -> Bool {
        try serverStore.database.read { db in
            try Bool.fetchOne(db, sql: """
                SELECT 1 FROM linli_log l JOIN linli_device d ON d.n = l.device_n WHERE d.device = ? AND l.seq = ? AND l.hash = ?
                """, arguments: [device.data, Int64(seq), hash]) ?? false
        }
    }

    /// No acknowledged change set is missing from the server, unless the
    /// server was restored since (then the device must repair it).
    func checkAcknowledged() throws {
        guard restoredAt == nil else { return }
        for (index, device) in devices.enumerated() {
            let acknowledged = try device.store.acknowledged(device: device.identity.device, peer: client(index, faulty: false).cursorName)
            guard acknowledged > 0 else { continue }
            for seq in 1...acknowledged {
                guard let hash = made[device.identity.device]?[seq] else { continue }
                guard try serverHasChangeSet(device.identity.device, seq, hash) || serverRefused(device.identity.device, seq) else {
                    throw fail("device \(index) holds change set \(seq) as acknowledged, but the server does not have it")
                }
            }
        }
    }

    func serverRefused(_ device: DeviceID, _ seq: UInt64) throws -> Bool {
        try serverStore.database.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM linli_quarantine WHERE device = ? AND seq = ?", arguments: [device.data, Int64(seq)]) ?? false
        }
    }

    /// A device that says it is in step right after a sync is: the
    /// server's heads for it equal what it holds.
    func checkInStep(_ index: Int, _ client: SyncClient) throws {
        let device = devices[index]
        let access = try serverStore.access(device.identity.device)
        let local = try device.store.chainHeads()
        for head in try serverStore.heads(scopes: access.readableScopes, asker: device.identity.device) {
            let held = local[head.device]?.seq ?? 0
            guard held >= head.seq else {
                throw fail("device \(index) says it is in step, but holds \(held) of device \(head.device.hex.prefix(8)) and the server \(head.seq)")
            }
        }
        let own = local[device.identity.device]?.seq ?? 0
        let serverOwn = try serverStore.heads(scopes: access.readableScopes, asker: device.identity.device)
            .first { $0.device == device.identity.device }?.seq ?? 0
        guard serverOwn >= own else {
            throw fail("device \(index) says it is in step, but the server has its change sets only to \(serverOwn) of \(own)")
        }
    }

    /// Flips one bit of the body (most often) or one digit of a header.
    func damage(_ body: inout Data, _ headers: inout [(String, String)]) {
        if !body.isEmpty, chance(70) {
            body[body.startIndex + roll(0..<body.count)] ^= UInt8(1 << roll(0..<8))
        } else if !headers.isEmpty {
            let which = roll(0..<headers.count)
            var value = Array(headers[which].1.utf8)
            guard !value.isEmpty else { return }
            let at = roll(0..<value.count)
            value[at] = value[at] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
            headers[which].1 = String(decoding: value, as: UTF8.self)
        }
    }

    func fail(_ message: String) -> Failure { Failure(seed: seed, step: step, steps: steps, message: message) }

    /// The faulty network between one device and the server.
    struct Network: SyncTransport {
        let simulation: Simulation
        let device: Int
        let faulty: Bool

        static func lookup(_ headers: [(String, String)]) -> (String) -> String? {
            { name in headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1 }
        }

        func exchange(method: String, path: String, headers: [(String, String)], body: Data, bytesMax: Int) async throws -> TransportAnswer {
            let sim = simulation
            sim.faults.withLock { $0.exchanges += 1 }
            let cut = LinliError(.unreachable, "the simulated network lost the exchange", hint: "nothing is lost; sync again")
            guard let service = sim.service else { throw cut }
            if faulty, sim.devices[device].offlineUntil > sim.step { throw cut }
            var headers = headers
            var body = body
            let fault = faulty ? sim.roll(0..<100) : 99
            switch fault {
            case 0..<6:
                sim.faults.withLock { $0.lostRequests += 1 }
                throw cut
            case 6..<12:
                sim.faults.withLock { $0.flippedRequests += 1 }
                sim.damage(&body, &headers)
            case 12..<16:
                sim.faults.withLock { $0.duplicated += 1 }
                _ = await service.handle(method: method, target: path, header: Self.lookup(headers), body: body)
            case 16..<19:
                sim.faults.withLock { $0.replayedLater += 1 }
                sim.stash.withLock { $0.append((method, path, headers, body)) }
            default: break
            }
            var answer = await service.handle(method: method, target: path, header: Self.lookup(headers), body: body)
            switch fault {
            case 19..<25:
                sim.faults.withLock { $0.lostAnswers += 1 }
                throw cut
            case 25..<31:
                sim.faults.withLock { $0.flippedAnswers += 1 }
                sim.damage(&answer.body, &answer.headers)
            default:
                if fault >= 31 { sim.faults.withLock { $0.passed += 1 } }
            }
            guard answer.body.count <= bytesMax else { throw cut }
            return TransportAnswer(status: answer.status, headers: answer.headers, body: answer.body)
        }
    }

    /// Runs `count` seeds from `first`, two at a time; returns the faults
    /// added up, or throws the first failure.
    public static func runSeeds(from first: UInt64, count: Int, steps: Int = 40) async throws -> Faults {
        var total = Faults()
        var next = first
        let end = first + UInt64(count)
        while next < end {
            let batch = (next..<min(end, next + 2)).map { $0 }
            next += UInt64(batch.count)
            total = try await withThrowingTaskGroup(of: Faults.self) { group in
                for seed in batch { group.addTask { try await Simulation(seed: seed, steps: steps).run() } }
                var sum = total
                for try await faults in group { sum = sum + faults }
                return sum
            }
        }
        return total
    }
}

extension Array {
    func randomElementSeeded(_ roll: (Range<Int>) -> Int) -> Element? {
        isEmpty ? nil : self[roll(0..<count)]
    }
}

/// The simulation's clock: it moves only when the simulation moves it.
final class SimulatedClock: Sendable {
    private let value = Mutex<UInt64>(1_790_000_000_000)
    func read() -> UInt64 { value.withLock { $0 } }
    func advance(_ milliseconds: UInt64) { value.withLock { $0 += milliseconds } }
}
