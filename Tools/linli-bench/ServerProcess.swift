import ArgumentParser
import Foundation
import LinliCore
import LinliCrypto
import LinliTesting

/// The real `linli-server` executable, started on loopback with a fresh
/// store for a benchmark, and stopped by the caller.
enum ServerProcess {
    /// A port per benchmark process, so two runs on one machine do not meet.
    static var port: Int { 38_000 + Int(ProcessInfo.processInfo.processIdentifier % 1_000) }

    /// Starts `executable` (default: `linli-server` beside `linli-bench`)
    /// serving a new store in `folder/server` with `schema`, and waits until
    /// it accepts connections. `arguments` are added to `serve` (the
    /// server's signing identity, say); `log` receives its request log.
    static func start(executable: String?, folder: URL, root: PublicKey, schema: Schema, arguments: [String] = [],
                      log: String? = nil) throws -> Process {
        let executable = executable
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("linli-server").path
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw ValidationError("no linli-server at \(executable); build it first (swift build -c release --product linli-server)")
        }
        let schemaPath = folder.appendingPathComponent("schema.json").path
        try JSONEncoder().encode(schema).write(to: URL(fileURLWithPath: schemaPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["serve", "--data", folder.appendingPathComponent("server").path, "--listen", "127.0.0.1:\(port)",
                             "--authority", root.hex, "--schema", schemaPath] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        if let log {
            FileManager.default.createFile(atPath: log, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: log)
        }
        try process.run()
        for _ in 0..<100 {
            if CuttingProxy.canConnect(port: port) { return process }
            Thread.sleep(forTimeInterval: 0.1)
        }
        process.terminate()
        throw ValidationError("linli-server did not start on port \(port)")
    }
}
