import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting
import Testing

/// A change set refused for what it says (a value the schema does not
/// allow, a scope its role may not write, a clock far ahead) keeps its
/// place in its device's chain: the device's later change sets are taken,
/// and replicas that never receive the refused one follow the chain past it.
struct ChainedRefusalTests {
    let li = Fixtures.identity(31, user: "李明")
    let now: UInt64 = 1_790_000_000_000

    func house(_ use: String) -> RowChange {
        RowChange(table: "house", row: RowID.random(), writes: [
            FieldWrite(field: "grid", value: .text("G1")), FieldWrite(field: "address", value: .text("幸福路\(use)")),
            FieldWrite(field: "use", value: .text(use)),
        ])
    }

    @Test func aRefusedChangeSetDoesNotStallItsDeviceAndReplicasFollowPastIt() throws {
        let server = try Fixtures.store(knowing: [li])
        let first = try Fixtures.signed(li, seq: 1, prev: Data(), hlc: now << 16, rows: [house("owner")])
        let bad = try Fixtures.signed(li, seq: 2, prev: first.hash, hlc: (now + 1) << 16, rows: [house("castle")])
        let third = try Fixtures.signed(li, seq: 3, prev: bad.hash, hlc: (now + 2) << 16, rows: [house("rented")])
        let outcomes = try server.apply([first, bad, third], policy: .gatekeeper)
        #expect(outcomes.map(\.status) == [.applied, outcomes[1].status, .applied])
        #expect(outcomes[1].error?.code == .schemaViolation)
        #expect(try server.quarantined().map(\.envelope) == [bad.envelope], "the refused change set is kept")
        #expect(try server.heads()[li.device]?.seq == 3)

        // Offered again: refused again, the same way, and no fork.
        let again = try server.apply([bad], policy: .gatekeeper)
        #expect(again.first?.error?.code == .schemaViolation)
        #expect(try server.forkedDevices().isEmpty)

        // A rebuild keeps the head where the refusal put it.
        try server.rebuild()
        let fourth = try Fixtures.signed(li, seq: 4, prev: third.hash, hlc: (now + 3) << 16, rows: [house("vacant")])
        #expect(try server.apply([fourth], policy: .gatekeeper).map(\.status) == [.applied])
        // A change set after a refused last one still links.
        let badLast = try Fixtures.signed(li, seq: 5, prev: fourth.hash, hlc: (now + 4) << 16, rows: [house("palace")])
        #expect(try server.apply([badLast], policy: .gatekeeper).first?.error?.code == .schemaViolation)
        try server.rebuild()
        let sixth = try Fixtures.signed(li, seq: 6, prev: badLast.hash, hlc: (now + 5) << 16, rows: [house("owner")])
        #expect(try server.apply([sixth], policy: .gatekeeper).map(\.status) == [.applied])

        // A replica pulls what the server logged: 1, 3, 4, 6, each with its
        // predecessor among them, and ends with the server's state.
        let replica = try Fixtures.store(knowing: [li])
        let entries = try server.pullEntries(after: 0, scopes: nil, limit: 100)
        #expect(entries.map(\.scopedPredecessor) == [0, 1, 3, 4])
        let pulled = try replica.applyPage(entries.map { OfferedChangeSet(envelope: $0.envelope, scopedPredecessor: $0.scopedPredecessor) },
                                           cursor: SyncCursor(name: "server", position: entries.last!.position))
        #expect(pulled.allSatisfy { $0.status == .applied })
        #expect(try replica.counts().held == 0)
        #expect(try replica.stateDigest() == server.stateDigest())

        // Without the predecessor (an exchange that is not a pull), a gap
        // is held, as before: nothing is taken on trust.
        let strict = try Fixtures.store(knowing: [li])
        let held = try strict.apply(entries.map(\.envelope))
        #expect(held[1].status == .held(missingFrom: 2))
    }
}
