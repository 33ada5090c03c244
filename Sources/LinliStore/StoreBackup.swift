import Foundation
import GRDB
import LinliCore

/// Online backups of a server's SQLite store, and restoring one.
///
/// A backup is taken with SQLite's backup API while the server serves: the
/// copy is made in one step, inside one read transaction of the store, so
/// it holds the store as it was at one moment (in WAL mode a reader blocks
/// no writer; pushes go on). It is written beside its destination, checked
/// (`PRAGMA integrity_check`, the log readable), synced, and only then
/// given its name: a backup file either is whole or is not there.
///
/// Restoring an older backup loses nothing a device entered: each device
/// pushes again what the restored server lacks, since the heads it is
/// answered no longer hold its newer change sets (DESIGN-NOTES §7,
/// PROTOCOL.md 2.6).
public enum StoreBackup {
    /// What a backup or a restore holds.
    public struct Report: Sendable, Equatable {
        /// Change sets in the log, and its last position.
        public var changeSets: Int64
        public var logEnd: Int64
        /// Bytes of the file.
        public var bytes: Int64
        /// How long it took, in seconds.
        public var seconds: Double
    }

    /// Copies the store at `source` into a new file at `destination`;
    /// refuses to replace a file there unless `replacing`.
    public static func backup(from source: String, to destination: String, replacing: Bool = false) throws -> Report {
        let started = Date()
        guard FileManager.default.fileExists(atPath: source) else {
            throw LinliError(.notFound, "there is no store at \(source)", hint: "give the server's data folder with --data")
        }
        if FileManager.default.fileExists(atPath: destination), !replacing {
            throw LinliError(.invalidInput, "\(destination) already exists; a backup does not replace a file",
                             hint: "give another name, or add --force to replace it")
        }
        let partial = destination + ".partial"
        try? FileManager.default.removeItem(atPath: partial)
        do {
            // Opened for reading only, but not read-only: a read-only
            // connection cannot open a store in WAL mode whose server has
            // stopped (it could not make the shared-memory file). A server
            // commits often; the read waits for a moment of its lock.
            var reading = Configuration()
            reading.busyMode = .timeout(Double(Limits.backupBusySecondsMax))
            let store = try DatabaseQueue(path: source, configuration: reading)
            defer { try? store.close() }
            try checkIsStore(store, path: source)
            let copy = try DatabaseQueue(path: partial)
            try store.backup(to: copy)
            try copy.writeWithoutTransaction { db in
                // The copy is one file: no write-ahead log beside it.
                try db.execute(sql: "PRAGMA journal_mode = DELETE")
            }
            try copy.close()
            let report = try check(partial, started: started)
            try sync(partial)
            if replacing { try? FileManager.default.removeItem(atPath: destination) }
            try FileManager.default.moveItem(atPath: partial, toPath: destination)
            try sync((destination as NSString).deletingLastPathComponent)
            return report
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            throw mapped(error, doing: "back up \(source) to \(destination)")
        }
    }

    /// Puts the backup at `backup` in place of the store at `store`, which
    /// no server may be serving (the caller holds its folder's lock). The
    /// store it replaces is kept beside it, renamed `….before-restore-TIME`,
    /// with its write-ahead log: a restore throws nothing away.
    /// Returns what the restored store holds and the name of the kept one.
    public static func restore(_ backup: String, to store: String, now: Date = Date()) throws -> (Report, kept: String?) {
        let started = Date()
        _ = try check(backup, started: started)
        let partial = store + ".restoring"
        try? FileManager.default.removeItem(atPath: partial)
        do {
            try FileManager.default.copyItem(atPath: backup, toPath: partial)
            try sync(partial)
            var kept: String?
            if FileManager.default.fileExists(atPath: store) {
                let stamp = Int64(now.timeIntervalSince1970)
                let name = "\(store).before-restore-\(stamp)"
                for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: store + suffix) {
                    try FileManager.default.moveItem(atPath: store + suffix, toPath: name + suffix)
                }
                kept = name
            }
            try FileManager.default.moveItem(atPath: partial, toPath: store)
            try sync((store as NSString).deletingLastPathComponent)
            var report = try check(store, started: started)
            report.seconds = Date().timeIntervalSince(started)
            return (report, kept)
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            throw mapped(error, doing: "restore \(backup) to \(store)")
        }
    }

    /// Opens `path` read-only and checks it whole: SQLite's integrity
    /// check, and a log that is a Linli store's.
    public static func check(_ path: String, started: Date = Date()) throws -> Report {
        guard FileManager.default.fileExists(atPath: path) else {
            throw LinliError(.notFound, "there is no backup at \(path)", hint: "give the file `linli-server backup` wrote")
        }
        var readOnly = Configuration()
        readOnly.readonly = true
        do {
            let queue = try DatabaseQueue(path: path, configuration: readOnly)
            defer { try? queue.close() }
            try checkIsStore(queue, path: path)
            return try queue.read { db in
                let problems = try String.fetchAll(db, sql: "PRAGMA integrity_check(\(Limits.backupProblemsShownMax))")
                guard problems == ["ok"] else {
                    throw LinliError(.damagedFile, "\(path) is damaged: \(problems.joined(separator: "; "))",
                                     hint: "take another backup; this one cannot be restored")
                }
                let row = try Row.fetchOne(db, sql: "SELECT count(*), coalesce(max(position), 0) FROM linli_log")
                let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0
                return Report(changeSets: row?[0] ?? 0, logEnd: row?[1] ?? 0, bytes: size,
                              seconds: Date().timeIntervalSince(started))
            }
        } catch {
            throw mapped(error, doing: "check \(path)")
        }
    }

    private static func checkIsStore(_ queue: DatabaseQueue, path: String) throws {
        let isStore = try queue.read { db in try db.tableExists("linli_log") && db.tableExists("linli_meta") }
        guard isStore else {
            throw LinliError(.invalidInput, "\(path) is an SQLite file but not a Linli store (it has no linli_log)",
                             hint: "give the server's data folder, or a file `linli-server backup` wrote")
        }
    }

    /// fsync of a file or a folder.
    private static func sync(_ path: String) throws {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw LinliError(.storage, "cannot open \(path) to sync it: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw LinliError(.storage, "cannot sync \(path): \(String(cString: strerror(errno)))") }
    }

    private static func mapped(_ error: any Error, doing what: String) -> LinliError {
        if let error = error as? LinliError { return error }
        if let error = error as? DatabaseError {
            if error.resultCode == .SQLITE_NOTADB || error.resultCode == .SQLITE_CORRUPT {
                return LinliError(.damagedFile, "cannot \(what): the file is not a readable SQLite store (\(error.message ?? "\(error.resultCode)"))")
            }
            return LinliError(.storage, "cannot \(what): \(error.message ?? "\(error.resultCode)")",
                              hint: "check the free disk space and the folders' permissions")
        }
        return LinliError(.storage, "cannot \(what): \(error)", hint: "check the free disk space and the folders' permissions")
    }
}
