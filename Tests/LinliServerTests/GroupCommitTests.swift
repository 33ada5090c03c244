import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
@testable import LinliServer
import LinliStore
import LinliTesting
import Testing

/// A real replica store whose first commit waits at a gate, so the test
/// knows that other pushes arrive while a commit runs.
final class GatedStorage: SyncStorage, @unchecked Sendable {
    let store: ReplicaStore
    let entered = DispatchSemaphore(value: 0)
    let gate = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var calls: [Int] = []

    init(store: ReplicaStore) { self.store = store }

    var applyCalls: [Int] { lock.withLock { calls } }

    func apply(_ offered: [OfferedChangeSet], policy: ApplyPolicy) throws -> [ApplyOutcome] {
        let first = lock.withLock { () -> Bool in
            calls.append(offered.count)
            return calls.count == 1
        }
        if first {
            entered.signal()
            gate.wait()
        }
        return try store.apply(offered, policy: policy)
    }

    func access(_ device: DeviceID) throws -> DeviceAccess { try store.access(device) }
    func pullEntries(after position: Int64, scopes: Set<Scope>?, limit: Int, excluding device: DeviceID?) throws -> [ReplicaStore.PullEntry] {
        try store.pullEntries(after: position, scopes: scopes, limit: limit, excluding: device)
    }
    func pullEntries(of device: DeviceID, afterSeq: UInt64, scopes: Set<Scope>?, limit: Int) throws -> [ReplicaStore.PullEntry] {
        try store.pullEntries(of: device, afterSeq: afterSeq, scopes: scopes, limit: limit)
    }
    func heads(scopes: Set<Scope>?, asker: DeviceID) throws -> [ReplicaStore.ScopedHead] { try store.heads(scopes: scopes, asker: asker) }
    func logEnd() throws -> Int64 { try store.logEnd() }
    func trustEntries(after position: Int64, limit: Int) throws -> [ReplicaStore.PullEntry] { try store.trustEntries(after: position, limit: limit) }
    func refused(by device: DeviceID) throws -> [QuarantineRecord] { try store.refused(by: device) }
    func conflicts(in scopes: Set<Scope>?) throws -> [Conflict] { try store.conflicts(in: scopes) }
    func writeSnapshot(scopes: Set<Scope>?, to path: String) throws -> Int64 { try store.writeSnapshot(scopes: scopes, to: path) }
    func reviewQueue(scopes: Set<Scope>?, filter: ReviewFilter, invariants: [Invariant]) throws -> [ReviewItem] {
        try store.reviewQueue(scopes: scopes, filter: filter, invariants: invariants)
    }
    func reviewItem(_ id: String, scopes: Set<Scope>?, invariants: [Invariant]) throws -> ReviewItem? {
        try store.reviewItem(id, scopes: scopes, invariants: invariants)
    }
    func resolve(_ resolutions: [(item: ReviewItem, action: ReviewAction)], note: String, as identity: DeviceIdentity) throws -> [SignedChangeSet] {
        try store.resolve(resolutions, note: note, as: identity)
    }
}

struct GroupCommitTests {
    @Test func pushesArrivingDuringACommitAreCommittedTogetherInTheNext() async throws {
        let devices = (0..<8).map { Fixtures.identity(UInt8(140 + $0), user: "巡查员\($0)") }
        let server = try Fixtures.store(knowing: devices)
        var pushes: [[OfferedChangeSet]] = []
        for device in devices {
            let phone = try Fixtures.store(knowing: devices)
            for index in 0..<5 {
                _ = try phone.write(as: device) { tx in _ = try tx.create("person", ["grid": .text("G1"), "name": .text("\(device.user)-\(index)")]) }
            }
            pushes.append(try phone.outbox(device: device.device).map { OfferedChangeSet(signed: $0) })
        }
        let storage = GatedStorage(store: server)
        let committer = GroupCommitter(storage: storage)

        // The first push starts a commit, which waits at the gate…
        let first = Task { try await committer.commit(pushes[0]) }
        storage.entered.wait()
        // …while the seven others arrive.
        var others: [Task<[ApplyOutcome], any Error>] = []
        for push in pushes.dropFirst() { others.append(Task { try await committer.commit(push) }) }
        while committer.waitingCount < 7 { try await Task.sleep(nanoseconds: 1_000_000) }
        storage.gate.signal()

        let firstOutcomes = try await first.value
        var otherOutcomes: [[ApplyOutcome]] = []
        for task in others { otherOutcomes.append(try await task.value) }
        // Two commits: the first push alone, then the seven together.
        #expect(storage.applyCalls == [5, 35])
        // Each push got its own outcomes, in its own order.
        #expect(firstOutcomes.map(\.device) == Array(repeating: devices[0].device, count: 5))
        for (outcomes, device) in zip(otherOutcomes, devices.dropFirst()) {
            #expect(outcomes.map(\.device) == Array(repeating: device.device, count: 5))
            #expect(outcomes.map(\.seq) == [1, 2, 3, 4, 5])
            #expect(outcomes.allSatisfy { $0.status == .applied })
        }
        #expect(try server.counts().changeSets == 40)
    }
}
