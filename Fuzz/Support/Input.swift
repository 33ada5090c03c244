import Foundation
import LinliCore
import LinliCrypto

/// The fuzzer's bytes, cut into fields.
///
/// A target that takes several values (header values, a status, a body)
/// reads its first fields as lines (split at `\n`) and the rest as bytes.
/// A line that is exactly one NUL byte stands for an absent value (a
/// header that is not sent), and so does a line past the end of the input.
public struct FuzzInput {
    public let data: Data

    public init(_ pointer: UnsafePointer<UInt8>, _ size: Int) {
        data = Data(bytes: pointer, count: size)
    }

    /// The first `count` lines as text (invalid UTF-8 is read as U+FFFD,
    /// as an HTTP stack hands header values on), and what follows them.
    public func fields(_ count: Int) -> (lines: [String?], rest: Data) {
        var lines: [String?] = []
        var start = data.startIndex
        while lines.count < count {
            guard start < data.endIndex else {
                lines.append(nil)
                continue
            }
            let end = data[start...].firstIndex(of: UInt8(ascii: "\n")) ?? data.endIndex
            let line = data[start..<end]
            lines.append(line == Data([0]) ? nil : String(decoding: line, as: UTF8.self))
            start = end < data.endIndex ? data.index(after: end) : end
        }
        return (lines, Data(data[start...]))
    }

    /// Joins fields the way ``fields(_:)`` cuts them: for writing seeds.
    public static func join(_ lines: [String?], rest: Data) -> Data {
        var out = Data()
        for line in lines {
            out += line.map { Data($0.utf8) } ?? Data([0])
            out.append(UInt8(ascii: "\n"))
        }
        return out + rest
    }
}

/// The golden vectors and the schema pack of the repository, read once:
/// the fixed keys the targets verify against are the vectors' own.
public enum Repository {
    /// The repository's root: Fuzz/Support/Input.swift is three levels down.
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A vector's JSON object, `name` relative to Protocol/vectors without `.json`.
    public static func vector(_ name: String) -> [String: Any] {
        let url = root.appendingPathComponent("Protocol/vectors/\(name).json")
        guard let data = try? Data(contentsOf: url),
              let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            fatalError("cannot read the golden vector \(url.path)")
        }
        return object
    }

    /// A hex field of a vector, decoded.
    public static func bytes(_ name: String, _ key: String = "bytes_hex") -> Data {
        guard let hex = vector(name)[key] as? String, let data = Hex.decodeData(hex) else {
            fatalError("the golden vector \(name) has no hex field \(key)")
        }
        return data
    }

    public static func publicKey(_ name: String) -> PublicKey {
        guard let key = PublicKey(bytes: bytes(name, "public_key_hex")) else { fatalError("the golden vector \(name) has no public key") }
        return key
    }

    /// Protocol/schema/community-v1.json, decoded and checked.
    public static let communitySchema: Schema = {
        let url = root.appendingPathComponent("Protocol/schema/community-v1.json")
        do {
            let schema = try JSONDecoder().decode(Schema.self, from: Data(contentsOf: url))
            try schema.validate()
            return schema
        } catch {
            fatalError("cannot read the schema pack \(url.path): \(error)")
        }
    }()
}
