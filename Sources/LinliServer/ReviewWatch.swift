import Dispatch
import Foundation
import LinliCore
import LinliStore
import Logging
import Metrics

/// Checks the review queue after merges, off the commit path.
///
/// The queue is read from the merged state whenever staff ask for it, so
/// it is never stale. This watch makes the check happen without anyone
/// asking: after a group commit that merged something it reads the queue
/// (at most once per ``Limits/reviewCheckIntervalMillisecondsMin``, so a
/// busy night costs one check per interval, not one per commit), logs each
/// broken invariant the moment it first appears, and keeps the gauges
/// `linli_review_items_open{kind=…}` current for the operators' dashboard.
public final class ReviewWatch: @unchecked Sendable {
    private let storage: any SyncStorage
    private let invariants: [Invariant]
    private let interval: DispatchTimeInterval
    private let logger = Logger(label: "linli-server.review")
    private let queue = DispatchQueue(label: "linli.review-watch", qos: .utility)
    private let lock = NSLock()
    private var scheduled = false
    private var knownInvariants: Set<String> = []
    private var checks = 0
    private var counts: [ReviewKind: Int] = [:]

    public init(storage: any SyncStorage, invariants: [Invariant],
                intervalMilliseconds: Int = Limits.reviewCheckIntervalMillisecondsMin) {
        self.storage = storage
        self.invariants = invariants
        interval = .milliseconds(intervalMilliseconds)
    }

    /// A commit merged change sets: check the queue soon, once.
    public func merged() {
        let schedule = lock.withLock { () -> Bool in
            if scheduled { return false }
            scheduled = true
            return true
        }
        if schedule { queue.asyncAfter(deadline: .now() + interval) { self.check() } }
    }

    /// The open broken invariants at the last check, and how many checks ran.
    public var lastCheck: (invariants: Set<String>, counts: [ReviewKind: Int], checks: Int) {
        lock.withLock { (knownInvariants, counts, checks) }
    }

    private func check() {
        lock.withLock { scheduled = false }
        let items: [ReviewItem]
        do {
            items = try storage.reviewQueue(scopes: nil, filter: ReviewFilter(), invariants: invariants)
        } catch {
            logger.error("the review queue could not be checked", metadata: ["error": "\(error)"])
            return
        }
        var byKind: [ReviewKind: Int] = [:]
        for item in items { byKind[item.kind, default: 0] += 1 }
        for kind in ReviewKind.allCases {
            Gauge(label: "linli_review_items_open", dimensions: [("kind", kind.rawValue)]).record(byKind[kind] ?? 0)
        }
        let broken = items.filter { $0.kind == .invariant }
        let fresh = lock.withLock { () -> [ReviewItem] in
            let new = broken.filter { !knownInvariants.contains($0.id) }
            knownInvariants = Set(broken.map(\.id))
            counts = byKind
            checks += 1
            return new
        }
        for item in fresh {
            logger.notice("a merge broke an invariant; it waits in the review queue", metadata: [
                "item": "\(item.id)", "invariant": "\(item.invariant ?? "")", "grid": "\(item.grid ?? item.scope)",
                "records": "\(item.records.map { "\($0.table) \($0.row.prefix(8))" }.joined(separator: ", "))",
            ])
        }
    }
}
