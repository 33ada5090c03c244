import LinliCore
import Testing

/// The field formats every replica checks: citizen ID numbers (GB 11643),
/// mainland phone numbers, ethnic groups, number ranges.
struct ValidationTests {
    // Valid numbers: the standard's own example, and others whose check
    // character was computed independently of this code.
    @Test("valid citizen ID numbers are taken", arguments: [
        ("11010519491231002X", "1949-12-31", CitizenID.Gender.female),
        ("110101199003074514", "1990-03-07", CitizenID.Gender.male),
        ("11010119900307803X", "1990-03-07", CitizenID.Gender.male),
        ("110101199003078021", "1990-03-07", CitizenID.Gender.female),
    ])
    func validCitizenIDs(number: String, birth: String, gender: CitizenID.Gender) throws {
        let id = try CitizenID(number)
        #expect(id.birthDate == birth && id.gender == gender)
        try id.check(birthDate: birth, gender: gender.rawValue)
        #expect(throws: LinliError.self) { try id.check(birthDate: "1990-03-08", gender: nil) }
        #expect(throws: LinliError.self) { try id.check(birthDate: nil, gender: gender == .male ? "女" : "男") }
        // A lowercase x is read as X.
        if number.hasSuffix("X") { #expect(try CitizenID(number.lowercased()).text == number) }
    }

    @Test("invalid citizen ID numbers are refused, each with its reason", arguments: [
        ("110105194912310021", "check character"),   // the standard's example with a wrong check character
        ("110101199003074515", "check character"),   // one digit off
        ("110101199013074514", "birth date"),        // month 13
        ("110101199002304516", "birth date"),        // 30 February
        ("990101199003074514", "province"),          // no province 99
        ("11010119900307451", "18 characters"),      // 17 characters
        ("110101900307451", "18 characters"),        // the old 15-digit form
        ("11010119900307451Y", "18 characters"),
        ("11010119900307451４", "18 characters"),     // a full-width digit
    ])
    func invalidCitizenIDs(number: String, reason: String) {
        do {
            _ = try CitizenID(number, field: "person.id_number")
            Issue.record("\(number) was taken")
        } catch {
            #expect(error.code == .schemaViolation)
            #expect(error.message.contains(reason) && error.message.contains("person.id_number"), "\(error.message)")
        }
    }

    @Test func aBirthDateBefore1900IsRefusedThoughItsCheckCharacterIsRight() {
        // A frequently quoted example number: its check character is right,
        // but nobody born in 1880 is recorded today.
        #expect(CitizenID.checkCharacter("44052418800101001") == "4")
        #expect(throws: LinliError.self) { try CitizenID("440524188001010014") }
    }

    @Test func theCheckCharacterFollowsTheStandardsWeights() {
        // Every digit position changes the check character: a single
        // mistyped digit is always caught.
        let base = "11010519491231002"
        for position in 0..<17 {
            var digits = Array(base)
            digits[position] = digits[position] == "9" ? "0" : Character(String(digits[position].wholeNumberValue! + 1))
            #expect(CitizenID.checkCharacter(String(digits)) != CitizenID.checkCharacter(base), "position \(position)")
        }
    }

    @Test func mobileAndLandlineNumbers() {
        for good in ["13800138000", "19912345678", "+8613800138000", "008615012345678"] { #expect(PhoneNumber.isMobile(good), "\(good)") }
        for bad in ["12800138000", "1380013800", "138001380000", "1380013800a", "23800138000", ""] { #expect(!PhoneNumber.isMobile(bad), "\(bad)") }
        for good in ["010-62345678", "01062345678", "0571-87654321", "057187654321", "0755-8765432", "0755-8765432-801", "021-62345678"] {
            #expect(PhoneNumber.isLandline(good), "\(good)")
        }
        for bad in ["12345678", "010-1234567890", "0010-12345678", "010-02345678", "0571-876543", "010--12345678", "010-12345678-1234567", "13800138000"] {
            #expect(!PhoneNumber.isLandline(bad), "\(bad)")
        }
    }

    @Test func theFiftySixEthnicGroups() {
        #expect(Ethnicity.ordered.count == 56 && Ethnicity.names.count == 58)
        #expect(Ethnicity.names.isSuperset(of: ["汉族", "回族", "维吾尔族", "基诺族", "柯尔克孜族"]))
        do {
            try FieldFormat.ethnicity.check("汉", field: "person.ethnicity")
            Issue.record("汉 was taken")
        } catch {
            #expect(error.hint?.contains("汉族") == true)
        }
        #expect(throws: LinliError.self) { try FieldFormat.ethnicity.check("火星族", field: "person.ethnicity") }
    }

    @Test func fieldsCheckTheirFormatAndRange() throws {
        let id = FieldSchema("id_number", .text, label: "公民身份号码", personal: true, format: .citizenID)
        try id.check(.text("11010519491231002X"), table: "person")
        try id.check(.null, table: "person")
        #expect(throws: LinliError.self) { try id.check(.text("110105194912310021"), table: "person") }
        let hours = FieldSchema("hours", .real, label: "服务时长", minimum: 0, maximum: 24)
        try hours.check(.real(3.5), table: "service")
        try hours.check(.integer(24), table: "service")
        do {
            try hours.check(.real(25), table: "service")
            Issue.record("25 hours in one service record were taken")
        } catch {
            #expect(error.message == "service.hours (服务时长) must be between 0 and 24, not 25")
        }
        #expect(throws: LinliError.self) { try hours.check(.integer(-1), table: "service") }
        // A schema may not put a format on a number, or a range on text.
        #expect(throws: LinliError.self) {
            try Schema(name: "bad", version: 1, tables: [TableSchema("t", scope: .public, fields: [FieldSchema("n", .integer, format: .mobile)])]).validate()
        }
        #expect(throws: LinliError.self) {
            try Schema(name: "bad", version: 1, tables: [TableSchema("t", scope: .public, fields: [FieldSchema("s", .text, minimum: 1)])]).validate()
        }
    }
}
