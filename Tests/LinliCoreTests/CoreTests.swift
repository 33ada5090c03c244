import Foundation
import LinliCore
import Testing

// Shared helpers for the LinliCore tests, and the tests of identifiers and
// hexadecimal text. The other suites live beside this file:
// ClockTests, ScopeTests, SchemaTests, ChangeSetTests, MergeTests and
// EncodingTests.

// MARK: - Helpers

/// Expects `body` to throw a `LinliError` with `code`.
func expectLinliError(
    _ code: LinliError.Code, _ comment: Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    let error = #expect(throws: LinliError.self, comment, sourceLocation: sourceLocation) { try body() }
    #expect(error?.code == code, comment, sourceLocation: sourceLocation)
}

/// A small reproducible generator (SplitMix64) for property tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Every ordering of `items`.
func permutations<T>(_ items: [T]) -> [[T]] {
    guard items.count > 1 else { return [items] }
    var out: [[T]] = []
    for index in items.indices {
        var rest = items
        let first = rest.remove(at: index)
        for tail in permutations(rest) { out.append([first] + tail) }
    }
    return out
}

/// Builders for change sets.
enum Make {
    static let deviceA = DeviceID(high: 0xAAAA_0000_0000_0001, low: 1)
    static let deviceB = DeviceID(high: 0xBBBB_0000_0000_0002, low: 2)
    static let deviceC = DeviceID(high: 0xCCCC_0000_0000_0003, low: 3)
    static let row1 = RowID(high: 0x1111, low: 0x1)
    static let row2 = RowID(high: 0x2222, low: 0x2)
    static let keyID = Data(repeating: 0x4B, count: 8)

    static func header(
        format: UInt32 = ChangeSetHeader.currentFormat, device: DeviceID = deviceA, keyID: Data = keyID,
        seq: UInt64 = 1, prev: Data? = nil, hlc: HLCTimestamp = HLCTimestamp(milliseconds: 1_000, counter: 0),
        user: String = "inspector", scope: Scope = .grid("G1")
    ) -> ChangeSetHeader {
        ChangeSetHeader(
            format: format, device: device, keyID: keyID, seq: seq,
            prev: prev ?? (seq == 1 ? Data() : Data(repeating: 0xEE, count: 32)),
            hlc: hlc, user: user, schemaVersion: 1, scope: scope)
    }

    static func changeSet(
        device: DeviceID = deviceA, seq: UInt64 = 1, millis: UInt64 = 1_000, rows: [RowChange]
    ) -> ChangeSet {
        ChangeSet(header: header(device: device, seq: seq, hlc: HLCTimestamp(milliseconds: millis, counter: 0)), rows: rows)
    }

    /// A change set writing one field of one row.
    static func write(
        device: DeviceID, seq: UInt64, millis: UInt64, row: RowID = row1, field: String = "name",
        value: Value, replaces: [Dot] = [], table: String = "person"
    ) -> ChangeSet {
        changeSet(device: device, seq: seq, millis: millis, rows: [
            RowChange(table: table, row: row, writes: [FieldWrite(field: field, value: value, replaces: replaces)]),
        ])
    }
}

// MARK: - ID128

@Suite("ID128") struct ID128Tests {
    @Test("bytes are big-endian: high word first, most significant byte first")
    func bytesLayout() throws {
        let id = ID128(high: 0x0001_0203_0405_0607, low: 0x0809_0A0B_0C0D_0E0F)
        #expect(id.bytes == Array(0...15))
        #expect(id.data == Data(0...15))
        #expect(id.hex == "000102030405060708090a0b0c0d0e0f")
        #expect(id.description == id.hex)
    }

    @Test("an id read from its own bytes is the same id")
    func bytesRoundTrip() throws {
        for id in [ID128(high: 0, low: 0), ID128(high: .max, low: .max), ID128(high: 1, low: 0)]
            + (0..<50).map({ _ in ID128.random() }) {
            let back = try #require(ID128(bytes: id.bytes))
            #expect(back == id)
            #expect(ID128(bytes: id.data) == id)
        }
    }

    @Test("an id reads the same from an array, from Data, and from a Data slice at any offset")
    func bytesFromDataSlices() throws {
        let id = ID128(high: 0x0102_0304_0506_0708, low: 0x090A_0B0C_0D0E_0F10)
        let framed = Data([0xFF, 0xFE, 0xFD]) + id.data + Data([0xEE])
        for offset in 0...3 {
            let slice = framed.dropFirst(offset).prefix(16)
            if offset == 3 {
                #expect(ID128(bytes: slice) == id)
                #expect(ID128(bytes: Array(slice)) == id)
            } else {
                #expect(ID128(bytes: slice) != id)
            }
        }
        #expect(ID128(bytes: framed.dropFirst(3)) == nil) // 17 bytes
        #expect(ID128(bytes: id.data[...]) == id)
        #expect(ID128(bytes: AnyCollection(id.bytes)) == id)
    }

    @Test("an id read from its own hex is the same id, and uppercase hex reads too")
    func hexRoundTrip() throws {
        for _ in 0..<50 {
            let id = ID128.random()
            #expect(id.hex.count == 32)
            #expect(id.hex == id.hex.lowercased())
            #expect(ID128(hex: id.hex) == id)
            #expect(ID128(hex: id.hex.uppercased()) == id)
        }
        let known = try #require(ID128(hex: "FFEEDDCCBBAA99887766554433221100"))
        #expect(known.high == 0xFFEE_DDCC_BBAA_9988)
        #expect(known.low == 0x7766_5544_3322_1100)
    }

    @Test("reading anything but 16 bytes gives nil", arguments: [0, 1, 8, 15, 17, 32])
    func wrongLength(count: Int) {
        #expect(ID128(bytes: [UInt8](repeating: 7, count: count)) == nil)
        #expect(ID128(bytes: Data(repeating: 7, count: count)) == nil)
    }

    @Test("reading bad or wrongly sized hex gives nil", arguments: [
        "", "00", "000102030405060708090a0b0c0d0e0", "000102030405060708090a0b0c0d0e0f0",
        "000102030405060708090a0b0c0d0e0f00", "zz0102030405060708090a0b0c0d0e0f",
        "000102030405060708090a0b0c0d0e0g", " 00102030405060708090a0b0c0d0e0f", "0x0102030405060708090a0b0c0d0e0f",
    ])
    func badHex(text: String) {
        #expect(ID128(hex: text) == nil)
    }

    @Test("ids order exactly as their bytes order")
    func orderingMatchesBytes() {
        var ids = (0..<200).map { _ in ID128.random() }
        // Pairs that differ only in the low word, or only in the last byte.
        ids += [ID128(high: 5, low: 1), ID128(high: 5, low: 2), ID128(high: 5, low: .max), ID128(high: 4, low: .max),
                ID128(high: 0x8000_0000_0000_0000, low: 0), ID128(high: 0x7FFF_FFFF_FFFF_FFFF, low: .max)]
        for a in ids {
            for b in ids.prefix(40) + ids.suffix(6) {
                #expect((a < b) == a.bytes.lexicographicallyPrecedes(b.bytes), "\(a) vs \(b)")
                #expect((a == b) == (a.bytes == b.bytes))
            }
        }
        #expect(ID128(high: 5, low: .max) < ID128(high: 6, low: 0))
        #expect(ID128(high: 0x7FFF_FFFF_FFFF_FFFF, low: .max) < ID128(high: 0x8000_0000_0000_0000, low: 0))
    }

    @Test("random ids differ")
    func randomIdsDiffer() {
        let ids = Set((0..<1_000).map { _ in ID128.random() })
        #expect(ids.count == 1_000)
    }
}

// MARK: - Hex

@Suite("Hex") struct HexTests {
    @Test("encoding is lowercase, two digits per byte")
    func encode() {
        #expect(Hex.encode([0x00, 0x0F, 0xA0, 0xFF, 0x1A]) == "000fa0ff1a")
        #expect(Hex.encode([UInt8]()) == "")
        #expect(Hex.encode(Data([0xDE, 0xAD, 0xBE, 0xEF])) == "deadbeef")
    }

    @Test("every byte value survives encoding and decoding")
    func roundTrip() throws {
        let all = [UInt8](0...255)
        let text = Hex.encode(all)
        #expect(text.count == 512)
        #expect(try #require(Hex.decode(text)) == all)
    }

    @Test("uppercase and mixed case decode like lowercase")
    func uppercase() {
        #expect(Hex.decode("DEADBEEF") == [0xDE, 0xAD, 0xBE, 0xEF])
        #expect(Hex.decode("DeAdBeEf") == [0xDE, 0xAD, 0xBE, 0xEF])
        #expect(Hex.decode("0aF9") == [0x0A, 0xF9])
    }

    @Test("empty text decodes to no bytes")
    func empty() {
        #expect(Hex.decode("") == [])
    }

    @Test("odd length or a non-hex character gives nil", arguments: [
        "0", "abc", "00f", "0g", "g0", "xx", "0 ", " 0", "-1", "0x00", "éé", "١٢",
    ])
    func invalid(text: String) {
        #expect(Hex.decode(text) == nil)
    }
}
