import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting
import Testing

/// What a hostile enrolled device can make a server keep: change sets
/// behind a gap that its role may not write, undecodable pushes, refusals
/// without end. Each is bounded, and what an honest device sends still
/// goes through.
@Suite struct QuarantineBoundTests {
    /// A kiosk's change set `seq` in its own scope (a signup).
    static func kioskChange(_ kiosk: DeviceIdentity, seq: UInt64, prev: Data, scope: Scope? = nil) throws -> SignedChangeSet {
        let grid: Bool = scope.map { if case .grid = $0 { true } else { false } } ?? false
        let rows = grid
            ? [RowChange(table: "person", row: RowID(high: 0x6B69_6F73_6B00_0000, low: seq), writes: [
                FieldWrite(field: "_deleted", value: .boolean(false)), FieldWrite(field: "grid", value: .text("G2")),
                FieldWrite(field: "name", value: .text("居民\(seq)")),
            ])]
            : [RowChange(table: "signup", row: RowID(high: 0x7369_676E_7570_0000, low: seq), writes: [
                FieldWrite(field: "_deleted", value: .boolean(false)), FieldWrite(field: "name", value: .text("报名\(seq)")),
            ])]
        return try Fixtures.signed(kiosk, seq: seq, prev: prev, hlc: (1_790_000_000_000 + seq) << 16,
                                   scope: scope ?? .kiosk(kiosk.device), rows: rows)
    }

    @Test func aKiosksGridChangeSetsBehindAGapAreRefusedNotHeldAndTheChainGoesOnWhenTheGapFills() throws {
        let world = try TrustWorld()
        let kiosk = Fixtures.identity(50, user: "社区大厅自助机")
        try world.certify(kiosk, role: .kiosk)
        let server = try world.replica()
        _ = try server.apply(world.trustRecords())
        var chain: [SignedChangeSet] = [try Self.kioskChange(kiosk, seq: 1, prev: Data())]
        chain.append(try Self.kioskChange(kiosk, seq: 2, prev: chain[0].hash))
        for seq in UInt64(3)...40 { chain.append(try Self.kioskChange(kiosk, seq: seq, prev: chain.last!.hash, scope: .grid("G2"))) }
        chain.append(try Self.kioskChange(kiosk, seq: 41, prev: chain.last!.hash))

        #expect(try server.apply([chain[0]], policy: .gatekeeper)[0].status == .applied)
        // 3 to 40 arrive before 2: a kiosk may not write grid G2, so none is held.
        let early = try server.apply(Array(chain[2..<40]), policy: .gatekeeper)
        #expect(early.allSatisfy { $0.error?.code == .outOfScope }, "\(early.first { $0.error?.code != .outOfScope }.map(\.description) ?? "")")
        #expect(try server.counts().held == 0, "out-of-scope change sets behind a gap must not be held")
        #expect(try server.chainHeads()[kiosk.device]?.seq == 1)
        // The kiosk's own 41 behind the gap is held as usual.
        #expect(try server.apply([chain[40]], policy: .gatekeeper)[0].status == .held(missingFrom: 2))

        // 2 fills the gap: 3 to 40 take their places as refused, 41 is applied.
        #expect(try server.apply([chain[1]], policy: .gatekeeper)[0].status == .applied)
        #expect(try server.chainHeads()[kiosk.device]?.seq == 41)
        #expect(try server.counts().held == 0)
        #expect(try server.row("signup", RowID(high: 0x7369_676E_7570_0000, low: 41)) != nil)
        let refused = try server.quarantined().filter { $0.device == kiosk.device }
        #expect(refused.compactMap(\.seq).sorted() == Array(3...40), "each refused change set is kept once, with its reason")
        // Offered again, each is refused the same way; nothing moves.
        #expect(try server.apply([chain[10]], policy: .gatekeeper)[0].error?.code == .outOfScope)
        let audit = try server.audit()
        #expect(audit.isClean, "\(audit.problems)")
    }

    @Test func anEnvelopeThatDoesNotDecodeIsKeptUnderItsSenderAndOnlyItsStart() throws {
        let world = try TrustWorld()
        let kiosk = Fixtures.identity(51)
        try world.certify(kiosk, role: .kiosk)
        let server = try world.replica()
        _ = try server.apply(world.trustRecords())
        let junk = Data(repeating: 0x41, count: 3 * Limits.undecodableEnvelopeBytesKeptMax)
        let outcome = try server.apply([OfferedChangeSet(decoding: junk, sender: kiosk.device)], policy: .gatekeeper)[0]
        #expect(outcome.error?.code == .malformed)
        let kept = try #require(try server.quarantined().last)
        #expect(kept.device == kiosk.device, "an undecodable push counts against the device that sent it")
        #expect(kept.seq == nil)
        #expect(kept.envelope == junk.prefix(Limits.undecodableEnvelopeBytesKeptMax))
        #expect(kept.hash == Blake2b256.hash(junk), "the hash is of what was sent, whole")
        #expect(kept.message.contains("\(junk.count) bytes"))
    }

    @Test func aDevicesQuarantineStopsKeepingEnvelopesAtItsBoundButKeepsEveryRefusal() throws {
        let world = try TrustWorld()
        let kiosk = Fixtures.identity(52)
        try world.certify(kiosk, role: .kiosk)
        let server = try world.replica()
        _ = try server.apply(world.trustRecords())
        let each = Limits.undecodableEnvelopeBytesKeptMax
        let count = Limits.quarantineBytesPerDeviceMax / each + 5
        var junk: [OfferedChangeSet] = []
        for index in 0..<count {
            var bytes = Data(repeating: 0x42, count: each)
            withUnsafeBytes(of: UInt32(index).littleEndian) { bytes.replaceSubrange(0..<4, with: $0) }
            junk.append(OfferedChangeSet(decoding: bytes, sender: kiosk.device))
        }
        let outcomes = try server.apply(junk, policy: .gatekeeper)
        #expect(outcomes.allSatisfy { $0.error?.code == .malformed })
        let kept = try server.quarantined().filter { $0.device == kiosk.device }
        #expect(kept.count == count, "every refusal is recorded")
        let bytes = kept.reduce(0) { $0 + $1.envelope.count }
        #expect(bytes <= Limits.quarantineBytesPerDeviceMax)
        #expect(kept.suffix(5).allSatisfy { $0.envelope.isEmpty && $0.message.contains("quarantineBytesPerDeviceMax") })
        #expect(outcomes.last?.error?.message.contains("quarantineBytesPerDeviceMax") == true, "the sender is told")

        // A status answer reads the newest refusals of one device, bounded.
        let newest = try server.refusals(of: kiosk.device, limit: Limits.statusRefusalsMax)
        #expect(newest.count == Limits.statusRefusalsMax)
        #expect(newest.last?.hash == kept.last?.hash && newest.allSatisfy { $0.envelope.isEmpty })
        #expect(try server.refusals(of: Fixtures.identity(53).device, limit: 10).isEmpty)
    }
}
