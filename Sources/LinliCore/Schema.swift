import Foundation

/// The type of a declared field. Values are checked against it before a
/// change is made and again when a change set is applied.
public enum FieldType: String, Codable, Sendable, CaseIterable {
    case text
    case integer
    case real
    case boolean
    /// A calendar date, `YYYY-MM-DD`, stored as text.
    case date
    /// A point in time, milliseconds since 1970, stored as an integer.
    case timestamp
    case bytes
    /// The 16-byte id of a row of another table.
    case reference
}

/// One declared field.
public struct FieldSchema: Codable, Sendable, Hashable {
    public var name: String
    public var type: FieldType
    /// The label people read, in Chinese.
    public var label: String
    /// Personal data: masked when shown, never sent to kiosks.
    public var personal: Bool
    public var required: Bool
    /// For `reference` fields: the table referred to.
    public var references: String?
    /// For text fields that take one of a fixed set of values.
    public var choices: [String]?
    /// For text fields with a checked format (a citizen ID, a phone number).
    public var format: FieldFormat?
    /// For numbers: the smallest and largest values that make sense.
    public var minimum: Double?
    public var maximum: Double?

    public init(
        _ name: String, _ type: FieldType, label: String = "", personal: Bool = false,
        required: Bool = false, references: String? = nil, choices: [String]? = nil,
        format: FieldFormat? = nil, minimum: Double? = nil, maximum: Double? = nil
    ) {
        self.name = name
        self.type = type
        self.label = label
        self.personal = personal
        self.required = required
        self.references = references
        self.choices = choices
        self.format = format
        self.minimum = minimum
        self.maximum = maximum
    }

    enum CodingKeys: String, CodingKey { case name, type, label, personal, required, references, choices, format, minimum, maximum }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        type = try container.decode(FieldType.self, forKey: .type)
        label = try container.decodeIfPresent(String.self, forKey: .label) ?? ""
        personal = try container.decodeIfPresent(Bool.self, forKey: .personal) ?? false
        required = try container.decodeIfPresent(Bool.self, forKey: .required) ?? false
        references = try container.decodeIfPresent(String.self, forKey: .references)
        choices = try container.decodeIfPresent([String].self, forKey: .choices)
        format = try container.decodeIfPresent(FieldFormat.self, forKey: .format)
        minimum = try container.decodeIfPresent(Double.self, forKey: .minimum)
        maximum = try container.decodeIfPresent(Double.self, forKey: .maximum)
    }

    /// Throws unless `value` fits this field's type (null always fits: a
    /// cleared field, or a deleted row).
    public func check(_ value: Value, table: String) throws(LinliError) {
        let fits: Bool
        switch (type, value) {
        case (_, .null): fits = true
        case (.text, .text), (.integer, .integer), (.real, .real), (.real, .integer),
             (.boolean, .boolean), (.bytes, .bytes), (.timestamp, .integer):
            fits = true
        case (.date, .text(let text)): fits = Self.isDate(text)
        case (.reference, .bytes(let data)): fits = data.count == 16
        default: fits = false
        }
        guard fits else {
            throw LinliError(
                .schemaViolation,
                "\(table).\(name) takes \(type == .date ? "a date YYYY-MM-DD" : type.rawValue), not \(value)")
        }
        if let choices, case .text(let text) = value, !choices.contains(text) {
            throw LinliError(
                .schemaViolation,
                "\(table).\(name) must be one of \(choices.joined(separator: ", ")), not \(text)")
        }
        if let format, case .text(let text) = value {
            try format.check(text, field: "\(table).\(name)\(label.isEmpty ? "" : " (\(label))")")
        }
        let number: Double? = switch value {
        case .integer(let integer): Double(integer)
        case .real(let real): real
        default: nil
        }
        if let number, (minimum.map { number < $0 } ?? false) || (maximum.map { number > $0 } ?? false) {
            throw LinliError(
                .schemaViolation,
                "\(table).\(name)\(label.isEmpty ? "" : " (\(label))") must be between \(Self.show(minimum)) and \(Self.show(maximum)), not \(Self.show(number))")
        }
    }

    static func show(_ number: Double?) -> String {
        guard let number else { return "any" }
        return number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
    }

    static func isDate(_ text: String) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard text.utf8.count == 10, text.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
              parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
              (1...12).contains(month), year >= 1800 else { return false }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        return (1...days).contains(day)
    }
}

/// How a table's records are assigned to a scope.
public enum ScopeRule: Codable, Sendable, Hashable {
    /// The record belongs to the grid named by this text field.
    case gridField(String)
    /// Public information.
    case `public`
    /// A kiosk's self-service submission: the scope of the kiosk that took it.
    case kiosk
    /// Trust records.
    case system

    enum CodingKeys: String, CodingKey { case kind, field }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(String.self, forKey: .kind) {
        case "grid": self = .gridField(try container.decode(String.self, forKey: .field))
        case "public": self = .public
        case "kiosk": self = .kiosk
        case "system": self = .system
        case let other:
            throw DecodingError.dataCorruptedError(
                forKey: .kind, in: container, debugDescription: "unknown scope kind \(other); use grid, public, kiosk or system")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .gridField(let field):
            try container.encode("grid", forKey: .kind)
            try container.encode(field, forKey: .field)
        case .public: try container.encode("public", forKey: .kind)
        case .kiosk: try container.encode("kiosk", forKey: .kind)
        case .system: try container.encode("system", forKey: .kind)
        }
    }
}

/// One declared table.
public struct TableSchema: Codable, Sendable, Hashable {
    public var name: String
    public var label: String
    public var scope: ScopeRule
    public var fields: [FieldSchema]

    public init(_ name: String, label: String = "", scope: ScopeRule, fields: [FieldSchema]) {
        self.name = name
        self.label = label
        self.scope = scope
        self.fields = fields
    }

    public func field(_ name: String) -> FieldSchema? { fields.first { $0.name == name } }

    /// The field naming the grid, for tables scoped by grid.
    public var gridField: String? {
        if case .gridField(let field) = scope { field } else { nil }
    }
}

/// A versioned set of declared tables. Views follow it; change sets carry
/// the version their author used.
public struct Schema: Codable, Sendable, Hashable {
    public var name: String
    public var version: UInt32
    public var tables: [TableSchema]

    public init(name: String, version: UInt32, tables: [TableSchema]) {
        self.name = name
        self.version = version
        self.tables = tables
    }

    public func table(_ name: String) -> TableSchema? { tables.first { $0.name == name } }

    /// Throws with a precise message if the schema cannot be used.
    public func validate() throws(LinliError) {
        guard tables.count <= Limits.tablesPerSchemaMax else {
            throw LinliError(.overLimit, "the schema has \(tables.count) tables; tablesPerSchemaMax is \(Limits.tablesPerSchemaMax)")
        }
        var tableNames = Set<String>()
        for table in tables {
            guard Self.isIdentifier(table.name), !table.name.hasPrefix(MergeRules.reservedPrefix),
                  !table.name.hasPrefix("linli"), !table.name.hasPrefix(TrustSchema.reservedPrefix) else {
                throw LinliError(.invalidInput, "table name \"\(table.name)\" must be a lowercase identifier not starting with _, sys_ or linli")
            }
            guard tableNames.insert(table.name).inserted else {
                throw LinliError(.invalidInput, "table \(table.name) is declared twice")
            }
            guard table.fields.count <= Limits.fieldsPerTableMax else {
                throw LinliError(.overLimit, "table \(table.name) has \(table.fields.count) fields; fieldsPerTableMax is \(Limits.fieldsPerTableMax)")
            }
            var fieldNames = Set<String>()
            for field in table.fields {
                guard Self.isIdentifier(field.name), !field.name.hasPrefix(MergeRules.reservedPrefix),
                      field.name != "id" else {
                    throw LinliError(.invalidInput, "field name \"\(table.name).\(field.name)\" must be a lowercase identifier, not id, not starting with _")
                }
                guard fieldNames.insert(field.name).inserted else {
                    throw LinliError(.invalidInput, "field \(table.name).\(field.name) is declared twice")
                }
                if field.type == .reference, field.references == nil {
                    throw LinliError(.invalidInput, "reference field \(table.name).\(field.name) must name the table it refers to")
                }
                if field.format != nil, field.type != .text {
                    throw LinliError(.invalidInput, "field \(table.name).\(field.name) has a format, which only text fields take")
                }
                if field.minimum != nil || field.maximum != nil {
                    guard field.type == .integer || field.type == .real else {
                        throw LinliError(.invalidInput, "field \(table.name).\(field.name) has a minimum or maximum, which only numbers take")
                    }
                    if let minimum = field.minimum, let maximum = field.maximum, minimum > maximum {
                        throw LinliError(.invalidInput, "field \(table.name).\(field.name) has a minimum above its maximum")
                    }
                }
            }
            if case .gridField(let gridField) = table.scope {
                guard let field = table.field(gridField), field.type == .text else {
                    throw LinliError(.invalidInput, "table \(table.name) takes its grid from \(gridField), which must be a declared text field")
                }
            }
        }
    }

    static func isIdentifier(_ name: String) -> Bool {
        guard let first = name.utf8.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first) || first == UInt8(ascii: "_") else {
            return false
        }
        return name.utf8.count <= Limits.nameBytesMax && name.utf8.allSatisfy {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
                || $0 == UInt8(ascii: "_")
        }
    }
}
