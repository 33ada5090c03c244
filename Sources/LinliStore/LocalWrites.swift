import Foundation
import GRDB
import LinliCore
import LinliCrypto
import LinliProtocol

/// The device and person making local changes.
public struct DeviceIdentity: Sendable {
    public let device: DeviceID
    public let key: SigningKey
    public let user: String

    public init(device: DeviceID, key: SigningKey, user: String) {
        self.device = device
        self.key = key
        self.user = user
    }
}

/// A local transaction: creates, updates and deletes rows of declared
/// tables. Nothing is written until the transaction commits; then each
/// scope's writes become one signed change set, merged into the replica in
/// the same database transaction.
///
/// Every write replaces the survivors this replica holds for the field at
/// commit time, so writing a field that is in conflict resolves the
/// conflict.
public final class LocalTransaction {
    let schema: Schema
    let db: Database
    fileprivate var rows: [PendingRow] = []
    fileprivate var rowIndex: [PendingKey: Int] = [:]
    let kioskScope: Scope

    fileprivate struct PendingKey: Hashable {
        let table: String
        let row: RowID
    }

    fileprivate struct PendingRow {
        let table: String
        let row: RowID
        let scope: Scope
        var values: [String: Value]
        var deleting: Bool
        /// Fields whose write replaces exactly these dots (what a person
        /// saw and judged), not the survivors this replica holds.
        var replacing: [String: [Dot]] = [:]
    }

    /// The moment the changes are made (the store's clock), which rules
    /// about time judge by, as the gatekeeper judges by the change set's.
    let now: UInt64

    init(schema: Schema, db: Database, device: DeviceID, now: UInt64) {
        self.schema = schema
        self.db = db
        self.now = now
        self.kioskScope = .kiosk(device)
    }

    /// Creates a row and returns its new id. Required fields must be given;
    /// the scope comes from the table's scope rule.
    @discardableResult
    public func create(_ tableName: String, _ values: [String: Value]) throws -> RowID {
        let table = try declaredTable(tableName)
        try check(table, values)
        try checkRequired(table, values)
        try checkRules(table, values, written: Set(values.keys))
        try checkReferences(table, values, scope: nil)
        let scope: Scope
        switch table.scope {
        case .gridField(let gridField):
            guard let grid = values[gridField]?.text, Scope.isValidGridName(grid) else {
                throw LinliError(.invalidInput, "a new \(table.name) needs its grid in field \(gridField)")
            }
            scope = .grid(grid)
        case .public: scope = .public
        case .kiosk: scope = kioskScope
        case .system: scope = .system
        case .subject:
            throw LinliError(.invalidInput, "a \(table.name) lives in the scope of the record it is about; write it with record(_:scope:_:)")
        }
        return addNew(table, scope: scope, values)
    }

    /// Changes fields of an existing row.
    public func update(_ tableName: String, _ row: RowID, _ values: [String: Value]) throws {
        let table = try declaredTable(tableName)
        try check(table, values)
        if case .gridField(let gridField) = table.scope, values[gridField] != nil {
            let current = try currentScope(table.name, row)
            if case .grid(let grid) = current, values[gridField]?.text != grid {
                throw LinliError(.invalidInput, "the grid of a \(table.name) cannot change; record it anew in the other grid and delete this one")
            }
        }
        let scope = try currentScope(table.name, row)
        if try isDeleted(table.name, row), values[MergeRules.deletedField]?.boolean != false {
            throw LinliError(.invalidInput, "\(table.name) \(row.hex) is deleted; restore it before changing it")
        }
        try checkReferences(table, values, scope: scope)
        if !table.rules.isEmpty {
            // The row as it will be: what its view shows, then what this
            // transaction wrote to it earlier, then these values. A field in
            // conflict and not written here is not compared, as on the
            // gatekeeper.
            var (resulting, conflicted) = try shownValues(table, row)
            if let pending = rowIndex[PendingKey(table: table.name, row: row)] {
                resulting.merge(rows[pending].values) { $1 }
                conflicted.subtract(rows[pending].values.keys)
            }
            resulting.merge(values) { $1 }
            for field in conflicted where values[field] == nil { resulting[field] = nil }
            try checkRules(table, resulting, written: Set(values.keys))
        }
        add(table.name, row, scope: scope, values: values, deleting: false)
    }

    /// Restores a deleted row; its fields stay empty until written again.
    public func restore(_ tableName: String, _ row: RowID, _ values: [String: Value] = [:]) throws {
        try update(tableName, row, values.merging([MergeRules.deletedField: .boolean(false)]) { $1 })
    }

    /// Deletes a row: marks it deleted and clears every field. An edit made
    /// concurrently elsewhere survives beside the cleared value, so it shows
    /// up as a conflict rather than vanishing.
    public func delete(_ tableName: String, _ row: RowID) throws {
        let table = try declaredTable(tableName)
        let scope = try currentScope(table.name, row)
        var values: [String: Value] = [MergeRules.deletedField: .boolean(true)]
        // The grid field stays: it names the scope, which never changes.
        for field in table.fields where field.name != table.gridField { values[field.name] = .null }
        add(table.name, row, scope: scope, values: values, deleting: true)
    }

    /// Settles a field: writes `value` replacing exactly the values named
    /// by `replacing` (the competing values a person judged), whether or not
    /// this replica holds the row. A value that arrived since and was not
    /// judged is not replaced, so it stays in conflict for the next look.
    public func settle(_ tableName: String, _ row: RowID, scope: Scope, field: String, value: Value, replacing: [Dot]) throws {
        let table = try declaredTable(tableName)
        if field != MergeRules.deletedField { try check(table, [field: value]) }
        guard replacing.count <= Limits.replacedDotsPerWriteMax else {
            throw LinliError(.overLimit, "settling \(table.name).\(field) would replace \(replacing.count) values; replacedDotsPerWriteMax is \(Limits.replacedDotsPerWriteMax)")
        }
        add(table.name, row, scope: scope, values: [field: value], deleting: false)
        rows[rowIndex[PendingKey(table: table.name, row: row)]!].replacing[field] = replacing.sorted()
    }

    /// Creates a row of a table whose records live in the scope of what
    /// they are about (``ScopeRule/subject``), such as a resolution.
    @discardableResult
    public func record(_ tableName: String, scope: Scope, _ values: [String: Value]) throws -> RowID {
        let table = try declaredTable(tableName)
        guard case .subject = table.scope else {
            throw LinliError(.invalidInput, "\(table.name) takes its scope from its own fields; use create")
        }
        guard scope != .system else {
            throw LinliError(.outOfScope, "a \(table.name) cannot be written in the system scope")
        }
        try check(table, values)
        try checkRequired(table, values)
        return addNew(table, scope: scope, values)
    }

    private func checkRequired(_ table: TableSchema, _ values: [String: Value]) throws(LinliError) {
        for field in table.fields where field.required && (values[field.name] ?? .null).isNull {
            throw LinliError(.invalidInput, "\(field.label.isEmpty ? field.name : "\(field.label) (\(field.name))") is required for a new \(table.name)")
        }
    }

    /// A new row: its non-empty values, not deleted.
    private func addNew(_ table: TableSchema, scope: Scope, _ values: [String: Value]) -> RowID {
        let row = RowID.random()
        add(table.name, row, scope: scope, values: values.filter { !$0.value.isNull }.merging([MergeRules.deletedField: .boolean(false)]) { $1 }, deleting: false)
        return row
    }

    private func add(_ table: String, _ row: RowID, scope: Scope, values: [String: Value], deleting: Bool) {
        let key = PendingKey(table: table, row: row)
        if let index = rowIndex[key] {
            rows[index].values.merge(values) { $1 }
            rows[index].deleting = rows[index].deleting || deleting
        } else {
            rowIndex[key] = rows.count
            rows.append(PendingRow(table: table, row: row, scope: scope, values: values, deleting: deleting))
        }
    }

    private func declaredTable(_ name: String) throws(LinliError) -> TableSchema {
        guard let table = schema.table(name) else {
            throw LinliError(.invalidInput, "there is no table \(name); the tables are \(schema.tables.map(\.name).joined(separator: ", "))")
        }
        return table
    }

    private func check(_ table: TableSchema, _ values: [String: Value]) throws(LinliError) {
        for (name, value) in values {
            if name == MergeRules.deletedField, value.boolean != nil { continue }
            guard let field = table.field(name) else {
                throw LinliError(.invalidInput, "\(table.name) has no field \(name); its fields are \(table.fields.map(\.name).joined(separator: ", "))")
            }
            do { try field.check(value, table: table.name) } catch {
                throw LinliError(.invalidInput, error.message)
            }
        }
    }

    /// Each reference written must point at a record this replica holds,
    /// that is not deleted, and, when both live in grids, in the same grid
    /// (a resident of G1 is not put in a house of G2). Records made earlier
    /// in this transaction count. `scope` is the row's own scope for an
    /// update; a new row's grid comes from `values`.
    private func checkReferences(_ table: TableSchema, _ values: [String: Value], scope: Scope?) throws {
        for field in table.fields where field.type == .reference {
            guard case .bytes(let bytes) = values[field.name] ?? .null, let target = field.references, let targetTable = schema.table(target),
                  let targetRow = RowID(bytes: bytes) else { continue }
            let named = "\(table.name).\(field.name)\(field.label.isEmpty ? "" : " (\(field.label))")"
            let targetName = targetTable.label.isEmpty ? target : "\(targetTable.label) (\(target))"
            let ownGrid: String? = if case .grid(let grid)? = scope { grid } else { table.gridField.flatMap { values[$0]?.text } }
            var targetGrid: String?
            if let pending = rowIndex[PendingKey(table: target, row: targetRow)] {
                guard !rows[pending].deleting else {
                    throw LinliError(.invalidInput, "\(named) names \(targetName) \(targetRow.hex.prefix(8)), deleted in this same change")
                }
                if case .grid(let grid) = rows[pending].scope { targetGrid = grid }
            } else {
                guard let stored = try Row.fetchOne(db, sql: "SELECT _deleted, _scope FROM \(StoreSchema.quoted(target)) WHERE id = ?", arguments: [bytes]) else {
                    throw LinliError(.invalidInput, "\(named) names \(targetName) \(targetRow.hex.prefix(8)), which this device does not hold",
                                     hint: "find the record with `linli find` and give its id, or sync first if it was recorded elsewhere")
                }
                guard (stored["_deleted"] as Int64? ?? 0) == 0 else {
                    throw LinliError(.invalidInput, "\(named) names \(targetName) \(targetRow.hex.prefix(8)), which is deleted",
                                     hint: "restore that record first, or name another")
                }
                if case .grid(let grid)? = Scope(stored["_scope"] as String? ?? "") { targetGrid = grid }
            }
            if let ownGrid, let targetGrid, ownGrid != targetGrid {
                throw LinliError(.invalidInput, "\(named) names \(targetName) \(targetRow.hex.prefix(8)) of grid \(targetGrid), but this \(table.name) is in grid \(ownGrid)",
                                 hint: "a record refers to records of its own grid; name the one in \(ownGrid)")
            }
        }
    }

    /// The table's cross-field rules, refused as invalid input before
    /// anything is signed.
    private func checkRules(_ table: TableSchema, _ values: [String: Value], written: Set<String>) throws(LinliError) {
        guard !table.rules.isEmpty else { return }
        do { try table.checkRules(values, touching: written, madeAt: now) } catch {
            throw LinliError(.invalidInput, error.message, hint: error.hint)
        }
    }

    /// The values the row's view shows, and the fields in conflict; empty
    /// for a row not stored yet.
    private func shownValues(_ table: TableSchema, _ row: RowID) throws -> (values: [String: Value], conflicted: Set<String>) {
        guard let stored = try Row.fetchOne(db, sql: "SELECT * FROM \(StoreSchema.quoted(table.name)) WHERE id = ?", arguments: [row.data]) else {
            return ([:], [])
        }
        var values: [String: Value] = [:]
        for field in table.fields {
            values[field.name] = ReplicaStore.viewValue(stored[field.name] as DatabaseValue, type: field.type)
        }
        let conflicts = (stored["_conflicts"] as String?).map { Set($0.split(separator: ",").map(String.init)) } ?? []
        return (values, conflicts)
    }

    private func currentScope(_ table: String, _ row: RowID) throws -> Scope {
        if let pending = rowIndex[PendingKey(table: table, row: row)] { return rows[pending].scope }
        guard let text = try String.fetchOne(
            db, sql: """
                SELECT n.name FROM linli_row_state r JOIN linli_name n ON n.n = r.scope_n
                JOIN linli_name t ON t.n = r.table_n WHERE t.name = ? AND r.row = ?
                """, arguments: [table, row.data]), let scope = Scope(text)
        else {
            throw LinliError(.notFound, "there is no \(table) with id \(row.hex) on this replica")
        }
        return scope
    }

    private func isDeleted(_ table: String, _ row: RowID) throws -> Bool {
        guard schema.table(table) != nil else { return false }
        return try Bool.fetchOne(db, sql: "SELECT _deleted FROM \(StoreSchema.quoted(table)) WHERE id = ?", arguments: [row.data]) ?? false
    }

    /// The change sets this transaction makes, one per scope, in the order
    /// their scopes were first touched.
    func makeChangeSets(
        identity: DeviceIdentity, session: MergeSession, now: UInt64, merge: (SignedChangeSet) throws -> Void
    ) throws -> [SignedChangeSet] {
        var order: [Scope] = []
        var byScope: [Scope: [PendingRow]] = [:]
        for row in rows {
            if byScope[row.scope] == nil { order.append(row.scope) }
            byScope[row.scope, default: []].append(row)
        }
        var clock = HybridLogicalClock(last: HLCTimestamp(rawValue: session.hlcMax))
        var result: [SignedChangeSet] = []
        let deviceN = try session.deviceNumber(identity.device)
        for scope in order {
            let head = try session.head(deviceN)
            var rowChanges: [RowChange] = []
            for pending in byScope[scope] ?? [] {
                let survivors = try session.survivors(table: pending.table, row: pending.row)
                var writes: [FieldWrite] = []
                // Fields in name order, `_deleted` first: a stable layout.
                for (field, value) in pending.values.sorted(by: { (($0.key == MergeRules.deletedField) ? "" : $0.key) < (($1.key == MergeRules.deletedField) ? "" : $1.key) }) {
                    if let judged = pending.replacing[field] {
                        writes.append(FieldWrite(field: field, value: value, replaces: judged))
                        continue
                    }
                    let current = MergeSession.survivors(of: try session.nameNumber(field), in: survivors)
                    let replaces = try current.map { Dot(device: try session.deviceID($0.deviceN), seq: $0.seq, index: $0.index) }
                    writes.append(FieldWrite(field: field, value: value, replaces: replaces.sorted()))
                }
                if pending.deleting {
                    // Clear undeclared fields too (kept from newer schema versions).
                    var declared = Set(pending.values.keys)
                    if let gridField = schema.table(pending.table)?.gridField { declared.insert(gridField) }
                    for fieldN in Set(survivors.map(\.fieldN)) {
                        let current = MergeSession.survivors(of: fieldN, in: survivors)
                        let field = try session.name(fieldN)
                        if declared.contains(field) { continue }
                        let replaces = try current.map { Dot(device: try session.deviceID($0.deviceN), seq: $0.seq, index: $0.index) }
                        writes.append(FieldWrite(field: field, value: .null, replaces: replaces.sorted()))
                    }
                }
                if !writes.isEmpty { rowChanges.append(RowChange(table: pending.table, row: pending.row, writes: writes)) }
            }
            if rowChanges.isEmpty { continue }
            let header = ChangeSetHeader(
                device: identity.device, keyID: identity.key.publicKey.keyID, seq: head.seq + 1, prev: head.hash,
                hlc: clock.tick(now: now), user: identity.user, schemaVersion: schema.version, scope: scope)
            let signed = try SignedChangeSet.sign(ChangeSet(header: header, rows: rowChanges), with: identity.key)
            try merge(signed)
            result.append(signed)
        }
        return result
    }
}

extension ReplicaStore {
    /// Runs a local transaction as `identity` and commits it: each scope's
    /// writes become one signed change set, merged here atomically. Returns
    /// the change sets made, for the outbox. If `body` throws, nothing is
    /// written.
    @discardableResult
    public func write(as identity: DeviceIdentity, _ body: (LocalTransaction) throws -> Void) throws -> [SignedChangeSet] {
        let now = clock()
        return try run {
            try writer.write { db in
                let transaction = LocalTransaction(schema: schema, db: db, device: identity.device, now: now)
                try body(transaction)
                let session = try MergeSession(db, schema: schema, now: now)
                if session.isForked(identity.device) {
                    throw LinliError(.deviceQuarantined, "this device is quarantined because its history forked; it cannot record changes until an administrator decides")
                }
                // The device's own certificate, when this replica has it,
                // decides what it may write, before anything is signed.
                let own = try Self.loadTrust(db, devices: [identity.device])[identity.device]?.keys
                    .filter { $0.key == identity.key.publicKey }.max { $0.from < $1.from }
                let changeSets = try transaction.makeChangeSets(identity: identity, session: session, now: now) { signed in
                    if let own {
                        try own.role.authorize(scope: signed.header.scope, device: identity.device, grids: own.grids)
                        for row in signed.changeSet.rows { try own.role.authorize(table: row.table) }
                    }
                    let header = signed.header
                    if header.scope == .system {
                        let key = own ?? KeyEntry(from: 1, key: identity.key.publicKey, role: .authority, grids: [])
                        try checkTrustRecords(signed, key: key, session: session)
                    }
                    try session.merge(signed, receivedAt: now)
                    if header.scope == .system { try applyTrustRecords(signed, session: session, policy: .replica, now: now) }
                }
                try session.finish()
                if session.needsRebuild { try rebuildDerived(db, now: now) }
                return changeSets
            }
        }
    }
}
