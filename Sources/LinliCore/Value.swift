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

/// JSON form, tagged by kind so nothing is lost: `{"text": "张三"}`,
/// `{"integer": 3}`, `{"real": 2.5}`, `{"boolean": true}`,
/// `{"bytes": "0a1b"}` (hex), `{"null": true}`.
extension Value: Codable {
    enum CodingKeys: String, CodingKey { case null, integer, real, text, bytes, boolean }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let text = try container.decodeIfPresent(String.self, forKey: .text) {
            self = .text(text)
        } else if let integer = try container.decodeIfPresent(Int64.self, forKey: .integer) {
            self = .integer(integer)
        } else if let real = try container.decodeIfPresent(Double.self, forKey: .real) {
            self = .real(real)
        } else if let boolean = try container.decodeIfPresent(Bool.self, forKey: .boolean) {
            self = .boolean(boolean)
        } else if let hex = try container.decodeIfPresent(String.self, forKey: .bytes) {
            guard let bytes = Hex.decode(hex) else {
                throw DecodingError.dataCorruptedError(forKey: .bytes, in: container, debugDescription: "bytes must be hexadecimal")
            }
            self = .bytes(Data(bytes))
        } else if container.contains(.null) {
            self = .null
        } else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "a value needs one of null, integer, real, text, bytes, boolean"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .null: try container.encode(true, forKey: .null)
        case .integer(let value): try container.encode(value, forKey: .integer)
        case .real(let value): try container.encode(value, forKey: .real)
        case .text(let value): try container.encode(value, forKey: .text)
        case .bytes(let value): try container.encode(Hex.encode(value), forKey: .bytes)
        case .boolean(let value): try container.encode(value, forKey: .boolean)
        }
    }
}
