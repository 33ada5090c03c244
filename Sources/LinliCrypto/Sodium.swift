import CSodium
import LinliCore
import Foundation

/// libsodium, initialised once before any other call.
enum Sodium {
    /// `sodium_init` is thread-safe and idempotent; Swift runs this global's
    /// initialiser exactly once.
    private static let initialized: Bool = sodium_init() >= 0

    static func ensureInitialized() {
        precondition(initialized, "libsodium failed to initialise")
    }
}

/// Random bytes from the operating system's cryptographic generator.
public enum SecureRandom {
    public static func bytes(_ count: Int) -> Data {
        Sodium.ensureInitialized()
        var data = Data(count: count)
        data.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, count) }
        return data
    }
}

/// Comparison whose time does not depend on where the inputs differ.
public enum ConstantTime {
    public static func equal(_ lhs: Data, _ rhs: Data) -> Bool {
        Sodium.ensureInitialized()
        guard lhs.count == rhs.count else { return false }
        if lhs.isEmpty { return true }
        return lhs.withUnsafeBytes { left in
            rhs.withUnsafeBytes { right in
                sodium_memcmp(left.baseAddress!, right.baseAddress!, lhs.count) == 0
            }
        }
    }
}

/// Secret bytes in memory that libsodium guards and wipes when released.
///
/// The buffer comes from `sodium_malloc` (guard pages, locked from swap
/// where the system allows) and is zeroed by `sodium_free`. Copies of a
/// secret made outside this type are the caller's to avoid.
public final class SecretBytes: @unchecked Sendable {
    // Immutable after init; reads only. Hence safe to share across threads.
    private let pointer: UnsafeMutableRawPointer
    public let count: Int

    public init(count: Int) {
        Sodium.ensureInitialized()
        guard let pointer = sodium_malloc(count) else { fatalError("sodium_malloc(\(count)) failed: out of memory") }
        self.pointer = pointer
        self.count = count
    }

    /// Copies `bytes` into guarded memory. The caller's copy is the
    /// caller's to wipe (see ``wipe(_:)``).
    public convenience init(copying bytes: Data) {
        self.init(count: bytes.count)
        bytes.withUnsafeBytes { source in
            if let base = source.baseAddress { pointer.copyMemory(from: base, byteCount: bytes.count) }
        }
    }

    deinit { sodium_free(pointer) }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(start: pointer, count: count))
    }
}

/// Zeroes a buffer in a way the compiler cannot optimise away.
public func wipe(_ data: inout Data) {
    Sodium.ensureInitialized()
    let count = data.count
    data.withUnsafeMutableBytes { if let base = $0.baseAddress { sodium_memzero(base, count) } }
}
