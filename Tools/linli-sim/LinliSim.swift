import ArgumentParser
import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting

@main
struct LinliSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "linli-sim",
        abstract: "Simulations and generators for Linli.",
        subcommands: [OfflineDemo.self, Vectors.self, TrustVectors.self])
}

/// Writes the golden change set vectors.
struct Vectors: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write the golden change set vectors (reproducible).")

    @Option(help: "Folder to write the JSON files into.") var out = "Protocol/vectors"

    func run() throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        for vector in try GoldenVectors.make() {
            let path = (out as NSString).appendingPathComponent(vector.name + ".json")
            try GoldenVectors.encode(vector).write(to: URL(fileURLWithPath: path))
            print("wrote \(path)")
        }
    }
}

/// Writes the golden trust vectors (certificates, revocations, rotations).
struct TrustVectors: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trust-vectors", abstract: "Write the golden trust vectors (reproducible).")

    @Option(help: "Folder to write the JSON files into.") var out = "Protocol/vectors/trust"

    func run() throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        for vector in try GoldenVectors.makeTrust() {
            let path = (out as NSString).appendingPathComponent(vector.name + ".json")
            try GoldenVectors.encode(vector).write(to: URL(fileURLWithPath: path))
            print("wrote \(path)")
        }
    }
}

/// Three replicas that never meet online: each records offline, then they
/// exchange change sets through files, in different orders, and converge.
struct OfflineDemo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo", abstract: "Three replicas exchange change sets through files, offline, and converge.")

    @Option(help: "Folder for the replicas and the exchanged files.") var data = "demo-data/offline"

    func run() throws {
        try? FileManager.default.removeItem(atPath: data)
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let people = [Fixtures.identity(1, user: "网格员李明"), Fixtures.identity(2, user: "网格员王芳"), Fixtures.identity(3, user: "街道工作人员张强")]
        let names = ["inspector-li", "inspector-wang", "staff-zhang"]
        let stores = try names.map { try Fixtures.store(path: "\(data)/\($0).sqlite", knowing: people) }

        func exchange(_ from: Int, _ to: Int) throws {
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
        print("2. the record reaches 王芳 by file")
        try exchange(0, 1)
        print("3. both change the resident's phone while apart")
        try stores[0].write(as: people[0]) { tx in try tx.update("person", resident, ["phone": .text("13800138001")]) }
        try stores[1].write(as: people[1]) { tx in try tx.update("person", resident, ["phone": .text("13900139002"), "visits": .integer(1)]) }
        print("4. files go round in different orders")
        try exchange(1, 2)
        try exchange(0, 2)
        try exchange(2, 0)
        try exchange(2, 1)
        let conflicts = try stores[2].conflicts()
        print("5. the conflict waits for staff:")
        for conflict in conflicts {
            print("   \(conflict.table).\(conflict.field) of \(conflict.row.hex.prefix(8)): " + conflict.values.map { "\($0.value) by \($0.user)\($0.shown ? " (shown)" : "")" }.joined(separator: " | "))
        }
        print("6. 张强 settles it with a value of his own")
        try stores[2].write(as: people[2]) { tx in try tx.update("person", resident, ["phone": .text("13800138001")]) }
        try exchange(2, 0)
        try exchange(2, 1)

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
