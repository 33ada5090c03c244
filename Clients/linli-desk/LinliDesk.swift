import ArgumentParser
import Foundation
import LinliCLI
import LinliClient
import LinliCore
import LinliProtocol
import LinliStore

@main
struct LinliDesk: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "linli-desk",
        abstract: "The conflict desk for central staff: the review queue of conflicts, refused changes and broken rules, and their resolution.",
        discussion: """
            The queue lives on the server; this client reads it and signs each resolution with the staff member's own key \
            (sealed with a PIN in the device folder: --data, $LINLI_DATA or $HOME/.linli), then sends it. Every resolution is a \
            change set with an audit record (who, when, which values it replaced, why) that reaches every replica in scope.
            First day: `linli-desk init --label NAME`, the administrator enrols the request with --role staff, \
            `linli-desk enrol BUNDLE --user NAME`, then `linli-desk queue`.
            """,
        subcommands: [Init.self, Enrol.self, Queue.self, Show.self, Resolve.self, Dismiss.self, Resubmit.self, Fix.self, Bulk.self,
                      Status.self, Sync.self])
}

let program = "linli-desk"

// MARK: Enrolment

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Make this desk's key (sealed with a PIN) and its enrolment request.")
    @OptionGroup var device: DeviceOptions
    @Option(help: "A name for the desk, e.g. 街道办-张敏.") var label = ""

    func run() async throws {
        try await guarded(program) {
            let request = try FieldDevice.prepare(folder: device.directory, label: label, pin: try device.newPIN(prompt: "设定 PIN choose a PIN (at least 4 characters): "))
            print("device \(request.device): request written to \(FieldDevice.requestPath(device.directory))")
            print("next: the administrator runs `linli-admin device enroll REQUEST --role staff --out BUNDLE`; then `linli-desk enrol BUNDLE --user NAME`")
        }
    }
}

struct Enrol: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Import the enrolment bundle (role staff) the administrator made.")
    @OptionGroup var device: DeviceOptions
    @Argument(help: "The enrolment bundle file.") var bundle: String
    @Option(help: "Your name, as it appears on the resolutions you sign.") var user: String
    @Option(help: "PEM file of the certificate authority of the server's TLS certificate, if private.") var caFile: String?

    func run() async throws {
        try await guarded(program) {
            guard let data = FileManager.default.contents(atPath: bundle) else { throw LinliError(.notFound, "cannot read the bundle \(bundle)") }
            let enrolled = try FieldDevice.enrol(folder: device.directory, bundle: data, user: user, roles: [.staff], certificateAuthorityFile: caFile)
            print("enrolled: desk \(enrolled.settings.device) for \(enrolled.settings.user), server \(enrolled.settings.server)")
            print("next: `linli-desk queue`")
        }
    }
}

// MARK: Reading the queue

/// Options that narrow the queue.
struct FilterOptions: ParsableArguments {
    @Option(help: "Only this grid.") var grid: String?
    @Option(help: "Only this table.") var table: String?
    @Option(help: "Only this kind: conflict, delete_vs_edit, refused or invariant.") var kind: String?
    @Option(help: "Only this field.") var field: String?
    @Option(help: "Only items older than this: 90s, 30m, 2h or 3d.") var olderThan: String?

    /// The filter as typed: kind and age are checked here, before anything
    /// is opened; ``named(_:schema:grids:)`` checks the names afterwards.
    func filter() throws -> ReviewFilter {
        var filter = ReviewFilter(grid: grid, table: table, field: field)
        if let kind {
            guard let parsed = ReviewKind(rawValue: kind) else {
                throw LinliError(.invalidInput, "unknown kind \(kind); use \(ReviewKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            filter.kind = parsed
        }
        if let olderThan { filter.olderThanSeconds = try Self.seconds(olderThan) }
        return filter
    }

    /// `filter` with its table and field checked against the desk's schema
    /// (a Chinese label names its table or field) and its grid against the
    /// grids the desk's certificates name.
    static func named(_ filter: ReviewFilter, schema: Schema, grids: Set<String>) throws -> ReviewFilter {
        var filter = filter
        let names = try schema.resolveNames(table: filter.table, field: filter.field)
        try check(grid: filter.grid, among: grids)
        filter.table = names.table
        filter.field = names.field
        return filter
    }

    /// A grid no certificate names is a typo, not an empty queue.
    static func check(grid: String?, among grids: Set<String>) throws {
        guard let grid, !grids.contains(grid) else { return }
        throw LinliError(.invalidInput, "no device is enrolled for grid \(grid)",
                         hint: Suggestion.closest(to: grid, among: grids.sorted()).map { "did you mean \($0)?" } ?? "the grids are \(grids.sorted().joined(separator: ", "))")
    }

    static func seconds(_ text: String) throws -> UInt64 {
        let units: [Character: UInt64] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        guard let unit = text.last, let factor = units[unit], let number = UInt64(text.dropLast()) else {
            throw LinliError(.invalidInput, "\(text) is not an age; write a number and a unit: 90s, 30m, 2h or 3d")
        }
        // The number is anyone's typing: bounded before it is multiplied.
        let (seconds, overflow) = number.multipliedReportingOverflow(by: factor)
        guard !overflow, seconds <= Limits.deskOlderSecondsMax else {
            throw LinliError(.invalidInput, "\(text) is older than the queue goes: at most \(Limits.deskOlderSecondsMax / 86400)d (deskOlderSecondsMax, ten years)")
        }
        return seconds
    }
}

/// The desk, its staff identity and a client for the server.
struct Desk {
    let device: FieldDevice
    let client: SyncClient

    static func open(_ options: DeviceOptions) throws -> Desk {
        let device = try options.open()
        guard device.role == .staff else {
            throw LinliError(.notPermitted, "this device is enrolled as \(device.role.rawValue); the desk is for staff devices",
                             hint: "enrol a device with --role staff for the desk")
        }
        let identity = try options.identity(device)
        var connection = try device.connection
        // LINLI_SERVER reaches the server another way for one command (a
        // proxy, a second address) without changing the desk's settings.
        if let other = ProcessInfo.processInfo.environment["LINLI_SERVER"] {
            guard let url = URL(string: other), url.scheme == "http" || url.scheme == "https", url.host != nil else {
                throw LinliError(.invalidInput, "LINLI_SERVER \(other) is not an http(s) URL", hint: "give it as http(s)://host:port")
            }
            connection.url = url
        }
        return Desk(device: device, client: SyncClient(store: try device.store(), identity: identity, connection: connection))
    }

    /// Every grid a certificate this desk holds names: the district's grids.
    func grids() throws -> Set<String> {
        Set(try client.store.certificates().flatMap(\.grids))
    }

    /// Signs the resolutions, keeps them in the outbox and sends them;
    /// offline they wait for `linli-desk sync`.
    func resolve(_ resolutions: [(item: ReviewItem, action: ReviewAction)], note: String) async throws -> [SignedChangeSet] {
        let changeSets = try client.store.resolve(resolutions, note: note, as: client.identity)
        try await send()
        return changeSets
    }

    func send() async throws {
        do {
            let report = try await client.pushOnly()
            if !report.refused.isEmpty {
                throw LinliError(.notPermitted, "the server refused: " + report.refused.joined(separator: "; "),
                                 hint: "the change is kept on the server for review; see `linli-desk queue --kind refused`")
            }
        } catch let error as LinliError where SyncClient.retriedCodes.contains(error.code) {
            // Signed and saved: sending it is the only thing left. Never
            // invite a second signature.
            printError("""
                \(program): 处理结果已签名并保存在本机，尚未发送；请勿重复处理，服务器可达时运行 linli-desk sync。
                  the resolution is signed and saved on this desk, not sent yet (\(error.message)); do not resolve it again: run `linli-desk sync` when the server is reachable
                """)
        }
    }

    /// Parses text a person typed for `table.field`; references take full ids.
    func parse(_ text: String, table tableName: String, field fieldName: String) throws -> Value {
        guard let table = client.store.schema.table(tableName) else {
            throw LinliError(.invalidInput, "this desk's schema has no table \(tableName)", hint: "update the desk's schema pack")
        }
        if fieldName == MergeRules.deletedField {
            switch text.lowercased() {
            case "true", "是", "1", "deleted": return .boolean(true)
            case "false", "否", "0", "kept": return .boolean(false)
            default: throw LinliError(.invalidInput, "the deletion mark takes true or false, not \(text)")
            }
        }
        guard let field = table.field(fieldName) else {
            throw LinliError(.invalidInput, "\(tableName) has no field \(fieldName)")
        }
        return try FieldText.parse(text, field: field, table: table, resolve: FieldText.wholeID)
    }
}

func timeText(_ milliseconds: UInt64) -> String { FieldText.timestamp(Int64(milliseconds)) }

func ageText(_ milliseconds: UInt64) -> String {
    let now = UInt64(Date().timeIntervalSince1970 * 1000)
    let seconds = now > milliseconds ? (now - milliseconds) / 1000 : 0
    if seconds < 3600 { return "\(seconds / 60)m" }
    if seconds < 86400 { return "\(seconds / 3600)h" }
    return "\(seconds / 86400)d"
}

func itemJSON(_ item: ReviewItem) throws -> Any {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return try JSONSerialization.jsonObject(with: encoder.encode(item))
}

struct Queue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the open items: conflicts, deletes racing edits, refused change sets, broken rules.")
    @OptionGroup var device: DeviceOptions
    @OptionGroup var filter: FilterOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await guarded(program) {
            let typed = try self.filter.filter()
            let desk = try Desk.open(device)
            let filter = try FilterOptions.named(typed, schema: desk.client.store.schema, grids: try desk.grids())
            let items = try await desk.client.reviewQueue(filter)
            if json {
                printJSON(try items.map(itemJSON))
                return
            }
            print("\(items.count) open item\(items.count == 1 ? "" : "s") · 待处理 \(items.count) 项")
            for item in items {
                let place = [item.grid ?? item.scope, item.table ?? "", item.row.map { String($0.prefix(8)) } ?? "", item.field ?? ""]
                    .filter { !$0.isEmpty }.joined(separator: " ")
                print("\(item.id)  \(item.kind.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0)) \(ageText(item.detectedAt).padding(toLength: 5, withPad: " ", startingAt: 0)) \(place)  \(item.summary)")
            }
        }
    }
}

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one item: the competing values side by side, the field's history.")
    @OptionGroup var device: DeviceOptions
    @Argument(help: "The item id, from `linli-desk queue`.") var id: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await guarded(program) {
            let desk = try Desk.open(device)
            let item = try await desk.client.reviewItem(id)
            if json {
                printJSON(try itemJSON(item))
                return
            }
            print("\(item.id)  \(item.kind.rawValue)  scope \(item.scope)")
            if let table = item.table { print("record: \(table) \(item.row ?? "")\(item.field.map { "  field \($0)" } ?? "")") }
            if !item.values.isEmpty {
                if item.kind == .deleteVersusEdit { print("the record was deleted while someone edited this field · 删除与修改冲突") }
                print("competing values · 冲突值:")
                for (index, value) in item.values.enumerated() {
                    print("  [\(index + 1)] \(value.value)  by \(value.user) on device \(value.dot.device.prefix(8)) at \(timeText(value.time))\(value.shown ? "  (shown meanwhile)" : "")")
                }
                print("resolve: linli-desk resolve \(item.id) --pick N --note \"…\"  or  --value TEXT --note \"…\"")
            }
            if let refusal = item.refusal {
                print("refused · 被拒: \(refusal.code): \(refusal.message)")
                print("author: \(refusal.user ?? "?") device \(refusal.device?.prefix(8) ?? "?") change set \(refusal.seq.map(String.init) ?? "?"), received \(timeText(refusal.receivedAt))")
                for write in refusal.writes { print("  \(write.table) \(write.row.prefix(8)) \(write.field) = \(write.value)") }
                print("decide: linli-desk dismiss \(item.id) --note \"…\"  or  linli-desk resubmit \(item.id) --set field=value --note \"…\"")
            }
            if let explanation = item.explanation {
                print("rule · 规则: \(explanation)")
                for record in item.records {
                    let fields = record.fields.keys.sorted().map { "\($0)=\(record.shown($0))" }.joined(separator: " ")
                    print("  \(record.table) \(record.row) [\(record.scope)] \(fields)")
                }
                print("fix: linli-desk fix \(item.id) --record ID --set field=value --note \"…\"")
            }
            if !item.history.isEmpty {
                print("history · 历史:")
                for entry in item.history {
                    print("  \(timeText(entry.time))  \(entry.value)  by \(entry.user) (\(entry.dot.device.prefix(8))@\(entry.dot.seq))\(entry.survives ? "  survives" : "")")
                }
            }
        }
    }
}

// MARK: Resolving

struct Resolve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Settle a conflict: keep one of the values, or enter a corrected one; with a note.")
    @OptionGroup var device: DeviceOptions
    @Argument(help: "The item id.") var id: String
    @Option(help: "Keep value N, as numbered by `linli-desk show`.") var pick: Int?
    @Option(help: "Enter this corrected value instead.") var value: String?
    @Option(help: "Why (kept in the audit trail).") var note: String

    func run() async throws {
        try await guarded(program) {
            guard (pick == nil) != (value == nil) else {
                throw LinliError(.invalidInput, "give either --pick N or --value TEXT")
            }
            let desk = try Desk.open(device)
            let item = try await desk.client.reviewItem(id)
            guard item.kind == .conflict || item.kind == .deleteVersusEdit, let table = item.table, let field = item.field else {
                throw LinliError(.invalidInput, "\(id) is a \(item.kind.rawValue) item; use \(item.kind == .refused ? "dismiss or resubmit" : "fix")")
            }
            let action: ReviewAction
            if let pick {
                guard (1...item.values.count).contains(pick) else {
                    throw LinliError(.invalidInput, "\(id) has values 1 to \(item.values.count); there is no value \(pick)")
                }
                action = .choose(pick - 1)
            } else {
                action = .correct(try desk.parse(value ?? "", table: table, field: field))
            }
            let changeSets = try await desk.resolve([(item, action)], note: note)
            print("resolved \(id): \(table).\(field) settled by change set \(changeSets.map { String($0.header.seq) }.joined(separator: ", ")), signed by \(desk.client.identity.user)")
        }
    }
}

struct Dismiss: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Dismiss a refused change set: it will not be applied; the note says why.")
    @OptionGroup var device: DeviceOptions
    @Argument(help: "The item id (a refused change set).") var id: String
    @Option(help: "Why (kept in the audit trail).") var note: String

    func run() async throws {
        try await guarded(program) {
            let desk = try Desk.open(device)
            let item = try await desk.client.reviewItem(id)
            _ = try await desk.resolve([(item, .dismiss)], note: note)
            print("dismissed \(id)")
        }
    }
}

struct Resubmit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a refused change set again on its author's behalf, with fields corrected; signed by you.")
    @OptionGroup var device: DeviceOptions
    @Argument(help: "The item id (a refused change set).") var id: String
    @Option(name: .customLong("set"), help: "A corrected field, field=value (repeat).") var assignments: [String] = []
    @Option(help: "Why (kept in the audit trail).") var note: String

    func run() async throws {
        try await guarded(program) {
            let desk = try Desk.open(device)
            let item = try await desk.client.reviewItem(id)
            guard let refusal = item.refusal else { throw LinliError(.invalidInput, "\(id) is not a refused change set") }
            var corrections: [String: Value] = [:]
            for assignment in assignments {
                guard let equals = assignment.firstIndex(of: "=") else { throw LinliError(.invalidInput, "\(assignment) is not field=value") }
                let field = String(assignment[..<equals])
                guard let write = refusal.writes.first(where: { $0.field == field }) else {
                    throw LinliError(.invalidInput, "the refused change set writes no field \(field); it writes \(Set(refusal.writes.map(\.field)).sorted().joined(separator: ", "))")
                }
                corrections[field] = try desk.parse(String(assignment[assignment.index(after: equals)...]), table: write.table, field: field)
            }
            _ = try await desk.resolve([(item, .resubmit(corrections))], note: note)
            print("resubmitted \(id) on behalf of \(refusal.user ?? "its author")\(corrections.isEmpty ? "" : " with " + corrections.keys.sorted().joined(separator: ", ") + " corrected")")
        }
    }
}

struct Fix: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Mend a broken rule: set one field of one of the item's records.")
    @OptionGroup var device: DeviceOptions
    @Argument(help: "The item id (a broken rule).") var id: String
    @Option(help: "The record to change: its id or the start of it, as `linli-desk show` lists.") var record: String
    @Option(name: .customLong("set"), help: "field=value") var assignment: String
    @Option(help: "Why (kept in the audit trail).") var note: String

    func run() async throws {
        try await guarded(program) {
            let desk = try Desk.open(device)
            let item = try await desk.client.reviewItem(id)
            let matches = item.records.filter { $0.row.hasPrefix(record.lowercased()) }
            guard matches.count == 1, let target = matches.first else {
                throw LinliError(.invalidInput, matches.isEmpty ? "\(id) involves no record \(record)" : "\(record) matches \(matches.count) records; give more of the id",
                                 hint: "its records: " + item.records.map { "\($0.table) \($0.row.prefix(8))" }.joined(separator: ", "))
            }
            guard let equals = assignment.firstIndex(of: "=") else { throw LinliError(.invalidInput, "\(assignment) is not field=value") }
            let field = String(assignment[..<equals])
            let value = try desk.parse(String(assignment[assignment.index(after: equals)...]), table: target.table, field: field)
            _ = try await desk.resolve([(item, .edit(table: target.table, row: target.row, field: field, value: value))], note: note)
            print("fixed \(id): \(target.table) \(target.row.prefix(8)) \(field) = \(value)")
        }
    }
}

struct Bulk: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Resolve every conflict of one field in one grid by a rule; shows what would change unless --apply is given.")
    @OptionGroup var device: DeviceOptions
    @Option(help: "The grid.") var grid: String
    @Option(help: "The table.") var table: String
    @Option(help: "The field.") var field: String
    @Option(help: "The rule: newest (the value written last wins).") var rule = "newest"
    @Flag(help: "Resolve them; without it only the preview is printed.") var apply = false
    @Option(help: "Why (kept in the audit trail of each item); needed with --apply.") var note: String?
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await guarded(program) {
            guard rule == "newest" else { throw LinliError(.invalidInput, "unknown rule \(rule); the rule is newest") }
            let desk = try Desk.open(device)
            let names = try desk.client.store.schema.resolveNames(table: table, field: field)
            try FilterOptions.check(grid: grid, among: try desk.grids())
            let items = try await desk.client.reviewQueue(ReviewFilter(grid: grid, table: names.table, kind: .conflict, field: names.field))
            let preview = items.map { item -> (ReviewItem, ReviewValue) in
                (item, item.newestValue!)
            }
            if json, !apply {
                printJSON(preview.map { item, kept -> [String: Any] in
                    ["item": item.id, "row": item.row ?? "", "values": item.values.map { $0.value.description }, "keeps": kept.value.description, "user": kept.user]
                })
                return
            }
            print("\(items.count) conflict\(items.count == 1 ? "" : "s") of \(table).\(field) in grid \(grid); newest wins keeps:")
            for (item, kept) in preview {
                print("  \(item.id) \(item.row?.prefix(8) ?? "")  \(item.values.map { $0.value.description }.joined(separator: " / "))  →  \(kept.value)  (\(kept.user), \(timeText(kept.time)))")
            }
            guard apply else {
                print("nothing changed; add --apply --note \"…\" to resolve them")
                return
            }
            guard let note, !note.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw LinliError(.invalidInput, "--apply needs --note saying why")
            }
            var resolved = 0
            var start = 0
            while start < items.count {
                let group = items[start..<min(items.count, start + Limits.deskResolutionsPerChangeSetMax)]
                try desk.client.store.resolve(group.map { ($0, ReviewAction.newest) }, note: note, as: desk.client.identity)
                resolved += group.count
                start += group.count
            }
            try await desk.send()
            print("resolved \(resolved) conflict\(resolved == 1 ? "" : "s") of \(table).\(field) by newest wins")
        }
    }
}

// MARK: Sync and status

struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send resolutions signed while the server could not be reached.")
    @OptionGroup var device: DeviceOptions

    func run() async throws {
        try await guarded(program) {
            let desk = try Desk.open(device)
            let report = try await desk.client.pushOnly()
            print("sent \(report.pushed), accepted \(report.accepted)\(report.refused.isEmpty ? "" : ", refused: " + report.refused.joined(separator: "; "))")
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "This desk: its user, server, unsent resolutions and how many items wait.")
    @OptionGroup var device: DeviceOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await guarded(program) {
            let desk = try Desk.open(device)
            let unsent = try desk.client.store.outboxCount(device: desk.device.device, peer: desk.device.peerName)
            var waiting: Int?
            do { waiting = try await desk.client.reviewQueue(ReviewFilter()).count } catch let error as LinliError where error.code == .unreachable {
                waiting = nil
            }
            let step = try SyncStep.last(in: desk.client.store, cursorName: desk.device.peerName)
            if json {
                var object: [String: Any] = ["device": desk.device.settings.device, "user": desk.device.settings.user, "server": desk.device.settings.server,
                                             "unsent": unsent, "queue": waiting.map { $0 as Any } ?? NSNull()]
                object.merge(stepJSON(step)) { _, new in new }
                printJSON(object)
                return
            }
            print("desk \(desk.device.settings.device)  \(desk.device.settings.user)  server \(desk.device.settings.server)")
            print("unsent resolutions: \(unsent)")
            print(stepLine(step))
            print("open items: \(waiting.map(String.init) ?? "unknown (server unreachable)")")
        }
    }
}
