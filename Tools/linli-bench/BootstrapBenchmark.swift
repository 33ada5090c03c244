import ArgumentParser
import CSQLite
import Foundation
import GRDB
import LinliClient
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting

/// `linli-bench bootstrap`: a new device bootstraps a grid of 100,000 rows
/// of 12 fields from the real `linli-server` on loopback, against plain
/// SQLite inserting the same rows in the same run.
///
/// Set-up (not timed): an authority certifies the writers, the new
/// inspector and the server (role `server`, so it signs snapshots); the
/// writers record the rows in change sets of `--rows-per-change-set` rows
/// and push them. Timed, as the new device waits: the snapshot request (the
/// server makes the snapshot then: a copy of the store's rows of the
/// device's scopes, its hash, the signed manifest), the download, the
/// device's checks and adoption (`SyncClient.bootstrap`), and the pull from
/// the snapshot's cursor.
/// Checked after: the view holds every row, a sample of rows has the
/// values written, and the state digest is the writers'.
struct BootstrapBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootstrap",
        abstract: "A new device bootstraps 100,000 rows of 12 fields from linli-server on loopback; compare with plain SQLite inserts.")

    @Option(help: "Rows in the grid the device bootstraps.") var rows = 100_000
    @Option(help: "Devices that recorded the rows (set-up).") var writers = 4
    @Option(help: "Rows per change set the writers make.") var rowsPerChangeSet = 25
    @Option(help: "Rows of another grid (G2) on the server, which the device's snapshot must leave out (set-up).") var otherGridRows = 0
    @Option(help: "Seed of the generated rows.") var seed: UInt64 = 1
    @Option(help: "The linli-server executable (default: beside linli-bench).") var server: String?
    @Option(help: "Keep every file (server store and snapshot, server log, the device's replica, plain SQLite) in this new folder.")
    var keep: String?
    @Flag(help: "Print one JSON object.") var json = false

    static let targetRatio = 0.5
    static let table = "resident"
    static let grid = "G1"
    static let otherGrid = "G2"

    /// A resident register: the grid and 11 fields of the kinds a
    /// community record has.
    static let schema = Schema(name: "bench-bootstrap", version: 1, tables: [
        TableSchema(table, label: "居民", scope: .gridField("grid"), fields: [
            FieldSchema("grid", .text, label: "网格", required: true),
            FieldSchema("name", .text, label: "姓名", personal: true, required: true),
            FieldSchema("gender", .text, label: "性别", choices: ["男", "女"]),
            FieldSchema("birth_date", .date, label: "出生日期"),
            FieldSchema("phone", .text, label: "联系电话", personal: true, format: .mobile),
            FieldSchema("address", .text, label: "住址", personal: true),
            FieldSchema("household", .integer, label: "户内人数", minimum: 1, maximum: 20),
            FieldSchema("area", .real, label: "住房面积", minimum: 0, maximum: 1_000),
            FieldSchema("moved_in", .date, label: "入住日期"),
            FieldSchema("employer", .text, label: "工作单位"),
            FieldSchema("note", .text, label: "备注"),
            FieldSchema("visits", .integer, label: "走访次数", minimum: 0),
        ]),
    ])

    func validate() throws {
        guard rows >= 1, otherGridRows >= 0, (1...200).contains(writers), (1...Limits.rowsPerChangeSetMax).contains(rowsPerChangeSet) else {
            throw ValidationError("need at least 1 row, 1 to 200 writers and 1 to \(Limits.rowsPerChangeSetMax) rows per change set")
        }
    }

    func run() async throws {
        let folder = keep.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("linli-bench-bootstrap-\(UUID().uuidString)")
        if keep != nil, !((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).isEmpty {
            throw ValidationError("--keep \(folder.path) is not empty")
        }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { if keep == nil { try? FileManager.default.removeItem(at: folder) } }
        let schema = Self.schema
        let fields = schema.table(Self.table)!.fields

        // The deployment: an authority; the writers and the new device
        // inspect G1; the server signs snapshots with its own certified key.
        let root = SigningKey(seed: SecretBytes(copying: Data(repeating: 0xB0, count: 32)))
        let authority = DeviceIdentity(device: Authority.deviceID(root: root.publicKey), key: root, user: "admin")
        let authorityStore = try ReplicaStore(path: nil, schema: schema, authority: root.publicKey)
        let writerIdentities = (0..<writers).map { Fixtures.identity(UInt8(1 + $0), user: "录入员\($0 + 1)") }
        let newcomer = Fixtures.identity(211, user: "新巡查员")
        let serverIdentity = Fixtures.identity(250, user: "server")
        let otherWriter = Fixtures.identity(212, user: "邻格录入员")
        for device in writerIdentities + [newcomer] {
            try authorityStore.issueCertificate(as: authority, device: device.device, publicKey: device.key.publicKey, role: .inspector,
                                                grids: [Self.grid])
        }
        try authorityStore.issueCertificate(as: authority, device: otherWriter.device, publicKey: otherWriter.key.publicKey, role: .inspector,
                                            grids: [Self.otherGrid])
        try authorityStore.issueCertificate(as: authority, device: serverIdentity.device, publicKey: serverIdentity.key.publicKey,
                                            role: .server, grids: [])
        let keyPath = folder.appendingPathComponent("server.key").path
        let passphrasePath = folder.appendingPathComponent("server.passphrase").path
        try SealedKeyFile.write(try SealedKey.seal(serverIdentity.key, passphrase: "bench", label: "server", strength: .interactive), to: keyPath)
        try Data("bench\n".utf8).write(to: URL(fileURLWithPath: passphrasePath))
        let serverLog = folder.appendingPathComponent("server.log").path
        let process = try ServerProcess.start(
            executable: server, folder: folder, root: root.publicKey, schema: schema,
            arguments: ["--device", serverIdentity.device.hex, "--key", keyPath, "--key-passphrase-file", passphrasePath], log: serverLog)
        defer { process.terminate(); process.waitUntilExit() }
        let url = URL(string: "http://127.0.0.1:\(ServerProcess.port)")!
        let trust = try await SyncClient(store: authorityStore, identity: authority, server: url).sync()
        guard trust.refused.isEmpty else { throw ValidationError("the server refused certificates: \(trust.refused.prefix(3))") }

        // The rows: writer k records every writers-th row, in change sets
        // of rowsPerChangeSet rows, and pushes them.
        log("generating \(rows) rows of \(fields.count) fields…")
        let values = ResidentRows.make(count: rows, grid: Self.grid, seed: seed)
        var ids = [RowID?](repeating: nil, count: rows)
        let writerStores = try writerIdentities.map { _ in try ReplicaStore(path: nil, schema: schema, authority: root.publicKey) }
        var changeSets = 0
        var envelopeBytes = 0
        for (index, identity) in writerIdentities.enumerated() {
            let share = Array(stride(from: index, to: rows, by: writers))
            log("writer \(index + 1) of \(writers) records \(share.count) rows and pushes them…")
            let recorded = try await recordAndPush(values, positions: share, fields: fields, store: writerStores[index], identity: identity, url: url)
            for (position, id) in recorded.ids { ids[position] = id }
            changeSets += recorded.changeSets
            envelopeBytes += recorded.bytes
        }
        if otherGridRows > 0 {
            log("a writer of \(Self.otherGrid) records \(otherGridRows) rows the new device must not receive…")
            let other = ResidentRows.make(count: otherGridRows, grid: Self.otherGrid, seed: seed &+ 1)
            _ = try await recordAndPush(other, positions: Array(other.indices), fields: fields,
                                        store: try ReplicaStore(path: nil, schema: schema, authority: root.publicKey), identity: otherWriter, url: url)
        }
        let rowIDs = ids.map { $0! }
        // The reference: the first writer, once it has pulled the others'
        // change sets, holds what a G1 device must end with.
        let reference = writerStores[0]
        try await SyncClient(store: reference, identity: writerIdentities[0], server: url).sync()
        let referenceDigest = try reference.stateDigest()
        let referenceCounts = try reference.counts()

        // Timed: the new device, from nothing to a replica it can work in.
        log("a new device bootstraps…")
        let devicePath = folder.appendingPathComponent("device.sqlite").path
        let marks = DownloadMarks()
        let cpuBefore = CPUTime.sample(processes: [process.processIdentifier])
        let started = DispatchTime.now().uptimeNanoseconds
        let device = try await SyncClient.bootstrap(
            connection: ServerConnection(url: url), identity: newcomer, authority: root.publicKey, schema: schema, at: devicePath,
            progress: { if $0.phase == .snapshot { marks.mark(bytes: $0.done) } })
        let adopted = DispatchTime.now().uptimeNanoseconds
        let pull = try await SyncClient(store: device, identity: newcomer, server: url).sync()
        let finished = DispatchTime.now().uptimeNanoseconds
        let linliOthers = CPUTime.sample(processes: [process.processIdentifier]).othersShare(since: cpuBefore)
        let linliSeconds = Double(finished - started) / 1e9
        // The adopted file before the pull's commits reach it (they stay
        // in the WAL): the snapshot as served.
        let snapshotBytes = try FileManager.default.attributesOfItem(atPath: devicePath)[.size] as? Int ?? 0

        // Wrong results fail the run.
        let (shown, held) = try await device.database.read { db in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM \(Self.table) WHERE _deleted = 0 AND _scope = ?", arguments: ["grid:\(Self.grid)"]) ?? 0,
             try Int.fetchOne(db, sql: "SELECT count(*) FROM \(Self.table)") ?? 0)
        }
        guard shown == rows, held == rows else {
            throw ValidationError("the bootstrapped replica shows \(shown) rows of \(Self.grid) and holds \(held) in all, not \(rows)")
        }
        var sampler = SeededRandom(seed: seed &+ 99)
        for _ in 0..<min(rows, 500) {
            let position = Int.random(in: 0..<rows, using: &sampler)
            guard let row = try device.row(Self.table, rowIDs[position]) else { throw ValidationError("row \(position) is missing") }
            for (field, value) in zip(fields, values[position]) where row[field.name] != value {
                throw ValidationError("row \(position) field \(field.name) is \(String(describing: row[field.name])), not \(value)")
            }
        }
        let deviceCounts = try device.counts()
        guard deviceCounts.changeSets == referenceCounts.changeSets, deviceCounts.held == 0, deviceCounts.quarantined == 0 else {
            throw ValidationError("the device holds \(deviceCounts), the writers \(referenceCounts)")
        }
        guard try device.stateDigest() == referenceDigest else {
            throw ValidationError("the bootstrapped replica's state digest differs from the writers'")
        }
        let replicaBytes = databaseBytes(devicePath)

        // The server's own time for the snapshot request (making it), from
        // its request log; the download streams after that.
        let buildMilliseconds = Self.serverMilliseconds(log: serverLog, path: "/v1/snapshot")
        let downloadEnd = marks.last.map { $0.at } ?? adopted
        let downloadMilliseconds = Double(downloadEnd - started) / 1e6

        // Plain SQLite: the same rows, one prepared INSERT, one transaction.
        log("plain SQLite inserts the same rows…")
        let sqlitePath = folder.appendingPathComponent("plain.sqlite").path
        let sqliteBefore = CPUTime.sample(processes: [])
        let sqliteSeconds = try PlainSQLite.insertRows(table: Self.table, fields: fields, ids: rowIDs, values: values, path: sqlitePath)
        let sqliteOthers = CPUTime.sample(processes: []).othersShare(since: sqliteBefore)

        let linliRate = Double(rows) / linliSeconds
        let sqliteRate = Double(rows) / sqliteSeconds
        let ratio = linliRate / sqliteRate
        var result: [String: Any] = [
            "benchmark": "bootstrap",
            "rows": rows, "fields": fields.count, "other_grid_rows_on_server": otherGridRows, "writers": writers, "rows_per_change_set": rowsPerChangeSet,
            "change_sets": changeSets, "envelope_bytes": envelopeBytes,
            "snapshot_bytes": snapshotBytes, "replica_bytes_after_pull": replicaBytes,
            "sqlite_bytes": databaseBytes(sqlitePath),
            "linli_seconds": round3(linliSeconds), "sqlite_seconds": round3(sqliteSeconds),
            "linli_rows_per_s": Int(linliRate), "sqlite_rows_per_s": Int(sqliteRate),
            "ratio": round3(ratio), "target_ratio_min": Self.targetRatio, "meets_target": ratio >= Self.targetRatio,
            "bootstrap_ms": round3(Double(adopted - started) / 1e6),
            "download_ms": round3(downloadMilliseconds),
            "verify_adopt_ms": round3(Double(adopted - downloadEnd) / 1e6),
            "pull_ms": round3(Double(finished - adopted) / 1e6),
            "pulled_change_sets": pull.pulled,
            "sqlite_pragmas": PlainSQLite.insertPragmas,
            "state_digest_matches": true,
            "cores": ProcessInfo.processInfo.activeProcessorCount,
            "other_processes_cpu_share_linli": round3(linliOthers), "other_processes_cpu_share_sqlite": round3(sqliteOthers),
        ]
        if let buildMilliseconds {
            result["snapshot_build_ms"] = round3(buildMilliseconds)
            result["transfer_ms"] = round3(max(0, downloadMilliseconds - buildMilliseconds))
        }
        if json {
            printJSON(result)
        } else {
            for key in result.keys.sorted() { print("\(key): \(result[key]!)") }
        }
        if let keep { log("files kept in \(keep)") }
    }

    /// Records the rows at `positions` of `values` as `identity`, in change
    /// sets of `rowsPerChangeSet` rows, and pushes them; every one must be
    /// accepted. Returns the new row ids by position.
    func recordAndPush(_ values: [[Value]], positions: [Int], fields: [FieldSchema], store: ReplicaStore, identity: DeviceIdentity,
                       url: URL) async throws -> (ids: [(Int, RowID)], changeSets: Int, bytes: Int) {
        let client = SyncClient(store: store, identity: identity, server: url)
        try await client.sync()
        var ids: [(Int, RowID)] = []
        var made = 0
        var bytes = 0
        for start in stride(from: 0, to: positions.count, by: rowsPerChangeSet) {
            let signed = try store.write(as: identity) { tx in
                for position in positions[start..<min(start + rowsPerChangeSet, positions.count)] {
                    let record = Dictionary(uniqueKeysWithValues: zip(fields.map(\.name), values[position]))
                    ids.append((position, try tx.create(Self.table, record)))
                }
            }
            made += signed.count
            bytes += signed.reduce(0) { $0 + $1.envelope.count }
        }
        let report = try await client.sync()
        guard report.refused.isEmpty, report.accepted == made else {
            throw ValidationError("\(identity.user) pushed \(made) change sets; the server accepted \(report.accepted), refused \(report.refused.prefix(3))")
        }
        return (ids, made, bytes)
    }

    /// The `ms` of the first request line for `path` in a server log.
    static func serverMilliseconds(log path: String, path requestPath: String) -> Double? {
        for _ in 0..<20 {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") where line.contains("path=\(requestPath) ") || line.hasSuffix("path=\(requestPath)") {
                guard let range = line.range(of: "ms=") else { continue }
                return Double(line[range.upperBound...].prefix { $0.isNumber || $0 == "." })
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return nil
    }
}

/// When the snapshot download last reported progress (every MiB).
final class DownloadMarks: @unchecked Sendable {
    private let lock = NSLock()
    private var newest: (at: UInt64, bytes: Int)?

    func mark(bytes: Int) {
        let now = DispatchTime.now().uptimeNanoseconds
        lock.withLock { newest = (now, bytes) }
    }

    var last: (at: UInt64, bytes: Int)? { lock.withLock { newest } }
}

/// Reproducible resident records in the field order of the benchmark's
/// table: Chinese names, addresses and notes of realistic lengths, valid
/// mobile numbers and dates, numbers in range.
enum ResidentRows {
    static let surnames = Array("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈")
    static let given = Array("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉建国志文晓东海波宁欣怡梓涵子轩浩宇")
    static let streets = ["幸福路", "和平街", "建设大道", "人民路", "解放路", "朝阳街", "文化路", "新华街", "光明路", "长江路"]
    static let estates = ["阳光小区", "锦绣花园", "翠苑新村", "和谐家园", "金色家园", "滨江苑", "丽景湾", "东方名苑"]
    static let employers = ["市第一人民医院", "区实验小学", "街道办事处", "个体经营", "退休", "在校学生", "无业", "市公交集团",
                            "某科技有限公司", "区市场监督管理局", "社区卫生服务中心", "灵活就业"]
    static let phrases = ["独居老人，每周电话联系一次", "家中有残疾人，需定期走访", "租户，合同到期日待核实", "已登记低保", "联系人为其子女",
                          "新迁入，待补录身份证信息", "退役军人", "孕产妇，已建档", "患慢性病，家庭医生已签约", "无特殊情况",
                          "楼道堆物已劝导清理", "需协助办理居住证", "外出务工，家中仅有老人", "志愿者，参加周末服务"]

    static func make(count: Int, grid: String, seed: UInt64) -> [[Value]] {
        var random = SeededRandom(seed: seed)
        func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &random)] }
        func date(_ years: ClosedRange<Int>) -> String {
            String(format: "%04d-%02d-%02d", Int.random(in: years, using: &random), Int.random(in: 1...12, using: &random),
                   Int.random(in: 1...28, using: &random))
        }
        return (0..<count).map { _ in
            let name = String(pick(surnames)) + String((0..<Int.random(in: 1...2, using: &random)).map { _ in pick(given) })
            let phone = "1" + String(pick(Array("3456789"))) + String(format: "%09d", Int.random(in: 0..<1_000_000_000, using: &random))
            let address = "\(pick(streets))\(Int.random(in: 1...399, using: &random))号\(pick(estates))\(Int.random(in: 1...30, using: &random))栋"
                + "\(Int.random(in: 1...6, using: &random))单元\(Int.random(in: 1...33, using: &random))0\(Int.random(in: 1...4, using: &random))室"
            var note = pick(phrases)
            if Bool.random(using: &random) { note += "；" + pick(phrases) }
            return [
                .text(grid), .text(name), .text(Bool.random(using: &random) ? "男" : "女"), .text(date(1935...2020)), .text(phone),
                .text(address), .integer(Int64.random(in: 1...8, using: &random)),
                .real((Double.random(in: 25...180, using: &random) * 100).rounded() / 100), .text(date(1990...2026)),
                .text(pick(employers)), .text(note), .integer(Int64.random(in: 0...30, using: &random)),
            ]
        }
    }
}

extension PlainSQLite {
    /// What the plain SQLite database is opened with: WAL and the replica's
    /// synchronous, cache and mmap settings.
    static let insertPragmas = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; " + ReplicaStore.tuningPragmas

    /// Inserts `values` (one array per row, in `fields` order) with their
    /// ids into a new table of the same columns as the replica's view
    /// table of the fields: one prepared INSERT, one transaction. Returns
    /// the seconds from BEGIN through COMMIT.
    static func insertRows(table: String, fields: [FieldSchema], ids: [RowID], values: [[Value]], path: String) throws -> Double {
        var db: OpaquePointer?
        guard sqlite3_open(path, &db) == SQLITE_OK, let db else { throw ValidationError("cannot open \(path)") }
        defer { sqlite3_close(db) }
        func exec(_ sql: String) throws {
            guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else {
                throw ValidationError("SQLite: \(String(cString: sqlite3_errmsg(db)))")
            }
        }
        try exec(insertPragmas)
        let columns = fields.map { field -> String in
            let type = switch field.type {
            case .text, .date: "TEXT"
            case .integer, .timestamp, .boolean: "INTEGER"
            case .real: "REAL"
            case .bytes, .reference: "BLOB"
            }
            return "\"\(field.name)\" \(type)"
        }
        try exec("CREATE TABLE \"\(table)\" (id BLOB PRIMARY KEY NOT NULL, \(columns.joined(separator: ", ")))")
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        let seconds = try Stopwatch.seconds {
            var statement: OpaquePointer?
            let sql = "INSERT INTO \"\(table)\" (id, \(fields.map { "\"\($0.name)\"" }.joined(separator: ", "))) VALUES (?\(String(repeating: ", ?", count: fields.count)))"
            guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
                throw ValidationError("SQLite: \(String(cString: sqlite3_errmsg(db)))")
            }
            defer { sqlite3_finalize(statement) }
            try exec("BEGIN")
            for (id, row) in zip(ids, values) {
                _ = id.data.withUnsafeBytes { sqlite3_bind_blob(statement, 1, $0.baseAddress, Int32($0.count), transient) }
                for (offset, value) in row.enumerated() {
                    let index = Int32(offset + 2)
                    switch value {
                    case .integer(let integer): sqlite3_bind_int64(statement, index, integer)
                    case .real(let real): sqlite3_bind_double(statement, index, real)
                    case .text(let text): sqlite3_bind_text(statement, index, text, -1, transient)
                    case .boolean(let flag): sqlite3_bind_int64(statement, index, flag ? 1 : 0)
                    case .bytes(let data): _ = data.withUnsafeBytes { sqlite3_bind_blob(statement, index, $0.baseAddress, Int32($0.count), transient) }
                    case .null: sqlite3_bind_null(statement, index)
                    }
                }
                guard sqlite3_step(statement) == SQLITE_DONE else {
                    throw ValidationError("SQLite: \(String(cString: sqlite3_errmsg(db)))")
                }
                sqlite3_reset(statement)
            }
            try exec("COMMIT")
        }
        var count: OpaquePointer?
        guard sqlite3_prepare_v2(db, "SELECT count(*) FROM \"\(table)\"", -1, &count, nil) == SQLITE_OK, let count else {
            throw ValidationError("SQLite: \(String(cString: sqlite3_errmsg(db)))")
        }
        let counted = sqlite3_step(count) == SQLITE_ROW ? sqlite3_column_int64(count, 0) : -1
        sqlite3_finalize(count)
        guard counted == Int64(ids.count) else { throw ValidationError("plain SQLite holds \(counted) rows, not \(ids.count)") }
        try exec("PRAGMA wal_checkpoint(TRUNCATE)")
        return seconds
    }
}

/// CPU time from /proc, to tell how much of the machine other programs
/// took while a side was timed: other work on the two cores slows both
/// sides of the comparison, not always equally.
struct CPUTime {
    var busy = 0
    var total = 0
    var ours = 0

    /// The machine's busy and total ticks, and the ticks of this process
    /// and of `processes` (the server).
    static func sample(processes: [Int32]) -> CPUTime {
        var sample = CPUTime()
        let stat = (try? String(contentsOfFile: "/proc/stat", encoding: .utf8)) ?? ""
        if let line = stat.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) {
            let ticks = line.split(separator: " ").dropFirst().compactMap { Int($0) }
            if ticks.count >= 8 {
                // user nice system idle iowait irq softirq steal
                sample.total = ticks[0..<8].reduce(0, +)
                sample.busy = sample.total - ticks[3] - ticks[4]
            }
        }
        for pid in ["self"] + processes.map(String.init) {
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = text.lastIndex(of: ")") else { continue }
            // After the command name: state is field 3, utime 14, stime 15.
            let fields = text[text.index(after: close)...].split(separator: " ")
            if fields.count > 12 { sample.ours += (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0) }
        }
        return sample
    }

    /// The share of all cores' time that other programs used since `start`.
    func othersShare(since start: CPUTime) -> Double {
        let total = self.total - start.total
        guard total > 0 else { return 0 }
        return max(0, Double((busy - start.busy) - (ours - start.ours)) / Double(total))
    }
}
