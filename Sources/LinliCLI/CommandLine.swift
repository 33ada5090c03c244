import ArgumentParser
import Foundation
import LinliClient
import LinliCore
import LinliStore

/// Options every field client command shares: where the device's folder
/// is, and where its PIN comes from.
public struct DeviceOptions: ParsableArguments {
    @Option(name: .customLong("data"), help: "The device folder (default: $LINLI_DATA, else ~/.linli).")
    public var folder: String?
    @Option(help: "A file whose first line is the device PIN (default: $LINLI_PIN, else a prompt).")
    public var pinFile: String?

    public init() {}

    public var directory: String {
        folder ?? ProcessInfo.processInfo.environment["LINLI_DATA"]
            ?? (NSHomeDirectory() as NSString).appendingPathComponent(".linli")
    }

    public func open() throws -> FieldDevice { try FieldDevice.open(folder: directory) }

    public func pin(prompt: String = "PIN: ") throws -> String {
        if let pinFile {
            guard let text = try? String(contentsOfFile: pinFile, encoding: .utf8) else {
                throw LinliError(.notFound, "cannot read the PIN file \(pinFile)")
            }
            return String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
        }
        if let value = ProcessInfo.processInfo.environment["LINLI_PIN"] { return value }
        guard isatty(STDIN_FILENO) != 0, let entered = getpass(prompt) else {
            throw LinliError(.invalidInput, "no PIN given", hint: "use --pin-file FILE or set LINLI_PIN")
        }
        return String(cString: entered)
    }

    /// The device, and its replica's records to write as its signing
    /// identity (the key unsealed with the PIN).
    public func openForWork() throws -> (FieldDevice, FieldWork) {
        let device = try open()
        let identity = try device.identity(pin: try pin())
        return (device, FieldWork(records: Records(store: try device.store()), identity: identity, grids: device.settings.grids))
    }
}

/// Prints one JSON value (sorted keys, readable).
public func printJSON(_ object: Any) {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])) ?? Data()
    print(String(decoding: data, as: UTF8.self))
}

/// Appends `line` to the log file at `path`, making it (readable by its
/// owner only) if there is none.
public func appendLine(_ line: String, to path: String) {
    if let handle = FileHandle(forWritingAtPath: path) {
        handle.seekToEndOfFile()
        handle.write(Data(line.utf8))
        try? handle.close()
    } else {
        _ = FileManager.default.createFile(atPath: path, contents: Data(line.utf8), attributes: [.posixPermissions: 0o600])
    }
}

/// Writes to standard error.
public func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Runs a command body; a `LinliError` becomes a message for the person at
/// the terminal and exit status 2 (bad input) or 1, never a stack trace.
public func guarded(_ program: String, _ body: () async throws -> Void) async throws {
    do { try await body() } catch let error as LinliError {
        printError("\(program): \(error.message)\(error.hint.map { "\n  \($0)" } ?? "")")
        throw ExitCode(error.code == .invalidInput || error.code == .malformed ? 2 : 1)
    }
}

/// A one-line progress display on standard error, redrawn in place on a
/// terminal and printed line by line otherwise (logs, tests).
public final class ProgressLine: @unchecked Sendable {
    private let lock = NSLock()
    private let terminal = isatty(STDERR_FILENO) != 0
    private var lastLength = 0
    private let quiet: Bool

    public init(quiet: Bool = false) { self.quiet = quiet }

    public func show(_ progress: SyncProgress) {
        if quiet { return }
        let label = switch progress.phase {
        case .push: "推送 push"
        case .pull: "拉取 pull"
        case .snapshot: "快照 snapshot"
        case .retry: "重试 retry"
        }
        let line = "\(label): \(progress.message)"
        lock.lock(); defer { lock.unlock() }
        if terminal && progress.phase != .retry {
            let bar = String(repeating: "█", count: min(20, progress.done / 50 + 1))
            let text = "\r\(bar) \(line)"
            FileHandle.standardError.write(Data((text + String(repeating: " ", count: max(0, lastLength - text.count))).utf8))
            lastLength = text.count
        } else {
            if lastLength > 0 { FileHandle.standardError.write(Data("\n".utf8)); lastLength = 0 }
            printError(line)
        }
    }

    public func finish() {
        lock.lock(); defer { lock.unlock() }
        if lastLength > 0 { FileHandle.standardError.write(Data("\n".utf8)); lastLength = 0 }
    }
}

/// The interactive form: asks for each field of a table by its Chinese
/// label, checks each answer at once and asks again until it fits.
public struct Form {
    let records: Records
    let read: () -> String?
    let write: (String) -> Void

    public init(records: Records, read: @escaping () -> String? = { Swift.readLine(strippingNewline: true) },
                write: @escaping (String) -> Void = { FileHandle.standardOutput.write(Data($0.utf8)) }) {
        self.records = records
        self.read = read
        self.write = write
    }

    /// Fills `table`'s fields, starting from `start` (shown in brackets:
    /// Enter keeps them, `-` clears). `skip` names fields not asked for.
    public func fill(_ table: TableSchema, start: [String: Value], required: Bool, skip: Set<String> = []) throws -> [String: Value] {
        var values = start
        write("\(table.label)（\(table.name)）— 回车保留方括号中的值，输入 - 清空 (Enter keeps, - clears)\n")
        for field in table.fields where !skip.contains(field.name) {
            while true {
                var prompt = "\(field.label) \(field.name)"
                if let choices = field.choices { prompt += "（\(choices.joined(separator: "/"))）" }
                if field.type == .date { prompt += "（YYYY-MM-DD）" }
                if field.type == .reference { prompt += "（\(field.references ?? "")记录编号）" }
                if required && field.required { prompt += " *" }
                if let current = values[field.name], !current.isNull {
                    prompt += " [\(FieldText.show(current, field: field, reveal: true))]"
                }
                write(prompt + ": ")
                guard let line = read() else {
                    throw LinliError(.invalidInput, "the input ended before the form was complete; nothing was saved")
                }
                let answer = line.trimmingCharacters(in: .whitespaces)
                if answer.isEmpty {
                    if required && field.required && (values[field.name]?.isNull ?? true) {
                        write("  必填 (required)\n")
                        continue
                    }
                    break
                }
                if answer == "-" {
                    if required && field.required { write("  必填，不能清空 (required)\n"); continue }
                    values[field.name] = .null
                    break
                }
                do {
                    values[field.name] = try records.parse(answer, field: field, table: table)
                    break
                } catch let error as LinliError {
                    write("  ✗ \(error.message)\n")
                }
            }
        }
        return values
    }
}
