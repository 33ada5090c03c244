import Foundation
import LinliCore

/// What became of one change set offered to a replica.
public struct ApplyOutcome: Sendable, Equatable, CustomStringConvertible {
    public enum Status: Sendable, Equatable {
        /// Verified and merged.
        case applied
        /// This replica already had exactly these bytes; nothing changed.
        case duplicate
        /// Verified, but its device's chain has a gap: it waits in
        /// `linli_held` until change set `missingFrom` arrives.
        case held(missingFrom: UInt64)
        /// Refused, with the reason; the bytes are kept in quarantine.
        case refused(LinliError)
    }

    /// BLAKE2b-256 of the body, or of the whole envelope when the envelope
    /// could not be decoded.
    public let hash: Data
    public let device: DeviceID?
    public let seq: UInt64?
    public let status: Status

    public var isRefused: Bool { if case .refused = status { true } else { false } }
    public var error: LinliError? { if case .refused(let error) = status { error } else { nil } }
    /// Refused for damage, not for what it says: it does not decode or its
    /// signature fails. A puller does not move its cursor past it.
    public var arrivedDamaged: Bool {
        guard let code = error?.code else { return false }
        return code == .malformed || code == .badSignature
    }

    public var description: String {
        let name = device.map { "\($0.hex.prefix(8))#\(seq ?? 0)" } ?? Hex.encode(hash.prefix(8))
        switch status {
        case .applied: return "\(name): applied"
        case .duplicate: return "\(name): already had"
        case .held(let missing): return "\(name): held, waiting for \(missing)"
        case .refused(let error): return "\(name): refused (\(error.code.rawValue)): \(error.message)"
        }
    }
}

/// How a replica treats what it is offered.
public struct ApplyPolicy: Sendable {
    /// Refuse change sets whose clock is further ahead of this replica's
    /// clock than ``Limits/clockDriftMillisecondsMax``. The server, where a
    /// change set first enters the shared history, sets it; replicas pulling
    /// from the server accept what the server accepted.
    public var refuseFutureClocks: Bool

    public init(refuseFutureClocks: Bool = false) {
        self.refuseFutureClocks = refuseFutureClocks
    }

    public static let replica = ApplyPolicy()
    public static let gatekeeper = ApplyPolicy(refuseFutureClocks: true)
}

/// A refused change set, as kept for review.
public struct QuarantineRecord: Sendable, Equatable {
    public let id: Int64
    public let receivedAt: Date
    public let device: DeviceID?
    public let seq: UInt64?
    public let hash: Data
    public let code: LinliError.Code
    public let message: String
    public let envelope: Data
}
