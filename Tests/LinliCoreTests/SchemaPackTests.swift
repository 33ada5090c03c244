import Foundation
import LinliCore
import Testing

/// The community schema pack in Protocol/schema: it decodes, passes the
/// schema checks, labels every table and field in Chinese, and declares the
/// checks the brief asks for.
struct SchemaPackTests {
    static let file = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Protocol/schema/community-v1.json")

    func pack() throws -> Schema { try JSONDecoder().decode(Schema.self, from: Data(contentsOf: Self.file)) }

    @Test func itDecodesAndPassesTheSchemaChecks() throws {
        let schema = try pack()
        try schema.validate()
        #expect(schema.name == "linli-community" && schema.version == 1)
        for table in ["area", "building", "house", "person", "rental", "tenant", "volunteer_team", "volunteer", "activity",
                      "service_record", "blood_donation", "visit", "problem", "notice", "signup", "rental_prereg"] {
            #expect(schema.table(table) != nil, "no table \(table)")
        }
    }

    @Test func everyTableAndFieldHasAChineseLabel() throws {
        for table in try pack().tables {
            #expect(table.label.unicodeScalars.contains { (0x4E00...0x9FFF).contains($0.value) }, "\(table.name)")
            for field in table.fields {
                #expect(field.label.unicodeScalars.contains { (0x4E00...0x9FFF).contains($0.value) }, "\(table.name).\(field.name)")
            }
        }
    }

    @Test func theChecksTheBriefAsksForAreDeclared() throws {
        let schema = try pack()
        for (table, field) in [("person", "id_number"), ("tenant", "id_number"), ("house", "owner_id_number")] {
            #expect(schema.table(table)?.field(field)?.format == .citizenID, "\(table).\(field)")
            #expect(schema.table(table)?.field(field)?.personal == true, "\(table).\(field)")
        }
        #expect(schema.table("person")?.field("ethnicity")?.format == .ethnicity)
        #expect(schema.table("person")?.field("residence_type")?.choices == ["户籍人口", "非户籍常住人口", "流动人口"])
        #expect(schema.table("rental")?.field("status")?.choices == ["已登记", "已续租", "已终止"])
        #expect(schema.table("problem")?.field("status")?.choices == ["已上报", "已派发", "已处置", "已办结"])
        let hours = try #require(schema.table("service_record")?.field("hours"))
        #expect(throws: LinliError.self) { try hours.check(.real(30), table: "service_record") }
        // Cross-field rules: the ID against the birth date and gender
        // entered beside it, and dates in order.
        #expect(schema.table("person")?.rules == [
            .citizenIDMatches(id: "id_number", birthDate: "birth_date", gender: "gender"),
            .dateOrder(start: "moved_in", end: "moved_out", strict: false),
            .dateOrder(start: "birth_date", end: "moved_in", strict: false),
            .notInFuture(field: "birth_date"),
            .documentMatches(type: "id_type", id: "id_number", number: "document_number"),
        ])
        #expect(schema.table("tenant")?.rules == [
            .citizenIDMatches(id: "id_number", birthDate: nil, gender: "gender", age: "age"),
            .dateOrder(start: "moved_in", end: "moved_out", strict: false),
            .documentMatches(type: "id_type", id: "id_number", number: "document_number"),
        ])
        #expect(schema.table("house")?.rules == [])
        for table in ["rental", "rental_prereg"] {
            #expect(schema.table(table)?.rules == [.dateOrder(start: "lease_start", end: "lease_end", strict: true)], "\(table)")
        }
        let person = try #require(schema.table("person"))
        #expect(throws: LinliError.self) {
            try person.checkRules(["id_number": .text("11010519491231002X"), "birth_date": .text("1949-12-30")], touching: ["birth_date"],
                                   madeAt: 1_796_112_000_000)
        }
        try person.checkRules(["id_number": .text("11010519491231002X"), "birth_date": .text("1949-12-31"), "gender": .text("女")],
                              touching: ["id_number"], madeAt: 1_796_112_000_000)
        // Kiosk submissions hold only what a resident typed at that kiosk.
        #expect(schema.tables.filter { $0.scope == .kiosk }.map(\.name) == ["signup", "rental_prereg"])
    }
}
