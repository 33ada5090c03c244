import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliServer
import LinliStore
import LinliTesting
import Testing

/// The server checks the review queue after merges, without anyone asking:
/// a broken invariant is noticed after the merge that breaks it and
/// forgotten once resolved; many merges in a burst cost one check.
@Suite struct ReviewWatchTests {
    static let community: Schema = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Protocol/schema/community-v1.json")
        return try! JSONDecoder().decode(Schema.self, from: Data(contentsOf: url))
    }()

    /// Waits until the watch has run `checks` checks.
    func settle(_ watch: ReviewWatch, checks: Int) async throws {
        for _ in 0..<500 where watch.lastCheck.checks < checks { try await Task.sleep(nanoseconds: 20_000_000) }
    }

    @Test func aBrokenInvariantIsNoticedAfterTheMergeAndForgottenOnceResolved() async throws {
        let li = Fixtures.identity(1, user: "李明")
        let zhao = Fixtures.identity(2, user: "赵军")
        let staff = Fixtures.identity(3, user: "刘洁")
        let server = try ReplicaStore(path: nil, schema: Self.community)
        let liStore = try ReplicaStore(path: nil, schema: Self.community)
        let zhaoStore = try ReplicaStore(path: nil, schema: Self.community)
        for store in [server, liStore, zhaoStore] {
            try store.registerDeviceKey(device: li.device, publicKey: li.key.publicKey, role: .inspector, grids: ["G1"])
            try store.registerDeviceKey(device: zhao.device, publicKey: zhao.key.publicKey, role: .inspector, grids: ["G1"])
            try store.registerDeviceKey(device: staff.device, publicKey: staff.key.publicKey, role: .staff)
        }
        let watch = ReviewWatch(storage: server, invariants: Invariant.community, intervalMilliseconds: 300)

        // Both inspectors register the same resident, offline.
        var first = RowID.random()
        let fromLi = try liStore.write(as: li) { tx in
            first = try tx.create("person", ["grid": .text("G1"), "name": .text("孙丽"), "id_number": .text("11010519491231002X"),
                                             "residence_type": .text("户籍人口")])
        }
        let fromZhao = try zhaoStore.write(as: zhao) { tx in
            try tx.create("person", ["grid": .text("G1"), "name": .text("孙丽"), "id_number": .text("11010519491231002X"),
                                     "residence_type": .text("户籍人口")])
        }
        _ = try server.apply(fromLi, policy: .gatekeeper)
        watch.merged()
        try await settle(watch, checks: 1)
        #expect(watch.lastCheck.invariants.isEmpty)

        // Three merges in a burst: one check sees the duplicate.
        _ = try server.apply(fromZhao, policy: .gatekeeper)
        watch.merged()
        watch.merged()
        watch.merged()
        try await settle(watch, checks: 2)
        // Longer than the interval: a second check would have run by now.
        try await Task.sleep(nanoseconds: 600_000_000)
        #expect(watch.lastCheck.checks == 2)
        #expect(watch.lastCheck.invariants.count == 1)
        #expect(watch.lastCheck.counts[.invariant] == 1)
        let item = try #require(try server.reviewQueue(filter: ReviewFilter(kind: .invariant)).first)
        #expect(watch.lastCheck.invariants == [item.id])

        // Staff correct the ID number li mistyped.
        try server.resolve([(item, .edit(table: "person", row: first.hex, field: "id_number", value: .text("110105194912310046")))],
                           note: "赵军登记的是同一人，李明登记的身份证号有误", as: staff)
        watch.merged()
        try await settle(watch, checks: 3)
        #expect(watch.lastCheck.invariants.isEmpty)
        #expect(watch.lastCheck.counts[.invariant] == nil)
    }
}
