import ArgumentParser
import Foundation
import LinliCore
import LinliStore

/// The lock a serving process holds on its data folder, which a restore
/// also takes: a store is never replaced under a running server, and two
/// servers never share one SQLite store.
func serverLock(_ data: String) throws -> FolderLock {
    try FolderLock(path: (data as NSString).appendingPathComponent("server.lock"),
                   busy: LinliError(.unavailable, "a linli-server is serving \(data)",
                                    hint: "stop it first (SIGTERM stops it gracefully); each data folder has one server"))
}

/// Prints a report as a line, or as JSON.
func printReport(_ what: String, _ report: StoreBackup.Report, path: String, json: Bool, extra: [String: String] = [:]) {
    if json {
        var object: [String: Any] = ["file": path, "change_sets": report.changeSets, "log_end": report.logEnd,
                                     "bytes": report.bytes, "seconds": (report.seconds * 1000).rounded() / 1000]
        for (key, value) in extra { object[key] = value }
        if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
            print(String(decoding: data, as: UTF8.self))
        }
    } else {
        print("\(what) \(path): \(report.changeSets) change sets through log position \(report.logEnd), "
              + "\(report.bytes) bytes, in \(String(format: "%.2f", report.seconds)) s")
        for (key, value) in extra.sorted(by: { $0.key < $1.key }) { print("\(key): \(value)") }
    }
}

func failing(_ body: () throws -> Void) throws {
    do { try body() } catch let error as LinliError {
        FileHandle.standardError.write(Data("linli-server: \(error.message)\n".utf8))
        if let hint = error.hint { FileHandle.standardError.write(Data("  \(hint)\n".utf8)) }
        throw ExitCode(2)
    }
}

struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Back up the SQLite store while the server serves.",
        discussion: """
            Copies DIR/server.sqlite with SQLite's backup API into FILE, in one read transaction of the store: the \
            copy holds the store as it was at one moment, and pushes go on meanwhile. The copy is checked \
            (integrity check, the log readable) and synced before it gets its name, so FILE is whole or absent.

            Restoring an older backup (linli-server restore) loses nothing: devices push again what it lacks.
            """)

    @Option(help: "The server's data folder.") var data: String = "server-data"
    @Option(help: "The backup file to write.") var to: String
    @Flag(help: "Replace FILE when it exists.") var force = false
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        try failing {
            let report = try StoreBackup.backup(from: (data as NSString).appendingPathComponent("server.sqlite"), to: to, replacing: force)
            printReport("backed up to", report, path: to, json: json)
        }
    }
}

struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put a backup in place of the store (the server stopped).",
        discussion: """
            Checks FILE whole, then puts it in place of DIR/server.sqlite. The store it replaces is kept beside it as \
            server.sqlite.before-restore-TIME. Refused while a linli-server serves DIR.

            Nothing a device entered after the backup is lost: at its next sync each device is told the heads the \
            restored server holds and pushes again what it lacks. Snapshots made before are dropped.
            """)

    @Option(help: "The backup file (linli-server backup).") var from: String
    @Option(help: "The server's data folder.") var data: String = "server-data"
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        try failing {
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            let lock = try serverLock(data)
            defer { lock.release() }
            let (report, kept) = try StoreBackup.restore(from, to: (data as NSString).appendingPathComponent("server.sqlite"))
            // Snapshots are caches of the store that was: made again on demand.
            try? FileManager.default.removeItem(atPath: (data as NSString).appendingPathComponent("snapshots"))
            printReport("restored from", report, path: from, json: json, extra: kept.map { ["kept": $0] } ?? [:])
        }
    }
}
