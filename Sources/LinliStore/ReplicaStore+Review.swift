import Foundation
import GRDB
import LinliCore
import LinliCrypto
import LinliProtocol

/// The review queue: what the merge must not decide alone, read from the
/// merged state every time it is asked for, so it covers every merge so
/// far and an item is gone as soon as what it shows is settled.
///
/// - conflicts and deletes racing edits: fields with more than one
///   survivor (the view's `_conflicts` column, indexed);
/// - refused change sets: `linli_quarantine`, less those a resolution
///   (``ReviewSchema``) dismissed or resubmitted;
/// - broken invariants (``Invariant``): one query per invariant over the
///   views.
extension ReplicaStore {
    /// The open items in `scopes` (every scope when nil), oldest first,
    /// without field histories.
    public func reviewQueue(scopes: Set<Scope>? = nil, filter: ReviewFilter = ReviewFilter(),
                            invariants: [Invariant] = Invariant.community) throws -> [ReviewItem] {
        try reviewQueue(scopes: scopes, filter: filter, kinds: filter.kind.map { [$0] } ?? Set(ReviewKind.allCases), invariants: invariants)
    }

    /// The shortest start of an item id taken for the item: its kind's
    /// letter and three more characters.
    static let itemPrefixCharactersMin = 4

    /// One open item with its field's history, or nil when it is settled
    /// (or never was). Only the kind its id names is looked for; a unique
    /// start of an id (at least itemPrefixCharactersMin characters) names it too.
    public func reviewItem(_ id: String, scopes: Set<Scope>? = nil, invariants: [Invariant] = Invariant.community) throws -> ReviewItem? {
        let kinds: Set<ReviewKind> = switch id.first {
        case "c": [.conflict, .deleteVersusEdit]
        case "r": [.refused]
        case "i": [.invariant]
        default: []
        }
        let open = try reviewQueue(scopes: scopes, filter: ReviewFilter(), kinds: kinds, invariants: invariants)
        // A unique start of an id names the item, as record ids do.
        var found = open.first { $0.id == id }
        if found == nil, id.count >= Self.itemPrefixCharactersMin {
            let matches = open.filter { $0.id.hasPrefix(id) }
            if matches.count > 1 {
                throw LinliError(.invalidInput, "\(matches.count) open items start with \(id): \(matches.prefix(5).map(\.id).joined(separator: ", "))\(matches.count > 5 ? ", …" : "")",
                                 hint: "give more of the id")
            }
            found = matches.first
        }
        guard var item = found else { return nil }
        if let table = item.table, let rowHex = item.row, let row = RowID(hex: rowHex), let field = item.field,
           let scope = Scope(item.scope) {
            item.history = try fieldHistory(table: table, row: row, field: field, scope: scope)
        }
        return item
    }

    private func reviewQueue(scopes: Set<Scope>?, filter: ReviewFilter, kinds: Set<ReviewKind>, invariants: [Invariant]) throws -> [ReviewItem] {
        let now = clock()
        let items = try run {
            try writer.read { db -> [ReviewItem] in
                let lookup = try NameLookup(db)
                var items: [ReviewItem] = []
                if kinds.contains(.conflict) || kinds.contains(.deleteVersusEdit) {
                    items += try conflictItems(db, lookup: lookup, table: filter.table)
                }
                if kinds.contains(.refused) { items += try refusedItems(db) }
                if kinds.contains(.invariant) {
                    for invariant in invariants { items += try invariantItems(db, invariant, lookup: lookup) }
                }
                return items
            }
        }
        return items.filter { item in
            kinds.contains(item.kind) && filter.matches(item, now: now) && (scopes.map { readable in
                ([item.scope] + item.records.map(\.scope)).contains { readable.contains(Scope($0) ?? .system) }
            } ?? true)
        }.sorted { ($0.detectedAt, $0.id) < ($1.detectedAt, $1.id) }
    }

    /// Every write this replica holds to one field, oldest first.
    public func fieldHistory(table: String, row: RowID, field: String, scope: Scope) throws -> [ReviewHistoryEntry] {
        try run {
            try writer.read { db in
                let survivors = try survivorsWithAuthors(db, table: table, row: row, lookup: NameLookup(db))[field] ?? []
                let alive = Set(survivors.map(\.dot))
                var entries: [ReviewHistoryEntry] = []
                // The row id's 16 bytes appear as they are in every envelope
                // that writes the row: a cheap filter before decoding.
                let rows = try Row.fetchAll(db, sql: """
                    SELECT envelope FROM linli_log WHERE scope = ? AND instr(envelope, ?) > 0 ORDER BY position
                    """, arguments: [scope.description, row.data])
                for stored in rows {
                    guard let signed = try? SignedChangeSet(envelope: stored["envelope"]) else { continue }
                    let header = signed.header
                    signed.changeSet.forEachWrite { change, write, dot in
                        guard change.table == table, change.row == row, write.field == field else { return }
                        entries.append(ReviewHistoryEntry(
                            value: write.value, dot: ReviewDot(dot), user: header.user, time: header.hlc.milliseconds,
                            replaced: write.replaces.count, survives: alive.contains(dot)))
                    }
                }
                return entries.sorted { ($0.time, $0.dot.device, $0.dot.seq) < ($1.time, $1.dot.device, $1.dot.seq) }
            }
        }
    }

    // MARK: - Items

    private static func itemID(_ prefix: String, _ parts: [String]) -> String {
        prefix + Hex.encode(Blake2b256.hash(Data(parts.joined(separator: "\u{1F}").utf8)).prefix(5))
    }

    private static func grid(of scope: String) -> String? {
        if case .grid(let grid) = Scope(scope) { grid } else { nil }
    }

    private func conflictItems(_ db: Database, lookup: NameLookup, table tableName: String?) throws -> [ReviewItem] {
        try conflicts(db, lookup: lookup, table: tableName, scope: nil).compactMap { conflict, deletion in
            guard conflict.table != ReviewSchema.resolution, let table = schema.table(conflict.table) else { return nil }
            let racesDelete = conflict.kind == .deleteVersusEdit
            let label = table.field(conflict.field)?.label ?? conflict.field
            let shown = conflict.values.map { "\($0.value)（\($0.user)）" }.joined(separator: " / ")
            var item = ReviewItem(
                id: Self.itemID("c", [table.name, conflict.row.hex, conflict.field]), kind: racesDelete ? .deleteVersusEdit : .conflict,
                scope: conflict.scope, grid: Self.grid(of: conflict.scope), table: table.name, row: conflict.row.hex, field: conflict.field,
                detectedAt: conflict.values.map(\.hlc.milliseconds).max() ?? 0,
                summary: "\(table.label.isEmpty ? table.name : table.label) \(conflict.row.hex.prefix(8)) \(label): \(shown)")
            item.values = conflict.values.map(ReviewValue.init)
            if racesDelete { item.deletion = deletion.map(ReviewValue.init) }
            return item
        }
    }

    private func refusedItems(_ db: Database) throws -> [ReviewItem] {
        let settled = Set(try String.fetchAll(db, sql: """
            SELECT refused_hash FROM \(StoreSchema.quoted(ReviewSchema.resolution)) WHERE _deleted = 0 AND refused_hash IS NOT NULL
            """))
        var items: [ReviewItem] = []
        for stored in try Row.fetchAll(db, sql: "SELECT * FROM linli_quarantine ORDER BY id") {
            let hash = Hex.encode(stored["hash"] as Data)
            if settled.contains(hash) { continue }
            let signed = try? SignedChangeSet(envelope: stored["envelope"])
            var writes: [ReviewWrite] = []
            signed?.changeSet.forEachWrite { change, write, _ in
                writes.append(ReviewWrite(table: change.table, row: change.row.hex, field: write.field, value: write.value,
                                          replaces: write.replaces.map(ReviewDot.init)))
            }
            let scope = signed?.header.scope.description ?? "unknown"
            let code: String = stored["code"]
            let message: String = stored["message"]
            let first = writes.first
            var item = ReviewItem(
                id: "r" + hash.prefix(10), kind: .refused, scope: scope, grid: Self.grid(of: scope),
                table: first?.table, row: first?.row, field: nil, detectedAt: UInt64(stored["received_at"] as Int64),
                summary: "\(signed?.header.user ?? "?") · \(writes.count) writes · \(code): \(message)")
            item.refusal = ReviewRefusal(
                hash: hash, code: code, message: message, device: signed?.header.device.hex, seq: signed?.header.seq,
                user: signed?.header.user, receivedAt: UInt64(stored["received_at"] as Int64), writes: writes)
            items.append(item)
        }
        return items
    }

    /// A record of an invariant item: the survivors of `fields` with authors.
    private func record(_ db: Database, table: String, row: RowID, scope: String, fields: [String], lookup: NameLookup) throws -> ReviewRecord {
        let survivors = try survivorsWithAuthors(db, table: table, row: row, lookup: lookup)
        var chosen: [String: [ReviewValue]] = [:]
        for field in fields { chosen[field] = (survivors[field] ?? []).map(ReviewValue.init) }
        return ReviewRecord(table: table, row: row.hex, scope: scope, fields: chosen)
    }

    private func invariantItem(_ invariant: Invariant, records: [ReviewRecord], table: String, field: String?, summary: String,
                               naming: [String] = []) -> ReviewItem {
        let newest = records.flatMap { $0.fields.values.flatMap { $0.map(\.time) } }.max() ?? 0
        // The first scope in order, so an item across grids is placed the same way every time.
        let scope = records.map(\.scope).min() ?? "unknown"
        var item = ReviewItem(
            id: Self.itemID("i", [invariant.name] + naming + records.map(\.row).sorted()), kind: .invariant, scope: scope, grid: Self.grid(of: scope),
            table: table, row: records.first?.row, field: field, detectedAt: newest, summary: summary)
        item.invariant = invariant.name
        item.explanation = invariant.explanation
        item.records = records
        return item
    }

    private func has(_ table: String, _ fields: [String]) -> Bool {
        guard let declared = schema.table(table) else { return false }
        return fields.allSatisfy { declared.field($0) != nil }
    }

    private func invariantItems(_ db: Database, _ invariant: Invariant, lookup: NameLookup) throws -> [ReviewItem] {
        switch invariant {
        case .unique(_, let table, let field):
            guard has(table, [field]), let gridField = schema.table(table)?.gridField else { return [] }
            let q = StoreSchema.quoted
            // Values are compared in their format's one form: an older
            // device's …x equals …X (linli_normalised).
            let format = schema.table(table)?.field(field)?.format?.rawValue
            let rows = try Row.fetchAll(db, sql: """
                WITH shown AS (
                    SELECT id, _scope, \(q(gridField)) AS grid, linli_normalised(?, \(q(field))) AS value FROM \(q(table))
                    WHERE _deleted = 0 AND \(q(field)) IS NOT NULL)
                SELECT * FROM shown WHERE value IN (SELECT value FROM shown GROUP BY value HAVING count(*) > 1)
                ORDER BY id
                """, arguments: [format])
            guard !rows.isEmpty else { return [] }
            let communities = try communityOfGrid(db)
            var groups: [String: [(RowID, String)]] = [:]
            var order: [String] = []
            for stored in rows {
                guard let row = RowID(bytes: stored["id"] as Data) else { continue }
                let grid: String = stored["grid"] ?? ""
                let value = (stored["value"] as DatabaseValue).description
                let key = (communities[grid] ?? "grid:" + grid) + "\u{1F}" + value
                if groups[key] == nil { order.append(key) }
                groups[key, default: []].append((row, stored["_scope"]))
            }
            return try order.compactMap { key in
                guard let members = groups[key], members.count > 1 else { return nil }
                let records = try members.map { try record(db, table: table, row: $0.0, scope: $0.1, fields: [field, "name"].filter { has(table, [$0]) }, lookup: lookup) }
                return invariantItem(invariant, records: records, table: table, field: field,
                                     summary: "\(invariant.explanation): \(records.count) \(table) \(records.map { String($0.row.prefix(8)) }.joined(separator: ", "))")
            }
        case .noChildrenWhen(_, let parent, let field, let values, let child, let reference, let endField):
            guard has(parent, [field]), has(child, [reference, endField]), !values.isEmpty else { return [] }
            let q = StoreSchema.quoted
            let rows = try Row.fetchAll(db, sql: """
                SELECT p.id AS parent, p._scope AS parent_scope, c.id AS child, c._scope AS child_scope
                FROM \(q(child)) c JOIN \(q(parent)) p ON p.id = c.\(q(reference))
                WHERE c._deleted = 0 AND p._deleted = 0 AND c.\(q(endField)) IS NULL
                  AND p.\(q(field)) IN (\(values.map { _ in "?" }.joined(separator: ", ")))
                ORDER BY p.id, c.id
                """, arguments: StatementArguments(values))
            var byParent: [Data: (String, [(RowID, String)])] = [:]
            var order: [Data] = []
            for stored in rows {
                let parentID: Data = stored["parent"]
                guard let childRow = RowID(bytes: stored["child"] as Data) else { continue }
                if byParent[parentID] == nil { order.append(parentID); byParent[parentID] = (stored["parent_scope"], []) }
                byParent[parentID]?.1.append((childRow, stored["child_scope"]))
            }
            return try order.compactMap { parentID in
                guard let (parentScope, children) = byParent[parentID], let parentRow = RowID(bytes: parentID) else { return nil }
                var records = [try record(db, table: parent, row: parentRow, scope: parentScope, fields: [field], lookup: lookup)]
                records += try children.map { try record(db, table: child, row: $0.0, scope: $0.1, fields: [endField, "name"].filter { has(child, [$0]) }, lookup: lookup) }
                return invariantItem(invariant, records: records, table: parent, field: field,
                                     summary: "\(invariant.explanation): \(parent) \(parentRow.hex.prefix(8)), \(children.count) \(child)")
            }
        case .dateOrder(_, let table, let start, let end):
            guard has(table, [start, end]) else { return [] }
            let q = StoreSchema.quoted
            let rows = try Row.fetchAll(db, sql: """
                SELECT id, _scope FROM \(q(table))
                WHERE _deleted = 0 AND \(q(start)) IS NOT NULL AND \(q(end)) IS NOT NULL AND \(q(end)) < \(q(start)) ORDER BY id
                """)
            return try rows.compactMap { stored in
                guard let row = RowID(bytes: stored["id"] as Data) else { return nil }
                let found = try record(db, table: table, row: row, scope: stored["_scope"], fields: [start, end], lookup: lookup)
                return invariantItem(invariant, records: [found], table: table, field: end,
                                     summary: "\(invariant.explanation): \(table) \(row.hex.prefix(8)) \(found.shown(start)) → \(found.shown(end))")
            }
        case .liveReferences:
            let q = StoreSchema.quoted
            var items: [ReviewItem] = []
            for table in schema.tables where !table.name.hasPrefix(TrustSchema.reservedPrefix) {
                for field in table.fields where field.type == .reference {
                    guard let target = field.references, schema.table(target) != nil else { continue }
                    let rows = try Row.fetchAll(db, sql: """
                        SELECT c.id, c._scope, p.id AS target, p._scope AS target_scope
                        FROM \(q(table.name)) c LEFT JOIN \(q(target)) p ON p.id = c.\(q(field.name))
                        WHERE c._deleted = 0 AND c.\(q(field.name)) IS NOT NULL AND (p.id IS NULL OR p._deleted = 1)
                        ORDER BY c.id
                        """)
                    for stored in rows {
                        guard let row = RowID(bytes: stored["id"] as Data) else { continue }
                        var records = [try record(db, table: table.name, row: row, scope: stored["_scope"], fields: [field.name], lookup: lookup)]
                        if let targetBytes = stored["target"] as Data?, let targetRow = RowID(bytes: targetBytes) {
                            records.append(try record(db, table: target, row: targetRow, scope: stored["target_scope"], fields: [MergeRules.deletedField], lookup: lookup))
                        }
                        let what = stored["target"] == nil ? "missing" : "deleted"
                        // One item per reference: a row may name two missing records.
                        items.append(invariantItem(invariant, records: records, table: table.name, field: field.name,
                                                   summary: "\(invariant.explanation): \(table.name) \(row.hex.prefix(8)).\(field.name) → \(target) (\(what))",
                                                   naming: [table.name, field.name]))
                    }
                }
            }
            return items
        case .sumAtMost(_, let table, let group, let field, let maximum):
            guard has(table, group + [field]), !group.isEmpty else { return [] }
            let q = StoreSchema.quoted
            let key = group.map(q).joined(separator: ", ")
            let groups = try Row.fetchAll(db, sql: """
                SELECT \(key), sum(\(q(field))) AS total FROM \(q(table))
                WHERE _deleted = 0 AND \(group.map { "\(q($0)) IS NOT NULL" }.joined(separator: " AND "))
                GROUP BY \(key) HAVING sum(\(q(field))) > ? ORDER BY \(key)
                """, arguments: [maximum])
            return try groups.map { stored in
                let values = group.map { stored[$0] as DatabaseValue }
                let members = try Row.fetchAll(db, sql: """
                    SELECT id, _scope FROM \(q(table)) WHERE _deleted = 0 AND \(group.map { "\(q($0)) = ?" }.joined(separator: " AND ")) ORDER BY id
                    """, arguments: StatementArguments(values))
                let records = try members.compactMap { member -> ReviewRecord? in
                    guard let row = RowID(bytes: member["id"] as Data) else { return nil }
                    return try record(db, table: table, row: row, scope: member["_scope"], fields: group + [field], lookup: lookup)
                }
                let total: Double = stored["total"]
                return invariantItem(invariant, records: records, table: table, field: field,
                                     summary: "\(invariant.explanation): \(records.count) \(table), \(FieldSchema.show(total)) in all, at most \(FieldSchema.show(maximum))")
            }
        }
    }

    /// Grid name → community: from the area register when it says so.
    private func communityOfGrid(_ db: Database) throws -> [String: String] {
        guard has("area", ["level", "code", "parent"]) else { return [:] }
        var result: [String: String] = [:]
        for stored in try Row.fetchAll(db, sql: "SELECT code, parent FROM area WHERE _deleted = 0 AND level = '网格' AND code IS NOT NULL AND parent IS NOT NULL") {
            result[stored["code"]] = "community:" + Hex.encode(stored["parent"] as Data)
        }
        return result
    }
}

// MARK: - Resolving

extension ReplicaStore {
    /// Resolves items as `identity`: each resolution's writes and its audit
    /// record (``ReviewSchema``) go into one signed change set per scope,
    /// merged here. The writes replace exactly the values the item showed,
    /// so a value that arrived after the item was read stays in conflict.
    /// Returns the change sets, for the outbox.
    @discardableResult
    public func resolve(_ resolutions: [(item: ReviewItem, action: ReviewAction)], note: String,
                        as identity: DeviceIdentity) throws -> [SignedChangeSet] {
        let note = note.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !note.isEmpty else {
            throw LinliError(.invalidInput, "a resolution needs a note saying why", hint: "add --note \"…\"")
        }
        guard resolutions.count * 2 <= Limits.rowsPerChangeSetMax else {
            throw LinliError(.overLimit, "\(resolutions.count) resolutions at once; at most \(Limits.rowsPerChangeSetMax / 2) per change set",
                             hint: "resolve in smaller groups")
        }
        return try write(as: identity) { tx in
            for (item, action) in resolutions { try Self.resolve(item, action, note: note, in: tx) }
        }
    }

    /// The dots of the values this replica holds for one field of one row.
    static func survivorDots(_ db: Database, table: String, row: RowID, field: String) throws -> Set<Dot> {
        guard let state = try Data.fetchOne(db, sql: """
            SELECT r.state FROM linli_row_state r JOIN linli_name t ON t.n = r.table_n WHERE t.name = ? AND r.row = ?
            """, arguments: [table, row.data]),
            let fieldN = try Int64.fetchOne(db, sql: "SELECT n FROM linli_name WHERE name = ?", arguments: [field]) else { return [] }
        var dots: Set<Dot> = []
        for stored in try RowStateCodec.decode(state) where stored.fieldN == fieldN {
            guard let bytes = try Data.fetchOne(db, sql: "SELECT device FROM linli_device WHERE n = ?", arguments: [stored.deviceN]),
                  let device = DeviceID(bytes: bytes) else {
                throw LinliError(.storage, "a row state names a device this replica does not know; run a rebuild")
            }
            dots.insert(Dot(device: device, seq: stored.seq, index: stored.index))
        }
        return dots
    }

    static func resolve(_ item: ReviewItem, _ action: ReviewAction, note: String, in tx: LocalTransaction) throws {
        guard let scope = Scope(item.scope) ?? (item.kind == .refused ? .public : nil) else {
            throw LinliError(.invalidInput, "item \(item.id) names scope \(item.scope), which is not a scope")
        }
        // A refused change set of the system scope (or one that could not
        // be read) is recorded in the public scope: its record holds no data.
        let recordScope = scope == .system ? Scope.public : scope
        var audit: [String: Value] = ["kind": .text(item.kind.rawValue), "item": .text(item.id), "note": .text(note)]
        if let table = item.table { audit["subject_table"] = .text(table) }
        if let row = item.row { audit["subject_row"] = .text(row) }
        if let field = item.field { audit["subject_field"] = .text(field) }

        func rowID(_ hex: String?) throws -> RowID {
            guard let hex, let row = RowID(hex: hex) else { throw LinliError(.invalidInput, "item \(item.id) names no record") }
            return row
        }
        func dots(_ values: [ReviewValue]) throws -> [Dot] {
            try values.map { value in
                guard let dot = value.dot.dot else { throw LinliError(.invalidInput, "item \(item.id) names a write of an unreadable device") }
                return dot
            }
        }
        func replacedText(_ values: [ReviewValue]) -> Value {
            let list = values.map { ["value": $0.value.description, "user": $0.user, "device": $0.dot.device, "seq": String($0.dot.seq), "time": String($0.time)] }
            let data = (try? JSONSerialization.data(withJSONObject: list, options: [.sortedKeys])) ?? Data()
            return .text(String(decoding: data, as: UTF8.self))
        }

        switch (item.kind, action) {
        case (.conflict, _), (.deleteVersusEdit, _):
            guard let table = item.table, let field = item.field, item.values.count > 1 else {
                throw LinliError(.invalidInput, "item \(item.id) is not a field in conflict")
            }
            let row = try rowID(item.row)
            let value: Value
            let decision: ResolutionDecision
            switch action {
            case .choose(let index):
                guard item.values.indices.contains(index) else {
                    throw LinliError(.invalidInput, "item \(item.id) has values 1 to \(item.values.count); there is no value \(index + 1)")
                }
                value = item.values[index].value
                decision = .chosen
            case .correct(let corrected):
                value = corrected
                decision = .corrected
            case .newest:
                value = item.newestValue!.value
                decision = .newestWins
            default:
                throw LinliError(.invalidInput, "a conflict is resolved by choosing a value or entering a corrected one, not by \(action)")
            }
            try tx.settle(table, row, scope: scope, field: field, value: value, replacing: try dots(item.values))
            // Keeping an edit that raced a delete brings the row back.
            if item.kind == .deleteVersusEdit, !value.isNull, !item.deletion.isEmpty {
                try tx.settle(table, row, scope: scope, field: MergeRules.deletedField, value: .boolean(false), replacing: try dots(item.deletion))
            }
            audit["decision"] = .text(decision.rawValue)
            audit["value"] = .text(value.description)
            audit["replaced"] = replacedText(item.values)
        case (.refused, .dismiss):
            guard let refusal = item.refusal else { throw LinliError(.invalidInput, "item \(item.id) is not a refused change set") }
            audit["decision"] = .text(ResolutionDecision.dismissed.rawValue)
            audit["refused_hash"] = .text(refusal.hash)
        case (.refused, .resubmit(let corrections)):
            guard let refusal = item.refusal, !refusal.writes.isEmpty else {
                throw LinliError(.invalidInput, "item \(item.id) has no writes to submit again")
            }
            guard scope != .system else {
                throw LinliError(.notPermitted, "trust records are the authority's; a refused one cannot be submitted again at the desk")
            }
            let known = Set(refusal.writes.map(\.field))
            for field in corrections.keys where !known.contains(field) {
                throw LinliError(.invalidInput, "the refused change set writes no field \(field); it writes \(known.sorted().joined(separator: ", "))")
            }
            // Staff sign what they saw: the values shown, not a deletion a
            // refused device asked for, and not values it named as replaced
            // that are no longer (or not yet) here. A dot that has not
            // arrived would be replaced before it arrives, and its value
            // would never be shown to anyone.
            if let deletion = refusal.writes.first(where: { $0.field == MergeRules.deletedField && $0.value == .boolean(true) }) {
                throw LinliError(.notPermitted, "the refused change set deletes \(deletion.table) \(deletion.row.prefix(8)); the desk does not carry out a refused deletion",
                                 hint: "dismiss it; if the record should go, delete it yourself after checking it")
            }
            for write in refusal.writes {
                let named = try write.replaces.map { dot -> Dot in
                    guard let dot = dot.dot else { throw LinliError(.invalidInput, "a write of item \(item.id) names an unreadable device") }
                    return dot
                }
                let row = try rowID(write.row)
                let live = named.isEmpty ? [] : try survivorDots(tx.db, table: write.table, row: row, field: write.field)
                try tx.settle(write.table, row, scope: scope, field: write.field,
                              value: corrections[write.field] ?? write.value, replacing: named.filter(live.contains))
            }
            audit["decision"] = .text(ResolutionDecision.resubmitted.rawValue)
            audit["refused_hash"] = .text(refusal.hash)
            if !corrections.isEmpty {
                audit["value"] = .text(corrections.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))
            }
        case (.invariant, .edit(let table, let rowHex, let field, let value)):
            guard let target = item.records.first(where: { $0.table == table && $0.row.hasPrefix(rowHex.lowercased()) }) else {
                throw LinliError(.invalidInput, "item \(item.id) involves no \(table) \(rowHex)",
                                 hint: "the records are \(item.records.map { "\($0.table) \($0.row.prefix(8))" }.joined(separator: ", "))")
            }
            guard let current = target.fields[field] else {
                throw LinliError(.invalidInput, "item \(item.id) does not show \(table).\(field); the fields are \(target.fields.keys.sorted().joined(separator: ", "))")
            }
            guard let targetScope = Scope(target.scope) else { throw LinliError(.invalidInput, "record \(target.row) has no scope") }
            try tx.settle(table, try rowID(target.row), scope: targetScope, field: field, value: value, replacing: try dots(current))
            audit["decision"] = .text(ResolutionDecision.corrected.rawValue)
            audit["subject_table"] = .text(table)
            audit["subject_row"] = .text(target.row)
            audit["subject_field"] = .text(field)
            audit["value"] = .text(value.description)
            audit["replaced"] = replacedText(current)
            try tx.record(ReviewSchema.resolution, scope: targetScope == .system ? .public : targetScope, audit)
            return
        default:
            throw LinliError(.invalidInput, "a \(item.kind.rawValue) item cannot be resolved by \(action)")
        }
        try tx.record(ReviewSchema.resolution, scope: recordScope, audit)
    }
}
