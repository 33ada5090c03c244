import Foundation
import LinliCore
import Testing

@Suite("Change set structure") struct ChangeSetStructureTests {
    /// A change set that passes: seq 2 of device A, two rows, replacing
    /// dots of other devices and an older dot of its own.
    static func valid() -> ChangeSet {
        ChangeSet(header: Make.header(seq: 2), rows: [
            RowChange(table: "person", row: Make.row1, writes: [
                FieldWrite(field: "name", value: .text("Wang"), replaces: [
                    Dot(device: Make.deviceB, seq: 7, index: 0), Dot(device: Make.deviceA, seq: 1, index: 3),
                ]),
                FieldWrite(field: "visits", value: .integer(3)),
            ]),
            RowChange(table: "house", row: Make.row2, writes: [
                FieldWrite(field: "name", value: .null),
            ]),
        ])
    }

    static func withRows(_ rows: [RowChange], seq: UInt64 = 1) -> ChangeSet {
        ChangeSet(header: Make.header(seq: seq), rows: rows)
    }

    static func oneWrite(_ write: FieldWrite, table: String = "person", seq: UInt64 = 2) -> ChangeSet {
        withRows([RowChange(table: table, row: Make.row1, writes: [write])], seq: seq)
    }

    @Test("a well-formed change set passes")
    func validPasses() throws {
        try Self.valid().validateStructure()
        #expect(Self.valid().writeCount == 3)
        var first = Self.valid()
        first.header.seq = 1
        first.header.prev = Data()
        first.rows[0].writes[0].replaces = [Dot(device: Make.deviceB, seq: 7, index: 0)]
        try first.validateStructure()
    }

    @Test("a format other than 1 is refused as unsupported", arguments: [0 as UInt32, 2, 99, .max])
    func unsupportedFormat(format: UInt32) {
        var changeSet = Self.valid()
        changeSet.header.format = format
        expectLinliError(.unsupportedFormat) { try changeSet.validateStructure() }
    }

    @Test("sequence number 0 is refused")
    func seqZero() {
        var changeSet = Self.valid()
        changeSet.header.seq = 0
        changeSet.header.prev = Data()
        expectLinliError(.malformed) { try changeSet.validateStructure() }
    }

    @Test("the first change set of a device must not name a previous hash")
    func prevAtSeqOne() {
        var changeSet = Self.valid()
        changeSet.header.seq = 1
        changeSet.rows[0].writes[0].replaces = []
        changeSet.header.prev = Data()
        #expect(throws: Never.self) { try changeSet.validateStructure() }
        for prev in [Data([0]), Data(repeating: 1, count: 32)] {
            changeSet.header.prev = prev
            expectLinliError(.malformed, "prev of \(prev.count) bytes") { try changeSet.validateStructure() }
        }
    }

    @Test("a later change set must name a 32-byte previous hash", arguments: [0, 1, 31, 33, 64])
    func prevWrongLength(count: Int) {
        var changeSet = Self.valid()
        changeSet.header.prev = Data(repeating: 9, count: count)
        expectLinliError(.malformed) { try changeSet.validateStructure() }
    }

    @Test("a key id of other than 8 bytes is refused", arguments: [0, 7, 9, 32])
    func keyIDLength(count: Int) {
        var changeSet = Self.valid()
        changeSet.header.keyID = Data(repeating: 1, count: count)
        expectLinliError(.malformed) { try changeSet.validateStructure() }
    }

    @Test("a user name longer than userBytesMax is over the limit")
    func userTooLong() throws {
        var changeSet = Self.valid()
        changeSet.header.user = String(repeating: "u", count: Limits.userBytesMax)
        try changeSet.validateStructure()
        changeSet.header.user = String(repeating: "u", count: Limits.userBytesMax + 1)
        expectLinliError(.overLimit) { try changeSet.validateStructure() }
        changeSet.header.user = String(repeating: "王", count: Limits.userBytesMax / 3 + 1) // 129 bytes
        expectLinliError(.overLimit) { try changeSet.validateStructure() }
    }

    @Test("a change set without rows is refused")
    func noRows() {
        expectLinliError(.malformed) { try Self.withRows([]).validateStructure() }
    }

    @Test("a row without writes is refused")
    func rowWithoutWrites() {
        var changeSet = Self.valid()
        changeSet.rows.append(RowChange(table: "person", row: ID128.random(), writes: []))
        expectLinliError(.malformed) { try changeSet.validateStructure() }
    }

    @Test("the same field written twice in one change set is refused")
    func fieldTwice() throws {
        var sameRow = Self.valid()
        sameRow.rows[0].writes.append(FieldWrite(field: "visits", value: .integer(4)))
        expectLinliError(.malformed) { try sameRow.validateStructure() }

        // The same row listed twice, writing one field in each.
        var repeatedRow = Self.valid()
        repeatedRow.rows.append(RowChange(table: "person", row: Make.row1, writes: [FieldWrite(field: "name", value: .null)]))
        expectLinliError(.malformed) { try repeatedRow.validateStructure() }

        // The same field name in two different rows is fine.
        var twoRows = Self.valid()
        twoRows.rows.append(RowChange(table: "person", row: ID128.random(), writes: [FieldWrite(field: "name", value: .null)]))
        try twoRows.validateStructure()
    }

    @Test("a value over valueBytesMax is over the limit; one at the limit passes")
    func valueTooLarge() throws {
        try Self.oneWrite(FieldWrite(field: "photo", value: .bytes(Data(count: Limits.valueBytesMax)))).validateStructure()
        try Self.oneWrite(FieldWrite(field: "note", value: .text(String(repeating: "x", count: Limits.valueBytesMax))))
            .validateStructure()
        expectLinliError(.overLimit) {
            try Self.oneWrite(FieldWrite(field: "photo", value: .bytes(Data(count: Limits.valueBytesMax + 1)))).validateStructure()
        }
        expectLinliError(.overLimit) {
            try Self.oneWrite(FieldWrite(field: "note", value: .text(String(repeating: "x", count: Limits.valueBytesMax + 1))))
                .validateStructure()
        }
        // Counted in UTF-8 bytes, not characters.
        let wide = String(repeating: "网", count: Limits.valueBytesMax / 3 + 1)
        #expect(wide.count <= Limits.valueBytesMax)
        expectLinliError(.overLimit) { try Self.oneWrite(FieldWrite(field: "note", value: .text(wide))).validateStructure() }
    }

    @Test("replacing more than replacedDotsPerWriteMax dots is over the limit")
    func tooManyReplacedDots() throws {
        let dots = (0..<UInt64(Limits.replacedDotsPerWriteMax + 1)).map { Dot(device: Make.deviceB, seq: $0 + 1, index: 0) }
        try Self.oneWrite(FieldWrite(field: "name", value: .text("x"), replaces: Array(dots.prefix(Limits.replacedDotsPerWriteMax))))
            .validateStructure()
        expectLinliError(.overLimit) {
            try Self.oneWrite(FieldWrite(field: "name", value: .text("x"), replaces: dots)).validateStructure()
        }
    }

    @Test("replacing a dot of its own device that is not older is refused", arguments: [5 as UInt64, 6, 100])
    func replacesOwnNewerDot(replacedSeq: UInt64) throws {
        let dot = Dot(device: Make.deviceA, seq: replacedSeq, index: 0)
        expectLinliError(.malformed, "replaced seq \(replacedSeq)") {
            try Self.oneWrite(FieldWrite(field: "name", value: .text("x"), replaces: [dot]), seq: 5).validateStructure()
        }
    }

    @Test("replacing an older dot of its own device, or any dot of another device, passes")
    func replacesAllowedDots() throws {
        let older = Dot(device: Make.deviceA, seq: 4, index: 9)
        let otherNewer = Dot(device: Make.deviceB, seq: 1_000, index: 0)
        try Self.oneWrite(FieldWrite(field: "name", value: .text("x"), replaces: [older, otherNewer]), seq: 5).validateStructure()
    }

    @Test("empty or too long table and field names are refused")
    func names() throws {
        let longest = String(repeating: "t", count: Limits.nameBytesMax)
        let tooLong = String(repeating: "t", count: Limits.nameBytesMax + 1)
        let tooLongWide = String(repeating: "名", count: Limits.nameBytesMax / 3 + 1) // 66 bytes, 22 characters
        try Self.oneWrite(FieldWrite(field: longest, value: .null), table: longest).validateStructure()
        for table in ["", tooLong, tooLongWide] {
            expectLinliError(.malformed, "table of \(table.utf8.count) bytes") {
                try Self.oneWrite(FieldWrite(field: "name", value: .null), table: table).validateStructure()
            }
        }
        for field in ["", tooLong, tooLongWide] {
            expectLinliError(.malformed, "field of \(field.utf8.count) bytes") {
                try Self.oneWrite(FieldWrite(field: field, value: .null)).validateStructure()
            }
        }
    }

    @Test("more rows than rowsPerChangeSetMax are over the limit")
    func tooManyRows() throws {
        func rows(_ count: Int) -> [RowChange] {
            (0..<count).map { RowChange(table: "person", row: RowID(high: 1, low: UInt64($0)), writes: [FieldWrite(field: "name", value: .null)]) }
        }
        try Self.withRows(rows(Limits.rowsPerChangeSetMax)).validateStructure()
        expectLinliError(.overLimit) { try Self.withRows(rows(Limits.rowsPerChangeSetMax + 1)).validateStructure() }
    }

    @Test("more writes than writesPerChangeSetMax are over the limit")
    func tooManyWrites() throws {
        let perRow = 10
        func rows(writes: Int) -> [RowChange] {
            stride(from: 0, to: writes, by: perRow).map { start in
                RowChange(table: "person", row: RowID(high: 2, low: UInt64(start)), writes: (start..<min(start + perRow, writes)).map {
                    FieldWrite(field: "f\($0 % perRow)", value: .integer(Int64($0)))
                })
            }
        }
        let atLimit = Self.withRows(rows(writes: Limits.writesPerChangeSetMax))
        #expect(atLimit.writeCount == Limits.writesPerChangeSetMax)
        try atLimit.validateStructure()
        let over = Self.withRows(rows(writes: Limits.writesPerChangeSetMax + 1))
        #expect(over.rows.count <= Limits.rowsPerChangeSetMax)
        expectLinliError(.overLimit) { try over.validateStructure() }
    }

    @Test("forEachWrite numbers dots 0, 1, 2… across rows, in order")
    func forEachWriteNumbersDots() {
        let changeSet = ChangeSet(header: Make.header(device: Make.deviceC, seq: 9), rows: [
            RowChange(table: "person", row: Make.row1, writes: [
                FieldWrite(field: "a", value: .integer(0)), FieldWrite(field: "b", value: .integer(1)),
            ]),
            RowChange(table: "house", row: Make.row2, writes: [
                FieldWrite(field: "c", value: .integer(2)), FieldWrite(field: "d", value: .integer(3)),
                FieldWrite(field: "e", value: .integer(4)),
            ]),
        ])
        var seen: [(String, RowID, String, Dot)] = []
        changeSet.forEachWrite { row, write, dot in seen.append((row.table, row.row, write.field, dot)) }
        #expect(seen.map(\.3) == (0..<5).map { Dot(device: Make.deviceC, seq: 9, index: UInt32($0)) })
        #expect(seen.map(\.2) == ["a", "b", "c", "d", "e"])
        #expect(seen.map(\.0) == ["person", "person", "house", "house", "house"])
        #expect(seen.map(\.1) == [Make.row1, Make.row1, Make.row2, Make.row2, Make.row2])
        #expect(changeSet.writeCount == 5)
    }

    @Test("forEachWrite passes on an error thrown by its body")
    func forEachWriteRethrows() {
        struct Stop: Error {}
        var calls = 0
        #expect(throws: Stop.self) {
            try Self.valid().forEachWrite { _, _, dot in
                calls += 1
                if dot.index == 1 { throw Stop() }
            }
        }
        #expect(calls == 2)
    }

    @Test("dots order by device, then seq, then index")
    func dotOrdering() {
        let dots = [
            Dot(device: Make.deviceB, seq: 1, index: 0), Dot(device: Make.deviceA, seq: 2, index: 0),
            Dot(device: Make.deviceA, seq: 1, index: 5), Dot(device: Make.deviceA, seq: 1, index: 2),
        ]
        #expect(dots.sorted() == [dots[3], dots[2], dots[1], dots[0]])
        #expect(Dot(device: Make.deviceA, seq: 3, index: 1).description == "\(Make.deviceA.hex.prefix(8))@3.1")
    }
}
