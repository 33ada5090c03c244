import Foundation
import Metrics
import LinliCore
import LinliProtocol
import LinliStore

/// What the sync handlers need from storage, and nothing more.
///
/// ``ReplicaStore`` (embedded SQLite in WAL mode) implements it. Another
/// store (PostgreSQL, say) implements these six calls with the same
/// meaning and the handlers stay as they are:
///
/// - `access`: a device's current key, role and grids, or `unknown_device`
///   / `revoked`;
/// - `apply`: verify, check and merge change sets in order, committing
///   durably before returning, with one outcome per change set;
/// - `pullEntries`: the log after a position, limited to scopes, in log
///   order, without the puller's own change sets, each with its device's
///   previous change set in those scopes;
/// - `pullEntries(of:)`, `heads`, `logEnd` and `trustEntries`: one
///   device's change sets after a seq, the newest change set of each
///   device in some scopes, the log's last position, the authority's
///   change sets (PROTOCOL.md 2.6, repair);
/// - `refused` and `conflicts`: what `GET /v1/status` shows;
/// - `writeSnapshot`: a replica file of some scopes, and the position it
///   holds everything through;
/// - `reviewQueue`, `reviewItem` and `resolve`: the conflict desk's queue
///   and resolutions signed by a staff member logged in on the web page.
public protocol SyncStorage: Sendable {
    func access(_ device: DeviceID) throws -> DeviceAccess
    func apply(_ offered: [OfferedChangeSet], policy: ApplyPolicy) throws -> [ApplyOutcome]
    func pullEntries(after position: Int64, scopes: Set<Scope>?, limit: Int, excluding device: DeviceID?) throws -> [ReplicaStore.PullEntry]
    func pullEntries(of device: DeviceID, afterSeq: UInt64, scopes: Set<Scope>?, limit: Int) throws -> [ReplicaStore.PullEntry]
    func heads(scopes: Set<Scope>?, asker: DeviceID) throws -> [ReplicaStore.ScopedHead]
    func logEnd() throws -> Int64
    func trustEntries(after position: Int64, limit: Int) throws -> [ReplicaStore.PullEntry]
    func refused(by device: DeviceID) throws -> [QuarantineRecord]
    func conflicts(in scopes: Set<Scope>?) throws -> [Conflict]
    func writeSnapshot(scopes: Set<Scope>?, to path: String) throws -> Int64
    func reviewQueue(scopes: Set<Scope>?, filter: ReviewFilter, invariants: [Invariant]) throws -> [ReviewItem]
    func reviewItem(_ id: String, scopes: Set<Scope>?, invariants: [Invariant]) throws -> ReviewItem?
    func resolve(_ resolutions: [(item: ReviewItem, action: ReviewAction)], note: String, as identity: DeviceIdentity) throws -> [SignedChangeSet]
}

extension ReplicaStore: SyncStorage {
    public func refused(by device: DeviceID) throws -> [QuarantineRecord] {
        try refusals(of: device, limit: Limits.statusRefusalsMax)
    }

    public func conflicts(in scopes: Set<Scope>?) throws -> [Conflict] {
        try conflicts().filter { conflict in scopes.map { $0.contains(Scope(conflict.scope) ?? .public) } ?? true }
    }
}

/// A store whose every operation is timed and counted in `/metrics`
/// (``ServerMetrics/storeSeconds``, ``ServerMetrics/storeInFlight``,
/// ``ServerMetrics/storeFailures``), by operation.
///
/// `before`, when given, runs before each operation with its name and may
/// refuse it by throwing: a switch that takes the store out of service,
/// and how the tests make a store outage on a real store.
public final class MeasuredStorage: SyncStorage {
    public let base: any SyncStorage
    let before: (@Sendable (String) throws -> Void)?

    /// The operations' names in the series.
    static let operations = ["access", "apply", "pull", "pull_device", "heads", "log_end", "trust", "refused", "conflicts",
                             "snapshot", "review_queue", "review_item", "resolve"]

    /// The series of one operation, made once: every push and pull goes
    /// through here, and a lookup in the metrics factory per call is work
    /// on that path for nothing.
    private struct Series: Sendable {
        let seconds: Timer
        let inFlight: Meter
        let failures: Counter

        init(_ operation: String) {
            let dimensions = [("operation", operation)]
            seconds = Timer(label: ServerMetrics.storeSeconds, dimensions: dimensions)
            inFlight = Meter(label: ServerMetrics.storeInFlight, dimensions: dimensions)
            failures = Counter(label: ServerMetrics.storeFailures, dimensions: dimensions)
        }
    }

    private let series: [String: Series]

    /// Make it after `MetricsSystem.bootstrap`: its series are made here.
    public init(_ base: any SyncStorage, before: (@Sendable (String) throws -> Void)? = nil) {
        self.base = base
        self.before = before
        series = Dictionary(uniqueKeysWithValues: Self.operations.map { ($0, Series($0)) })
    }

    private func measure<T>(_ operation: String, _ body: () throws -> T) throws -> T {
        let series = series[operation] ?? Series(operation)
        series.inFlight.increment()
        let started = DispatchTime.now().uptimeNanoseconds
        defer {
            series.seconds.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
            series.inFlight.decrement()
        }
        do {
            try before?(operation)
            return try body()
        } catch {
            series.failures.increment()
            throw error
        }
    }

    public func access(_ device: DeviceID) throws -> DeviceAccess { try measure("access") { try base.access(device) } }
    public func apply(_ offered: [OfferedChangeSet], policy: ApplyPolicy) throws -> [ApplyOutcome] {
        try measure("apply") { try base.apply(offered, policy: policy) }
    }
    public func pullEntries(after position: Int64, scopes: Set<Scope>?, limit: Int, excluding device: DeviceID?) throws -> [ReplicaStore.PullEntry] {
        try measure("pull") { try base.pullEntries(after: position, scopes: scopes, limit: limit, excluding: device) }
    }
    public func pullEntries(of device: DeviceID, afterSeq: UInt64, scopes: Set<Scope>?, limit: Int) throws -> [ReplicaStore.PullEntry] {
        try measure("pull_device") { try base.pullEntries(of: device, afterSeq: afterSeq, scopes: scopes, limit: limit) }
    }
    public func heads(scopes: Set<Scope>?, asker: DeviceID) throws -> [ReplicaStore.ScopedHead] {
        try measure("heads") { try base.heads(scopes: scopes, asker: asker) }
    }
    public func logEnd() throws -> Int64 { try measure("log_end") { try base.logEnd() } }
    public func trustEntries(after position: Int64, limit: Int) throws -> [ReplicaStore.PullEntry] {
        try measure("trust") { try base.trustEntries(after: position, limit: limit) }
    }
    public func refused(by device: DeviceID) throws -> [QuarantineRecord] { try measure("refused") { try base.refused(by: device) } }
    public func conflicts(in scopes: Set<Scope>?) throws -> [Conflict] { try measure("conflicts") { try base.conflicts(in: scopes) } }
    public func writeSnapshot(scopes: Set<Scope>?, to path: String) throws -> Int64 {
        try measure("snapshot") { try base.writeSnapshot(scopes: scopes, to: path) }
    }
    public func reviewQueue(scopes: Set<Scope>?, filter: ReviewFilter, invariants: [Invariant]) throws -> [ReviewItem] {
        try measure("review_queue") { try base.reviewQueue(scopes: scopes, filter: filter, invariants: invariants) }
    }
    public func reviewItem(_ id: String, scopes: Set<Scope>?, invariants: [Invariant]) throws -> ReviewItem? {
        try measure("review_item") { try base.reviewItem(id, scopes: scopes, invariants: invariants) }
    }
    public func resolve(_ resolutions: [(item: ReviewItem, action: ReviewAction)], note: String, as identity: DeviceIdentity) throws -> [SignedChangeSet] {
        try measure("resolve") { try base.resolve(resolutions, note: note, as: identity) }
    }
}
