import ArgumentParser
import Foundation
import LinliClient
import LinliCore
import LinliCrypto
import LinliStore

/// Options every field client command shares: where the device's folder
/// is, and where its PIN comes from.
public struct DeviceOptions: ParsableArguments {
    @Option(name: .customLong("data"), help: "The device folder (default: $LINLI_DATA, else $HOME/.linli).")
    public var folder: String?
    @Option(help: "A file whose first line is the device PIN (default: $LINLI_PIN, else a prompt).")
    public var pinFile: String?

    public init() {}

    public var directory: String {
        folder ?? ProcessInfo.processInfo.environment["LINLI_DATA"] ?? Self.defaultDirectory(ProcessInfo.processInfo.environment)
    }

    /// `$HOME/.linli`, else the account's home folder's: `NSHomeDirectory()`
    /// alone reads the account and ignores a `HOME` set for the session.
    public static func defaultDirectory(_ environment: [String: String]) -> String {
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return (home as NSString).appendingPathComponent(".linli")
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
        return try Self.typed { try SecretPrompt.read(prompt) }
    }

    /// A PIN chosen now: from the file or `LINLI_PIN` as they are, or typed
    /// twice at the terminal.
    public func newPIN(prompt: String) throws -> String {
        if pinFile != nil || ProcessInfo.processInfo.environment["LINLI_PIN"] != nil { return try pin(prompt: prompt) }
        return try Self.typed { try SecretPrompt.choose(prompt) }
    }

    /// A PIN from the terminal: none there is an error, Ctrl-C a cancel.
    private static func typed(_ prompt: () throws -> String?) throws -> String {
        do {
            guard let entered = try prompt() else {
                throw LinliError(.invalidInput, "no PIN given", hint: "use --pin-file FILE or set LINLI_PIN")
            }
            return entered
        } catch is SecretPrompt.Cancelled {
            throw SecretPrompt.cancelled()
        }
    }

    /// The key unlocked for this session (`unlock`), if any.
    private func unlocked(_ device: FieldDevice) -> (DeviceIdentity, [SigningKey])? {
        UnlockedKey.load(device: device.device).map {
            (DeviceIdentity(device: device.device, key: $0.key, user: device.settings.user), $0.previous)
        }
    }

    /// The device's signing identity: the key unlocked for this session
    /// (`unlock`), else the key unsealed with the PIN.
    public func identity(_ device: FieldDevice) throws -> DeviceIdentity {
        if let (identity, _) = unlocked(device) { return identity }
        return try device.identity(pin: try pin())
    }

    /// The identity and the keys before a rotation, for a sync.
    public func keys(_ device: FieldDevice) throws -> (DeviceIdentity, [SigningKey]) {
        if let keys = unlocked(device) { return keys }
        let pin = try pin()
        return (try device.identity(pin: pin), try device.previousKeys(pin: pin))
    }

    /// The device, and its replica's records to write as its signing
    /// identity (unlocked, or unsealed with the PIN).
    public func openForWork() throws -> (FieldDevice, FieldWork) {
        let device = try open()
        let identity = try identity(device)
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
        printError(fieldMessage(program, error))
        throw ExitCode(error.code == .invalidInput || error.code == .malformed ? 2 : 1)
    } catch let error as ExitCode {
        throw error
    } catch let error as CleanExit {
        throw error
    } catch {
        // Never a raw type name: what happened, what is kept, what to do.
        printError(fieldMessage(program, LinliError(.storage, "an unexpected error stopped the command",
                                                    hint: "what was saved before is kept; run it again, and if it repeats tell the administrator")))
        if ProcessInfo.processInfo.environment["LINLI_DEBUG"] != nil { printError("  (\(String(reflecting: error)))") }
        throw ExitCode(1)
    }
}

/// An error for the person at the terminal, in Chinese and English: what
/// happened, whether anything was lost, and what to do.
public func fieldMessage(_ program: String, _ error: LinliError) -> String {
    var lines = ["\(program): \(chineseSummary(error.code))", "  \(error.message)"]
    if let hint = error.hint { lines.append("  \(hint)") }
    return lines.joined(separator: "\n")
}

/// One line in Chinese per error code: what happened and what to do.
public func chineseSummary(_ code: LinliError.Code) -> String {
    switch code {
    case .unreachable: "无法连接服务器，或连接中断。没有丢失任何数据；网络恢复后再同步即可。"
    case .unavailable, .storage: "服务器暂时无法处理。没有丢失任何数据；稍后再同步。"
    case .badAnswerSignature: "服务器的回答在途中损坏或无法验证，已拒收。没有丢失任何数据；再同步一次。"
    case .replayedRequest, .badRequestSignature, .staleRequest: "服务器拒收了这次请求（签名或时间不符）。没有丢失任何数据；请检查设备时间后再同步。"
    case .unknownDevice: "服务器不认识此设备。没有丢失任何数据；请管理员运行 linli-admin sync 后再同步。"
    case .revoked: "此设备已被吊销，不能再同步。已录入的数据保存在设备上；请联系管理员。"
    case .notPermitted, .outOfScope: "此操作不在本设备的权限范围内。没有丢失任何数据；请联系管理员。"
    case .overLimit: "超出了限制。没有丢失任何数据；请按提示分批处理。"
    case .invalidInput, .malformed, .schemaViolation: "输入有误，未保存。请按提示更正后再试。"
    case .notFound: "找不到所指的记录或文件。没有改动任何数据。"
    case .wrongPassphrase: "PIN 或口令不正确。没有改动任何数据。"
    case .damagedFile: "文件或数据已损坏，已保留原件。没有丢失任何数据；请联系管理员。"
    case .conflict: "记录已被他人改动。没有丢失任何数据；请重新查看后再处理。"
    default: "操作被拒绝，原件已保留。没有丢失任何数据；请按提示处理。"
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
        var line = "\(label): \(progress.message)"
        if progress.phase == .retry, let attempts = progress.attempts, let next = progress.nextTrySeconds {
            let at = LocalTime.clock(Date().addingTimeInterval(next))
            line = "\(label): 第 \(progress.done)/\(attempts) 次未成功，\(at) 再试（\(String(format: "%.1f", next)) 秒后） · \(progress.message) (at \(at))"
        }
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
                // Choices are numbered: 1 for the first, or the word itself.
                if let choices = field.choices {
                    prompt += "（" + choices.enumerated().map { "\($0.offset + 1) \($0.element)" }.joined(separator: " / ") + "）"
                }
                if field.type == .date { prompt += "（YYYY-MM-DD）" }
                if field.type == .reference { prompt += "（地址、姓名或编号 address, name or id）" }
                if required && field.required { prompt += " *" }
                if let current = values[field.name], !current.isNull {
                    prompt += " [\(FieldText.show(current, field: field, reveal: true))]"
                }
                write(prompt + ": ")
                guard let line = read() else {
                    throw LinliError(.invalidInput, "the input ended before the form was complete; nothing was saved")
                }
                var answer = line.trimmingCharacters(in: .whitespaces)
                if let choices = field.choices, let number = Int(answer), (1...choices.count).contains(number) {
                    answer = choices[number - 1]
                }
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
                if field.type == .reference, let referenced = field.references, !Records.looksLikeID(answer) {
                    guard let chosen = try choose(answer, in: referenced) else { continue }
                    values[field.name] = .bytes(chosen.data)
                    break
                }
                do {
                    var trial = values
                    trial[field.name] = try records.parse(answer, field: field, table: table)
                    // A rule across fields is checked as soon as its fields
                    // are answered, not at the end.
                    let now = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
                    do { try table.checkRules(trial.filter { !$0.value.isNull }, touching: [field.name], madeAt: now) } catch {
                        write("  ✗ \(error.message)\n")
                        if let hint = error.hint { write("    \(hint)\n") }
                        continue
                    }
                    values = trial
                    derive(from: field, in: table, now: now, into: &values)
                    break
                } catch let error as LinliError {
                    write("  ✗ \(error.message)\n")
                }
            }
        }
        return values
    }

    /// What an answer gives of other fields, filled in where they are
    /// empty and shown in brackets when their turn comes (Enter keeps
    /// them): the birth date, gender and age a citizen ID encodes.
    func derive(from field: FieldSchema, in table: TableSchema, now: UInt64, into values: inout [String: Value]) {
        guard let text = values[field.name]?.text, let citizen = try? CitizenID(text) else { return }
        var derived: [String] = []
        func fill(_ name: String?, _ value: Value) {
            guard let name, let target = table.field(name), values[name]?.isNull ?? true, (try? target.check(value, table: table.name)) != nil else { return }
            values[name] = value
            derived.append("\(target.label.isEmpty ? name : target.label) \(FieldText.show(value, field: target, reveal: true))")
        }
        for case .citizenIDMatches(let id, let birthDate, let gender, let age) in table.rules where id == field.name {
            fill(birthDate, .text(citizen.birthDate))
            fill(gender, .text(citizen.gender.rawValue))
            fill(age, .integer(Int64(CalendarDay.age(born: citizen.birthDate, on: CalendarDay.date(of: now, offsetHours: 8)))))
        }
        if !derived.isEmpty {
            write("  → 由身份号码得出 from the ID number: \(derived.joined(separator: "、"))（轮到时回车确认 Enter confirms when asked）\n")
        }
    }

    /// The record of `tableName` that `text` names: the one match, or the
    /// one picked by its number from a list of them; nil to ask again.
    func choose(_ text: String, in tableName: String) throws -> RowID? {
        let table = try records.table(tableName)
        let found: [RecordView]
        do { found = try records.candidates(text, in: table) } catch let error as LinliError {
            write("  ✗ \(error.message)\n")
            return nil
        }
        switch found.count {
        case 0:
            write("  ✗ 没有匹配的\(table.label) · no \(table.name) matches \(text); 请输入地址或姓名的一部分 give part of its address or name\n")
            return nil
        case 1:
            write("  → \(found[0].summary(reveal: false))\n")
            return found[0].id
        default:
            for (index, record) in found.enumerated() { write("  \(index + 1)) \(record.summary(reveal: false))\n") }
            write("  选择编号 choose 1-\(found.count)（回车重新输入 Enter to search again）: ")
            guard let line = read(), let number = Int(line.trimmingCharacters(in: .whitespaces)), (1...found.count).contains(number) else {
                return nil
            }
            return found[number - 1].id
        }
    }
}

/// Whether the device is in step with its server, for `status --json`:
/// `in_step` (null before the first comparison), when it was checked, and
/// what differs.
public func stepJSON(_ step: SyncStep?) -> [String: Any] {
    guard let step else { return ["in_step": NSNull(), "step_checked_at": NSNull(), "differences": [String]()] }
    return ["in_step": step.inStep, "step_checked_at": LocalTime.iso(Date(timeIntervalSince1970: Double(step.checkedAtMs) / 1000)),
            "differences": step.differences]
}

/// The same for a person.
public func stepLine(_ step: SyncStep?) -> String {
    guard let step else { return "与服务器是否一致：尚未核对（同步一次即可） · in step with the server: not checked yet (sync once)" }
    let when = LocalTime.text(Date(timeIntervalSince1970: Double(step.checkedAtMs) / 1000))
    if step.inStep { return "与服务器一致（核对于 \(when)） · in step with the server as of \(when)" }
    return (["与服务器不一致（核对于 \(when)） · not in step with the server as of \(when):"] + step.differences.map { "  " + $0 }).joined(separator: "\n")
}

/// Reads a duration: `8h`, `90m`, `45s` or a number of seconds.
public func durationSeconds(_ text: String) throws -> Int {
    let units: [Character: Int] = ["h": 3_600, "m": 60, "s": 1]
    let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
    let (number, unit) = trimmed.last.flatMap { units[$0] }.map { (trimmed.dropLast(), $0) } ?? (Substring(trimmed), 1)
    guard let value = Int(number), value > 0, value <= Int.max / unit else {
        throw LinliError(.invalidInput, "\(text) is not a duration", hint: "give it as 8h, 90m or 45s")
    }
    return value * unit
}

/// `unlock` and `lock` of a field client: the key unsealed once for a
/// working session, and wiped at its end.
public enum SessionKey {
    public static func unlock(_ options: DeviceOptions, for text: String) throws -> String {
        let device = try options.open()
        let seconds = try durationSeconds(text)
        let pin = try options.pin()
        let identity = try device.identity(pin: pin)
        let expires = try UnlockedKey.save(device: device.device, key: identity.key, previous: try device.previousKeys(pin: pin), seconds: seconds)
        return "已解锁，至 \(LocalTime.text(expires)) · unlocked until \(LocalTime.text(expires)); `lock` locks it sooner"
    }

    public static func lock(_ options: DeviceOptions) throws -> String {
        let device = try options.open()
        return UnlockedKey.wipe(device: device.device) ? "已锁定 · locked: the unlocked key is wiped" : "未解锁 · was not unlocked"
    }
}
