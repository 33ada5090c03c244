import Foundation
import GRDB
import LinliCore
import LinliStore

/// The full-text index `find` searches on a device: one FTS5 table per
/// record type, with SQLite's trigram tokenizer, which finds any run of
/// three or more characters, so Chinese (no spaces between words) is
/// found as well as ID numbers and phone numbers.
///
/// Each indexed row holds its record's text fields one after another,
/// without separators: an address typed as one run (幸福路12号2单元301)
/// finds the house whose address, unit and room are 幸福路12号, 2单元 and
/// 301. Triggers on the record type's table keep it exact through every
/// write (local edits, merges of pulled change sets, rebuilds), and the
/// FTS row's rowid is the record's, so an update touches one entry.
///
/// The index is a device's alone: it is made on first use (and again
/// when a schema pack adds text fields, its triggers being named by a
/// digest of the fields), never synced and never in a snapshot.
enum FindIndex {
    static func indexName(_ table: TableSchema) -> String { "linli_find_" + table.name }

    /// The fields a record type's index holds: its text fields but the grid.
    static func fields(_ table: TableSchema) -> [FieldSchema] {
        table.fields.filter { $0.type == .text && $0.name != table.gridField }
    }

    /// A short digest of the indexed fields, in the triggers' names.
    static func signature(_ table: TableSchema) -> String {
        let names = fields(table).map(\.name).joined(separator: ",")
        // FNV-1a, 32 bits: only to tell one field list from the next.
        var hash: UInt32 = 2_166_136_261
        for byte in names.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return String(hash, radix: 16)
    }

    /// Makes the index of each of `tables` that is missing or was made for
    /// other fields, and fills it from the table.
    static func ensure(_ store: ReplicaStore, tables: [TableSchema]) throws {
        let stale = try store.database.read { db in
            try tables.filter { table in
                if fields(table).isEmpty { return false }
                return try !db.triggerExists(indexName(table) + "_ai_" + signature(table))
            }
        }
        guard !stale.isEmpty else { return }
        try store.database.write { db in
            for table in stale { try make(db, table) }
        }
    }

    private static func make(_ db: Database, _ table: TableSchema) throws {
        let index = quoted(indexName(table))
        let view = quoted(table.name)
        let names = try String.fetchAll(db, sql: "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = ? AND name LIKE ?",
                                        arguments: [table.name, indexName(table) + "\\_%"])
        for name in names where name.hasPrefix(indexName(table) + "_") { try db.execute(sql: "DROP TRIGGER \(quoted(name))") }
        try db.execute(sql: "DROP TABLE IF EXISTS \(index)")
        try db.execute(sql: "CREATE VIRTUAL TABLE \(index) USING fts5(joined, tokenize = 'trigram')")
        let joined = { (row: String) in
            fields(table).map { "coalesce(\(row).\(quoted($0.name)), '')" }.joined(separator: " || ")
        }
        let suffix = signature(table)
        let insert = "INSERT INTO \(index) (rowid, joined) SELECT NEW.rowid, \(joined("NEW")) WHERE NEW._deleted = 0;"
        let delete = "DELETE FROM \(index) WHERE rowid = OLD.rowid;"
        try db.execute(sql: """
            CREATE TRIGGER \(quoted(indexName(table) + "_ai_" + suffix)) AFTER INSERT ON \(view) BEGIN \(insert) END;
            CREATE TRIGGER \(quoted(indexName(table) + "_ad_" + suffix)) AFTER DELETE ON \(view) BEGIN \(delete) END;
            CREATE TRIGGER \(quoted(indexName(table) + "_au_" + suffix)) AFTER UPDATE ON \(view) BEGIN \(delete) \(insert) END;
            INSERT INTO \(index) (rowid, joined) SELECT rowid, \(joined(view)) FROM \(view) WHERE _deleted = 0;
            """)
    }

    /// The SQL and arguments selecting the rowids of `table`'s records that
    /// hold every one of `terms`. Terms of three or more characters are
    /// looked up in the trigram index; shorter ones (a two-character name)
    /// are checked in the rows it found, or across the index's text.
    static func matching(_ table: TableSchema, terms: [String]) -> (sql: String, arguments: StatementArguments) {
        let index = quoted(indexName(table))
        let long = terms.filter { $0.count >= 3 }
        let short = terms.filter { $0.count < 3 }
        var conditions: [String] = []
        var arguments: [any DatabaseValueConvertible] = []
        if !long.isEmpty {
            conditions.append("\(index) MATCH ?")
            arguments.append(long.map { "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }.joined(separator: " AND "))
        }
        for term in short {
            conditions.append("instr(lower(joined), lower(?)) > 0")
            arguments.append(term)
        }
        return ("SELECT rowid FROM \(index) WHERE " + conditions.joined(separator: " AND "), StatementArguments(arguments))
    }

    static func quoted(_ name: String) -> String { "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
}
