import Foundation
import LinliCore
import Testing

@Suite("Canonical encoding") struct CanonicalEncodingTests {
    static func encode(_ body: (inout [UInt8]) -> Void) -> [UInt8] {
        var out: [UInt8] = []
        body(&out)
        return out
    }

    static func encode(_ value: Value) -> [UInt8] { encode { CanonicalEncoding.append(value, to: &$0) } }

    @Test("integers are written big-endian at full width")
    func integers() {
        #expect(Self.encode { CanonicalEncoding.append(UInt64(0x0102_0304_0506_0708), to: &$0) } == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(Self.encode { CanonicalEncoding.append(UInt64(1), to: &$0) } == [0, 0, 0, 0, 0, 0, 0, 1])
        #expect(Self.encode { CanonicalEncoding.append(UInt64.max, to: &$0) } == [UInt8](repeating: 0xFF, count: 8))
        #expect(Self.encode { CanonicalEncoding.append(UInt32(0x0A0B_0C0D), to: &$0) } == [0x0A, 0x0B, 0x0C, 0x0D])
        #expect(Self.encode { CanonicalEncoding.append(UInt32(0), to: &$0) } == [0, 0, 0, 0])
    }

    @Test("appending adds to what is already there")
    func appends() {
        var out: [UInt8] = [0xAA]
        CanonicalEncoding.append(UInt32(1), to: &out)
        CanonicalEncoding.append("z", to: &out)
        #expect(out == [0xAA, 0, 0, 0, 1, 0, 0, 0, 1, UInt8(ascii: "z")])
    }

    @Test("strings are prefixed with their UTF-8 length as 4 bytes")
    func strings() {
        #expect(Self.encode { CanonicalEncoding.append("ab", to: &$0) } == [0, 0, 0, 2, 0x61, 0x62])
        #expect(Self.encode { CanonicalEncoding.append("", to: &$0) } == [0, 0, 0, 0])
        let wide = "网" // 3 bytes
        #expect(Self.encode { CanonicalEncoding.append(wide, to: &$0) } == [0, 0, 0, 3] + Array(wide.utf8))
        let long = String(repeating: "x", count: 300)
        #expect(Array(Self.encode { CanonicalEncoding.append(long, to: &$0) }.prefix(4)) == [0, 0, 1, 0x2C])
    }

    @Test("byte strings are length-prefixed too")
    func bytes() {
        #expect(Self.encode { CanonicalEncoding.append(bytes: [9, 8, 7], to: &$0) } == [0, 0, 0, 3, 9, 8, 7])
        #expect(Self.encode { CanonicalEncoding.append(bytes: Data(), to: &$0) } == [0, 0, 0, 0])
    }

    @Test("length prefixes keep neighbouring strings apart")
    func unambiguous() {
        let ab_c = Self.encode { CanonicalEncoding.append("ab", to: &$0); CanonicalEncoding.append("c", to: &$0) }
        let a_bc = Self.encode { CanonicalEncoding.append("a", to: &$0); CanonicalEncoding.append("bc", to: &$0) }
        #expect(ab_c != a_bc)
    }

    @Test("an id is written as its 16 big-endian bytes")
    func ids() {
        for id in [ID128(high: 0x0102_0304_0506_0708, low: 0x090A_0B0C_0D0E_0F10), ID128.random()] {
            #expect(Self.encode { CanonicalEncoding.append(id, to: &$0) } == id.bytes)
        }
    }

    @Test("each value kind is tagged")
    func valueTags() {
        #expect(Self.encode(.null) == [0])
        #expect(Self.encode(.integer(1)) == [1, 0, 0, 0, 0, 0, 0, 0, 1])
        #expect(Self.encode(.integer(-1)) == [1] + [UInt8](repeating: 0xFF, count: 8))
        #expect(Self.encode(.integer(.min)) == [1, 0x80, 0, 0, 0, 0, 0, 0, 0])
        #expect(Self.encode(.real(1.0)) == [2, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0])
        #expect(Self.encode(.real(-2.5)) == [2, 0xC0, 0x04, 0, 0, 0, 0, 0, 0])
        #expect(Self.encode(.text("hi")) == [3, 0, 0, 0, 2, 0x68, 0x69])
        #expect(Self.encode(.bytes(Data([0xCA, 0xFE]))) == [4, 0, 0, 0, 2, 0xCA, 0xFE])
        #expect(Self.encode(.boolean(false)) == [5, 0])
        #expect(Self.encode(.boolean(true)) == [5, 1])
        for value: Value in [.null, .integer(0), .real(0), .text(""), .bytes(Data()), .boolean(false)] {
            #expect(Self.encode(value).first == value.kindTag)
        }
    }

    @Test("different values encode differently")
    func distinctValues() {
        let values: [Value] = [
            .null, .integer(0), .integer(1), .integer(-1), .integer(256), .real(0), .real(-0.0), .real(1), .real(.nan),
            .text(""), .text("0"), .text("1"), .text("a"), .text("ab"), .bytes(Data()), .bytes(Data([0])),
            .bytes(Data([0x61])), .bytes(Data("ab".utf8)), .boolean(false), .boolean(true),
        ]
        let encodings = values.map(Self.encode)
        #expect(Set(encodings).count == values.count)
    }

    @Test("equal values encode equally")
    func equalValues() {
        #expect(Self.encode(.text("same")) == Self.encode(.text(String("sa") + "me")))
        #expect(Self.encode(.bytes(Data([1, 2, 3]).dropFirst())) == Self.encode(.bytes(Data([2, 3]))))
    }
}

@Suite("Values and limits") struct ValueAndLimitTests {
    @Test("the limits keep their stated relations")
    func relationsHold() {
        #expect(Limits.relationsHold)
        #expect(Limits.valueBytesMax < Limits.changeSetBytesMax)
        #expect(Limits.rowsPerChangeSetMax <= Limits.writesPerChangeSetMax)
        #expect(Limits.nameBytesMax < Limits.valueBytesMax)
        #expect(Limits.changeSetsPerBatchMax > 0)
        #expect(Limits.clockCounterMax == 0xFFFF)
        #expect(Limits.clockDriftMillisecondsMax == 600_000)
    }

    @Test("a value's byte count is its UTF-8 or byte length, 8 for numbers and 1 otherwise")
    func byteCount() {
        #expect(Value.null.byteCount == 1)
        #expect(Value.boolean(true).byteCount == 1)
        #expect(Value.integer(.max).byteCount == 8)
        #expect(Value.real(3.5).byteCount == 8)
        #expect(Value.text("网格").byteCount == 6)
        #expect(Value.bytes(Data(count: 5)).byteCount == 5)
    }

    @Test("value accessors give the payload of their own kind only")
    func accessors() {
        #expect(Value.text("x").text == "x")
        #expect(Value.integer(3).text == nil)
        #expect(Value.integer(3).integer == 3)
        #expect(Value.real(3).integer == nil)
        #expect(Value.boolean(true).boolean == true)
        #expect(Value.integer(1).boolean == nil)
        #expect(Value.null.isNull)
        #expect(!Value.text("").isNull)
        #expect(Value.bytes(Data([0xAB, 0x01])).description == "0xab01")
        #expect(Value.boolean(false).description == "false")
        #expect(Value.null.description == "null")
    }

    @Test("error codes keep their stable text form")
    func errorCodes() {
        #expect(LinliError.Code.clockAhead.rawValue == "clock_ahead")
        #expect(LinliError.Code.overLimit.rawValue == "over_limit")
        #expect(LinliError.Code.wrongPassphrase.rawValue == "wrong_passphrase")
        #expect(Set(LinliError.Code.allCases.map(\.rawValue)).count == LinliError.Code.allCases.count)
        #expect(LinliError(.malformed, "bad", hint: "fix it").description == "bad (fix it)")
        #expect(LinliError(.malformed, "bad").description == "bad")
    }
}
