import ArgumentParser
import Foundation
import LinliCLI
import LinliClient
import LinliCore
import LinliProtocol
import LinliStore

@main
struct LinliKiosk: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "linli-kiosk",
        abstract: "The community hall kiosk: public information, and residents' self-service submissions taken offline and synced at night.",
        discussion: """
            A kiosk holds only public information and the submissions made at it: the server sends it nothing \
            else. Submissions wait on the kiosk until the nightly sync (`linli-kiosk run --window 01:00-05:00`), \
            then an inspector of the resident's grid verifies them at the door. An unattended kiosk reads its PIN \
            from --pin-file or $LINLI_PIN.
            """,
        subcommands: [Init.self, Enrol.self, Info.self, Signup.self, Prereg.self, Status.self, Sync.self, Run.self, Unlock.self, Lock.self])
}

let program = "linli-kiosk"

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Make the kiosk's key (sealed with a PIN) and its enrolment request.")
    @OptionGroup var device: DeviceOptions
    @Option(help: "A name for the kiosk, e.g. 幸福社区服务站.") var label = ""

    func run() async throws {
        try await guarded(program) {
            let request = try FieldDevice.prepare(folder: device.directory, label: label, pin: try device.newPIN(prompt: "设定 PIN choose a PIN (at least 4 characters): "))
            print("kiosk \(request.device): request written to \(FieldDevice.requestPath(device.directory)); enrol it with linli-admin device enroll --role kiosk --grid GRID")
        }
    }
}

struct Enrol: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Import the kiosk's enrolment bundle.")
    @OptionGroup var device: DeviceOptions
    @Argument(help: "The enrolment bundle file.") var bundle: String
    @Option(help: "The kiosk's name on the submissions it signs, e.g. 幸福社区服务站自助终端.") var name: String
    @Option(help: "PEM file of the certificate authority of the server's TLS certificate, if private.") var caFile: String?

    func run() async throws {
        try await guarded(program) {
            guard let data = FileManager.default.contents(atPath: bundle) else { throw LinliError(.notFound, "cannot read the bundle \(bundle)") }
            let enrolled = try FieldDevice.enrol(folder: device.directory, bundle: data, user: name, roles: [.kiosk], certificateAuthorityFile: caFile)
            print("kiosk \(enrolled.settings.device) enrolled, serving grid \(enrolled.settings.grids.joined(separator: ", ")); server \(enrolled.settings.server)")
        }
    }
}

struct Info: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show public information: notices, volunteer activities and teams.")
    @OptionGroup var device: DeviceOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await guarded(program) {
            let records = Records(store: try device.open().store())
            var sections: [(String, [RecordView])] = []
            for name in ["notice", "activity", "volunteer_team"] {
                if let table = try? records.table(name) { sections.append((name, try records.list(table, limit: 50))) }
            }
            if json {
                printJSON(Dictionary(uniqueKeysWithValues: sections.map { ($0.0, $0.1.map { $0.json(reveal: false) }) }))
                return
            }
            for (_, listed) in sections {
                guard let table = listed.first?.table else { continue }
                print("== \(table.label)")
                for record in listed {
                    print("  " + record.fields(reveal: false).filter { $0.field.type != .reference }.map(\.text).joined(separator: " · "))
                }
            }
            if sections.allSatisfy({ $0.1.isEmpty }) { print("no public information yet: it arrives with the nightly sync") }
        }
    }
}

/// Takes one submission: from field=value pairs, or the form in Chinese.
/// The kiosk prints a receipt number, never the data back.
func submit(_ tableName: String, _ device: DeviceOptions, assignments: [String], interactive: Bool, json: Bool) throws {
    // What a resident typed does not stay on the hall's screen for the next
    // one: cleared once the form ends, however it ends.
    let screen = interactive && isatty(STDOUT_FILENO) != 0
    defer { if screen { KioskScreen.clear() } }
    let (_, work) = try device.openForWork()
    let records = work.records
    let table = try records.table(tableName)
    var values = try records.parse(assignments, table: table)
    var record: RecordView
    if interactive {
        let form = Form(records: records)
        var start = values
        while true {
            // What the inspector decides (status, team, a reason for
            // declining) is not asked of a resident.
            values = try form.fill(table, start: start, required: true, skip: ["status", "team", "reason"])
            do {
                record = try work.create(table, values)
                break
            } catch let error as LinliError where error.code == .invalidInput {
                print("✗ \(error.message)\n请更正 (please correct):")
                start = values
            }
        }
    } else {
        record = try work.create(table, values)
    }
    let receipt = String(record.id.hex.prefix(8))
    if json {
        printJSON(["receipt": receipt, "id": record.id.hex, "table": table.name])
    } else {
        if screen { KioskScreen.clear() }
        print("已提交，回执编号 \(receipt)。网格员将上门核实。 (Submitted; receipt \(receipt). An inspector of your grid will verify it at your door.)")
        if screen { KioskScreen.waitForEnter(seconds: Limits.kioskReceiptSecondsMax) }
    }
}

/// The hall's screen between residents.
enum KioskScreen {
    /// Clears the screen and its scrollback (ESC [2J, ESC [3J), and goes home.
    static func clear() {
        FileHandle.standardOutput.write(Data("\u{1B}[H\u{1B}[2J\u{1B}[3J".utf8))
    }

    /// Shows the receipt until Enter, or for at most `seconds` when the
    /// resident walks away.
    static func waitForEnter(seconds: Int) {
        FileHandle.standardOutput.write(Data("按回车键结束 (press Enter when done)".utf8))
        var ready = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
        guard poll(&ready, 1, Int32(seconds * 1000)) > 0 else { return }
        _ = readLine()
    }
}

struct Signup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A resident signs up as a volunteer (志愿者报名).")
    @OptionGroup var device: DeviceOptions
    @Argument(help: "field=value pairs: name, phone, address, skills.") var assignments: [String] = []
    @Flag(name: [.customShort("i"), .long], help: "Ask for each field in Chinese.") var interactive = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await guarded(program) { try submit("signup", device, assignments: assignments, interactive: interactive, json: json) }
    }
}

struct Prereg: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A landlord pre-registers a rental (出租房屋预登记).")
    @OptionGroup var device: DeviceOptions
    @Argument(help: "field=value pairs: landlord, landlord_phone, address, tenants, lease_start, lease_end.") var assignments: [String] = []
    @Flag(name: [.customShort("i"), .long], help: "Ask for each field in Chinese.") var interactive = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await guarded(program) { try submit("rental_prereg", device, assignments: assignments, interactive: interactive, json: json) }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Submissions waiting for the nightly sync, the last sync, and what the server refused.")
    @OptionGroup var device: DeviceOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await guarded(program) {
            let opened = try device.open()
            let store = try opened.store()
            let status = try DeviceStatus.read(device: opened, store: store, records: Records(store: store))
            if json {
                printJSON(["device": opened.settings.device, "unsynced": status.unsynced,
                           "last_sync": status.lastSync.map { LocalTime.iso($0) } ?? NSNull(),
                           "refused": status.refused.map { ["seq": $0.seq, "code": $0.code, "message": $0.message] as [String: Any] },
                           "records": status.counts, "digests": status.digests].merging(stepJSON(status.step)) { _, new in new } as [String: Any])
            } else {
                print("kiosk \(opened.settings.device): \(status.unsynced) change set(s) waiting; last sync \(status.lastSync.map { LocalTime.text($0) } ?? "never")")
                print(stepLine(status.step))
                for refusal in status.refused { print("  refused \(refusal.seq): \(refusal.code): \(refusal.message)") }
            }
        }
    }
}

struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sync now, once.")
    @OptionGroup var device: DeviceOptions
    @Option(help: "Use (and remember) this server address.") var server: String?
    @Flag(help: "Print the report as JSON.") var json = false

    func run() async throws {
        try await guarded(program) {
            let opened = try device.open().pointing(to: server, certificateAuthorityFile: nil)
            let report = try await opened.sync(identity: try device.identity(opened))
            if json {
                printJSON(["pushed": report.pushed, "accepted": report.accepted, "pulled": report.pulled, "refused": report.refused,
                           "retries": report.retries, "bootstrapped": report.bootstrapped])
            } else {
                print("synced: sent \(report.pushed), received \(report.pulled)")
            }
        }
    }
}

/// What the shared unlock and lock commands say of this program.
enum ThisProgram: FieldProgram {
    static let name = program
    static let unlockDefault = "16h"
    static let unlockAbstract = "Unlock the kiosk's key for the day: the operator types the PIN once, and residents are never asked for it."
}
typealias Unlock = UnlockCommand<ThisProgram>
typealias Lock = LockCommand<ThisProgram>

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run unattended: sync once a night at a random moment inside the window, retrying with backoff until it closes.",
        discussion: """
            Each night the kiosk picks a moment uniformly at random inside the window, so the district's kiosks \
            spread out. A failed sync is retried with exponential backoff (30 s doubling, capped at 15 minutes, \
            with jitter) while the window is open; a cut transfer resumes where it stopped. Every step is logged, \
            one line each, to --log or standard error.
            """)
    @OptionGroup var device: DeviceOptions
    @Option(help: "The nightly window, local time, HH:MM-HH:MM (seconds allowed).") var window: String
    @Option(help: "Append the log to this file instead of standard error.") var log: String?
    @Flag(help: "Sync in the next window, then exit (0 if it synced, 1 if the window closed first).") var once = false
    @Option(help: "First retry wait in seconds.") var retrySeconds = 30.0

    func run() async throws {
        try await guarded(program) {
            let window = try NightWindow(self.window)
            let opened = try device.open()
            let identity = try device.identity(opened)
            let logger = KioskLog(path: log)
            logger.write("started: window \(window), server \(opened.settings.server)")
            while true {
                let moment = window.nextMoment(after: Date())
                let closes = window.occurrence(after: Date()).end
                logger.write("next sync at \(KioskLog.stamp(moment)) (window closes \(KioskLog.stamp(closes)))")
                try await sleep(until: moment)
                var attempt = 0
                var synced = false
                while Date() < closes {
                    attempt += 1
                    do {
                        // The window's end bounds the sync too, and the
                        // waits between attempts are this loop's (--retry-seconds).
                        let report = try await Self.before(closes) {
                            try await opened.sync(identity: identity, attemptsMax: 2) { progress in
                                if progress.phase == .retry || progress.phase == .snapshot { logger.write("\(progress.phase.rawValue): \(progress.message)") }
                            }
                        }
                        logger.write("synced: sent \(report.pushed) (accepted \(report.accepted), refused \(report.refused.count)), received \(report.pulled), retries \(report.retries)\(report.bootstrapped ? ", from a snapshot" : "")")
                        for refusal in report.refused { logger.write("refused: \(refusal)") }
                        synced = true
                        break
                    } catch let error as LinliError {
                        let wait = min(900, retrySeconds * pow(2, Double(attempt - 1)))
                        let jittered = Double.random(in: wait / 2...wait)
                        logger.write("sync failed (attempt \(attempt)): \(error.code.rawValue): \(error.message); next try in \(Int(jittered)) s")
                        if error.code != .unreachable && error.code != .unavailable && error.code != .storage { break }
                        if Date() >= closes { break }
                        if Date().addingTimeInterval(jittered) >= closes { break }
                        try await Task.sleep(nanoseconds: UInt64(jittered * 1e9))
                    }
                }
                if !synced {
                    let waiting = (try? opened.store().outboxCount(device: opened.device, peer: opened.peerName)) ?? 0
                    logger.write("no sync this window; \(waiting) change set(s) wait on the kiosk for the next")
                }
                if once { throw synced ? ExitCode.success : ExitCode.failure }
                // Past this window's end before choosing the next.
                try await sleep(until: closes.addingTimeInterval(1))
            }
        }
    }

    /// Runs `body`, cancelled at `deadline`: then throws `unavailable`
    /// (nothing is lost; what was not sent waits for the next window).
    static func before<T: Sendable>(_ deadline: Date, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                let seconds = deadline.timeIntervalSinceNow
                if seconds > 0 { try await Task.sleep(nanoseconds: UInt64(seconds * 1e9)) }
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw LinliError(.unavailable, "the window closed during the sync", hint: "nothing is lost; it goes on in the next window")
            }
            return value
        }
    }

    func sleep(until moment: Date) async throws {
        let seconds = moment.timeIntervalSinceNow
        if seconds > 0 { try await Task.sleep(nanoseconds: UInt64(seconds * 1e9)) }
    }
}

/// One line per event, with the local time, to a file or standard error.
struct KioskLog: Sendable {
    let path: String?

    static func stamp(_ date: Date) -> String { LocalTime.iso(date) }

    func write(_ message: String) {
        let line = "\(Self.stamp(Date())) \(message)\n"
        if let path { appendLine(line, to: path) } else { FileHandle.standardError.write(Data(line.utf8)) }
    }
}
