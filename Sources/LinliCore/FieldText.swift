import Foundation

/// Turning values into text for people and back.
public enum FieldText {
    /// `value` as people read it; personal fields masked unless `reveal`.
    public static func show(_ value: Value, field: FieldSchema, reveal: Bool) -> String {
        let text: String
        switch value {
        case .null: return ""
        case .text(let string): text = string
        case .integer(let integer): text = field.type == .timestamp ? timestamp(integer) : String(integer)
        case .real(let real): text = real == real.rounded() && abs(real) < 1e15 ? String(Int64(real)) : String(real)
        case .boolean(let flag): text = flag ? "是" : "否"
        case .bytes(let data): text = Hex.encode(data)
        }
        return field.personal && !reveal ? mask(text, field: field) : text
    }

    /// Masks personal data for the screen: a citizen ID keeps its region
    /// and last four characters (110105********002X), a phone its first
    /// three and last four digits (138****5678), a name its first
    /// character (张**), anything else its first quarter. A personal date
    /// or number shows nothing of itself (****-**-**, **): a birth date's
    /// year with the ID's region and last four leaves too few birth dates
    /// to try, and an age gives the year.
    public static func mask(_ text: String, field: FieldSchema) -> String {
        let characters = Array(text)
        switch field.type {
        case .date: return String(characters.map { $0.isNumber ? "*" : $0 })
        case .integer, .real, .timestamp, .boolean: return "**"
        default: break
        }
        func keep(_ head: Int, _ tail: Int) -> String {
            guard characters.count > head + tail else { return String(repeating: "*", count: max(characters.count, 1)) }
            return String(characters.prefix(head)) + String(repeating: "*", count: characters.count - head - tail) + String(characters.suffix(tail))
        }
        switch field.format {
        case .citizenID: return keep(6, 4)
        case .phone, .mobile: return characters.count >= 11 ? keep(3, 4) : keep(2, 2)
        default: break
        }
        if field.name == "name" || field.name.hasSuffix("_name") || field.name == "landlord" {
            return keep(1, 0)
        }
        return keep(max(1, characters.count / 4), 0)
    }

    public static func timestamp(_ milliseconds: Int64) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyy-MM-dd HH:mm"
        return formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }

    /// Today's date, `YYYY-MM-DD`, in this machine's time zone.
    public static func today(_ now: Date = Date()) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyy-MM-dd"
        return formatter.string(from: now)
    }

    /// Parses `raw` for `field`. Empty text clears the field. Dates are
    /// `YYYY-MM-DD` (or 今天/today; `2026/9/1`, `2026年9月1日` and the
    /// like are stored as `YYYY-MM-DD`); text of a format is stored in the
    /// format's one form (``FieldFormat/normalised(_:)``); times `YYYY-MM-DD HH:MM` (or 现在/now)
    /// in this machine's time zone; yes/no as 是/否, true/false, 1/0; bytes
    /// as hex. References go through `resolve(referenced table, text)`.
    /// Then the field's own checks (choices, formats, ranges) apply.
    public static func parse(_ raw: String, field: FieldSchema, table: TableSchema,
                             resolve: (String, String) throws -> RowID) throws -> Value {
        let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        let name = "\(table.name).\(field.name)\(field.label.isEmpty ? "" : " (\(field.label))")"
        if text.isEmpty { return .null }
        let value: Value
        switch field.type {
        case .text:
            // Stored in the format's one form, so equal values are equal.
            value = .text(field.format?.normalised(text) ?? text)
        case .integer:
            guard let integer = Int64(text) else { throw LinliError(.invalidInput, "\(name) takes a whole number, not \(text)") }
            value = .integer(integer)
        case .real:
            guard let real = Double(text), real.isFinite else { throw LinliError(.invalidInput, "\(name) takes a number, not \(text)") }
            value = .real(real)
        case .boolean:
            switch text.lowercased() {
            case "是", "true", "yes", "1", "y": value = .boolean(true)
            case "否", "false", "no", "0", "n": value = .boolean(false)
            default: throw LinliError(.invalidInput, "\(name) takes 是 or 否 (yes or no), not \(text)")
            }
        case .date:
            value = .text(["今天", "today"].contains(text.lowercased()) ? today() : FieldSchema.normalisedDate(text) ?? text)
        case .timestamp:
            if ["现在", "now"].contains(text.lowercased()) {
                value = .integer(Int64(Date().timeIntervalSince1970 * 1000))
            } else {
                let refusal = LinliError(.invalidInput, "\(name) takes a time YYYY-MM-DD HH:MM (or 现在), not \(text)")
                // Foundation's DateFormatter stops the program on text with a
                // character of more than one UTF-16 unit (a digit with a
                // combining accent): such text is no time, so it never gets
                // there. Full-width digits (２０２６) are one unit each and pass.
                guard text.utf16.count == text.count else { throw refusal }
                let formatter = DateFormatter()
                formatter.locale = Locale(identifier: "en_US_POSIX")
                var parsed: Date?
                for format in ["yyyy-MM-dd HH:mm", "yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd"] where parsed == nil {
                    formatter.dateFormat = format
                    parsed = formatter.date(from: text)
                }
                guard let parsed, let milliseconds = Int64(exactly: (parsed.timeIntervalSince1970 * 1000).rounded(.towardZero)) else {
                    throw refusal
                }
                value = .integer(milliseconds)
            }
        case .bytes:
            guard let bytes = Hex.decode(text) else { throw LinliError(.invalidInput, "\(name) takes hex digits, not \(text)") }
            value = .bytes(Data(bytes))
        case .reference:
            value = .bytes(try resolve(field.references ?? "", text).data)
        }
        do { try field.check(value, table: table.name) } catch { throw LinliError(.invalidInput, error.message) }
        return value
    }

    /// Parses `field=value` assignments (as typed on a command line) for
    /// `table`: a field is named by its name or its label, and each value
    /// goes through ``parse(_:field:table:resolve:)``.
    public static func parse(assignments: [String], table: TableSchema,
                             resolve: (String, String) throws -> RowID) throws -> [String: Value] {
        var values: [String: Value] = [:]
        for assignment in assignments {
            guard let equals = assignment.firstIndex(of: "=") else {
                throw LinliError(.invalidInput, "\(assignment) is not field=value",
                                 hint: "\(table.name) fields: " + table.fields.map { "\($0.name) (\($0.label))" }.joined(separator: ", "))
            }
            let name = String(assignment[..<equals])
            guard let field = table.fields.first(where: { $0.name == name || $0.label == name }) else {
                throw LinliError(.invalidInput, "\(table.name) has no field \(name)",
                                 hint: "its fields: " + table.fields.map { "\($0.name) (\($0.label))" }.joined(separator: ", "))
            }
            values[field.name] = try parse(String(assignment[assignment.index(after: equals)...]), field: field, table: table, resolve: resolve)
        }
        return values
    }

    /// A resolver for places that take whole record ids only.
    public static func wholeID(_ table: String, _ text: String) throws -> RowID {
        guard let row = RowID(hex: text.lowercased()) else {
            throw LinliError(.invalidInput, "give the whole 32-digit id of the \(table.isEmpty ? "referenced" : table) record, not \(text)")
        }
        return row
    }
}
