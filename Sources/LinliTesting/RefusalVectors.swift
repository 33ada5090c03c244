import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore

// MARK: Refusal vectors

/// The golden refusal vectors in `Protocol/vectors/refusals/`: one for each
/// way a receiver decides an offered change set (`TRUST.md` 7), each saying
/// whether the device's head moves to it, what the head is afterwards, and
/// what becomes of the device's next change set, which links to it. The
/// vectors are made by running the real store, so they state what this
/// implementation does; `makeRefusals` also checks that it is what the
/// documents say (a refusal in steps 1 to 6 leaves the head, one in steps 7
/// to 11 moves it).
extension GoldenVectors {
    public struct RefusalVector: Codable, Equatable, Sendable {
        public struct Head: Codable, Equatable, Sendable {
            public var seq: UInt64
            public var hashHex: String
            enum CodingKeys: String, CodingKey {
                case seq
                case hashHex = "hash_hex"
            }
        }

        public var name: String
        public var description: String
        /// The trust root the receiver is configured with.
        public var authorityPublicKeyHex: String
        /// `gatekeeper` (the server: clock drift, cross-field rules and
        /// required fields checked) or `replica`.
        public var policy: String
        /// The receiver's clock, milliseconds since 1970.
        public var receiverClockMs: UInt64
        /// The device whose chain the vector is about.
        public var deviceHex: String
        /// Envelopes the receiver applies first, in order; their outcomes
        /// are part of the setting (a fork marks the device, for one).
        public var contextHex: [String]
        public var bytesHex: String
        /// `applied`, `duplicate`, `held` or `refused`.
        public var outcome: String
        public var reason: String?
        /// Whether the device's head is this change set afterwards.
        public var headMoves: Bool
        /// The device's head on the receiver afterwards; nil when the
        /// receiver holds nothing of the device.
        public var headAfter: Head?
        /// The device's next change set, linked to this one, and what the
        /// receiver does with it.
        public var nextHex: String?
        public var nextOutcome: String?
        /// The device's head after the next change set, when it differs
        /// from the next change set itself.
        public var headAfterNext: RefusalVector.Head?

        enum CodingKeys: String, CodingKey {
            case name, description, policy, outcome, reason
            case authorityPublicKeyHex = "authority_public_key_hex"
            case receiverClockMs = "receiver_clock_ms"
            case deviceHex = "device_hex"
            case contextHex = "context_hex"
            case bytesHex = "bytes_hex"
            case headMoves = "head_moves"
            case headAfter = "head_after"
            case nextHex = "next_hex"
            case nextOutcome = "next_outcome"
            case headAfterNext = "head_after_next"
        }
    }

    /// The receiver's clock in the refusal vectors: one minute after the
    /// vectors' base clock.
    public static let refusalReceiverClockMs: UInt64 = (baseClock >> 16) + 60_000

    /// The name of an outcome in a refusal vector.
    public static func outcomeName(_ status: ApplyOutcome.Status) -> String {
        switch status {
        case .applied: "applied"
        case .duplicate: "duplicate"
        case .held: "held"
        case .refused: "refused"
        }
    }

    /// A receiver for a refusal vector: in memory, the vectors' trust root,
    /// the fixture schema, the fixed clock.
    public static func refusalReceiver() throws -> ReplicaStore {
        let clock = refusalReceiverClockMs
        return try ReplicaStore(path: nil, schema: Fixtures.schema, authority: rootKey.publicKey, clock: { clock })
    }

    public static func makeRefusals() throws -> [RefusalVector] {
        let certify = try system(authority, seq: 1, prev: Data(), [
            certificate(trustRow(1), device: inspector.device, key: inspector.key.publicKey, role: .inspector, grids: ["G1"],
                        label: "inspector phone 1"),
        ])
        let first = try inspectorChange(inspector, seq: 1, prev: Data())
        let second = try inspectorChange(inspector, seq: 2, prev: first.hash)
        let base = [certify, first]
        func person(_ writes: [FieldWrite], row: RowID = personRow) -> [RowChange] {
            [RowChange(table: "person", row: row, writes: writes)]
        }
        func change(seq: UInt64, prev: Data, hlc: UInt64? = nil, scope: Scope = .grid("G1"), rows: [RowChange],
                    identity: DeviceIdentity = inspector) throws -> SignedChangeSet {
            try Fixtures.signed(identity, seq: seq, prev: prev, hlc: hlc ?? tick(100 + seq), scope: scope, rows: rows)
        }
        var vectors: [RefusalVector] = []

        /// Runs the case on a fresh receiver and records what happened.
        func add(_ name: String, _ description: String, policy: ApplyPolicy = .replica, context: [Data], bytes: Data,
                 device: DeviceID = inspector.device, expect: String, reason: LinliError.Code? = nil, headMoves: Bool,
                 next: SignedChangeSet? = nil) throws {
            let receiver = try refusalReceiver()
            _ = try receiver.apply(context, policy: policy)
            let outcome = try receiver.apply([bytes], policy: policy)[0]
            let head = try receiver.chainHeads()[device]
            let offeredHash = (try? SignedChangeSet(envelope: bytes))?.hash
            let moved = head != nil && head?.hash == offeredHash
            guard outcomeName(outcome.status) == expect, outcome.error?.code == reason, moved == headMoves else {
                throw LinliError(.invalidInput, "refusal vector \(name): got \(outcome), head \(String(describing: head)); expected \(expect) \(String(describing: reason)), head moves \(headMoves)")
            }
            var nextOutcome: String?
            var headAfterNext: RefusalVector.Head?
            if let next {
                nextOutcome = outcomeName(try receiver.apply([next], policy: policy)[0].status)
                if let after = try receiver.chainHeads()[device], after.hash != next.hash {
                    headAfterNext = RefusalVector.Head(seq: after.seq, hashHex: Hex.encode(after.hash))
                }
            }
            vectors.append(RefusalVector(
                name: name, description: description, authorityPublicKeyHex: rootKey.publicKey.hex,
                policy: policy.refuseFutureClocks ? "gatekeeper" : "replica", receiverClockMs: refusalReceiverClockMs,
                deviceHex: device.hex, contextHex: context.map(Hex.encode), bytesHex: Hex.encode(bytes), outcome: expect,
                reason: reason?.rawValue, headMoves: headMoves, headAfter: head.map { RefusalVector.Head(seq: $0.seq, hashHex: Hex.encode($0.hash)) },
                nextHex: next.map { Hex.encode($0.envelope) }, nextOutcome: nextOutcome, headAfterNext: headAfterNext))
        }
        let context = base.map(\.envelope)

        // Steps 1 to 6: the head stays where it was.
        var truncated = second.envelope
        truncated.removeLast(7)
        try add("malformed", "Change set 2 with its last 7 bytes cut off: it cannot be decoded, so it names no device or place in a chain.",
                context: context, bytes: truncated, expect: "refused", reason: .malformed, headMoves: false,
                next: try inspectorChange(inspector, seq: 3, prev: second.hash))
        let revoke = try system(authority, seq: 2, prev: certify.hash, [
            revocation(trustRow(6), device: inspector.device, lastValidSeq: 1, reason: "phone reported lost"),
        ])
        try add("revoked", "Change set 2 after a revocation that keeps the device's change sets up to 1.",
                context: context + [revoke.envelope], bytes: second.envelope, expect: "refused", reason: .revoked, headMoves: false)
        try add("unknown-key", "Change set 1 of a device the receiver has no certificate for: it waits in quarantine for one.",
                context: [], bytes: first.envelope, expect: "refused", reason: .unknownKey, headMoves: false)
        var tampered = second.envelope
        if let range = tampered.range(of: Data("张三 2".utf8)) { tampered[range.upperBound - 1] ^= 0x01 }
        try add("bad-signature", "Change set 2 with one byte of its body changed after signing; the genuine change set 3 that follows is held, waiting for 2.",
                context: context, bytes: tampered, expect: "refused", reason: .badSignature, headMoves: false,
                next: try inspectorChange(inspector, seq: 3, prev: second.hash))
        let clone = try change(seq: 1, prev: Data(), hlc: tick(150), rows: person([
            FieldWrite(field: "_deleted", value: .boolean(false)), FieldWrite(field: "grid", value: .text("G1")),
            FieldWrite(field: "name", value: .text("李四")),
        ]))
        try add("fork", "A second, different change set 1: the device's history forked; the head stays the first change set 1, and the device is quarantined.",
                context: context, bytes: clone.envelope, expect: "refused", reason: .fork, headMoves: false, next: second)
        try add("device-quarantined", "Change set 2, valid, from a device quarantined by an earlier fork.",
                context: context + [clone.envelope], bytes: second.envelope, expect: "refused", reason: .deviceQuarantined, headMoves: false)
        let unlinked = try change(seq: 2, prev: Data(repeating: 0xAB, count: 32), rows: second.changeSet.rows)
        try add("broken-chain", "Change set 2 naming a previous hash that is not change set 1's.",
                context: context, bytes: unlinked.envelope, expect: "refused", reason: .brokenChain, headMoves: false)
        let third = try inspectorChange(inspector, seq: 3, prev: second.hash)
        try add("held", "Change set 3 before 2: held, not refused; the head stays at 1 until 2 arrives, and then both are taken.",
                context: context, bytes: third.envelope, expect: "held", headMoves: false, next: second)
        try add("duplicate", "Change set 1 offered again: already applied, nothing changes.",
                context: context, bytes: first.envelope, expect: "duplicate", headMoves: true, next: second)

        // Steps 7 to 11: refused in its chain; the head moves and the next change set is taken.
        let otherGrid = try change(seq: 2, prev: first.hash, scope: .grid("G2"), rows: person([
            FieldWrite(field: "_deleted", value: .boolean(false)), FieldWrite(field: "grid", value: .text("G2")),
            FieldWrite(field: "name", value: .text("王五")),
        ], row: RowID(high: 0x7065_7273_6F6E_0000, low: 2)))
        let afterOtherGrid = try inspectorChange(inspector, seq: 3, prev: otherGrid.hash)
        let behindGap = try change(seq: 3, prev: second.hash, scope: .grid("G2"), rows: person([
            FieldWrite(field: "_deleted", value: .boolean(false)), FieldWrite(field: "grid", value: .text("G2")),
            FieldWrite(field: "name", value: .text("钱七")),
        ], row: RowID(high: 0x7065_7273_6F6E_0000, low: 5)))
        try add("out-of-scope-behind-a-gap", "Change set 3, in grid G2, before 2 arrives: refused early, not held, and the head stays at 1; when 2 arrives, 3 takes its place in the chain as refused, and the head is 3 (head_after_next).",
                context: context, bytes: behindGap.envelope, expect: "refused", reason: .outOfScope, headMoves: false, next: second)
        try add("out-of-scope-role", "Change set 2 in grid G2, which the inspector's certificate does not name.",
                context: context, bytes: otherGrid.envelope, expect: "refused", reason: .outOfScope, headMoves: true, next: afterOtherGrid)
        let resolution = try change(seq: 2, prev: first.hash, rows: [
            RowChange(table: ReviewSchema.resolution, row: RowID(high: 0x7265_736F_6C00_0000, low: 1), writes: [
                FieldWrite(field: "_deleted", value: .boolean(false)), FieldWrite(field: "decision", value: .text("dismissed")),
                FieldWrite(field: "item", value: .text("x")), FieldWrite(field: "kind", value: .text("conflict")),
                FieldWrite(field: "note", value: .text("自行处理")),
            ]),
        ])
        try add("not-permitted", "Change set 2 writes a resolution of the review queue, which only staff may.",
                context: context, bytes: resolution.envelope, expect: "refused", reason: .notPermitted, headMoves: true,
                next: try inspectorChange(inspector, seq: 3, prev: resolution.hash))
        let ahead = try change(seq: 2, prev: first.hash, hlc: (refusalReceiverClockMs + 2 * 86_400_000) << 16,
                               rows: second.changeSet.rows)
        try add("clock-ahead", "Change set 2 whose clock is two days ahead of the gatekeeper's (more than clockDriftMillisecondsMax).",
                policy: .gatekeeper, context: context, bytes: ahead.envelope, expect: "refused", reason: .clockAhead, headMoves: true,
                next: try inspectorChange(inspector, seq: 3, prev: ahead.hash))
        let undeclared = try change(seq: 2, prev: first.hash, rows: person([FieldWrite(field: "shoe_size", value: .integer(42))]))
        try add("schema-violation-field", "Change set 2 writes a field the schema does not declare.",
                context: context, bytes: undeclared.envelope, expect: "refused", reason: .schemaViolation, headMoves: true,
                next: try inspectorChange(inspector, seq: 3, prev: undeclared.hash))
        let gridOnly = try change(seq: 2, prev: first.hash, rows: person([
            FieldWrite(field: "_deleted", value: .boolean(false)), FieldWrite(field: "grid", value: .text("G1")),
        ], row: RowID(high: 0x7065_7273_6F6E_0000, low: 3)))
        try add("schema-violation-required", "Change set 2 creates a person with only its grid; name is required (CHANGESET.md 6.5.2).",
                policy: .gatekeeper, context: context, bytes: gridOnly.envelope, expect: "refused", reason: .schemaViolation, headMoves: true,
                next: try inspectorChange(inspector, seq: 3, prev: gridOnly.hash))
        try add("required-on-a-replica", "The same person with only its grid on a replica: replicas take what the gatekeeper accepted and do not judge required fields.",
                context: context, bytes: gridOnly.envelope, expect: "applied", headMoves: true)
        let rowInOtherGrid = try change(seq: 2, prev: first.hash, rows: person([
            FieldWrite(field: "_deleted", value: .boolean(false)), FieldWrite(field: "grid", value: .text("G2")),
            FieldWrite(field: "name", value: .text("赵六")),
        ], row: RowID(high: 0x7065_7273_6F6E_0000, low: 4)))
        try add("out-of-scope-row", "Change set 2 for grid G1 creates a person whose grid field says G2.",
                context: context, bytes: rowInOtherGrid.envelope, expect: "refused", reason: .outOfScope, headMoves: true,
                next: try inspectorChange(inspector, seq: 3, prev: rowInOtherGrid.hash))
        try add("applied", "Change set 2, valid: the head moves to it.",
                context: context, bytes: second.envelope, expect: "applied", headMoves: true, next: third)
        return vectors
    }
}
