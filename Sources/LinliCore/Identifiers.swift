import Foundation

/// A 128-bit identifier, compared and ordered by its big-endian bytes.
///
/// Device ids and row ids are made where they are needed (on the device,
/// at random) so nobody needs the server to create a record or a device.
public struct ID128: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let high: UInt64
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// A fresh random id from the system's cryptographic generator.
    public static func random() -> ID128 {
        var generator = SystemRandomNumberGenerator()
        return ID128(high: generator.next(), low: generator.next())
    }

    /// Reads exactly 16 bytes; anything else is `nil`.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        var offset = 0
        for byte in bytes {
            if offset < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
            offset += 1
        }
        self.init(high: high, low: low)
    }

    /// Reads exactly 16 bytes of `data`; anything else is `nil`. The hot
    /// path: every dot and row id on the wire goes through here.
    public init?(bytes data: Data) {
        guard data.count == 16 else { return nil }
        let (high, low) = data.withUnsafeBytes { raw in
            (UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
             UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
        self.init(high: high, low: low)
    }

    /// Reads 32 hexadecimal digits.
    public init?(hex: String) {
        guard let bytes = Hex.decode(hex), bytes.count == 16 else { return nil }
        self.init(bytes: bytes)
    }

    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        for index in 0..<8 {
            out[index] = UInt8(truncatingIfNeeded: high >> (56 - 8 * index))
            out[8 + index] = UInt8(truncatingIfNeeded: low >> (56 - 8 * index))
        }
        return out
    }

    public var data: Data { Data(bytes) }
    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }

    public static func < (lhs: ID128, rhs: ID128) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}

/// The id of a device: made by the device when it first starts.
public typealias DeviceID = ID128
/// The id of a row: made by the device that creates the row.
public typealias RowID = ID128

/// Lowercase hexadecimal encoding.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out = [UInt8]()
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 2)
        var index = 0
        while index < chars.count {
            guard let high = nibble(chars[index]), let low = nibble(chars[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private static func nibble(_ char: UInt8) -> UInt8? {
        switch char {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): char - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): char - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): char - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
