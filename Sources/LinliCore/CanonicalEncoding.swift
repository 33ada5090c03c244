/// Byte encodings that do not depend on the replica: used for state
/// digests, which must be equal on every replica that has seen the same
/// change sets.
///
/// Integers are big-endian; variable-length items are prefixed with their
/// length as a 4-byte big-endian integer; values are prefixed with their
/// ``Value/kindTag``.
public enum CanonicalEncoding {
    public static func append(_ value: UInt64, to out: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    public static func append(_ value: UInt32, to out: inout [UInt8]) {
        for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    public static func append(bytes: some Collection<UInt8>, to out: inout [UInt8]) {
        append(UInt32(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }

    public static func append(_ text: String, to out: inout [UInt8]) {
        append(bytes: Array(text.utf8), to: &out)
    }

    public static func append(_ id: ID128, to out: inout [UInt8]) {
        append(id.high, to: &out)
        append(id.low, to: &out)
    }

    public static func append(_ value: Value, to out: inout [UInt8]) {
        out.append(value.kindTag)
        switch value {
        case .null: break
        case .integer(let integer): append(UInt64(bitPattern: integer), to: &out)
        case .real(let real): append(real.bitPattern, to: &out)
        case .text(let text): append(text, to: &out)
        case .bytes(let data): append(bytes: data, to: &out)
        case .boolean(let flag): out.append(flag ? 1 : 0)
        }
    }
}
