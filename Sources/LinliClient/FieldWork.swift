import Foundation
import GRDB
import LinliCore
import LinliStore

/// The field work a client does beyond plain record edits: filling in
/// what a form can know, verifying kiosk submissions at the door, renewing
/// and ending rentals, logging volunteer hours.
public struct FieldWork: Sendable {
    public let records: Records
    public let identity: DeviceIdentity
    /// The grids the device covers (empty for staff: every grid).
    public let grids: [String]
    /// The rules across records; values they say are unique are checked
    /// when a record is made.
    public var invariants: [Invariant] = Invariant.community

    public init(records: Records, identity: DeviceIdentity, grids: [String]) {
        self.records = records
        self.identity = identity
        self.grids = grids
    }

    var store: ReplicaStore { records.store }

    /// What a new record of `table` gets unless given: the device's grid
    /// when it covers one, the recorder and the time for visits and
    /// problem reports, the first status of a rental or a problem.
    public func defaults(for table: TableSchema) -> [String: Value] {
        var values: [String: Value] = [:]
        if let gridField = table.gridField, grids.count == 1 { values[gridField] = .text(grids[0]) }
        let now = Value.integer(Int64(Date().timeIntervalSince1970 * 1000))
        switch table.name {
        case "visit":
            values["inspector"] = .text(identity.user)
            values["time"] = now
        case "problem":
            values["status"] = .text("已上报")
            values["reported_at"] = now
        case "rental":
            values["status"] = .text("已登记")
            values["registered_by"] = .text(identity.user)
        case "signup", "rental_prereg":
            values["status"] = .text("待核实")
        default: break
        }
        return values.filter { table.field($0.key) != nil }
    }

    /// Creates a record: `values` over the defaults. Returns it as stored.
    @discardableResult
    ///
    /// A value that must be unique (``Invariant/unique(name:table:field:)``,
    /// such as a person's citizen ID) and is already on a live record of
    /// this device is refused as a duplicate naming that record, unless
    /// `duplicateOK`: then it is recorded, and the server's review queue
    /// shows the two.
    public func create(_ table: TableSchema, _ values: [String: Value], duplicateOK: Bool = false) throws -> RecordView {
        var all = defaults(for: table).merging(values) { $1 }
        if let gridField = table.gridField, all[gridField] == nil || all[gridField]?.isNull == true {
            throw LinliError(.invalidInput, "say which grid the \(table.label) is in: \(gridField)=\(grids.isEmpty ? "GRID" : grids.joined(separator: "|"))")
        }
        all = all.filter { !$0.value.isNull }
        if !duplicateOK { try refuseDuplicates(table, all) }
        var id = RowID(high: 0, low: 0)
        try store.write(as: identity) { tx in id = try tx.create(table.name, all) }
        return try records.record(table, id)!
    }

    /// The records that already hold a value of `values` that must be
    /// unique, refused as invalid input naming the record that has it.
    func refuseDuplicates(_ table: TableSchema, _ values: [String: Value]) throws {
        for case .unique(_, let tableName, let fieldName) in invariants where tableName == table.name {
            guard let value = values[fieldName], let field = table.field(fieldName),
                  let existing = try records.sameValue(value, in: table, field: fieldName).first else { continue }
            throw LinliError(
                .invalidInput,
                "\(table.label.isEmpty ? table.name : table.label) \(existing.id.hex.prefix(8)) already has \(field.label.isEmpty ? field.name : field.label) \(FieldText.show(value, field: field, reveal: false)): \(existing.summary(reveal: false))",
                hint: "open it with `linli show \(existing.id.hex.prefix(8))` and edit it; if this is another person with the same number, add --duplicate-ok and the two go to the review queue")
        }
    }

    /// Changes fields of a record.
    @discardableResult
    public func update(_ table: TableSchema, _ id: RowID, _ values: [String: Value]) throws -> RecordView {
        guard !values.isEmpty else { throw LinliError(.invalidInput, "nothing to change: give field=value") }
        try store.write(as: identity) { tx in try tx.update(table.name, id, values) }
        return try records.record(table, id)!
    }

    public func delete(_ table: TableSchema, _ id: RowID) throws {
        try store.write(as: identity) { tx in try tx.delete(table.name, id) }
    }

    // MARK: Kiosk submissions

    /// Which record a kiosk submission becomes once verified.
    public static let submissionTargets = ["signup": "volunteer", "rental_prereg": "rental"]

    /// Verifies a kiosk submission at the door: makes the grid's record
    /// from it (a volunteer from a sign-up; a rental, and its house unless
    /// `house` is given, from a pre-registration), linked back to it, with
    /// `overrides` for what the inspector corrected or added.
    public func verify(_ submissionID: String, grid: String?, house: RowID?, overrides: [String]) throws -> RecordView {
        let (submissionTable, id, submission, target) = try unverified(submissionID)
        guard let grid = grid ?? (grids.count == 1 ? grids[0] : nil) else {
            throw LinliError(.invalidInput, "say which grid the resident lives in: --grid \(grids.joined(separator: "|"))")
        }
        let given = submission.values
        var values: [String: Value] = ["grid": .text(grid), "submission": .bytes(id.data)]
        var newHouse: [String: Value]?
        switch submissionTable.name {
        case "signup":
            for field in ["name", "phone", "skills", "team"] { values[field] = given[field] ?? .null }
            values["joined"] = .text(FieldText.today())
        default:
            for field in ["landlord", "landlord_phone", "lease_start", "lease_end"] { values[field] = given[field] ?? .null }
            values["status"] = .text("已登记")
            values["registered_by"] = .text(identity.user)
            if let house {
                guard let found = try records.record(try records.table("house"), house), !found.deleted,
                      found.values["grid"]?.text == grid else {
                    throw LinliError(.notFound, "house \(house.hex) is not a house of grid \(grid) on this device")
                }
                // The resident typed the address; the house must be that one,
                // number for number (building, unit, room), not a neighbour's.
                let typed = given["address"]?.text ?? ""
                let recorded = ["address", "unit", "room"].compactMap { found.values[$0]?.text }.joined(separator: " ")
                if !typed.isEmpty, Self.addressNumbers(typed) != Self.addressNumbers(recorded) {
                    throw LinliError(.invalidInput, "the pre-registration is for \(typed), but house \(house.hex.prefix(8)) is \(recorded)",
                                     hint: "give the house of that address, or leave out --house to record it as a new house")
                }
                values["house"] = .bytes(house.data)
            } else {
                newHouse = ["grid": .text(grid), "address": given["address"] ?? .null, "use": .text("出租")]
            }
        }
        values.merge(try records.parse(overrides, table: target)) { $1 }
        values = values.filter { !$0.value.isNull }
        var created = RowID(high: 0, low: 0)
        try store.write(as: identity) { tx in
            if let newHouse { values["house"] = .bytes(try tx.create("house", newHouse).data) }
            created = try tx.create(target.name, values)
        }
        return try records.record(target, created)!
    }

    /// Declines a kiosk submission that is not verified yet, with the
    /// reason (kept on the submission, which leaves the pending list): a
    /// sign-up by someone who is no resident, a pre-registration of a house
    /// that is not rented.
    public func reject(_ submissionID: String, reason: String) throws -> RecordView {
        let reason = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !reason.isEmpty else {
            throw LinliError(.invalidInput, "say why the submission is declined", hint: "add --reason \"…\", e.g. --reason \"非本社区居民\"")
        }
        let (table, id, submission, _) = try unverified(submissionID)
        if submission.values["status"]?.text == Self.declinedStatus {
            throw LinliError(.invalidInput, "this submission was already declined: \(submission.values["reason"]?.text ?? "no reason given")")
        }
        return try update(table, id, ["status": .text(Self.declinedStatus), "reason": .text(reason)])
    }

    /// The kiosk submission `submissionID` names, live and not verified
    /// yet, with the table of the record it becomes.
    func unverified(_ submissionID: String) throws -> (table: TableSchema, id: RowID, submission: RecordView, target: TableSchema) {
        let (table, id) = try records.resolve(submissionID)
        guard let targetName = Self.submissionTargets[table.name] else {
            throw LinliError(.invalidInput, "\(submissionID) is a \(table.label), not a kiosk submission")
        }
        let target = try records.table(targetName)
        if let existing = try records.referring(to: id, from: target, field: "submission").first {
            throw LinliError(.invalidInput, "this submission was already verified as \(target.label) \(existing.id.hex)",
                             hint: "to decline it after all, delete that record first")
        }
        guard let submission = try records.record(table, id), !submission.deleted else {
            throw LinliError(.notFound, "the submission \(submissionID) was withdrawn")
        }
        return (table, id, submission, target)
    }

    /// The status of a declined kiosk submission.
    public static let declinedStatus = "不予登记"

    /// The numbers of an address in order (幸福路12号2单元302 gives 12, 2,
    /// 302), full-width digits as ASCII: two ways of writing one address
    /// agree on them, and a neighbour's door does not.
    static func addressNumbers(_ address: String) -> [Int] {
        FormatText.halfWidth(address).split { !$0.isASCII || !$0.isNumber }.compactMap { Int($0.prefix(9)) }
    }

    // MARK: Rentals

    /// Renews a rental to `until`: a later lease end, status 已续租.
    public func renew(_ rentalID: String, until: String) throws -> RecordView {
        let (table, id) = try records.resolve(rentalID, in: "rental")
        let rental = try live(table, id)
        guard rental.values["status"]?.text != "已终止" else {
            throw LinliError(.invalidInput, "rental \(id.hex) was terminated; register a new rental instead")
        }
        let end = try records.parse(until, field: table.field("lease_end")!, table: table)
        if let current = rental.values["lease_end"]?.text, let new = end.text, new <= current {
            throw LinliError(.invalidInput, "a renewal must end after the current lease end \(current), not \(new)")
        }
        return try update(table, id, ["lease_end": end, "status": .text("已续租")])
    }

    /// Ends a rental on `date` (today if nil): status 已终止, the lease end
    /// moved forward to that date, and its tenants without a moving-out
    /// date moved out then.
    public func terminate(_ rentalID: String, on date: String?) throws -> RecordView {
        let (table, id) = try records.resolve(rentalID, in: "rental")
        let rental = try live(table, id)
        guard rental.values["status"]?.text != "已终止" else { throw LinliError(.invalidInput, "rental \(id.hex) is already terminated") }
        let day = try records.parse(date ?? FieldText.today(), field: table.field("lease_end")!, table: table)
        var values: [String: Value] = ["status": .text("已终止")]
        if let start = rental.values["lease_start"]?.text, let end = day.text, end <= start {
            throw LinliError(.invalidInput, "the rental began on \(start); it cannot end on \(end)")
        }
        if let current = rental.values["lease_end"]?.text, let end = day.text, end < current { values["lease_end"] = day }
        let tenants = try records.referring(to: id, from: try records.table("tenant"), field: "rental")
        try store.write(as: identity) { tx in
            try tx.update(table.name, id, values)
            for tenant in tenants where tenant.values["moved_out"]?.isNull ?? true {
                try tx.update("tenant", tenant.id, ["moved_out": day])
            }
        }
        return try records.record(table, id)!
    }

    // MARK: Volunteers

    /// Logs `hours` of service for a volunteer; returns the record and the
    /// volunteer's total hours.
    public func logHours(_ volunteerID: String, hours: Double, date: String?, activity: String?) throws -> (RecordView, Double) {
        let (volunteers, id) = try records.resolve(volunteerID, in: "volunteer")
        let volunteer = try live(volunteers, id)
        let table = try records.table("service_record")
        var values: [String: Value] = [
            "grid": volunteer.values["grid"] ?? .null, "volunteer": .bytes(id.data),
            "hours": try records.parse(String(hours), field: table.field("hours")!, table: table),
            "date": try records.parse(date ?? FieldText.today(), field: table.field("date")!, table: table),
        ]
        if let activity { values["activity"] = .bytes(try records.resolve(activity, in: "activity").1.data) }
        let record = try create(table, values)
        let total = try records.referring(to: id, from: table, field: "volunteer").reduce(0.0) { sum, service in
            switch service.values["hours"] {
            case .real(let real): sum + real
            case .integer(let integer): sum + Double(integer)
            default: sum
            }
        }
        return (record, total)
    }

    private func live(_ table: TableSchema, _ id: RowID) throws -> RecordView {
        guard let record = try records.record(table, id), !record.deleted else {
            throw LinliError(.notFound, "\(table.label) \(id.hex) is deleted or not on this device")
        }
        return record
    }
}

extension Records {
    /// Kiosk submissions on this replica that no record refers to yet:
    /// what the inspectors of the kiosk's grids still have to verify.
    public func pendingSubmissions() throws -> [RecordView] {
        var pending: [RecordView] = []
        for (submissionTable, targetTable) in FieldWork.submissionTargets.sorted(by: { $0.key < $1.key }) {
            guard let submissions = try? table(submissionTable), let target = try? table(targetTable) else { continue }
            for submission in try list(submissions, limit: 10_000).reversed()
            where try referring(to: submission.id, from: target, field: "submission").isEmpty
                && submission.values["status"]?.text != FieldWork.declinedStatus {
                pending.append(submission)
            }
        }
        return pending
    }

}

/// What `status` shows: the device, what waits to be sent, what the server
/// refused and why, conflicts and pending submissions in its scopes, and
/// digests per scope to compare replicas.
public struct DeviceStatus: Sendable {
    public var unsynced: Int
    public var lastSync: Date?
    public var refused: [PeerRefusal]
    public var quarantined: Int
    public var conflicts: [Conflict]
    public var pending: [RecordView]
    public var counts: [String: Int]
    public var digests: [String: String]
    /// The last comparison with the server's heads (PROTOCOL.md 2.6).
    public var step: SyncStep?

    public static func read(device: FieldDevice, store: ReplicaStore, records: Records) throws -> DeviceStatus {
        let scopes = try store.database.read { db in
            try String.fetchAll(db, sql: "SELECT DISTINCT scope FROM linli_log WHERE scope <> 'system' ORDER BY scope")
        }
        var digests: [String: String] = [:]
        for text in scopes { if let scope = Scope(text) { digests[text] = Hex.encode(try store.stateDigest(scope: scope)) } }
        let last = try store.clientValue("last_sync").flatMap(Double.init).map { Date(timeIntervalSince1970: $0 / 1000) }
        return DeviceStatus(
            unsynced: try store.outboxCount(device: device.device, peer: device.peerName),
            lastSync: last,
            refused: try store.refusals(peer: device.peerName),
            quarantined: try store.quarantined().count,
            conflicts: try store.conflicts().filter { !$0.table.hasPrefix(TrustSchema.reservedPrefix) },
            pending: device.role == .inspector || device.role == .staff ? try records.pendingSubmissions() : [],
            counts: try records.counts(),
            digests: digests,
            step: try SyncStep.last(in: store, cursorName: device.peerName))
    }
}
