import Foundation
import LinliCore
import Testing

/// What the community pack accepts, stores and shows, judged on the pack
/// itself (Protocol/schema/community-v1.json): values typed in the forms
/// people use are stored in one form, masked data cannot be put back
/// together from what is shown, and dates keep to time.
@Suite struct RecordCorrectnessTests {
    static let pack: Schema = {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Protocol/schema/community-v1.json")
        return try! JSONDecoder().decode(Schema.self, from: Data(contentsOf: file))
    }()

    /// 2026-12-01 08:00 UTC.
    static let recordedAt: UInt64 = 1_796_112_000_000

    func table(_ name: String) throws -> TableSchema { try #require(Self.pack.table(name)) }

    func stored(_ table: String, _ field: String, _ typed: String) throws -> Value {
        let table = try self.table(table)
        let field = try #require(table.field(field))
        return try FieldText.parse(typed, field: field, table: table, resolve: FieldText.wholeID)
    }

    func refusal(_ body: () throws -> Void) -> LinliError? {
        do { try body(); return nil } catch let error as LinliError { return error } catch { return nil }
    }

    // MARK: Telephone numbers

    @Test func theLandlineHintsOwnExamplesAreTaken() throws {
        let error = try #require(refusal { try FieldFormat.phone.check("12", field: "person.phone") })
        let hint = try #require(error.hint)
        let examples = hint.matches(of: /0\d{2,3}-\d{7,8}(-\d{1,6})?/).map { String($0.output.0) }
        #expect(examples.count >= 2, "\(hint)")
        for example in examples {
            #expect(PhoneNumber.isLandline(example), "the hint offers \(example), which the check refuses")
            #expect(try stored("person", "phone", example) == .text(example))
        }
    }

    @Test("an area code follows one rule, with a hyphen after it or without", arguments: [
        ("010-62345678", true), ("021-62345678", true), ("0571-87654321", true), ("0755-8765432", true),
        ("030-1234567", false), ("030-2345678", false), ("0211-2345678", false), ("0101-2345678", false), ("020-1234567", false),
    ])
    func areaCodes(number: String, valid: Bool) {
        #expect(PhoneNumber.isLandline(number) == valid, "\(number)")
        let joined = number.replacingOccurrences(of: "-", with: "")
        #expect(PhoneNumber.isLandline(joined) == valid, "\(joined) must be judged as \(number) is")
    }

    // MARK: One stored form

    @Test("each typed form is stored in the format's one form", arguments: [
        ("person", "id_number", "11010519491231002x", "11010519491231002X"),
        ("person", "id_number", " 110105 19491231 002X ", "11010519491231002X"),
        ("person", "document_number", "e1234 5678", "E12345678"),
        ("person", "id_type", "护照", "护照"),
        ("person", "phone", "138 0000 1111", "13800001111"),
        ("person", "phone", "138-0000-1111", "13800001111"),
        ("person", "phone", "+86 138 0000 1111", "13800001111"),
        ("person", "phone", "008613800001111", "13800001111"),
        ("person", "phone", "１３８００００１１１１", "13800001111"),
        ("person", "phone", "010 6234 5678", "010-62345678"),
        ("person", "phone", "(010)62345678", "010-62345678"),
        ("person", "phone", "01062345678", "010-62345678"),
        ("person", "phone", "0755-8765432-801", "0755-8765432-801"),
        ("person", "ethnicity", "汉", "汉族"),
        ("person", "ethnicity", "维吾尔", "维吾尔族"),
        ("person", "ethnicity", "未识别民族", "未识别民族"),
        ("person", "ethnicity", "外国血统中国籍人士", "外国血统中国籍人士"),
        ("person", "birth_date", "1958-3-12", "1958-03-12"),
        ("person", "birth_date", "1958/3/12", "1958-03-12"),
        ("person", "birth_date", "1958.03.12", "1958-03-12"),
        ("person", "birth_date", "1958年3月12日", "1958-03-12"),
        ("person", "birth_date", "19580312", "1958-03-12"),
        ("rental", "lease_start", "2026/9/1", "2026-09-01"),
    ])
    func typedForms(tableName: String, field: String, typed: String, expected: String) throws {
        #expect(try stored(tableName, field, typed) == .text(expected))
        // The stored form is what the gatekeeper's check takes.
        try #require(try table(tableName).field(field)).check(.text(expected), table: tableName)
    }

    @Test("what is no value of its kind is still refused, with the reason", arguments: [
        ("person", "phone", "138 0000 111"), ("person", "phone", "010-1234567"), ("person", "birth_date", "1958-2-30"),
        ("person", "birth_date", "1958年13月1日"), ("person", "ethnicity", "火星"), ("person", "id_number", "11010519491231002Y"),
    ])
    func stillRefused(table: String, field: String, typed: String) throws {
        let error = try #require(refusal { _ = try stored(table, field, typed) })
        #expect(error.code == .invalidInput && error.message.contains(field), "\(error.message)")
    }

    // MARK: Documents other than the mainland identity card

    /// Numbers of the GB 11643 structure with a right check character,
    /// made here from their first 17 digits.
    static func number(_ first17: String) -> String { first17 + String(CitizenID.checkCharacter(first17)!) }

    @Test func residencePermitsAndForeignersPermanentResidenceIDsAreNumbersOfTheirOwnKind() throws {
        let foreigner = Self.number("91184019900307451")  // issued in Beijing (11), country 840
        let hongKong = Self.number("81000019900307451")
        #expect(try CitizenID(foreigner).kind == .foreignPermanentResidentID && CitizenID(foreigner).birthDate == "1990-03-07")
        #expect(try CitizenID(hongKong).kind == .residencePermit)
        #expect(try CitizenID("11010519491231002X").kind == .residentIDCard)
        // A residence permit is 810000…, not 81 and any region.
        #expect(refusal { _ = try CitizenID(Self.number("81010119900307451")) }?.message.contains("810000") == true)

        let person = try table("person")
        let asIDCard = try #require(refusal {
            try person.checkRules(["id_type": .text("居民身份证"), "id_number": .text(hongKong)], touching: ["id_number"], madeAt: Self.recordedAt)
        })
        #expect(asIDCard.code == .schemaViolation && asIDCard.message.contains("港澳台居民居住证"), "\(asIDCard.message)")
        try person.checkRules(["id_type": .text("港澳台居民居住证"), "id_number": .text(hongKong)], touching: ["id_number"], madeAt: Self.recordedAt)
        try person.checkRules(["id_type": .text("外国人永久居留身份证"), "id_number": .text(foreigner)], touching: ["id_type"], madeAt: Self.recordedAt)
        #expect(refusal {
            try person.checkRules(["id_type": .text("外国人永久居留身份证"), "id_number": .text("11010519491231002X")], touching: ["id_type"], madeAt: Self.recordedAt)
        } != nil)
        // The birth date and gender rule reads a permit as it reads a card.
        #expect(refusal {
            try person.checkRules(["id_number": .text(foreigner), "birth_date": .text("1991-03-07")], touching: ["birth_date"], madeAt: Self.recordedAt)
        } != nil)
    }

    @Test("a passport or travel permit number is checked by its type", arguments: [
        ("护照", "E12345678", true), ("护照", "e1234 5678", true), ("护照", "12", false),
        ("港澳居民来往内地通行证", "H12345678", true), ("港澳居民来往内地通行证", "M1234567890", true), ("港澳居民来往内地通行证", "E12345678", false),
        ("台湾居民来往大陆通行证", "12345678", true), ("台湾居民来往大陆通行证", "H12345678", false),
    ])
    func documentNumbers(type: String, typed: String, valid: Bool) throws {
        let person = try table("person")
        let stored = try? self.stored("person", "document_number", typed)
        guard let value = stored else {
            #expect(!valid, "\(typed) was refused as no document number")
            return
        }
        let verdict = refusal {
            try person.checkRules(["id_type": .text(type), "document_number": value], touching: ["document_number"], madeAt: Self.recordedAt)
        }
        #expect((verdict == nil) == valid, "\(type) \(typed): \(verdict?.message ?? "taken")")
        if !valid, let verdict { #expect(verdict.message.contains(type) && verdict.hint?.isEmpty == false) }
    }

    // MARK: Masking

    /// Every citizen ID that what the screen shows of a person leaves
    /// possible: each masked ID character and each shown birth-date digit
    /// must match, and the check character must be right.
    func candidates(maskedID: String, shownBirthDate: String) -> Int {
        let pattern = Array(maskedID), datePattern = Array(shownBirthDate)
        var count = 0
        for year in 1900...2026 {
            for month in 1...12 {
                for day in 1...31 {
                    let date = String(format: "%04d-%02d-%02d", year, month, day)
                    guard FieldSchema.normalisedDate(date) == date else { continue }
                    if datePattern.count == 10, !zip(datePattern, date).allSatisfy({ $0 == "*" || $0 == $1 }) { continue }
                    let first17 = String(pattern.prefix(6)) + date.replacingOccurrences(of: "-", with: "") + String(pattern[14..<17])
                    guard first17.allSatisfy(\.isNumber), let check = CitizenID.checkCharacter(first17) else { continue }
                    let id = Array(first17 + String(check))
                    if zip(pattern, id).allSatisfy({ $0 == "*" || $0 == $1 }) { count += 1 }
                }
            }
        }
        return count
    }

    @Test func noCombinationOfShownFieldsRebuildsACitizenID() throws {
        let person = try table("person")
        let values: [String: Value] = [
            "grid": .text("G1"), "name": .text("陈静"), "id_number": .text("11010519491231002X"), "gender": .text("女"),
            "ethnicity": .text("汉族"), "birth_date": .text("1949-12-31"), "residence_type": .text("户籍人口"),
            "care_tags": .text("独居老人"), "moved_in": .text("1980-05-01"),
        ]
        var shown: [String: String] = [:]
        for field in person.fields { if let value = values[field.name] { shown[field.name] = FieldText.show(value, field: field, reveal: false) } }
        let maskedID = try #require(shown["id_number"])
        #expect(maskedID.count == 18 && maskedID.contains("*"))
        let all = shown.values.joined(separator: " ")
        for secret in ["19491231", "1949-12-31", "1949", "12-31", "独居"] {
            #expect(!all.contains(secret), "the screen shows \(secret): \(shown)")
        }
        let possible = candidates(maskedID: maskedID, shownBirthDate: shown["birth_date"] ?? "")
        #expect(possible >= 1_000, "only \(possible) citizen IDs fit what is shown: \(shown)")
        // Revealed (and noted in reveal.log), all of it is there.
        #expect(FieldText.show(values["birth_date"]!, field: person.field("birth_date")!, reveal: true) == "1949-12-31")

        // A tenant's age gives the birth year.
        let tenant = try table("tenant")
        let age = try #require(tenant.field("age"))
        #expect(age.personal && FieldText.show(.integer(76), field: age, reveal: false) == "**")
    }

    // MARK: Dates that keep to time

    @Test func aBirthDateIsNotInTheFutureNorAfterMovingIn() throws {
        let person = try table("person")
        let future = try #require(refusal {
            try person.checkRules(["birth_date": .text("2099-01-01")], touching: ["birth_date"], madeAt: Self.recordedAt)
        })
        #expect(future.code == .schemaViolation && future.message.contains("2099-01-01") && future.message.contains("future"), "\(future.message)")
        // The day of the change itself is no future, in any time zone.
        try person.checkRules(["birth_date": .text("2026-12-01")], touching: ["birth_date"], madeAt: Self.recordedAt)
        try person.checkRules(["birth_date": .text("2026-12-01")], touching: ["birth_date"], madeAt: Self.recordedAt - 10 * 3_600_000)
        #expect(refusal {
            try person.checkRules(["birth_date": .text("2026-12-03")], touching: ["birth_date"], madeAt: Self.recordedAt)
        } != nil)
        // The same change judged later (a rebuild, a replay) gets the same answer.
        try person.checkRules(["birth_date": .text("2026-11-30")], touching: ["birth_date"], madeAt: Self.recordedAt)

        let beforeBirth = try #require(refusal {
            try person.checkRules(["birth_date": .text("1990-03-07"), "moved_in": .text("1985-01-01")], touching: ["moved_in"], madeAt: Self.recordedAt)
        })
        #expect(beforeBirth.message.contains("moved_in") && beforeBirth.message.contains("birth_date"), "\(beforeBirth.message)")
        try person.checkRules(["birth_date": .text("1990-03-07"), "moved_in": .text("1990-03-07")], touching: ["moved_in"], madeAt: Self.recordedAt)
    }

    @Test func aTenantsAgeMustBeTheOneTheirIDGives() throws {
        let tenant = try table("tenant")
        // Born 1990-03-07: 36 on 2026-12-01.
        let id = "110101199003074514"
        try tenant.checkRules(["id_number": .text(id), "age": .integer(36)], touching: ["age"], madeAt: Self.recordedAt)
        let wrong = try #require(refusal {
            try tenant.checkRules(["id_number": .text(id), "age": .integer(26)], touching: ["id_number"], madeAt: Self.recordedAt)
        })
        #expect(wrong.code == .schemaViolation && wrong.message.contains("36") && wrong.message.contains("26"), "\(wrong.message)")
        // The day before the birthday, one year less.
        try tenant.checkRules(["id_number": .text(id), "age": .integer(35)], touching: ["age"], madeAt: 1_772_755_200_000)  // 2026-03-06 00:00 UTC
        #expect(CalendarDay.date(of: 1_772_755_200_000, offsetHours: 0) == "2026-03-06")
        #expect(CalendarDay.age(born: "1990-03-07", on: "2026-03-06") == 35 && CalendarDay.age(born: "1990-03-07", on: "2026-03-07") == 36)
    }

    @Test func calendarDaysAgreeWithFoundation() {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd"
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<2_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let milliseconds = (state >> 11) % 4_102_444_800_000  // to 2100
            #expect(CalendarDay.date(of: milliseconds, offsetHours: 0) == formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds / 1000))),
                    "\(milliseconds)")
        }
    }
}
