import ArgumentParser
import Foundation
import LinliClient
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting

@main
struct LinliSim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "linli-sim",
        abstract: "Simulations and generators for Linli.",
        subcommands: [OfflineDemo.self, Simulate.self, Vectors.self, TrustVectors.self, RefusalVectors.self, ProtocolVectors.self, SchemaFile.self, Summary.self])
}

/// Writes the golden change set vectors.
struct Vectors: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write the golden change set vectors (reproducible).")

    @Option(help: "Folder to write the JSON files into.") var out = "Protocol/vectors"

    func run() throws {
        try writeVectors(try GoldenVectors.make().map { ($0.name, try GoldenVectors.encode($0)) }, to: out)
    }
}

/// Writes the golden trust vectors (certificates, revocations, rotations).
struct TrustVectors: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trust-vectors", abstract: "Write the golden trust vectors (reproducible).")

    @Option(help: "Folder to write the JSON files into.") var out = "Protocol/vectors/trust"

    func run() throws {
        try writeVectors(try GoldenVectors.makeTrust().map { ($0.name, try GoldenVectors.encode($0)) }, to: out)
    }
}

/// Writes the golden refusal vectors: each way a change set is decided,
/// and whether its device's head moves.
struct RefusalVectors: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refusal-vectors", abstract: "Write the golden refusal vectors (reproducible).")

    @Option(help: "Folder to write the JSON files into.") var out = "Protocol/vectors/refusals"

    func run() throws {
        try writeVectors(try GoldenVectors.makeRefusals().map { ($0.name, try GoldenVectors.encode($0)) }, to: out)
    }
}

/// Writes vector files, one `NAME.json` per vector, into `folder`.
func writeVectors(_ files: [(name: String, bytes: Data)], to folder: String) throws {
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    for file in files {
        let path = (folder as NSString).appendingPathComponent(file.name + ".json")
        try file.bytes.write(to: URL(fileURLWithPath: path))
        print("wrote \(path)")
    }
}

/// Writes the schema pack the demo uses, for linli-server --schema.
struct SchemaFile: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "schema", abstract: "Write the demo's schema pack (JSON).")

    @Option(help: "Where to write it.") var out: String

    func run() throws {
        try JSONEncoder().encode(Fixtures.schema).write(to: URL(fileURLWithPath: out))
    }
}

/// Writes the golden request and response vectors of the sync protocol.
struct ProtocolVectors: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "protocol-vectors", abstract: "Write the golden sync request and response vectors (reproducible).")

    @Option(help: "Folder to write the JSON files into.") var out = "Protocol/vectors/protocol"

    func run() throws {
        try writeVectors(try GoldenVectors.makeProtocol().map { ($0.name, try GoldenVectors.encode($0)) }, to: out)
    }
}

/// Three replicas record offline, then exchange change sets, in different
/// orders, and converge: through a real server with --server, else through
/// files.
struct OfflineDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo", abstract: "Three replicas record offline, sync (through a server, or files) and converge.")

    @Option(help: "A linli-server to sync through (e.g. http://127.0.0.1:8080); without it, change sets go by file.") var server: String?

    @Option(help: "Folder for the replicas and the exchanged files.") var data = "demo-data/offline"
    @Option(help: "Folder with li, wang and zhang's sealed keys (NAME.key) and enrolment bundles (NAME.bundle) from linli-admin; without it, fixed test keys are used.")
    var enrolled: String?
    @Option(help: "A file whose first line is the devices' PIN (with --enrolled).") var pinFile: String?

    func run() async throws {
        try? FileManager.default.removeItem(atPath: data)
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let users = ["网格员李明", "网格员王芳", "街道工作人员张强"]
        let names = ["inspector-li", "inspector-wang", "staff-zhang"]
        var people = (0..<3).map { Fixtures.identity(UInt8($0 + 1), user: users[$0]) }
        var stores: [ReplicaStore]
        if let enrolled {
            // Real enrolment: keys sealed with the PIN, trust from the bundles.
            let pin = try pinFile.map { String(try String(contentsOfFile: $0, encoding: .utf8).split(separator: "\n").first ?? "") } ?? ""
            var bundles: [EnrolmentBundle] = []
            for (index, short) in ["li", "wang", "zhang"].enumerated() {
                let bundle = try EnrolmentBundle.decode(try Data(contentsOf: URL(fileURLWithPath: "\(enrolled)/\(short).bundle")))
                let key = try SealedKeyFile.open("\(enrolled)/\(short).key", passphrase: pin)
                people[index] = DeviceIdentity(device: DeviceID(hex: bundle.device)!, key: key, user: users[index])
                bundles.append(bundle)
            }
            stores = []
            for (index, bundle) in bundles.enumerated() {
                let store = try ReplicaStore(path: "\(data)/\(names[index]).sqlite", schema: Fixtures.schema, authority: PublicKey(hex: bundle.authorityPublicKey))
                _ = try store.apply(bundle.trustRecords.compactMap(Hex.decodeData))
                stores.append(store)
            }
            // Each bundle carries the trust records up to its own enrolment;
            // the newest has them all.
            let newest = bundles.max { $0.trustRecords.count < $1.trustRecords.count }!
            for store in stores { _ = try store.apply(newest.trustRecords.compactMap(Hex.decodeData)) }
            print("replicas trust authority \(newest.authorityPublicKey.prefix(16))…; devices: " + people.map { "\($0.user) \($0.device.hex.prefix(8))" }.joined(separator: ", "))
        } else {
            stores = try names.map { try Fixtures.store(path: "\(data)/\($0).sqlite", knowing: people) }
        }

        let serverURL = server.flatMap(URL.init(string:))
        func sync(_ index: Int) async throws {
            guard let serverURL else { return }
            let report = try await SyncClient(store: stores[index], identity: people[index], server: serverURL).sync()
            print("  \(names[index]) syncs with \(serverURL.absoluteString): pushed \(report.pushed), pulled \(report.pulled)")
            for refused in report.refused { print("    refused: \(refused)") }
        }
        func exchange(_ from: Int, _ to: Int) async throws {
            if serverURL != nil {
                try await sync(from)
                try await sync(to)
                return
            }
            let file = "\(data)/from-\(names[from])-to-\(names[to]).bin"
            try ChangeSetFile.write(try stores[from].changeSets().map(\.envelope), to: file)
            let outcomes = try stores[to].apply(try ChangeSetFile.read(file))
            let applied = outcomes.filter { $0.status == .applied }.count
            print("  \(names[from]) -> \(names[to]): \(outcomes.count) change sets in \(file), \(applied) new")
            for refused in outcomes.filter(\.isRefused) { print("    refused: \(refused)") }
        }

        print("1. 李明 records a household offline")
        var resident = RowID.random()
        try stores[0].write(as: people[0]) { tx in
            try tx.create("house", ["grid": .text("G1"), "address": .text("幸福路12号3单元502"), "use": .text("rented")])
            resident = try tx.create("person", ["grid": .text("G1"), "name": .text("陈静"), "phone": .text("13800138000"), "birth_date": .text("1958-04-02"), "care": .boolean(true)])
        }
        print("2. the record reaches 王芳 \(serverURL == nil ? "by file" : "through the server")")
        try await exchange(0, 1)
        print("3. both change the resident's phone while apart")
        try stores[0].write(as: people[0]) { tx in try tx.update("person", resident, ["phone": .text("13800138001")]) }
        try stores[1].write(as: people[1]) { tx in try tx.update("person", resident, ["phone": .text("13900139002"), "visits": .integer(1)]) }
        print("4. \(serverURL == nil ? "files go round" : "they sync") in different orders")
        try await exchange(1, 2)
        try await exchange(0, 2)
        try await exchange(2, 0)
        try await exchange(2, 1)
        let conflicts = try stores[2].conflicts()
        print("5. the conflict waits for staff:")
        for conflict in conflicts {
            print("   \(conflict.table).\(conflict.field) of \(conflict.row.hex.prefix(8)): " + conflict.values.map { "\($0.value) by \($0.user)\($0.shown ? " (shown)" : "")" }.joined(separator: " | "))
        }
        print("6. 张强 settles it with a value of his own")
        try stores[2].write(as: people[2]) { tx in try tx.update("person", resident, ["phone": .text("13800138001")]) }
        try await exchange(2, 0)
        try await exchange(2, 1)

        print("\nreplica          change sets  conflicts  digest")
        var digests = Set<Data>()
        for (index, store) in stores.enumerated() {
            let digest = try store.stateDigest()
            digests.insert(digest)
            print("\(names[index].padding(toLength: 16, withPad: " ", startingAt: 0)) \(String(try store.counts().changeSets).padding(toLength: 12, withPad: " ", startingAt: 0)) \(String(try store.conflicts().count).padding(toLength: 10, withPad: " ", startingAt: 0)) \(Hex.encode(digest).prefix(16))")
        }
        guard conflicts.count == 1, digests.count == 1, try stores.allSatisfy({ try $0.conflicts().isEmpty }) else {
            print("the replicas did not converge")
            throw ExitCode.failure
        }
        print("all three replicas hold the same state")
    }
}

/// Change sets in a file: each envelope preceded by its length as 4 bytes
/// big-endian. How replicas exchange change sets offline.
enum ChangeSetFile {
    static func write(_ envelopes: [Data], to path: String) throws {
        var out = Data()
        for envelope in envelopes {
            withUnsafeBytes(of: UInt32(envelope.count).bigEndian) { out.append(contentsOf: $0) }
            out.append(envelope)
        }
        try out.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    static func read(_ path: String) throws -> [Data] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        var envelopes: [Data] = []
        var offset = data.startIndex
        while offset < data.endIndex {
            guard data.endIndex - offset >= 4 else { throw ValidationError("\(path) is truncated") }
            let count = data[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
            offset += 4
            guard count <= Limits.changeSetBytesMax, data.endIndex - offset >= count else { throw ValidationError("\(path) is truncated or damaged") }
            envelopes.append(Data(data[offset..<offset + count]))
            offset += count
        }
        return envelopes
    }
}

/// Compares field devices' replicas after a day: records per replica, the
/// state digest of each scope they share, open conflicts. Exits 1 when two
/// replicas disagree on a scope they both hold.
struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Summarize and compare the replicas of field device folders.")
    @Option(name: .customLong("device"), help: "A device folder (repeat).") var devices: [String]

    func run() throws {
        var digests: [String: [(String, String)]] = [:]
        print("replica                       role       records  change sets  conflicts")
        for folder in devices {
            let device = try FieldDevice.open(folder: folder)
            let store = try device.store()
            let records = Records(store: store)
            let status = try DeviceStatus.read(device: device, store: store, records: records)
            let name = "\(device.settings.user) (\((folder as NSString).lastPathComponent))"
            let total = status.counts.values.reduce(0, +)
            print(name.padding(toLength: 30, withPad: " ", startingAt: 0) + device.settings.role.padding(toLength: 11, withPad: " ", startingAt: 0)
                  + String(total).padding(toLength: 9, withPad: " ", startingAt: 0)
                  + String(try store.counts().changeSets).padding(toLength: 13, withPad: " ", startingAt: 0) + String(status.conflicts.count))
            for (scope, digest) in status.digests { digests[scope, default: []].append((name, digest)) }
        }
        var disagreements = 0
        print("scope digests (replicas holding the scope):")
        for (scope, held) in digests.sorted(by: { $0.key < $1.key }) {
            let equal = Set(held.map(\.1)).count == 1
            if !equal { disagreements += 1 }
            let label = scope.hasPrefix("kiosk:") ? "kiosk:" + scope.dropFirst(6).prefix(8) + "…" : scope
            print("  \(label.padding(toLength: 16, withPad: " ", startingAt: 0)) \(equal ? "equal" : "DIFFERENT") \(held.first!.1.prefix(16))…  \(held.map(\.0).joined(separator: ", "))")
        }
        if disagreements > 0 {
            print("\(disagreements) scope(s) differ between replicas")
            throw ExitCode.failure
        }
        print("every scope is equal on every replica that holds it")
    }
}
