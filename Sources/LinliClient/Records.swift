import Foundation
import GRDB
import LinliCore
import LinliCrypto
import LinliStore

/// A record as a device shows it: the shown value of each field, and which
/// fields are in conflict.
public struct RecordView: Sendable {
    public let table: TableSchema
    public let id: RowID
    public let scope: String
    public let deleted: Bool
    public let values: [String: Value]
    /// Fields with more than one surviving value (settled by staff, or by
    /// the next edit of the field).
    public let conflicted: Set<String>

    /// The field values as text for people, personal ones masked unless
    /// `reveal`, in declared order; empty fields left out.
    public func fields(reveal: Bool) -> [(field: FieldSchema, text: String)] {
        table.fields.compactMap { field in
            guard let value = values[field.name], !value.isNull else { return nil }
            return (field, FieldText.show(value, field: field, reveal: reveal))
        }
    }

    /// One line: the table's label and its first few non-empty fields.
    public func summary(reveal: Bool) -> String {
        let shown = fields(reveal: reveal).filter { $0.field.type != .reference && $0.field.name != table.gridField }.prefix(4)
        return "\(table.label.isEmpty ? table.name : table.label) \(id.hex)  " + shown.map { "\($0.field.label)=\($0.text)" }.joined(separator: "  ")
    }

    /// A JSON object: id, table, scope, and fields (masked unless `reveal`).
    public func json(reveal: Bool) -> [String: Any] {
        var fields: [String: Any] = [:]
        for (field, text) in self.fields(reveal: reveal) {
            if case .integer(let integer) = values[field.name], field.type == .integer, !(field.personal && !reveal) {
                fields[field.name] = integer
            } else if case .real(let real) = values[field.name], !(field.personal && !reveal) {
                fields[field.name] = real
            } else {
                fields[field.name] = text
            }
        }
        return ["id": id.hex, "table": table.name, "scope": scope, "deleted": deleted, "fields": fields,
                "conflicts": conflicted.sorted()]
    }
}

/// The records of one replica, as a field client reads and writes them.
public struct Records: Sendable {
    public let store: ReplicaStore

    public init(store: ReplicaStore) {
        self.store = store
    }

    /// The record types (the declared tables, without the trust tables).
    public var tables: [TableSchema] { store.schema.tables.filter { !$0.name.hasPrefix(TrustSchema.reservedPrefix) } }

    /// A record type by its name (person) or its label (人口).
    public func table(_ name: String) throws -> TableSchema {
        if let table = tables.first(where: { $0.name == name || $0.label == name }) { return table }
        throw LinliError(.invalidInput, "there is no record type \(name)",
                         hint: "record types: " + tables.map { "\($0.name) (\($0.label))" }.joined(separator: ", "))
    }

    /// The record whose id is `text` or starts with it (at least 6 hex
    /// digits), in `tableName` or any table. Records outside this device's
    /// scopes are not on it, so they are not found.
    public func resolve(_ text: String, in tableName: String? = nil) throws -> (TableSchema, RowID) {
        let prefix = text.lowercased()
        guard prefix.count >= 6, prefix.count <= 32, prefix.allSatisfy(\.isHexDigit) else {
            throw LinliError(.invalidInput, "\(text) is not a record id: give its 32 hex digits, or at least the first 6")
        }
        let searched = try tableName.map { [try table($0)] } ?? tables
        var found: [(TableSchema, RowID)] = []
        try store.database.read { db in
            for table in searched {
                let ids = try Data.fetchAll(db, sql: "SELECT id FROM \(quoted(table.name)) WHERE lower(hex(id)) LIKE ? LIMIT 3",
                                            arguments: [prefix + "%"])
                found += ids.compactMap { RowID(bytes: $0) }.map { (table, $0) }
            }
        }
        guard let first = found.first else {
            let kind = tableName.flatMap { try? table($0) }.map { " \($0.label)" } ?? ""
            throw LinliError(.notFound, "no\(kind) record \(text) on this device",
                             hint: "records of grids this device does not cover are not on it; `find` searches what is")
        }
        guard found.count == 1 else {
            throw LinliError(.invalidInput, "\(text) is the start of several ids (\(found.map { "\($0.0.name) \($0.1.hex)" }.joined(separator: ", "))); give more digits")
        }
        return first
    }

    /// The record of `tableName` that `text` names: its id or the start of
    /// one, else the one record whose text fields hold it (an address, a
    /// name, an ID number; ``find(_:in:limit:)``). Several matches are
    /// refused with the first of them listed, so the person can say more.
    public func reference(_ text: String, in tableName: String) throws -> RowID {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if Self.looksLikeID(trimmed) { return try resolve(trimmed, in: tableName).1 }
        let table = try table(tableName)
        let found = try candidates(trimmed, in: table)
        guard let only = found.first else {
            throw LinliError(.notFound, "no \(table.label) on this device matches \(trimmed)",
                             hint: "give part of its address or name, or its id (linli find \(trimmed.prefix(20)) searches every record type)")
        }
        guard found.count == 1 else {
            throw LinliError(.invalidInput, "\(found.count == Limits.referenceCandidatesMax ? "\(found.count) or more" : "\(found.count)") \(table.label) records match \(trimmed): "
                             + found.prefix(3).map { $0.summary(reveal: false) }.joined(separator: "; "),
                             hint: "give more of it, or the id of the one you mean")
        }
        return only.id
    }

    /// Whether `text` is written as a record id or the start of one (6 to
    /// 32 hex digits), not as an address or a name.
    public static func looksLikeID(_ text: String) -> Bool { text.count >= 6 && text.count <= 32 && text.allSatisfy(\.isHexDigit) }

    /// The records of `table` that `text` may name, at most
    /// ``Limits/referenceCandidatesMax``.
    public func candidates(_ text: String, in table: TableSchema) throws -> [RecordView] {
        try find(text, in: table.name, limit: Limits.referenceCandidatesMax)
    }

    /// Parses `field=value` assignments for `table`.
    public func parse(_ assignments: [String], table: TableSchema) throws -> [String: Value] {
        try FieldText.parse(assignments: assignments, table: table) { referenced, text in try reference(text, in: referenced) }
    }

    public func parse(_ text: String, field: FieldSchema, table: TableSchema) throws -> Value {
        try FieldText.parse(text, field: field, table: table) { referenced, text in try reference(text, in: referenced) }
    }

    /// One record, or nil when this replica does not have it.
    public func record(_ table: TableSchema, _ id: RowID) throws -> RecordView? {
        try store.database.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM \(quoted(table.name)) WHERE id = ?", arguments: [id.data]) else { return nil }
            return view(table, row)
        }
    }

    /// Live records of `table` whose `field` holds `value` in the field
    /// format's one form (…x and …X are one citizen ID).
    public func sameValue(_ value: Value, in table: TableSchema, field name: String) throws -> [RecordView] {
        guard let field = table.field(name), let text = value.text else { return [] }
        let format = field.format?.rawValue
        return try store.database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM \(quoted(table.name))
                WHERE _deleted = 0 AND linli_normalised(?1, \(quoted(name))) = linli_normalised(?1, ?2) LIMIT 20
                """, arguments: [format, text]).map { view(table, $0) }
        }
    }

    /// Records holding every word of `text` (words split at spaces) in
    /// their text fields, taken as one run: a name, an ID number or part of
    /// one, a phone number, an address typed whole (幸福路12号2单元301 finds
    /// the house at 幸福路12号, 2单元, 301). Deleted records are left out.
    /// Searches the device's full-text index (``FindIndex``), made on first use.
    public func find(_ text: String, in tableName: String? = nil, limit: Int = 50) throws -> [RecordView] {
        let terms = text.split(whereSeparator: \.isWhitespace).map(String.init)
        guard !terms.isEmpty else { throw LinliError(.invalidInput, "give something to search for: a name, an ID number, an address or a phone number") }
        guard text.count <= Limits.findTextCharactersMax else {
            throw LinliError(.invalidInput, "a search of \(text.count) characters; give at most \(Limits.findTextCharactersMax)")
        }
        let searched = try tableName.map { [try table($0)] } ?? tables
        try FindIndex.ensure(store, tables: searched)
        return try store.database.read { db in
            var found: [RecordView] = []
            for table in searched where !FindIndex.fields(table).isEmpty {
                let (matching, arguments) = FindIndex.matching(table, terms: terms)
                let rows = try Row.fetchAll(
                    db, sql: "SELECT * FROM \(quoted(table.name)) WHERE rowid IN (\(matching)) AND _deleted = 0 ORDER BY id LIMIT ?",
                    arguments: arguments + [limit - found.count])
                found += rows.map { view(table, $0) }
                if found.count >= limit { break }
            }
            return found
        }
    }

    /// The records of one table, newest change first.
    public func list(_ table: TableSchema, includeDeleted: Bool = false, limit: Int = 200) throws -> [RecordView] {
        try store.database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM \(quoted(table.name)) \(includeDeleted ? "" : "WHERE _deleted = 0") ORDER BY _updated_hlc DESC LIMIT ?
                """, arguments: [limit]).map { view(table, $0) }
        }
    }

    /// Records of `table` whose `field` refers to `id`.
    public func referring(to id: RowID, from table: TableSchema, field: String) throws -> [RecordView] {
        try store.database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM \(quoted(table.name)) WHERE \(quoted(field)) = ? AND _deleted = 0 ORDER BY id",
                             arguments: [id.data]).map { view(table, $0) }
        }
    }

    /// The live records of every table that refer to `row` of `table`
    /// (the residents of a house, the tenants of a rental).
    public func referrers(of row: RowID, in table: TableSchema) throws -> [RecordView] {
        var found: [RecordView] = []
        for other in tables {
            for field in other.fields where field.type == .reference && field.references == table.name {
                found += try referring(to: row, from: other, field: field.name)
            }
        }
        return found
    }

    /// Counts of live records per table.
    public func counts() throws -> [String: Int] {
        try store.database.read { db in
            var counts: [String: Int] = [:]
            for table in tables {
                counts[table.name] = try Int.fetchOne(db, sql: "SELECT count(*) FROM \(quoted(table.name)) WHERE _deleted = 0") ?? 0
            }
            return counts
        }
    }

    private func view(_ table: TableSchema, _ row: Row) -> RecordView {
        var values: [String: Value] = [:]
        for field in table.fields {
            values[field.name] = ReplicaStore.shownValue(row[field.name] as DatabaseValue, type: field.type)
        }
        let conflicted = (row["_conflicts"] as String?).map { Set($0.split(separator: ",").map(String.init)) } ?? []
        return RecordView(table: table, id: RowID(bytes: row["id"] as Data) ?? RowID(high: 0, low: 0), scope: row["_scope"],
                          deleted: row["_deleted"], values: values, conflicted: conflicted)
    }

    private func quoted(_ name: String) -> String { "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
}
