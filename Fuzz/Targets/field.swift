// Feeds: what a person types into a field (the clients' forms and
// `field=value` arguments). The first byte chooses: below 0x80, the two
// first bytes pick one field (every field of the community schema pack,
// then fields of each type, format and range) and the rest is the typed
// text; from 0x80, the low bits pick a table of the pack and the rest is
// `field=value` assignments, one a line.
//
// Calls FieldText.parse (the field's type, then FieldSchema.check:
// choices, formats such as the citizen ID and phone numbers, ranges) with
// the whole-id resolver, or FieldText.parse(assignments:), then the
// table's cross-field rules on what parsed, and FieldText.show and mask
// on each value.
import Foundation
import FuzzSupport
import LinliCore

let schema = Repository.communitySchema

/// Fields of every type and check, beside the pack's own.
let extra: TableSchema = {
    var fields: [FieldSchema] = FieldType.allCases.map { FieldSchema("any_\($0.rawValue)", $0, references: $0 == .reference ? "extra" : nil) }
    fields += FieldFormat.allCases.map { FieldSchema("format_\($0.rawValue)", .text, personal: true, format: $0) }
    fields += [
        FieldSchema("choice", .text, choices: ["是", "否", ""]),
        FieldSchema("small", .integer, minimum: -5, maximum: 5),
        FieldSchema("huge", .integer, minimum: -9.3e18, maximum: 9.3e18),
        FieldSchema("ratio", .real, minimum: 0, maximum: 1),
        FieldSchema("name", .text, personal: true),
        FieldSchema("start", .timestamp), FieldSchema("end", .timestamp),
        FieldSchema("id_number", .text, format: .citizenID), FieldSchema("birth", .date), FieldSchema("gender", .text, choices: ["男", "女"]),
        FieldSchema("age", .integer), FieldSchema("doc_type", .text, choices: IdentityDocument.allCases.map(\.rawValue)),
        FieldSchema("doc", .text, format: .document), FieldSchema("phone", .text, format: .phone), FieldSchema("nation", .text, format: .ethnicity),
    ]
    return TableSchema("extra", label: "测试", scope: .public, fields: fields, rules: [
        .dateOrder(start: "start", end: "end", strict: true),
        .citizenIDMatches(id: "id_number", birthDate: "birth", gender: "gender", age: "age"),
        .notInFuture(field: "birth"),
        .documentMatches(type: "doc_type", id: "id_number", number: "doc"),
    ])
}()
let tables = schema.tables + [extra]
let fields: [(TableSchema, FieldSchema)] = tables.flatMap { table in table.fields.map { (table, $0) } }

func shown(_ value: Value, _ field: FieldSchema) {
    _ = FieldText.show(value, field: field, reveal: false)
    _ = FieldText.show(value, field: field, reveal: true)
}

/// When the changes are judged made: 2026-12-01 08:00 UTC.
let madeAt: UInt64 = 1_796_112_000_000

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = FuzzInput(data, size).data
    guard let first = bytes.first else { return 0 }
    if first >= 0x80 {
        let table = tables[Int(first & 0x7f) % tables.count]
        let text = String(decoding: bytes.dropFirst(), as: UTF8.self)
        let assignments = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let values = try? FieldText.parse(assignments: assignments, table: table, resolve: FieldText.wholeID) else { return 0 }
        for (name, value) in values {
            guard let field = table.field(name) else { preconditionFailure("parsed a field the table does not declare: \(name)") }
            shown(value, field)
        }
        _ = try? table.checkRules(values, touching: Set(values.keys), madeAt: madeAt)
        return 0
    }
    let second = bytes.count > 1 ? Int(bytes[bytes.startIndex + 1]) : 0
    let (table, field) = fields[(Int(first) << 8 | second) % fields.count]
    let text = String(decoding: bytes.dropFirst(2), as: UTF8.self)
    let value: Value
    do { value = try FieldText.parse(text, field: field, table: table, resolve: FieldText.wholeID) } catch { return 0 }
    // What parse returns has passed the field's own checks.
    do { try field.check(value, table: table.name) } catch { preconditionFailure("parse returned a value its field refuses: \(error)") }
    shown(value, field)
    // The one stored form is a fixed point: storing it again changes nothing.
    if let format = field.format, case .text(let stored) = value {
        precondition(format.normalised(stored) == stored, "\(format) stores \(stored), which it would store differently again")
    }
    if field.type == .date, case .text(let stored) = value {
        precondition(FieldSchema.normalisedDate(stored) == stored, "the date \(stored) is stored as another")
    }
    _ = FieldText.mask(text, field: field)
    _ = try? table.checkRules([field.name: value], touching: [field.name], madeAt: madeAt)
    return 0
}
