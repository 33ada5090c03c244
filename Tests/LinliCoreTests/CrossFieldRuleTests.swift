import Foundation
import LinliCore
import Testing

/// Rules across the fields of one row: a citizen ID against the birth date
/// and gender entered beside it, and dates in order. Numbers are real
/// GB 11643 numbers with a correct check character.
@Suite("Cross-field rules") struct CrossFieldRuleTests {
    /// Born 1990-03-07, male (17th digit 1).
    static let male1990 = "110101199003074514"
    /// Born 1949-12-31, female (17th digit 2).
    static let female1949 = "11010519491231002X"
    /// When the changes are made: 2026-12-01 08:00 UTC.
    static let recordedAt: UInt64 = 1_796_112_000_000

    static let person = TableSchema("person", label: "人员", scope: .gridField("grid"), fields: [
        FieldSchema("grid", .text, label: "网格"),
        FieldSchema("id_number", .text, label: "公民身份号码", personal: true, format: .citizenID),
        FieldSchema("gender", .text, label: "性别", choices: ["男", "女"]),
        FieldSchema("birth_date", .date, label: "出生日期"),
        FieldSchema("moved_in", .date, label: "迁入日期"),
        FieldSchema("moved_out", .date, label: "迁出日期"),
    ], rules: [
        .citizenIDMatches(id: "id_number", birthDate: "birth_date", gender: "gender"),
        .dateOrder(start: "moved_in", end: "moved_out", strict: false),
    ])

    static let rental = TableSchema("rental", label: "出租房屋", scope: .gridField("grid"), fields: [
        FieldSchema("grid", .text, label: "网格"),
        FieldSchema("lease_start", .date, label: "租期开始"),
        FieldSchema("lease_end", .date, label: "租期结束"),
        FieldSchema("signed_at", .timestamp, label: "签约时间"),
        FieldSchema("handed_over_at", .timestamp, label: "交房时间"),
    ], rules: [
        .dateOrder(start: "lease_start", end: "lease_end", strict: true),
        .dateOrder(start: "signed_at", end: "handed_over_at", strict: false),
    ])

    static let schema = Schema(name: "rules", version: 1, tables: [person, rental])

    /// The error `body` throws, or nil.
    func violation(_ body: () throws -> Void) -> LinliError? {
        do { try body(); return nil } catch let error as LinliError { return error } catch {
            Issue.record("not a LinliError: \(error)")
            return nil
        }
    }

    // MARK: citizen_id_matches

    @Test func aCitizenIDMatchingItsBirthDateAndGenderPasses() throws {
        try Self.schema.validate()
        let values: [String: Value] = ["id_number": .text(Self.male1990), "birth_date": .text("1990-03-07"), "gender": .text("男")]
        try Self.person.checkRules(values, touching: ["id_number", "birth_date", "gender"], madeAt: Self.recordedAt)
        let female: [String: Value] = ["id_number": .text(Self.female1949), "birth_date": .text("1949-12-31"), "gender": .text("女")]
        try Self.person.checkRules(female, touching: ["id_number"], madeAt: Self.recordedAt)
        // A lowercase x is the same number.
        try Self.person.checkRules(["id_number": .text(Self.female1949.lowercased()), "birth_date": .text("1949-12-31")], touching: ["id_number"], madeAt: Self.recordedAt)
    }

    @Test func aBirthDateTheIDDoesNotEncodeIsRefusedWithBothValues() throws {
        let values: [String: Value] = ["id_number": .text(Self.male1990), "birth_date": .text("1991-03-07"), "gender": .text("男")]
        for written: Set<String> in [["birth_date"], ["id_number"], ["id_number", "birth_date", "gender"]] {
            let error = try #require(violation { try Self.person.checkRules(values, touching: written, madeAt: Self.recordedAt) }, "\(written)")
            #expect(error.code == .schemaViolation)
            #expect(error.message == "person: 公民身份号码 (id_number) encodes birth date 1990-03-07, but 出生日期 (birth_date) is 1991-03-07")
            #expect(error.hint?.isEmpty == false)
        }
    }

    @Test func aGenderTheIDDoesNotEncodeIsRefused() throws {
        let values: [String: Value] = ["id_number": .text(Self.female1949), "birth_date": .text("1949-12-31"), "gender": .text("男")]
        let error = try #require(violation { try Self.person.checkRules(values, touching: ["gender"], madeAt: Self.recordedAt) })
        #expect(error.code == .schemaViolation)
        #expect(error.message == "person: 公民身份号码 (id_number) encodes gender 女, but 性别 (gender) is 男")
    }

    @Test func onlyComparisonsTouchingAWrittenFieldAreChecked() throws {
        // The stored birth date disagrees with the ID; writing only the
        // gender (which agrees) does not bring that up.
        let values: [String: Value] = ["id_number": .text(Self.male1990), "birth_date": .text("1991-03-07"), "gender": .text("男"),
                                       "grid": .text("G1")]
        try Self.person.checkRules(values, touching: ["gender"], madeAt: Self.recordedAt)
        try Self.person.checkRules(values, touching: ["grid"], madeAt: Self.recordedAt)
        try Self.person.checkRules(values, touching: [], madeAt: Self.recordedAt)
        #expect(violation { try Self.person.checkRules(values, touching: ["birth_date"], madeAt: Self.recordedAt) } != nil)
    }

    @Test func missingValuesAreNotCompared() throws {
        try Self.person.checkRules(["birth_date": .text("1991-03-07"), "gender": .text("女")], touching: ["birth_date", "gender"], madeAt: Self.recordedAt)
        try Self.person.checkRules(["id_number": .text(Self.male1990)], touching: ["id_number"], madeAt: Self.recordedAt)
        try Self.person.checkRules(["id_number": .text(Self.male1990), "birth_date": .null, "gender": .null], touching: ["id_number", "birth_date"], madeAt: Self.recordedAt)
        try Self.person.checkRules(["id_number": .null, "birth_date": .text("1991-03-07")], touching: ["id_number", "birth_date"], madeAt: Self.recordedAt)
        // A number that does not parse is the field format's to refuse.
        try Self.person.checkRules(["id_number": .text("110101199003074515"), "birth_date": .text("1991-03-07")], touching: ["id_number"], madeAt: Self.recordedAt)
    }

    @Test func aRuleWithOnlyGenderIgnoresTheBirthDate() throws {
        var tenant = Self.person
        tenant.rules = [.citizenIDMatches(id: "id_number", birthDate: nil, gender: "gender")]
        try Schema(name: "t", version: 1, tables: [tenant]).validate()
        try tenant.checkRules(["id_number": .text(Self.male1990), "birth_date": .text("2001-01-01"), "gender": .text("男")], touching: ["id_number", "birth_date"], madeAt: Self.recordedAt)
        #expect(violation { try tenant.checkRules(["id_number": .text(Self.male1990), "gender": .text("女")], touching: ["id_number"], madeAt: Self.recordedAt) } != nil)
    }

    // MARK: date_order

    @Test func datesInOrderPass() throws {
        try Self.rental.checkRules(["lease_start": .text("2024-03-01"), "lease_end": .text("2025-02-28")], touching: ["lease_end"], madeAt: Self.recordedAt)
        try Self.person.checkRules(["moved_in": .text("2020-05-01"), "moved_out": .text("2023-11-30")], touching: ["moved_in"], madeAt: Self.recordedAt)
        // Not strict: the same day is in order.
        try Self.person.checkRules(["moved_in": .text("2020-05-01"), "moved_out": .text("2020-05-01")], touching: ["moved_out"], madeAt: Self.recordedAt)
        try Self.rental.checkRules(["signed_at": .integer(1_700_000_000_000), "handed_over_at": .integer(1_700_000_000_000)], touching: ["signed_at"], madeAt: Self.recordedAt)
        // Only one date: nothing to compare.
        try Self.rental.checkRules(["lease_end": .text("2020-01-01")], touching: ["lease_end"], madeAt: Self.recordedAt)
        try Self.rental.checkRules(["lease_start": .text("2024-03-01"), "lease_end": .null], touching: ["lease_start", "lease_end"], madeAt: Self.recordedAt)
    }

    @Test func anEndBeforeItsStartIsRefused() throws {
        let error = try #require(violation {
            try Self.rental.checkRules(["lease_start": .text("2024-06-01"), "lease_end": .text("2024-01-01")], touching: ["lease_start"], madeAt: Self.recordedAt)
        })
        #expect(error.code == .schemaViolation)
        #expect(error.message == "rental: 租期结束 (lease_end) 2024-01-01 must be after 租期开始 (lease_start) 2024-06-01")
        let notStrict = try #require(violation {
            try Self.person.checkRules(["moved_in": .text("2020-05-01"), "moved_out": .text("2020-04-30")], touching: ["moved_out"], madeAt: Self.recordedAt)
        })
        #expect(notStrict.message == "person: 迁出日期 (moved_out) 2020-04-30 must not be before 迁入日期 (moved_in) 2020-05-01")
        #expect(violation {
            try Self.rental.checkRules(["signed_at": .integer(1_700_000_000_001), "handed_over_at": .integer(1_700_000_000_000)], touching: ["handed_over_at"], madeAt: Self.recordedAt)
        } != nil)
    }

    @Test func aStrictRuleRefusesTheSameDay() throws {
        let error = try #require(violation {
            try Self.rental.checkRules(["lease_start": .text("2024-06-01"), "lease_end": .text("2024-06-01")], touching: ["lease_end"], madeAt: Self.recordedAt)
        })
        #expect(error.message.contains("must be after"))
        // Unwritten, an old disorder is left alone.
        try Self.rental.checkRules(["lease_start": .text("2024-06-01"), "lease_end": .text("2024-06-01")], touching: ["grid"], madeAt: Self.recordedAt)
    }

    // MARK: validate()

    func refusal(_ rule: TableRule, in table: TableSchema = CrossFieldRuleTests.person) -> String? {
        var table = table
        table.rules = [rule]
        do throws(LinliError) {
            try Schema(name: "t", version: 1, tables: [table]).validate()
            return nil
        } catch {
            #expect(error.code == .invalidInput)
            return error.message
        }
    }

    @Test func validateRefusesRulesOnUndeclaredOrWrongFields() {
        #expect(refusal(.citizenIDMatches(id: "id_no", birthDate: "birth_date", gender: nil))
            == "rule citizen_id_matches of table person names id_no as its id field, which person does not declare")
        #expect(refusal(.citizenIDMatches(id: "id_number", birthDate: "born", gender: nil))
            == "rule citizen_id_matches of table person names born as its birth_date field, which person does not declare")
        #expect(refusal(.citizenIDMatches(id: "gender", birthDate: "birth_date", gender: nil))
            == "rule citizen_id_matches of table person takes the ID from 性别 (gender), which must be a text field with format citizen_id")
        #expect(refusal(.citizenIDMatches(id: "id_number", birthDate: "gender", gender: nil))
            == "rule citizen_id_matches of table person compares the birth date with 性别 (gender), a text field; it must be a date field")
        #expect(refusal(.citizenIDMatches(id: "id_number", birthDate: nil, gender: "moved_in"))
            == "rule citizen_id_matches of table person compares the gender with 迁入日期 (moved_in), a date field; it must be a text field")
        #expect(refusal(.citizenIDMatches(id: "id_number", birthDate: nil, gender: nil))?.contains("compares 公民身份号码 (id_number) with nothing") == true)
        #expect(refusal(.dateOrder(start: "moved_in", end: "moved_on", strict: false))
            == "rule date_order of table person names moved_on as its end field, which person does not declare")
        #expect(refusal(.dateOrder(start: "gender", end: "moved_out", strict: false))
            == "rule date_order of table person orders 性别 (gender), a text field; it must be a date or timestamp field")
        #expect(refusal(.dateOrder(start: "moved_in", end: "moved_in", strict: true))?.contains("with itself") == true)
        #expect(refusal(.dateOrder(start: "lease_start", end: "signed_at", strict: true), in: Self.rental)
            == "rule date_order of table rental orders 租期开始 (lease_start), a date field, and 签约时间 (signed_at), a timestamp field; both must have the same type")
        var gender = Self.person
        gender.fields[2].choices = ["M", "F"]
        #expect(refusal(.citizenIDMatches(id: "id_number", birthDate: nil, gender: "gender"), in: gender)?.contains("must include 男 and 女") == true)
        #expect(refusal(.citizenIDMatches(id: "id_number", birthDate: "birth_date", gender: "gender")) == nil)
    }

    // MARK: JSON

    @Test func rulesRoundTripThroughJSON() throws {
        let data = try JSONEncoder().encode(Self.schema)
        #expect(try JSONDecoder().decode(Schema.self, from: data) == Self.schema)
        let json = """
            {"name": "t", "version": 1, "tables": [{"name": "rental", "label": "出租房屋", "scope": {"kind": "public"},
              "fields": [{"name": "lease_start", "type": "date"}, {"name": "lease_end", "type": "date"},
                         {"name": "id_number", "type": "text", "format": "citizen_id"}, {"name": "gender", "type": "text"}],
              "rules": [{"kind": "date_order", "start": "lease_start", "end": "lease_end", "strict": true},
                        {"kind": "date_order", "start": "lease_start", "end": "lease_end"},
                        {"kind": "citizen_id_matches", "id": "id_number", "gender": "gender"}]}]}
            """
        let decoded = try JSONDecoder().decode(Schema.self, from: Data(json.utf8))
        try decoded.validate()
        #expect(decoded.tables[0].rules == [
            .dateOrder(start: "lease_start", end: "lease_end", strict: true),
            .dateOrder(start: "lease_start", end: "lease_end", strict: false),
            .citizenIDMatches(id: "id_number", birthDate: nil, gender: "gender"),
        ])
        // The absent birth date stays absent when encoded again.
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let rule = String(decoding: try encoder.encode(decoded.tables[0].rules[2]), as: UTF8.self)
        #expect(rule == #"{"gender":"gender","id":"id_number","kind":"citizen_id_matches"}"#)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(TableRule.self, from: Data(#"{"kind": "age_matches", "id": "id_number"}"#.utf8))
        }
    }

    @Test func aTableWithoutRulesEncodesAsBefore() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let table = TableSchema("notice", label: "通知", scope: .public, fields: [FieldSchema("title", .text, label: "标题")])
        let json = String(decoding: try encoder.encode(table), as: UTF8.self)
        #expect(!json.contains("rules"))
        #expect(json.hasPrefix(#"{"fields":[{"#) && json.hasSuffix(#""label":"通知","name":"notice","scope":{"kind":"public"}}"#))
        let decoded = try JSONDecoder().decode(TableSchema.self, from: Data(json.utf8))
        #expect(decoded == table && decoded.rules.isEmpty)
    }

    // MARK: checkUpgrade

    func upgradeRefusal(_ change: (inout Schema) -> Void) -> String? {
        var next = Self.schema
        next.version = 2
        change(&next)
        do throws(LinliError) {
            try next.checkUpgrade(from: Self.schema)
            return nil
        } catch {
            #expect(error.code == .invalidInput)
            return error.message
        }
    }

    @Test func anUpgradeMayAdd() throws {
        #expect(upgradeRefusal { _ in } == nil)
        #expect(upgradeRefusal { $0.tables[0].fields.append(FieldSchema("phone", .text, label: "联系电话", format: .phone)) } == nil)
        #expect(upgradeRefusal {
            $0.tables.append(TableSchema("visit", label: "走访", scope: .gridField("grid"), fields: [FieldSchema("grid", .text)]))
        } == nil)
        #expect(upgradeRefusal { $0.tables[0].fields[2].choices = ["男", "女", "未说明"] } == nil)
        #expect(upgradeRefusal { $0.tables[0].fields[2].label = "性别（自填）" } == nil)
        // New rules apply to new writes; dropping one loosens.
        #expect(upgradeRefusal { $0.tables[1].rules.append(.dateOrder(start: "lease_start", end: "lease_end", strict: false)) } == nil)
        #expect(upgradeRefusal { $0.tables[0].rules.removeAll() } == nil)
    }

    @Test func anUpgradeMayNotRemoveOrChange() {
        #expect(upgradeRefusal { $0.tables[0].fields.remove(at: 4) } == "schema rules version 2 removes field person.moved_in (迁入日期)")
        #expect(upgradeRefusal { $0.tables.remove(at: 1) } == "schema rules version 2 removes table rental (出租房屋)")
        #expect(upgradeRefusal { $0.tables[1].fields[3].type = .integer }
            == "schema rules version 2 changes the type of rental.signed_at (签约时间) from timestamp to integer")
        #expect(upgradeRefusal { $0.tables[0].fields[2].choices = ["男"] } == "schema rules version 2 removes the choice 女 of person.gender (性别)")
        #expect(upgradeRefusal { $0.tables[0].scope = .public }
            == "schema rules version 2 changes the scope rule of table person from grid (field grid) to public")
        #expect(upgradeRefusal { $0.tables[0].fields[0].choices = ["G1"] }?.contains("limits person.grid (网格) to choices (G1)") == true)
        #expect(upgradeRefusal { $0.tables[0].fields[0].format = .mobile }?.contains("gives person.grid (网格) the format mobile") == true)
        #expect(upgradeRefusal { $0.version = 1 } == "schema rules version 1 does not come after version 1; an upgrade needs a higher version")
        #expect(upgradeRefusal { $0.version = 0 }?.contains("does not come after") == true)
        #expect(upgradeRefusal { $0.name = "other" }?.contains("an upgrade keeps the name") == true)
        // An invalid new schema is refused as such.
        #expect(upgradeRefusal { $0.tables[0].rules.append(.dateOrder(start: "moved_in", end: "nowhere", strict: false)) }?.contains("does not declare") == true)
    }

    @Test func anUpgradeMayNotChangeAReferenceOrNarrowARange() {
        let old = Schema(name: "p", version: 3, tables: [
            TableSchema("house", scope: .public, fields: [FieldSchema("floors", .integer, minimum: 1, maximum: 60)]),
            TableSchema("person", scope: .public, fields: [FieldSchema("house", .reference, references: "house")]),
        ])
        func refusal(_ change: (inout Schema) -> Void) -> String? {
            var next = old
            next.version = 4
            change(&next)
            do throws(LinliError) { try next.checkUpgrade(from: old); return nil } catch { return error.message }
        }
        #expect(refusal { $0.tables[0].fields[0].maximum = 120 } == nil)
        #expect(refusal { $0.tables[0].fields[0].minimum = nil } == nil)
        #expect(refusal { $0.tables[0].fields[0].maximum = 30 } == "schema p version 4 lowers the maximum of house.floors from 60 to 30")
        #expect(refusal { $0.tables[0].fields[0].minimum = 2 } == "schema p version 4 raises the minimum of house.floors from 1 to 2")
        #expect(refusal {
            $0.tables.append(TableSchema("flat", scope: .public, fields: []))
            $0.tables[1].fields[0].references = "flat"
        } == "schema p version 4 changes the table person.house refers to from house to flat")
    }
}
