import Foundation
import LinliCore
import Testing

/// The community schema the fixtures use, repeated here so the core tests
/// need no other module.
let communitySchema = Schema(name: "fixtures", version: 1, tables: [
    TableSchema("person", label: "人员", scope: .gridField("grid"), fields: [
        FieldSchema("grid", .text, label: "网格", required: true),
        FieldSchema("name", .text, label: "姓名", personal: true, required: true),
        FieldSchema("phone", .text, label: "联系电话", personal: true),
        FieldSchema("birth_date", .date, label: "出生日期"),
        FieldSchema("care", .boolean, label: "重点关爱"),
        FieldSchema("hours", .real, label: "服务时长"),
        FieldSchema("visits", .integer, label: "走访次数"),
        FieldSchema("house", .reference, label: "房屋", references: "house"),
        FieldSchema("seen_at", .timestamp, label: "走访时间"),
        FieldSchema("photo", .bytes, label: "照片"),
    ]),
    TableSchema("house", label: "房屋", scope: .gridField("grid"), fields: [
        FieldSchema("grid", .text, label: "网格", required: true),
        FieldSchema("address", .text, label: "地址", required: true),
        FieldSchema("use", .text, label: "用途", choices: ["owner", "rented", "vacant", "commercial"]),
    ]),
    TableSchema("notice", label: "通知", scope: .public, fields: [
        FieldSchema("title", .text, label: "标题", required: true),
    ]),
    TableSchema("signup", label: "志愿者报名", scope: .kiosk, fields: [
        FieldSchema("name", .text, label: "姓名", personal: true, required: true),
    ]),
    TableSchema("certificate", scope: .system, fields: [
        FieldSchema("body", .bytes),
    ]),
])

@Suite("Schema validation") struct SchemaValidationTests {
    static func schema(_ tables: [TableSchema]) -> Schema { Schema(name: "test", version: 1, tables: tables) }
    static func table(_ name: String, scope: ScopeRule = .public, _ fields: [FieldSchema]) -> TableSchema {
        TableSchema(name, scope: scope, fields: fields)
    }
    static func table(scope: ScopeRule = .public, _ fields: [FieldSchema]) -> TableSchema {
        TableSchema("person", scope: scope, fields: fields)
    }

    @Test("the community schema is valid")
    func communityIsValid() throws {
        try communitySchema.validate()
        #expect(communitySchema.table("person")?.gridField == "grid")
        #expect(communitySchema.table("notice")?.gridField == nil)
        #expect(communitySchema.table("house")?.field("use")?.choices?.count == 4)
        #expect(communitySchema.table("nope") == nil)
        #expect(communitySchema.table("person")?.field("nope") == nil)
    }

    @Test("an empty schema and a table without fields are valid")
    func minimalSchemas() throws {
        try Self.schema([]).validate()
        try Self.schema([Self.table([])]).validate()
    }

    @Test("names of exactly 64 bytes, with digits and underscores, are valid")
    func longestNames() throws {
        let name = "a" + String(repeating: "b_9", count: 21)
        #expect(name.utf8.count == 64)
        try Self.schema([Self.table(name, [FieldSchema(name, .text)])]).validate()
    }

    @Test("a table declared twice is refused")
    func duplicateTable() {
        let schema = Self.schema([Self.table("person", []), Self.table("house", []), Self.table("person", [])])
        expectLinliError(.invalidInput) { try schema.validate() }
    }

    @Test("a field declared twice is refused")
    func duplicateField() {
        let schema = Self.schema([Self.table([FieldSchema("name", .text), FieldSchema("name", .integer)])])
        expectLinliError(.invalidInput) { try schema.validate() }
    }

    @Test("the same field name in two tables is fine")
    func sameFieldInTwoTables() throws {
        try Self.schema([Self.table("a", [FieldSchema("name", .text)]), Self.table("b", [FieldSchema("name", .text)])])
            .validate()
    }

    @Test("reserved or malformed table names are refused", arguments: [
        "_deleted", "_x", "linli", "linli_field", "linlix", "", "Person", "person-2", "9lives", "per son", "表",
        String(repeating: "a", count: 65),
    ])
    func badTableName(name: String) {
        let schema = Self.schema([Self.table(name, [FieldSchema("title", .text)])])
        expectLinliError(.invalidInput, "table \(name)") { try schema.validate() }
    }

    @Test("reserved or malformed field names are refused", arguments: [
        "id", "_deleted", "_x", "", "Name", "first-name", "1st", "a b", "名字", String(repeating: "a", count: 65),
    ])
    func badFieldName(name: String) {
        let schema = Self.schema([Self.table([FieldSchema("title", .text), FieldSchema(name, .text)])])
        expectLinliError(.invalidInput, "field \(name)") { try schema.validate() }
    }

    @Test("field names that only contain id or linli are fine")
    func namesNearReserved() throws {
        try Self.schema([Self.table("person", [
            FieldSchema("ids", .text), FieldSchema("person_id", .text), FieldSchema("linli", .text),
            FieldSchema("identity", .text), FieldSchema("d_", .text),
        ])]).validate()
        try Self.schema([Self.table("my_linli", [])]).validate()
    }

    @Test("a reference field that names no table is refused")
    func referenceWithoutTarget() throws {
        let bad = Self.schema([Self.table([FieldSchema("house", .reference)])])
        expectLinliError(.invalidInput) { try bad.validate() }
        let good = Self.schema([Self.table([FieldSchema("house", .reference, references: "house")])])
        try good.validate()
    }

    @Test("a grid scope naming a missing field is refused")
    func gridFieldMissing() {
        let schema = Self.schema([Self.table(scope: .gridField("grid"), [FieldSchema("name", .text)])])
        expectLinliError(.invalidInput) { try schema.validate() }
    }

    @Test("a grid scope naming a field that is not text is refused", arguments: FieldType.allCases.filter { $0 != .text })
    func gridFieldNotText(type: FieldType) {
        let field = FieldSchema("grid", type, references: type == .reference ? "house" : nil)
        let schema = Self.schema([Self.table(scope: .gridField("grid"), [field])])
        expectLinliError(.invalidInput, "grid field of type \(type)") { try schema.validate() }
    }

    @Test("more tables than tablesPerSchemaMax are refused as over the limit")
    func tooManyTables() throws {
        let atLimit = Self.schema((0..<Limits.tablesPerSchemaMax).map { Self.table("t\($0)", []) })
        try atLimit.validate()
        let over = Self.schema((0...Limits.tablesPerSchemaMax).map { Self.table("t\($0)", []) })
        expectLinliError(.overLimit) { try over.validate() }
    }

    @Test("more fields than fieldsPerTableMax are refused as over the limit")
    func tooManyFields() throws {
        let atLimit = Self.schema([Self.table((0..<Limits.fieldsPerTableMax).map { FieldSchema("f\($0)", .text) })])
        try atLimit.validate()
        let over = Self.schema([Self.table((0...Limits.fieldsPerTableMax).map { FieldSchema("f\($0)", .text) })])
        expectLinliError(.overLimit) { try over.validate() }
    }
}

@Suite("Field checks") struct FieldCheckTests {
    static let sixteen = Data(repeating: 0xAB, count: 16)

    /// Values that fit, and values that do not, for each type.
    static func samples(_ type: FieldType) -> (fit: [Value], misfit: [Value]) {
        let anyText = Value.text("hello")
        switch type {
        case .text:
            return ([.text("hello"), .text(""), .text("2024-02-29"), .text("名字")],
                    [.integer(1), .real(1.5), .boolean(true), .bytes(Data([1]))])
        case .integer:
            return ([.integer(0), .integer(.min), .integer(.max)],
                    [.real(1.0), .text("1"), .boolean(true), .bytes(Data([1]))])
        case .real:
            return ([.real(1.5), .real(-0.0), .real(.infinity), .integer(3)],
                    [.text("1.5"), .boolean(false), .bytes(Data([1]))])
        case .boolean:
            return ([.boolean(true), .boolean(false)],
                    [.integer(1), .integer(0), .text("true"), .real(1), .bytes(Data([1]))])
        case .date:
            return ([.text("2024-02-29"), .text("1999-12-31")],
                    [anyText, .text("2023-02-29"), .integer(20240229), .real(1), .boolean(true), .bytes(Data("2024-02-29".utf8))])
        case .timestamp:
            return ([.integer(1_700_000_000_000), .integer(0), .integer(-1)],
                    [.real(1.5), .text("1700000000000"), .boolean(true), .bytes(Data([1]))])
        case .bytes:
            return ([.bytes(Data()), .bytes(Data([1, 2, 3])), .bytes(sixteen)],
                    [.text("0102"), .integer(1), .real(1), .boolean(true)])
        case .reference:
            return ([.bytes(sixteen), .bytes(ID128.random().data)],
                    [.bytes(Data(repeating: 1, count: 15)), .bytes(Data(repeating: 1, count: 17)), .bytes(Data()),
                     .text(Hex.encode(sixteen)), .integer(1)])
        }
    }

    @Test("each type takes its own kind of value and refuses the others", arguments: FieldType.allCases)
    func typeChecks(type: FieldType) throws {
        let field = FieldSchema("f", type, references: type == .reference ? "house" : nil)
        let (fit, misfit) = Self.samples(type)
        for value in fit {
            #expect(throws: Never.self, "\(type) should take \(value)") { try field.check(value, table: "t") }
        }
        for value in misfit {
            expectLinliError(.schemaViolation, "\(type) should refuse \(value)") { try field.check(value, table: "t") }
        }
    }

    @Test("null fits every type, even a field with choices", arguments: FieldType.allCases)
    func nullFits(type: FieldType) throws {
        try FieldSchema("f", type, references: "x").check(.null, table: "t")
        try FieldSchema("f", type, required: true, choices: ["a"]).check(.null, table: "t")
    }

    @Test("a refusal names the table and field")
    func refusalMessage() {
        let error = #expect(throws: LinliError.self) {
            try FieldSchema("visits", .integer).check(.text("many"), table: "person")
        }
        #expect(error?.code == .schemaViolation)
        #expect(error?.message.contains("person.visits") == true)
    }

    @Test("valid calendar dates are accepted", arguments: [
        "2024-02-29", "2000-02-29", "2400-02-29", "2023-02-28", "2023-01-31", "2023-03-31", "2023-04-30",
        "2023-12-31", "1800-01-01", "9999-12-31", "2023-06-01",
    ])
    func validDates(text: String) throws {
        try FieldSchema("d", .date).check(.text(text), table: "t")
    }

    @Test("impossible or malformed dates are refused", arguments: [
        "2023-02-29", "1900-02-29", "2100-02-29", "2023-02-30", "2023-13-01", "2023-00-10", "2023-04-31",
        "2023-06-31", "2023-01-00", "2023-01-32", "2023-1-05", "2023-01-5", "23-01-05", "02023-01-05",
        "2023/01/05", "2023-01-05T10:00", "", "--", "2023--01", "1799-12-31", "0000-01-01", "abcd-ef-gh",
        " 2023-01-05", "2023-01-05 ", "-2023-01-05", "2023-01-05-",
    ])
    func invalidDates(text: String) {
        expectLinliError(.schemaViolation, "\(text)") { try FieldSchema("d", .date).check(.text(text), table: "t") }
    }

    @Test(
        "a date with a sign in its month or day is refused",
        arguments: ["2024-+1-05", "2024-01-+5", "2024-+2-+9"])
    func signedDateParts(text: String) {
        expectLinliError(.schemaViolation, "\(text)") { try FieldSchema("d", .date).check(.text(text), table: "t") }
    }

    @Test("a text field with choices takes only those choices")
    func choices() throws {
        let field = FieldSchema("use", .text, choices: ["owner", "rented", "vacant"])
        for choice in ["owner", "rented", "vacant"] { try field.check(.text(choice), table: "house") }
        for other in ["Owner", "", "sold", "owner "] {
            expectLinliError(.schemaViolation, "\(other)") { try field.check(.text(other), table: "house") }
        }
        expectLinliError(.schemaViolation) { try field.check(.integer(1), table: "house") }
        try field.check(.null, table: "house")
    }
}

@Suite("Schema coding") struct SchemaCodingTests {
    @Test("a schema survives JSON encoding and decoding")
    func roundTrip() throws {
        let data = try JSONEncoder().encode(communitySchema)
        let back = try JSONDecoder().decode(Schema.self, from: data)
        #expect(back == communitySchema)
        try back.validate()
    }

    @Test("each scope rule is coded as kind and field", arguments: [
        (ScopeRule.gridField("grid"), #"{"field":"grid","kind":"grid"}"#),
        (ScopeRule.public, #"{"kind":"public"}"#),
        (ScopeRule.kiosk, #"{"kind":"kiosk"}"#),
        (ScopeRule.system, #"{"kind":"system"}"#),
    ])
    func scopeRuleCoding(rule: ScopeRule, json: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(String(decoding: try encoder.encode(rule), as: UTF8.self) == json)
        #expect(try JSONDecoder().decode(ScopeRule.self, from: Data(json.utf8)) == rule)
    }

    @Test("an unknown scope kind, or a grid without its field, does not decode")
    func scopeRuleRefusals() {
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(ScopeRule.self, from: Data(#"{"kind":"planet"}"#.utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(ScopeRule.self, from: Data(#"{"kind":"grid"}"#.utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(ScopeRule.self, from: Data(#"{"field":"grid"}"#.utf8)) }
    }

    @Test("a field given only name and type decodes with defaults")
    func fieldDefaults() throws {
        let field = try JSONDecoder().decode(FieldSchema.self, from: Data(#"{"name":"title","type":"text"}"#.utf8))
        #expect(field == FieldSchema("title", .text))
        #expect(field.label == "")
        #expect(!field.personal)
        #expect(!field.required)
        #expect(field.references == nil)
        #expect(field.choices == nil)
    }

    @Test("a field of an unknown type does not decode")
    func unknownFieldType() {
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(FieldSchema.self, from: Data(#"{"name":"x","type":"money"}"#.utf8))
        }
    }

    @Test("a schema written by hand decodes to the expected tables")
    func handWritten() throws {
        let json = """
        {"name":"pack","version":3,"tables":[
          {"name":"person","label":"人员","scope":{"kind":"grid","field":"grid"},
           "fields":[{"name":"grid","type":"text","required":true},
                     {"name":"house","type":"reference","references":"house"},
                     {"name":"use","type":"text","choices":["a","b"],"personal":true}]},
          {"name":"notice","label":"","scope":{"kind":"public"},"fields":[]}]}
        """
        let schema = try JSONDecoder().decode(Schema.self, from: Data(json.utf8))
        #expect(schema.name == "pack")
        #expect(schema.version == 3)
        #expect(schema.tables.map(\.name) == ["person", "notice"])
        #expect(schema.table("person")?.scope == .gridField("grid"))
        #expect(schema.table("person")?.field("grid")?.required == true)
        #expect(schema.table("person")?.field("house")?.references == "house")
        #expect(schema.table("person")?.field("use")?.choices == ["a", "b"])
        #expect(schema.table("person")?.field("use")?.personal == true)
        #expect(schema.table("notice")?.scope == .public)
        try schema.validate()
    }
}
