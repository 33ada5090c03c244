import Foundation

/// One field value. `null` is a value too: clearing a field writes `null`,
/// and deleting a row writes `null` to each of its fields.
public enum Value: Hashable, Sendable, CustomStringConvertible {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case bytes(Data)
    case boolean(Bool)

    public var isNull: Bool { if case .null = self { true } else { false } }

    /// Size counted against ``Limits/valueBytesMax``.
    public var byteCount: Int {
        switch self {
        case .null, .boolean: 1
        case .integer, .real: 8
        case .text(let text): text.utf8.count
        case .bytes(let data): data.count
        }
    }

    public var description: String {
        switch self {
        case .null: "null"
        case .integer(let value): String(value)
        case .real(let value): String(value)
        case .text(let value): value
        case .bytes(let value): "0x" + Hex.encode(value)
        case .boolean(let value): value ? "true" : "false"
        }
    }

    /// A one-byte tag per kind, used by canonical encodings.
    public var kindTag: UInt8 {
        switch self {
        case .null: 0
        case .integer: 1
        case .real: 2
        case .text: 3
        case .bytes: 4
        case .boolean: 5
        }
    }

    public var text: String? { if case .text(let value) = self { value } else { nil } }
    public var integer: Int64? { if case .integer(let value) = self { value } else { nil } }
    public var boolean: Bool? { if case .boolean(let value) = self { value } else { nil } }
}
