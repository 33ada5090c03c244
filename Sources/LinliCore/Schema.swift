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

    /// A number as people read it: whole numbers without a decimal point,
    /// `any` for no bound.
    public static func show(_ number: Double?) -> String {
        guard let number else { return "any" }
        return number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
    }

    /// A date as people write it (`2026-09-01`, `2026/9/1`, `2026.9.1`,
    /// `1958-3-12`, `2026年9月1日`, `20260901`, full-width digits) as
    /// `YYYY-MM-DD`; nil when it is no date.
    public static func normalisedDate(_ text: String) -> String? {
        let typed = FormatText.halfWidth(text).trimmingCharacters(in: .whitespaces)
        guard typed.utf8.count <= 32 else { return nil }
        var parts: [Substring]
        if typed.count == 8, typed.utf8.allSatisfy({ (48...57).contains($0) }) {
            parts = [typed.prefix(4), typed.dropFirst(4).prefix(2), typed.suffix(2)]
        } else {
            var spaced = typed
            if spaced.hasSuffix("日") || spaced.hasSuffix("号") { spaced.removeLast() }
            parts = spaced.split(omittingEmptySubsequences: false) { "-/.年月".contains($0) }
        }
        guard parts.count == 3, parts[0].count == 4, (1...2).contains(parts[1].count), (1...2).contains(parts[2].count),
              parts.allSatisfy({ $0.utf8.allSatisfy { (48...57).contains($0) } }),
              let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]) else { return nil }
        let date = String(format: "%04d-%02d-%02d", year, month, day)
        return isDate(date) ? date : nil
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
    /// Built-in records about other records (staff resolutions): each lives
    /// in the scope of the record it is about, so it travels to the same
    /// replicas. Never the system scope.
    case subject

    enum CodingKeys: String, CodingKey { case kind, field }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(String.self, forKey: .kind) {
        case "grid": self = .gridField(try container.decode(String.self, forKey: .field))
        case "public": self = .public
        case "kiosk": self = .kiosk
        case "system": self = .system
        case "subject": self = .subject
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
        case .subject: try container.encode("subject", forKey: .kind)
        }
    }
}

/// One declared table.
public struct TableSchema: Codable, Sendable, Hashable {
    public var name: String
    public var label: String
    public var scope: ScopeRule
    public var fields: [FieldSchema]
    /// Rules across the fields of one row (``TableRule``).
    public var rules: [TableRule]

    public init(_ name: String, label: String = "", scope: ScopeRule, fields: [FieldSchema], rules: [TableRule] = []) {
        self.name = name
        self.label = label
        self.scope = scope
        self.fields = fields
        self.rules = rules
    }

    enum CodingKeys: String, CodingKey { case name, label, scope, fields, rules }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        label = try container.decode(String.self, forKey: .label)
        scope = try container.decode(ScopeRule.self, forKey: .scope)
        fields = try container.decode([FieldSchema].self, forKey: .fields)
        rules = try container.decodeIfPresent([TableRule].self, forKey: .rules) ?? []
    }

    /// Writes `rules` only when there are some, so a schema without rules
    /// encodes as it did before rules existed.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(label, forKey: .label)
        try container.encode(scope, forKey: .scope)
        try container.encode(fields, forKey: .fields)
        if !rules.isEmpty { try container.encode(rules, forKey: .rules) }
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
            for rule in table.rules { try rule.validate(in: table) }
        }
    }

    /// Throws unless this schema may replace `old` on replicas that hold
    /// data written under it: a new version of a schema pack may only add.
    /// It must also pass ``validate()``.
    ///
    /// It must have the same name and a higher version, and keep every old
    /// table with the same scope rule and every old field with the same
    /// type and `references`. A field's checks may be loosened, never
    /// tightened, because change sets made under the old version are still
    /// checked against the declared fields when they arrive: choices may be
    /// extended (not removed, nor added to a field that had none), a format
    /// may be dropped (not added or changed), and a number range may widen
    /// (not narrow). Labels, `personal` and `required` may change.
    ///
    /// New tables, new fields and new rules may be added. A new rule
    /// applies to new writes only: rows already stored are not checked
    /// against it until one of the fields it compares is written again, and
    /// then the change is checked, on the device and by the gatekeeper,
    /// whichever schema version its author used.
    public func checkUpgrade(from old: Schema) throws(LinliError) {
        guard name == old.name else {
            throw LinliError(.invalidInput, "the new schema is named \(name), the old one \(old.name); an upgrade keeps the name",
                             hint: "a schema pack with another name is another schema, not a new version of this one")
        }
        guard version > old.version else {
            throw LinliError(.invalidInput, "schema \(name) version \(version) does not come after version \(old.version); an upgrade needs a higher version")
        }
        let upgrade = "schema \(name) version \(version)"
        let hint = "a new version may only add tables, fields, choices and rules; keep what version \(old.version) declares"
        for oldTable in old.tables {
            guard let table = table(oldTable.name) else {
                throw LinliError(.invalidInput, "\(upgrade) removes table \(oldTable.name)\(oldTable.label.isEmpty ? "" : " (\(oldTable.label))")", hint: hint)
            }
            guard table.scope == oldTable.scope else {
                throw LinliError(.invalidInput, "\(upgrade) changes the scope rule of table \(table.name) from \(Self.describe(oldTable.scope)) to \(Self.describe(table.scope))", hint: hint)
            }
            for oldField in oldTable.fields {
                let named = "\(table.name).\(oldField.name)\(oldField.label.isEmpty ? "" : " (\(oldField.label))")"
                guard let field = table.field(oldField.name) else {
                    throw LinliError(.invalidInput, "\(upgrade) removes field \(named)", hint: hint)
                }
                guard field.type == oldField.type else {
                    throw LinliError(.invalidInput, "\(upgrade) changes the type of \(named) from \(oldField.type.rawValue) to \(field.type.rawValue)", hint: hint)
                }
                guard field.references == oldField.references else {
                    throw LinliError(.invalidInput, "\(upgrade) changes the table \(named) refers to from \(oldField.references ?? "none") to \(field.references ?? "none")", hint: hint)
                }
                if let choices = field.choices {
                    guard let oldChoices = oldField.choices else {
                        throw LinliError(.invalidInput, "\(upgrade) limits \(named) to choices (\(choices.joined(separator: ", "))) it did not have", hint: hint)
                    }
                    let removed = oldChoices.filter { !choices.contains($0) }
                    guard removed.isEmpty else {
                        throw LinliError(.invalidInput, "\(upgrade) removes the choice\(removed.count == 1 ? "" : "s") \(removed.joined(separator: ", ")) of \(named)", hint: hint)
                    }
                }
                if let format = field.format, format != oldField.format {
                    throw LinliError(.invalidInput, "\(upgrade) gives \(named) the format \(format.rawValue)\(oldField.format.map { " instead of \($0.rawValue)" } ?? "")", hint: hint)
                }
                if let minimum = field.minimum, oldField.minimum.map({ minimum > $0 }) ?? true {
                    throw LinliError(.invalidInput, oldField.minimum == nil
                        ? "\(upgrade) gives \(named) a minimum, \(FieldSchema.show(minimum)), it did not have"
                        : "\(upgrade) raises the minimum of \(named) from \(FieldSchema.show(oldField.minimum)) to \(FieldSchema.show(minimum))", hint: hint)
                }
                if let maximum = field.maximum, oldField.maximum.map({ maximum < $0 }) ?? true {
                    throw LinliError(.invalidInput, oldField.maximum == nil
                        ? "\(upgrade) gives \(named) a maximum, \(FieldSchema.show(maximum)), it did not have"
                        : "\(upgrade) lowers the maximum of \(named) from \(FieldSchema.show(oldField.maximum)) to \(FieldSchema.show(maximum))", hint: hint)
                }
            }
        }
        // What it adds must be usable on its own.
        try validate()
    }

    static func describe(_ scope: ScopeRule) -> String {
        switch scope {
        case .gridField(let field): "grid (field \(field))"
        case .public: "public"
        case .kiosk: "kiosk"
        case .system: "system"
        case .subject: "subject"
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
