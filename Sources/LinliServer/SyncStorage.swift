import Foundation
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
