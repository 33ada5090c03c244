import Dispatch
import Foundation
import LinliCore
import LinliStore
import Metrics

/// Group commit for pushes.
///
/// Pushes that arrive while a commit runs wait for it to end and are then
/// committed together, in one transaction (one fsync of the WAL), up to
/// ``Limits/groupCommitChangeSetsMax`` change sets. So a device never waits
/// on others longer than the commit in progress plus its own group's, and
/// under load the server does fewer, larger commits instead of queuing one
/// per request on the SQLite writer.
///
/// Each change set keeps its own savepoint inside the transaction, so one
/// push's refusals never touch another's; only a storage failure fails the
/// whole group, and every push in it then gets 503 and retries (a repeated
/// push is harmless).
final class GroupCommitter: @unchecked Sendable {
    private struct Waiter {
        let offered: [OfferedChangeSet]
        let continuation: CheckedContinuation<[ApplyOutcome], any Error>
    }

    private let storage: any SyncStorage
    /// Called after a commit that merged something.
    private let merged: @Sendable () -> Void
    private let lock = NSLock()
    private var waiting: [Waiter] = []
    private var committing = false
    private let queue = DispatchQueue(label: "linli.group-commit", qos: .userInitiated)

    init(storage: any SyncStorage, merged: @escaping @Sendable () -> Void = {}) {
        self.storage = storage
        self.merged = merged
    }

    /// Commits `offered` (one push's change sets, in order) and returns
    /// their outcomes once they are durable.
    func commit(_ offered: [OfferedChangeSet]) async throws -> [ApplyOutcome] {
        if offered.isEmpty { return [] }
        return try await withCheckedThrowingContinuation { continuation in
            lock.lock()
            waiting.append(Waiter(offered: offered, continuation: continuation))
            let start = !committing
            committing = true
            lock.unlock()
            if start { queue.async { self.drain() } }
        }
    }

    /// Pushes waiting for the next commit.
    var waitingCount: Int { lock.withLock { waiting.count } }

    private func drain() {
        while true {
            lock.lock()
            if waiting.isEmpty {
                committing = false
                lock.unlock()
                return
            }
            var group: [Waiter] = []
            var count = 0
            while let next = waiting.first, group.isEmpty || count + next.offered.count <= Limits.groupCommitChangeSetsMax {
                group.append(waiting.removeFirst())
                count += next.offered.count
            }
            lock.unlock()

            let started = DispatchTime.now().uptimeNanoseconds
            do {
                let outcomes = try storage.apply(group.flatMap(\.offered), policy: .gatekeeper)
                Timer(label: "linli_push_commit_seconds").recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
                Recorder(label: "linli_group_commit_pushes").record(group.count)
                if outcomes.contains(where: { if case .applied = $0.status { true } else { false } }) { merged() }
                var start = 0
                for waiter in group {
                    let end = start + waiter.offered.count
                    waiter.continuation.resume(returning: Array(outcomes[start..<end]))
                    start = end
                }
            } catch {
                for waiter in group { waiter.continuation.resume(throwing: error) }
            }
        }
    }
}
