import CSQLite
import Foundation
import GRDB
import LinliCore

/// A prepared statement on GRDB's connection, bound and stepped through the
/// SQLite C API directly.
///
/// Used only on the hot merge path, where the benchmark shows that GRDB's
/// argument arrays cost more than the statement itself. It lives for one
/// write transaction and is finalized with it; it is a programmer error to
/// use it outside the `Database` access it was prepared in.
final class RawStatement {
    private let handle: OpaquePointer
    private let sql: String
    private let connection: OpaquePointer

    init(_ db: Database, _ sql: String) throws {
        guard let connection = db.sqliteConnection else {
            throw LinliError(.storage, "the database connection is closed")
        }
        var statement: OpaquePointer?
        let status = sqlite3_prepare_v3(connection, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard status == SQLITE_OK, let statement else {
            throw LinliError(.storage, "preparing a statement failed: \(String(cString: sqlite3_errmsg(connection))) in \(sql)")
        }
        self.handle = statement
        self.sql = sql
        self.connection = connection
    }

    deinit { sqlite3_finalize(handle) }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    func bind(_ index: Int32, _ value: Int64) { sqlite3_bind_int64(handle, index, value) }
    func bind(_ index: Int32, _ value: UInt64) { sqlite3_bind_int64(handle, index, Int64(bitPattern: value)) }
    func bindNull(_ index: Int32) { sqlite3_bind_null(handle, index) }

    func bind(_ index: Int32, _ value: String) {
        var text = value
        text.withUTF8 { utf8 in
            utf8.withMemoryRebound(to: CChar.self) { chars in
                _ = sqlite3_bind_text(handle, index, chars.baseAddress ?? UnsafePointer(bitPattern: 1), Int32(chars.count), Self.transient)
            }
        }
    }

    func bind(_ index: Int32, _ value: Data) {
        value.withUnsafeBytes { bytes in
            _ = sqlite3_bind_blob(handle, index, bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(bytes.count), Self.transient)
        }
    }

    func bind(_ index: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            _ = sqlite3_bind_blob(handle, index, raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(raw.count), Self.transient)
        }
    }

    func bind(_ index: Int32, _ id: ID128) {
        var big = (id.high.bigEndian, id.low.bigEndian)
        withUnsafeBytes(of: &big) { bytes in
            _ = sqlite3_bind_blob(handle, index, bytes.baseAddress, 16, Self.transient)
        }
    }

    func bind(_ index: Int32, _ value: Value) {
        switch value {
        case .null: bindNull(index)
        case .integer(let integer): bind(index, integer)
        case .real(let real): sqlite3_bind_double(handle, index, real)
        case .text(let text): bind(index, text)
        case .bytes(let data): bind(index, data)
        case .boolean(let flag): bind(index, Int64(flag ? 1 : 0))
        }
    }

    /// Steps a statement that returns no rows, then resets it.
    func run() throws {
        let status = sqlite3_step(handle)
        sqlite3_reset(handle)
        guard status == SQLITE_DONE else { throw failure(status) }
    }

    /// Steps once; `true` when a row is ready to read.
    func step() throws -> Bool {
        let status = sqlite3_step(handle)
        if status == SQLITE_ROW { return true }
        if status == SQLITE_DONE { return false }
        throw failure(status)
    }

    func reset() { sqlite3_reset(handle) }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    func data(_ column: Int32) -> Data {
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let pointer = sqlite3_column_blob(handle, column) else { return Data() }
        return Data(bytes: pointer, count: count)
    }

    private func failure(_ status: Int32) -> LinliError {
        LinliError(.storage, "SQLite error \(status): \(String(cString: sqlite3_errmsg(connection))) in \(sql.prefix(80))")
    }
}
