import ArgumentParser
import Foundation
import LinliClient
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting

/// `linli-bench desk`: the conflict desk on a district-sized server store:
/// how long staff wait for the review queue, for one item with its
/// history, and for a bulk resolution of every conflict. No target is set;
/// the figures say whether a queue of hundreds is comfortable.
struct DeskBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "desk",
        abstract: "Time the review queue, one item and a bulk resolution on a server store with many rows and conflicts.")

    @Option(help: "Person rows in the store (set-up).") var rows = 50_000
    @Option(help: "Of those, rows whose phone two inspectors changed at once.") var conflicts = 200
    @Option(help: "Times each read is repeated; the median is reported.") var repeats = 5
    @Option(help: "Folder for the store (a temporary one by default).") var directory: String?
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        guard rows >= 1, conflicts >= 1, conflicts <= rows, repeats >= 1 else {
            throw ValidationError("need 1 or more rows, 1 to --rows conflicts and 1 or more repeats")
        }
    }

    func run() throws {
        let folder = directory.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("linli-bench-desk-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { if directory == nil { try? FileManager.default.removeItem(at: folder) } }

        let inspectorA = Fixtures.identity(1, user: "李明")
        let inspectorB = Fixtures.identity(2, user: "赵军")
        let staff = Fixtures.identity(3, user: "刘洁")
        let path = folder.appendingPathComponent("server.sqlite").path
        let store = try ReplicaStore(path: path, schema: SchemaPacks.community)
        try store.registerDeviceKey(device: inspectorA.device, publicKey: inspectorA.key.publicKey, role: .inspector, grids: ["G1"])
        try store.registerDeviceKey(device: inspectorB.device, publicKey: inspectorB.key.publicKey, role: .inspector, grids: ["G1"])
        try store.registerDeviceKey(device: staff.device, publicKey: staff.key.publicKey, role: .staff)

        log("set-up: \(rows) person rows by inspector A, then \(conflicts) phones changed by A and by B at once…")
        var ids: [RowID] = []
        var made = 0
        while made < rows {
            let count = min(500, rows - made)
            try store.write(as: inspectorA) { tx in
                for index in made..<(made + count) {
                    ids.append(try tx.create("person", ["grid": .text("G1"), "name": .text("居民\(index)"),
                                                        "residence_type": .text("户籍人口"), "phone": .text(String(13_800_000_000 + index))]))
                }
            }
            made += count
        }
        // A edits through the store; B's edits are made on its own device,
        // which had not seen A's: each replaces only the phone it saw.
        let deviceB = try ReplicaStore(path: nil, schema: SchemaPacks.community)
        try deviceB.registerDeviceKey(device: inspectorA.device, publicKey: inspectorA.key.publicKey, role: .inspector, grids: ["G1"])
        try deviceB.registerDeviceKey(device: inspectorB.device, publicKey: inspectorB.key.publicKey, role: .inspector, grids: ["G1"])
        _ = try deviceB.apply(try store.changeSets(scopes: [.grid("G1")]).map(\.envelope))
        let targets = Array(ids.prefix(conflicts))
        try store.write(as: inspectorA) { tx in
            for (index, id) in targets.enumerated() { try tx.update("person", id, ["phone": .text(String(13_900_000_000 + index))]) }
        }
        let fromB = try deviceB.write(as: inspectorB) { tx in
            for (index, id) in targets.enumerated() { try tx.update("person", id, ["phone": .text(String(13_700_000_000 + index))]) }
        }
        _ = try store.apply(fromB.map(\.envelope), policy: .gatekeeper)

        func median(_ body: () throws -> Void) throws -> Double {
            var times: [Double] = []
            for _ in 0..<repeats { times.append(try Stopwatch.seconds(body)) }
            return times.sorted()[times.count / 2]
        }
        var queue: [ReviewItem] = []
        let queueSeconds = try median { queue = try store.reviewQueue() }
        guard queue.count == conflicts, queue.allSatisfy({ $0.kind == .conflict && $0.values.count == 2 }) else {
            throw ValidationError("expected \(conflicts) conflicts with 2 values each in the queue, found \(queue.count)")
        }
        var filtered: [ReviewItem] = []
        let filteredSeconds = try median { filtered = try store.reviewQueue(filter: ReviewFilter(grid: "G1", table: "person", kind: .conflict, field: "phone")) }
        guard filtered.count == conflicts else { throw ValidationError("the filtered queue has \(filtered.count) items, not \(conflicts)") }
        var item: ReviewItem?
        let itemSeconds = try median { item = try store.reviewItem(queue[conflicts / 2].id) }
        guard let item, item.history.count == 2 + 1 else {
            throw ValidationError("the item's history should hold the create and both edits, found \(item?.history.count ?? 0)")
        }
        var resolveSeconds = 0.0
        resolveSeconds = try Stopwatch.seconds {
            var start = 0
            while start < queue.count {
                let group = queue[start..<min(queue.count, start + Limits.deskResolutionsPerChangeSetMax)]
                try store.resolve(group.map { ($0, ReviewAction.newest) }, note: "以最新登记为准", as: staff)
                start += group.count
            }
        }
        let remaining = try store.reviewQueue()
        guard remaining.isEmpty, try store.auditResolutions().count == conflicts else {
            throw ValidationError("after the bulk resolution \(remaining.count) items remain")
        }
        let result: [String: Any] = [
            "benchmark": "desk", "rows": rows, "conflicts": conflicts, "repeats": repeats,
            "queue_seconds": round3(queueSeconds), "filtered_queue_seconds": round3(filteredSeconds),
            "item_with_history_seconds": round3(itemSeconds), "bulk_resolve_seconds": round3(resolveSeconds),
            "store_bytes": databaseBytes(path),
        ]
        if json {
            printJSON(result)
        } else {
            print("queue of \(conflicts) conflicts among \(rows) rows: \(round3(queueSeconds)) s; filtered \(round3(filteredSeconds)) s; "
                  + "one item with history \(round3(itemSeconds)) s; bulk resolution \(round3(resolveSeconds)) s")
        }
    }
}
