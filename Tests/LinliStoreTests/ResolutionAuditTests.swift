import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting
import Testing

/// `auditResolutions()`: every resolution is verified from its change set's
/// bytes, and an audit row that does not tell the truth is caught.
@Suite struct ResolutionAuditTests {
    let li = Fixtures.identity(1, user: "李明")
    let zhao = Fixtures.identity(2, user: "赵军")
    let staff = Fixtures.identity(3, user: "刘洁")

    /// A server store holding a phone conflict between li and zhao, and the row.
    func conflicted() throws -> (ReplicaStore, RowID) {
        let server = try ReplicaStore(path: nil, schema: Fixtures.schema)
        let liStore = try ReplicaStore(path: nil, schema: Fixtures.schema)
        let zhaoStore = try ReplicaStore(path: nil, schema: Fixtures.schema)
        for store in [server, liStore, zhaoStore] {
            try store.registerDeviceKey(device: li.device, publicKey: li.key.publicKey, role: .inspector, grids: ["G1"])
            try store.registerDeviceKey(device: zhao.device, publicKey: zhao.key.publicKey, role: .inspector, grids: ["G1"])
            try store.registerDeviceKey(device: staff.device, publicKey: staff.key.publicKey, role: .staff)
        }
        var row = RowID.random()
        let created = try liStore.write(as: li) { tx in
            row = try tx.create("person", ["grid": .text("G1"), "name": .text("孙丽"), "phone": .text("13800000000")])
        }
        _ = try zhaoStore.apply(created)
        let first = try liStore.write(as: li) { tx in try tx.update("person", row, ["phone": .text("13800000001")]) }
        let second = try zhaoStore.write(as: zhao) { tx in try tx.update("person", row, ["phone": .text("13900000002")]) }
        _ = try server.apply(created + first + second)
        return (server, row)
    }

    @Test func anHonestResolutionVerifies() throws {
        let (server, _) = try conflicted()
        let item = try #require(try server.reviewQueue().first)
        #expect(item.kind == .conflict)
        try server.resolve([(item, .choose(1))], note: "本人确认", as: staff)
        let entries = try server.auditResolutions()
        #expect(entries.count == 1)
        let entry = try #require(entries.first)
        #expect(entry.verified, "\(entry.problems)")
        #expect(entry.user == "刘洁")
        #expect(entry.device == staff.device)
        #expect(entry.decision == "chosen")
        #expect(entry.item == item.id)
        #expect(entry.note == "本人确认")
        #expect(entry.value == item.values[1].value.description)
        for value in item.values { #expect(entry.replaced.contains(value.value.description)) }
    }

    @Test func anAuditRowThatLiesIsCaught() throws {
        let (server, row) = try conflicted()
        let item = try #require(try server.reviewQueue().first)
        let dots = item.values.compactMap(\.dot.dot)
        #expect(dots.count == 2)
        // Replaces both values but claims to have replaced only one, and
        // names another value than it writes.
        let claimed = "[{\"device\":\"\(item.values[0].dot.device)\",\"seq\":\"\(item.values[0].dot.seq)\",\"user\":\"x\",\"value\":\"x\",\"time\":\"0\"}]"
        try server.write(as: staff) { tx in
            try tx.settle("person", row, scope: .grid("G1"), field: "phone", value: .text("13700000003"), replacing: dots)
            try tx.record(ReviewSchema.resolution, scope: .grid("G1"), [
                "kind": .text("conflict"), "item": .text(item.id), "decision": .text("corrected"), "subject_table": .text("person"),
                "subject_row": .text(row.hex), "subject_field": .text("phone"), "value": .text("13600000000"),
                "replaced": .text(claimed), "note": .text("改号"),
            ])
        }
        let entries = try server.auditResolutions()
        let entry = try #require(entries.first)
        #expect(!entry.verified)
        #expect(entry.problems.contains { $0.contains("says it wrote 13600000000 but wrote 13700000003") })
        #expect(entry.problems.contains { $0.contains("lists replaced values") })
        // The conflict itself is settled all the same: the write is real.
        #expect(try server.reviewQueue().isEmpty)
    }

    @Test func aResolutionByAKeyThatIsNotStaffIsCaught() throws {
        // A replica that registered the staff device as an inspector (as if
        // its certificate said so) flags the resolution.
        let (server, _) = try conflicted()
        let item = try #require(try server.reviewQueue().first)
        let changeSets = try server.resolve([(item, .newest)], note: "以最新为准", as: staff)
        let other = try ReplicaStore(path: nil, schema: Fixtures.schema)
        try other.registerDeviceKey(device: staff.device, publicKey: staff.key.publicKey, role: .inspector, grids: ["G1"])
        try other.registerDeviceKey(device: li.device, publicKey: li.key.publicKey, role: .inspector, grids: ["G1"])
        try other.registerDeviceKey(device: zhao.device, publicKey: zhao.key.publicKey, role: .inspector, grids: ["G1"])
        let outcomes = try other.apply(changeSets)
        // The replica refuses it (only staff write resolutions) and keeps it.
        #expect(outcomes.allSatisfy { if case .refused(let error) = $0.status { error.code == .notPermitted } else { false } })
        #expect(try other.quarantined().count == changeSets.count)
        #expect(try other.auditResolutions().isEmpty)
    }

    @Test func aSecondResolutionOfTheSameItemIsRefusedByTheGatekeeperAndShownToStaff() throws {
        let (server, row) = try conflicted()
        let item = try #require(try server.reviewQueue().first)
        let other = Fixtures.identity(4, user: "陈静")
        try server.registerDeviceKey(device: other.device, publicKey: other.key.publicKey, role: .staff)
        // Two desks read the same item and decide differently, each on its
        // own small replica (which does not hold the record).
        var desks: [ReplicaStore] = []
        for identity in [staff, other] {
            let desk = try ReplicaStore(path: nil, schema: Fixtures.schema)
            try desk.registerDeviceKey(device: identity.device, publicKey: identity.key.publicKey, role: .staff)
            desks.append(desk)
        }
        let first = try desks[0].resolve([(item, .choose(0))], note: "本人确认", as: staff)
        let second = try desks[1].resolve([(item, .choose(1))], note: "邻居确认", as: other)
        let accepted = try server.apply(first, policy: .gatekeeper)
        #expect(accepted.allSatisfy { if case .applied = $0.status { true } else { false } })
        let refused = try server.apply(second, policy: .gatekeeper)
        let error = try #require(refused.compactMap { if case .refused(let error) = $0.status { error } else { nil } }.first)
        #expect(error.code == .conflict)
        #expect(error.message.contains("settled meanwhile"))
        // The first decision stands, with no new conflict; the second waits
        // in the queue as a refused change set, its reason shown.
        #expect(try server.row("person", row)?["phone"] == item.values[0].value)
        #expect(try server.conflicts().isEmpty)
        let queue = try server.reviewQueue()
        #expect(queue.count == 1)
        #expect(queue.first?.kind == .refused)
        #expect(queue.first?.refusal?.user == "陈静")
        // Without the gatekeeper (a replica), both merge and the two decisions compete.
        let replica = try ReplicaStore(path: nil, schema: Fixtures.schema)
        for identity in [li, zhao, staff, other] {
            try replica.registerDeviceKey(device: identity.device, publicKey: identity.key.publicKey,
                                          role: [staff.device, other.device].contains(identity.device) ? .staff : .inspector, grids: ["G1"])
        }
        _ = try replica.apply(try server.changeSets().map(\.envelope))
        _ = try replica.apply(second)
        #expect(try replica.conflicts().count == 1)
    }
}
