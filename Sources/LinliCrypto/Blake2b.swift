import CSodium
import Foundation

/// BLAKE2b with a 32-byte output (`crypto_generichash`, no key).
///
/// The incremental form keeps libsodium's state in its own 64-byte aligned
/// allocation, since Swift cannot import the aligned C struct.
public final class Blake2b256 {
    public static let outputBytes = 32
    private let state: OpaquePointer
    private let raw: UnsafeMutableRawPointer

    public init() {
        Sodium.ensureInitialized()
        raw = UnsafeMutableRawPointer.allocate(byteCount: crypto_generichash_statebytes(), alignment: 64)
        state = OpaquePointer(raw)
        crypto_generichash_init(state, nil, 0, Self.outputBytes)
    }

    deinit { raw.deallocate() }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        crypto_generichash_update(state, base.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
    }

    public func update(_ data: Data) { data.withUnsafeBytes { update($0) } }
    public func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    public func finalize() -> Data {
        var out = Data(count: Self.outputBytes)
        out.withUnsafeMutableBytes {
            _ = crypto_generichash_final(state, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), Self.outputBytes)
        }
        return out
    }

    /// The hash of `data` in one call.
    /// The hash and size of a file, read 1 MiB at a time; nil when the
    /// file cannot be read.
    public static func hash(fileAt path: String) throws -> (hash: Data, bytes: Int64)? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let hasher = Blake2b256()
        var bytes: Int64 = 0
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            hasher.update(chunk)
            bytes += Int64(chunk.count)
        }
        return (hasher.finalize(), bytes)
    }

    public static func hash(_ data: Data) -> Data {
        data.withUnsafeBytes { hash($0) }
    }

    public static func hash(_ bytes: UnsafeRawBufferPointer) -> Data {
        Sodium.ensureInitialized()
        var out = Data(count: outputBytes)
        out.withUnsafeMutableBytes { output in
            _ = crypto_generichash(
                output.baseAddress!.assumingMemoryBound(to: UInt8.self), outputBytes,
                bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count), nil, 0)
        }
        return out
    }
}
