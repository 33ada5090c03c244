import Foundation
import LinliCore
import Testing

/// How typed text becomes a value (FieldText.parse), with inputs the
/// field fuzz target (Fuzz/Targets/field.swift) found.
@Suite("Typed field input") struct FieldTextTests {
    static let table = TableSchema("visit", scope: .public, fields: [FieldSchema("seen_at", .timestamp, label: "走访时间")])
    static var field: FieldSchema { table.fields[0] }

    static func parse(_ text: String) throws -> Value {
        try FieldText.parse(text, field: field, table: table, resolve: FieldText.wholeID)
    }

    /// Foundation's DateFormatter stopped the program on a digit followed
    /// by a combining accent; the text is refused with the usual message.
    @Test(arguments: ["010\u{33A}g000]000000", "2026\u{301}-12-01", "20\u{301}26-12-01 08:30"])
    func aTimeWithACombiningMarkIsRefused(_ text: String) {
        #expect {
            try Self.parse(text)
        } throws: { error in
            guard let error = error as? LinliError else { return false }
            return error.code == .invalidInput && error.message.contains("takes a time YYYY-MM-DD HH:MM")
        }
    }

    @Test func timesStillParseInEveryWrittenForm() throws {
        let utc = { (text: String) -> Int64 in
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.dateFormat = "yyyy-MM-dd HH:mm"
            return Int64(formatter.date(from: text)!.timeIntervalSince1970 * 1000)
        }
        #expect(try Self.parse("2026-12-01 08:30") == .integer(utc("2026-12-01 08:30")))
        #expect(try Self.parse("2026-12-01T08:30") == .integer(utc("2026-12-01 08:30")))
        #expect(try Self.parse("2026-12-01") == .integer(utc("2026-12-01 00:00")))
        // Full-width digits, as a Chinese input method types them.
        #expect(try Self.parse("２０２６-１２-０１ ０８:３０") == .integer(utc("2026-12-01 08:30")))
        #expect(throws: LinliError.self) { try Self.parse("2026-13-45") }
    }
}
