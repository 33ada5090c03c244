import ArgumentParser
import Foundation
import LinliCLI
import LinliClient
import LinliCore
import LinliProtocol
import LinliStore

@main
struct Linli: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "linli",
        abstract: "The grid inspector's client: record households, residents, rentals, volunteers and problems, offline; sync when there is a network.",
        discussion: """
            Everything but `sync` works with no network. The device folder (--data, $LINLI_DATA or $HOME/.linli) holds the \
            sealed key, the enrolment bundle and the replica. Commands that sign a change ask for the PIN \
            (--pin-file or $LINLI_PIN for scripts). Personal data (names, ID numbers, phone numbers) is masked \
            unless --reveal is given; each reveal is noted in the folder's reveal.log.
            First day: `linli init --label NAME` makes the key and the request for the administrator; \
            `linli enrol BUNDLE --user NAME` imports the answer; `linli sync` fetches the grid's records.
            """,
        subcommands: [
            Init.self, Enrol.self, Tables.self, SchemaCommand.self, Add.self, Edit.self, Delete.self, Show.self, Find.self, List.self,
            RentalCommand.self, VolunteerCommand.self, Pending.self, Verify.self, Reject.self, Status.self, Sync.self, ServerCommand.self, KeyCommand.self,
            Unlock.self, Lock.self,
        ])
}

let program = "linli"

/// What the shared unlock and lock commands say of this program.
enum ThisProgram: FieldProgram {
    static let name = program
    static let unlockDefault = "8h"
    static let unlockAbstract = "Unlock this device's key for a working session: the PIN once, not at every command."
}
typealias Unlock = UnlockCommand<ThisProgram>
typealias Lock = LockCommand<ThisProgram>

/// Options of commands that print records.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "Show personal data unmasked (noted in reveal.log).") var reveal = false

    func noteReveal(_ device: FieldDevice, _ what: String) {
        guard reveal else { return }
        let line = "\(LocalTime.iso(Date())) \(device.settings.user) \(what)\n"
        appendLine(line, to: (device.folder as NSString).appendingPathComponent("reveal.log"))
    }
}

func show(_ record: RecordView, _ output: OutputOptions, records: Records? = nil) throws {
    if output.json {
        printJSON(record.json(reveal: output.reveal))
        return
    }
    print("\(record.table.label)（\(record.table.name)）\(record.id.hex)\(record.deleted ? "  已删除 deleted" : "")")
    for (field, text) in record.fields(reveal: output.reveal) {
        print("  \(field.label) \(field.name): \(text)\(record.conflicted.contains(field.name) ? "  ⚠ 有冲突 conflict" : "")")
    }
}

// MARK: Enrolment

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make this device's key (sealed with a PIN) and its enrolment request for the administrator.")
    @OptionGroup var device: DeviceOptions
    @Option(help: "A name for the device, e.g. 李明的终端.") var label = ""
    @Flag(help: "Also print the request as one line of text for a QR code.") var text = false

    func run() async throws {
        try await guarded(program) {
            let pin = try device.newPIN(prompt: "设定 PIN choose a PIN (at least 4 characters): ")
            let request = try FieldDevice.prepare(folder: device.directory, label: label, pin: pin)
            print("device \(request.device): key sealed with the PIN; request written to \(FieldDevice.requestPath(device.directory))")
            print("hand the request to the administrator (linli-admin device enroll), then run `linli enrol BUNDLE --user NAME`")
            if text { print(request.text) }
        }
    }
}

struct Enrol: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import the enrolment bundle the administrator made from this device's request.")
    @OptionGroup var device: DeviceOptions
    @Argument(help: "The enrolment bundle file.") var bundle: String
    @Option(help: "Your name, as it appears on the changes you sign.") var user: String
    @Option(help: "PEM file of the certificate authority of the server's TLS certificate, if private.") var caFile: String?

    func run() async throws {
        try await guarded(program) {
            guard let data = FileManager.default.contents(atPath: bundle) else { throw LinliError(.notFound, "cannot read the bundle \(bundle)") }
            let enrolled = try FieldDevice.enrol(folder: device.directory, bundle: data, user: user, roles: [.inspector, .staff],
                                                 certificateAuthorityFile: caFile)
            let settings = enrolled.settings
            print("enrolled: device \(settings.device) as \(settings.role)\(settings.grids.isEmpty ? "" : " for grid " + settings.grids.joined(separator: ", ")), user \(settings.user), server \(settings.server)")
            print("next: `linli sync` fetches the records of your grids (or start recording offline with `linli add`)")
        }
    }
}

struct KeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "key", abstract: "This device's signing key.", subcommands: [Rotate.self])

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace this device's key: write a rotation request for the administrator and sign with the new key from now on.",
            discussion: """
                The request names the device's next change set as the first the new key signs. Keep working: what you record \
                before the administrator's certificate reaches the server waits there and is taken when it arrives. \
                The administrator runs `linli-admin device rotate REQUEST` and `linli-admin sync`.
                """)
        @OptionGroup var device: DeviceOptions
        @Flag(help: "Also print the request as one line of text for a QR code.") var text = false

        func run() async throws {
            try await guarded(program) {
                let opened = try device.open()
                let request = try opened.rotateKey(pin: try device.pin())
                // An unlocked copy holds the old key alone: unlock again for the new one.
                if UnlockedKey.wipe(device: opened.device) { print("the unlocked key was locked; `linli unlock` again for the new one") }
                print("new key made; it signs from change set \(request.fromSeq ?? 1) on. Request written to \(FieldDevice.rotationRequestPath(device.directory))")
                print("hand it to the administrator (linli-admin device rotate), who then runs linli-admin sync; keep working meanwhile")
                if text { print(request.text) }
            }
        }
    }
}

// MARK: Records

struct Tables: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the record types and their fields (the schema pack).")
    @OptionGroup var device: DeviceOptions
    @Argument(help: "One record type to describe.") var table: String?
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await guarded(program) {
            let opened = try device.open()
            let records = Records(store: try opened.store())
            let tables = try table.map { [try records.table($0)] } ?? records.tables
            if json {
                printJSON(tables.map { table in
                    ["name": table.name, "label": table.label,
                     "fields": table.fields.map { ["name": $0.name, "label": $0.label, "type": $0.type.rawValue, "required": $0.required,
                                                   "personal": $0.personal, "choices": $0.choices ?? []] as [String: Any] }] as [String: Any]
                })
                return
            }
            print("schema \(opened.schema.name) version \(opened.schema.version)")
            for table in tables {
                print("\(table.name)  \(table.label)")
                if self.table != nil || tables.count == 1 {
                    for field in table.fields {
                        print("  \(field.name)  \(field.label)  \(field.type.rawValue)\(field.required ? " 必填" : "")\(field.personal ? " 个人信息" : "")\(field.choices.map { " " + $0.joined(separator: "/") } ?? "")")
                    }
                }
            }
        }
    }
}

struct SchemaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schema", abstract: "Move this device to a newer version of the schema pack (additions only).",
        discussion: "The replica keeps every value; fields a newer pack adds show at once if other devices already wrote them.")
    @OptionGroup var device: DeviceOptions
    @Argument(help: "The newer schema pack (JSON).") var file: String

    func run() async throws {
        try await guarded(program) {
            let opened = try device.open()
            let before = opened.schema.version
            let upgraded = try opened.upgradeSchema(file: file)
            _ = try upgraded.store()
            print("schema \(upgraded.schema.name): version \(before) → \(upgraded.schema.version)")
        }
    }
}

struct Add: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record something new: linli add TABLE field=value ... (or -i for a form in Chinese).",
        discussion: "Example: linli add person name=张三 id_number=11010519491231002X gender=女 residence_type=户籍人口 phone=13800138000")
    @OptionGroup var device: DeviceOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "The record type (see `linli tables`).") var table: String
    @Argument(help: "field=value pairs (field names or their Chinese labels).") var assignments: [String] = []
    @Flag(name: [.customShort("i"), .long], help: "Ask for each field in turn.") var interactive = false
    @Flag(name: .customLong("duplicate-ok"), help: "Record it even though a record with the same ID number is on this device (both go to the review queue).")
    var duplicateOK = false

    func run() async throws {
        try await guarded(program) {
            let (opened, work) = try device.openForWork()
            let records = work.records
            let table = try records.table(self.table)
            var values = try records.parse(assignments, table: table)
            if interactive {
                let form = Form(records: records)
                var start = work.defaults(for: table).merging(values) { $1 }
                while true {
                    values = try form.fill(table, start: start, required: true)
                    do {
                        try show(try work.create(table, values, duplicateOK: duplicateOK), output)
                        break
                    } catch let error as LinliError where error.code == .invalidInput || error.code == .outOfScope {
                        print("✗ \(error.message)\n请更正 (please correct):")
                        start = values
                    }
                }
            } else {
                try show(try work.create(table, values, duplicateOK: duplicateOK), output)
            }
            output.noteReveal(opened, "add \(table.name)")
        }
    }
}

struct Edit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Change fields of a record: linli edit ID field=value ... (or -i).")
    @OptionGroup var device: DeviceOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "The record id (or its first digits).") var id: String
    @Argument(help: "field=value pairs; field= clears a field.") var assignments: [String] = []
    @Flag(name: [.customShort("i"), .long], help: "Ask for each field, showing its current value.") var interactive = false

    func run() async throws {
        try await guarded(program) {
            let (opened, work) = try device.openForWork()
            let records = work.records
            let (table, row) = try records.resolve(id)
            var values = try records.parse(assignments, table: table)
            if interactive {
                guard let current = try records.record(table, row) else { throw LinliError(.notFound, "no record \(id)") }
                let filled = try Form(records: records).fill(table, start: current.values.merging(values) { $1 }, required: true,
                                                             skip: [table.gridField ?? ""])
                values = filled.filter { current.values[$0.key] != $0.value }
            }
            try show(try work.update(table, row, values), output)
            output.noteReveal(opened, "edit \(row.hex)")
        }
    }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete a record. An edit made meanwhile elsewhere survives as a conflict for staff to settle.",
        discussion: """
            A record that others refer to (a house with residents, a rental with tenants) is deleted only when you \
            confirm it at the prompt, or with --force; the records that refer to it are kept and keep the reference.
            """)
    @OptionGroup var device: DeviceOptions
    @Argument(help: "The record id (or its first digits).") var id: String
    @Flag(help: "Delete it without asking, even when other records refer to it.") var force = false

    func run() async throws {
        try await guarded(program) {
            let records = Records(store: try device.open().store())
            let (table, row) = try records.resolve(id)
            let referring = try records.referrers(of: row, in: table)
            if !referring.isEmpty && !force {
                var kinds: [String: Int] = [:]
                for record in referring { kinds[record.table.label.isEmpty ? record.table.name : record.table.label, default: 0] += 1 }
                let listed = kinds.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value) 条" }.joined(separator: "、")
                let what = "\(table.label) \(row.hex.prefix(8)) 有 \(listed)记录指向它 · \(referring.count) record(s) refer to this \(table.name)"
                guard isatty(STDIN_FILENO) != 0 else {
                    throw LinliError(.invalidInput, what, hint: "delete it with --force, or first change the records that refer to it (linli show \(row.hex.prefix(8)) lists them)")
                }
                printError(what + "\n" + referring.prefix(5).map { "  " + $0.summary(reveal: false) }.joined(separator: "\n"))
                FileHandle.standardError.write(Data("确定删除？ delete it anyway? [y/N] ".utf8))
                let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
                guard ["y", "yes", "是"].contains(answer) else { throw SecretPrompt.cancelled() }
            }
            let (_, work) = try device.openForWork()
            try work.delete(table, row)
            print("deleted \(table.name) \(row.hex)")
        }
    }
}

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one record, its conflicts and the records that refer to it.")
    @OptionGroup var device: DeviceOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "The record id (or its first digits).") var id: String

    func run() async throws {
        try await guarded(program) {
            let opened = try device.open()
            let store = try opened.store()
            let records = Records(store: store)
            let (table, row) = try records.resolve(id)
            guard let record = try records.record(table, row) else { throw LinliError(.notFound, "no record \(id) on this device") }
            let conflicts = try store.conflicts(table: table.name).filter { $0.row == row }
            let related = try records.referrers(of: row, in: table)
            output.noteReveal(opened, "show \(row.hex)")
            if output.json {
                var object = record.json(reveal: output.reveal)
                object["conflicts"] = conflicts.map { conflictJSON($0, table: table, reveal: output.reveal) }
                object["related"] = related.map { $0.json(reveal: output.reveal) }
                printJSON(object)
                return
            }
            try show(record, output)
            for conflict in conflicts { print("  ⚠ " + conflictLine(conflict, table: table, reveal: output.reveal)) }
            for other in related { print("  ↳ " + other.summary(reveal: output.reveal)) }
        }
    }
}

/// One line for a conflict: the field and its competing values, the one
/// shown meanwhile first (→), each with who wrote it.
func conflictLine(_ conflict: Conflict, table: TableSchema?, reveal: Bool) -> String {
    let field = table?.field(conflict.field)
    let values = conflict.values.map { competing -> String in
        let text = field.map { FieldText.show(competing.value, field: $0, reveal: reveal) } ?? "\(competing.value)"
        return (competing.shown ? "→ " : "") + text + " (\(competing.user))"
    }
    return "\(field?.label ?? conflict.field): " + values.joined(separator: " | ")
}

func conflictJSON(_ conflict: Conflict, table: TableSchema?, reveal: Bool) -> [String: Any] {
    let field = table?.field(conflict.field)
    return ["table": conflict.table, "row": conflict.row.hex, "field": conflict.field, "scope": conflict.scope, "kind": conflict.kind.rawValue,
            "values": conflict.values.map { value -> [String: Any] in
                ["value": field.map { FieldText.show(value.value, field: $0, reveal: reveal) } ?? "\(value.value)",
                 "user": value.user, "device": value.dot.device.hex, "seq": value.dot.seq, "shown": value.shown]
            }]
}

struct Find: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Search the records on this device by name, ID number, address or phone number.",
        discussion: """
            Every word must appear in the record's text fields, read as one run: 幸福路12号2单元301 finds the house at \
            幸福路12号, 2单元, 301; `幸福路12号 301` finds it too. Uses the device's full-text index (trigram), made on first use.
            """)
    @OptionGroup var device: DeviceOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "What to look for (part of a name, ID number, address or phone; words apart by spaces).") var text: String
    @Option(help: "Only this record type.") var table: String?
    @Option(help: "At most this many results.") var limit = 50

    func run() async throws {
        try await guarded(program) {
            let opened = try device.open()
            let found = try Records(store: try opened.store()).find(text, in: table, limit: limit)
            output.noteReveal(opened, "find \(text)")
            if output.json {
                printJSON(found.map { $0.json(reveal: output.reveal) })
            } else if found.isEmpty {
                print("nothing found for \(text) on this device")
            } else {
                for record in found { print(record.summary(reveal: output.reveal)) }
            }
        }
    }
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the records of one type, most recently changed first.")
    @OptionGroup var device: DeviceOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "The record type.") var table: String
    @Flag(help: "Include deleted records.") var deleted = false
    @Option(help: "At most this many.") var limit = 200

    func run() async throws {
        try await guarded(program) {
            let opened = try device.open()
            let records = Records(store: try opened.store())
            let listed = try records.list(try records.table(table), includeDeleted: deleted, limit: limit)
            output.noteReveal(opened, "list \(table)")
            if output.json {
                printJSON(listed.map { $0.json(reveal: output.reveal) })
            } else {
                for record in listed { print(record.summary(reveal: output.reveal) + (record.deleted ? "  已删除" : "")) }
                if listed.isEmpty { print("no \(table) records on this device") }
            }
        }
    }
}

// MARK: Rentals and volunteers

struct RentalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rental", abstract: "Renew or end a rental.",
                                                    subcommands: [Renew.self, Terminate.self])

    struct Renew: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Renew a rental to a later lease end (status 已续租).")
        @OptionGroup var device: DeviceOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The rental id.") var id: String
        @Option(help: "The new lease end, YYYY-MM-DD.") var until: String

        func run() async throws {
            try await guarded(program) {
                let (_, work) = try device.openForWork()
                try show(try work.renew(id, until: until), output)
            }
        }
    }

    struct Terminate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End a rental (status 已终止); its tenants move out on that day.")
        @OptionGroup var device: DeviceOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The rental id.") var id: String
        @Option(help: "The day it ends, YYYY-MM-DD (default today).") var on: String?

        func run() async throws {
            try await guarded(program) {
                let (_, work) = try device.openForWork()
                try show(try work.terminate(id, on: on), output)
            }
        }
    }
}

struct VolunteerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "volunteer", abstract: "Volunteer service.", subcommands: [Hours.self])

    struct Hours: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Log hours of service for a volunteer; prints the volunteer's total.")
        @OptionGroup var device: DeviceOptions
        @Flag(help: "Print JSON.") var json = false
        @Argument(help: "The volunteer id.") var id: String
        @Option(help: "Hours of service (0 to 24).") var hours: Double
        @Option(help: "The day, YYYY-MM-DD (default today).") var date: String?
        @Option(help: "The activity id, if any.") var activity: String?

        func run() async throws {
            try await guarded(program) {
                let (_, work) = try device.openForWork()
                let (record, total) = try work.logHours(id, hours: hours, date: date, activity: activity)
                if json {
                    printJSON(["record": record.json(reveal: false), "total_hours": total])
                } else {
                    print("service record \(record.id.hex): \(FieldText.show(record.values["hours"] ?? .null, field: record.table.field("hours")!, reveal: true)) h; total \(total) h")
                }
            }
        }
    }
}

// MARK: Kiosk submissions

struct Pending: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Kiosk submissions from your grids' kiosks waiting to be verified at the door.")
    @OptionGroup var device: DeviceOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await guarded(program) {
            let opened = try device.open()
            let records = Records(store: try opened.store())
            let pending = try records.pendingSubmissions()
            output.noteReveal(opened, "pending")
            if output.json {
                printJSON(pending.map { $0.json(reveal: output.reveal) })
            } else {
                for submission in pending { print(submission.summary(reveal: output.reveal)) }
                print("\(pending.count) submission(s) to verify")
            }
        }
    }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify a kiosk submission at the door: make the grid's record from it (a volunteer, or a rental and its house).",
        discussion: "Example: linli verify 3f2a9c --house 77ab01 lease_end=2027-06-30")
    @OptionGroup var device: DeviceOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "The submission id (or its first digits).") var submission: String
    @Argument(help: "field=value corrections or additions for the new record.") var assignments: [String] = []
    @Option(help: "The grid the resident lives in (default: your grid, if you cover one).") var grid: String?
    @Option(help: "For a rental pre-registration: the existing house (else a new house is recorded from its address).") var house: String?

    func run() async throws {
        try await guarded(program) {
            let (_, work) = try device.openForWork()
            let records = work.records
            let houseID = try house.map { try records.resolve($0, in: "house").1 }
            let record = try work.verify(submission, grid: grid, house: houseID, overrides: assignments)
            if !output.json { print("verified: the submission is now") }
            try show(record, output)
        }
    }
}

struct Reject: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decline a kiosk submission with the reason: it leaves the pending list, and the reason is kept with it.",
        discussion: "Example: linli reject 3f2a9c --reason 非本社区居民")
    @OptionGroup var device: DeviceOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "The submission id (or its first digits).") var submission: String
    @Option(help: "Why it is declined (kept with the submission).") var reason: String

    func run() async throws {
        try await guarded(program) {
            let (_, work) = try device.openForWork()
            let record = try work.reject(submission, reason: reason)
            if !output.json { print("declined · 不予登记:") }
            try show(record, output)
        }
    }
}

// MARK: Status and sync

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What waits to be synced, what the server refused and why, conflicts and pending submissions in your grids.")
    @OptionGroup var device: DeviceOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await guarded(program) {
            let opened = try device.open()
            let store = try opened.store()
            let records = Records(store: store)
            let status = try DeviceStatus.read(device: opened, store: store, records: records)
            let settings = opened.settings
            if output.json {
                var object: [String: Any] = [
                    "device": settings.device, "role": settings.role, "user": settings.user, "grids": settings.grids, "server": settings.server,
                ]
                object["schema_version"] = opened.schema.version
                object["unsynced"] = status.unsynced
                object["last_sync"] = status.lastSync.map { LocalTime.iso($0) } ?? NSNull()
                object["refused"] = status.refused.map { refusal -> [String: Any] in ["seq": refusal.seq, "code": refusal.code, "message": refusal.message] }
                object["quarantined"] = status.quarantined
                object["conflicts"] = status.conflicts.map { conflict in
                    conflictJSON(conflict, table: records.tables.first { $0.name == conflict.table }, reveal: output.reveal)
                }
                object["pending_submissions"] = status.pending.count
                object["records"] = status.counts
                object["digests"] = status.digests
                object.merge(stepJSON(status.step)) { _, new in new }
                printJSON(object)
                return
            }
            print("device \(settings.device)  \(settings.role)  \(settings.user)  grids: \(settings.grids.isEmpty ? "all" : settings.grids.joined(separator: ", "))")
            print("server \(settings.server); last sync: \(status.lastSync.map { LocalTime.text($0) } ?? "never")")
            print("unsynced change sets: \(status.unsynced)")
            print(stepLine(status.step))
            if status.refused.isEmpty {
                print("refused by the server: none")
            } else {
                print("refused by the server (kept there for review; record the change again once corrected):")
                for refusal in status.refused { print("  change set \(refusal.seq): \(refusal.code): \(refusal.message)") }
            }
            if status.quarantined > 0 { print("change sets from others kept aside on this device: \(status.quarantined)") }
            print("conflicts: \(status.conflicts.count)")
            for conflict in status.conflicts {
                let table = records.tables.first { $0.name == conflict.table }
                print("  \(table?.label ?? conflict.table) \(conflict.row.hex) " + conflictLine(conflict, table: table, reveal: output.reveal))
            }
            if settings.role != Role.kiosk.rawValue { print("kiosk submissions to verify: \(status.pending.count)") }
            print("records: " + status.counts.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
    }
}

struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Show the server this device syncs with, or change it (服务器地址).",
        discussion: "`linli server` prints the address; `linli server https://linli.example.gov.cn` remembers a new one (no PIN needed, nothing is sent).")
    @OptionGroup var device: DeviceOptions
    @Argument(help: "The new address, https://HOST[:PORT].") var url: String?
    @Option(help: "A PEM file to trust the server's TLS certificate with, remembered too.") var caFile: String?
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await guarded(program) {
            let opened = try device.open().pointing(to: url, certificateAuthorityFile: caFile)
            let settings = opened.settings
            if json {
                var object: [String: Any] = ["server": settings.server]
                if let ca = settings.certificateAuthorityFile { object["ca_file"] = ca }
                printJSON(object)
            } else {
                print("服务器 server: \(settings.server)\(settings.certificateAuthorityFile.map { "  (TLS: \($0))" } ?? "")")
            }
        }
    }
}

struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send this device's changes and fetch its grids' news. Resumes where a cut connection left off.")
    @OptionGroup var device: DeviceOptions
    @Option(help: "Use (and remember) this server address.") var server: String?
    @Option(help: "Use (and remember) this PEM file to trust the server's TLS certificate.") var caFile: String?
    @Option(help: "Attempts per request before giving up.") var attempts = 8
    @Flag(help: "Print the report as JSON.") var json = false
    @Flag(help: "No progress display.") var quiet = false

    func run() async throws {
        try await guarded(program) {
            let opened = try device.open().pointing(to: server, certificateAuthorityFile: caFile)
            let (identity, previousKeys) = try device.keys(opened)
            let line = ProgressLine(quiet: quiet || json)
            let report: SyncReport
            do {
                report = try await opened.sync(identity: identity, previousKeys: previousKeys, attemptsMax: attempts) { line.show($0) }
                line.finish()
            } catch {
                line.finish()
                throw error
            }
            if json {
                printJSON(["pushed": report.pushed, "accepted": report.accepted, "refused": report.refused, "pulled": report.pulled,
                           "cursor": report.cursor, "retries": report.retries, "bootstrapped": report.bootstrapped,
                           "repaired": report.repaired, "in_step": report.step?.inStep ?? false,
                           "differences": report.step?.differences ?? []])
            } else {
                print("synced: sent \(report.pushed) (accepted \(report.accepted)), received \(report.pulled)\(report.bootstrapped ? " after the snapshot" : "")\(report.retries > 0 ? ", \(report.retries) retries" : "")")
                for refusal in report.refused { print("  refused: \(refusal)") }
            }
        }
    }
}
