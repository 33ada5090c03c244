import Foundation
import LinliClient
import LinliCore
import LinliStore
import LinliTesting
import Testing

struct SchemaPackEmbeddingTests {
    static let file = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Protocol/schema/community-v1.json")

    @Test func theEmbeddedPackIsTheFileInProtocol() throws {
        let onDisk = try JSONDecoder().decode(Schema.self, from: Data(contentsOf: Self.file))
        #expect(SchemaPacks.community == onDisk, "run `make schema` after changing Protocol/schema/community-v1.json")
    }
}

struct NightWindowTests {
    var calendar: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
        return calendar
    }

    func date(_ day: Int, _ hour: Int, _ minute: Int) -> Date {
        calendar.date(from: DateComponents(year: 2026, month: 11, day: day, hour: hour, minute: minute))!
    }

    @Test func parsesWindowsAndRefusesBadOnes() throws {
        let window = try NightWindow("01:00-05:00")
        #expect(window.start == 3600 && window.end == 18_000 && window.length == 14_400)
        #expect(try NightWindow("23:30-02:00").length == 9000)
        #expect(try NightWindow("01:00:05-01:00:10").length == 5)
        for bad in ["1-5", "25:00-05:00", "01:00-01:00", "01:00", "aa:bb-cc:dd", "01:60-02:00"] {
            #expect(throws: LinliError.self, "\(bad)") { try NightWindow(bad) }
        }
    }

    @Test func beforeTheWindowTheMomentFallsInsideTonightsWindow() throws {
        let window = try NightWindow("01:00-05:00")
        let now = date(22, 0, 30)
        for fraction in [0.0, 0.5, 1.0] {
            let moment = window.nextMoment(after: now, calendar: calendar) { range in range.lowerBound + fraction * (range.upperBound - range.lowerBound) }
            #expect(moment >= date(22, 1, 0) && moment <= date(22, 5, 0))
        }
    }

    @Test func insideTheWindowTheMomentIsBetweenNowAndItsEnd() throws {
        let window = try NightWindow("01:00-05:00")
        let now = date(22, 4, 0)
        let earliest = window.nextMoment(after: now, calendar: calendar) { $0.lowerBound }
        let latest = window.nextMoment(after: now, calendar: calendar) { $0.upperBound }
        #expect(earliest == now && latest == date(22, 5, 0))
    }

    @Test func afterTheWindowTheNextNightIsChosen() throws {
        let window = try NightWindow("01:00-05:00")
        let moment = window.nextMoment(after: date(22, 6, 0), calendar: calendar) { $0.lowerBound }
        #expect(moment == date(23, 1, 0))
    }

    @Test func aWindowAcrossMidnightIsOpenAfterMidnight() throws {
        let window = try NightWindow("23:00-02:00")
        let (opens, closes) = window.occurrence(after: date(22, 1, 0), calendar: calendar)
        #expect(opens == date(21, 23, 0) && closes == date(22, 2, 0))
    }

    @Test func randomMomentsSpreadOverTheWindow() throws {
        // A hundred kiosks: their moments spread over the four hours rather
        // than bunching (each hour gets some).
        let window = try NightWindow("01:00-05:00")
        var hours = Set<Int>()
        for _ in 0..<100 {
            let moment = window.nextMoment(after: date(22, 0, 0), calendar: calendar)
            hours.insert(calendar.component(.hour, from: moment))
        }
        #expect(hours == [1, 2, 3, 4])
    }
}

struct MaskingAndParsingTests {
    let schema = SchemaPacks.community

    @Test func personalDataIsMaskedByKind() throws {
        let person = try #require(schema.table("person"))
        #expect(FieldText.show(.text("11010519491231002X"), field: person.field("id_number")!, reveal: false) == "110105********002X")
        #expect(FieldText.show(.text("13812345678"), field: person.field("phone")!, reveal: false) == "138****5678")
        #expect(FieldText.show(.text("张三丰"), field: person.field("name")!, reveal: false) == "张**")
        #expect(FieldText.show(.text("张三丰"), field: person.field("name")!, reveal: true) == "张三丰")
        // Not personal: shown as it is.
        #expect(FieldText.show(.text("汉族"), field: person.field("ethnicity")!, reveal: false) == "汉族")
    }

    @Test func typedTextBecomesValuesWithClearErrors() throws {
        let store = try ReplicaStore(path: nil, schema: schema)
        let records = Records(store: store)
        let person = try records.table("人口")
        #expect(person.name == "person")
        let values = try records.parse(["name=张三", "出生日期=1949-12-31", "gender=女", "phone="], table: person)
        #expect(values["name"] == .text("张三") && values["birth_date"] == .text("1949-12-31") && values["phone"] == .null)
        for (bad, expected) in [("gender=未知", "must be one of"), ("birth_date=1949-13-01", "date"), ("id_number=110105194912310021", "check"),
                                ("nonsense", "field=value"), ("age=3", "no field")] {
            do {
                _ = try records.parse([bad], table: person)
                Issue.record("\(bad) was accepted")
            } catch let error as LinliError {
                #expect((error.message + (error.hint ?? "")).contains(expected), "\(bad): \(error.message)")
            }
        }
        let tenant = try records.table("tenant")
        #expect(throws: LinliError.self) { try records.parse(["age=200"], table: tenant) }
        #expect(try records.parse(["age=30"], table: tenant)["age"] == .integer(30))
        // A reference must name a record on this replica.
        #expect(throws: LinliError.self) { try records.parse(["rental=abcdef"], table: tenant) }
    }
}
