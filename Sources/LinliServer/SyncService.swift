import Dispatch
import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import Metrics
import SwiftProtobuf

/// The sync protocol without HTTP: authenticate a request, push, pull,
/// status and snapshots. The HTTP layer (``SyncServer``) only moves bytes
/// in and out; storage is reached only through ``SyncStorage``.
public final class SyncService: Sendable {
    public let storage: any SyncStorage
    let verifier = RequestVerifier()
    let clock: @Sendable () -> UInt64
    let committer: GroupCommitter
    let snapshots: SnapshotCache
    /// The rules across records the review queue checks.
    public let invariants: [Invariant]
    /// Checks the review queue after merges and logs broken invariants.
    public let reviewWatch: ReviewWatch

    /// `identity` signs bootstrap snapshots (nil: the server offers none);
    /// `snapshotFolder` is where it keeps them.
    public init(storage: any SyncStorage, identity: ServerIdentity? = nil, snapshotFolder: String? = nil,
                invariants: [Invariant] = Invariant.community,
                clock: @escaping @Sendable () -> UInt64 = ReplicaStore.systemClock) {
        self.storage = storage
        self.invariants = invariants
        self.clock = clock
        let watch = ReviewWatch(storage: storage, invariants: invariants)
        reviewWatch = watch
        committer = GroupCommitter(storage: storage, merged: { watch.merged() })
        snapshots = SnapshotCache(storage: storage, identity: identity,
                                  folder: snapshotFolder ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("linli-snapshots-\(UUID().uuidString)"),
                                  clock: clock)
    }

    /// Checks a request's signature headers (PROTOCOL.md 1.3) and returns
    /// what the device may do.
    public func authenticate(method: String, path: String, body: Data, header: (String) -> String?) throws -> DeviceAccess {
        let signature = try RequestSignature(header: header)
        var access: DeviceAccess?
        try verifier.verify(signature, method: method, path: path, body: body, now: clock()) { device throws(LinliError) -> PublicKey in
            do {
                let found = try storage.access(device)
                access = found
                return found.key
            } catch let error as LinliError {
                throw error
            } catch {
                throw LinliError(.storage, "\(error)")
            }
        }
        return access!
    }

    /// Takes a device's own change sets. Each is verified, checked and
    /// committed durably (in a group commit with concurrent pushes) before
    /// the answer says `accepted`; refused ones are kept with the reason.
    public func push(_ body: Data, from access: DeviceAccess) async throws -> Data {
        let request: Linli_V1_PushRequest
        do { request = try Linli_V1_PushRequest(serializedBytes: body) } catch {
            throw LinliError(.malformed, "the push body is not a PushRequest: \(error)")
        }
        guard request.changeSets.count <= Limits.pushChangeSetsMax else {
            throw LinliError(.overLimit, "the push holds \(request.changeSets.count) change sets; pushChangeSetsMax is \(Limits.pushChangeSetsMax)",
                             hint: "push in several requests")
        }
        // A device pushes only its own change sets. Each envelope is decoded
        // once: here, to read its header, and the store takes it as it is.
        var results = [Linli_V1_PushResult?](repeating: nil, count: request.changeSets.count)
        var own: [(Int, OfferedChangeSet)] = []
        for (index, envelope) in request.changeSets.enumerated() {
            let offered = OfferedChangeSet(decoding: envelope)
            if let signed = offered.signed, signed.header.device != access.device {
                var result = Linli_V1_PushResult()
                result.hash = signed.hash
                result.seq = signed.header.seq
                result.status = "refused"
                result.code = LinliError.Code.notPermitted.rawValue
                result.message = "a device pushes only its own change sets; this one is device \(signed.header.device.hex)'s"
                results[index] = result
            } else {
                own.append((index, offered))
            }
        }
        let outcomes = try await committer.commit(own.map(\.1))
        Counter(label: "linli_pushes_total").increment()
        Counter(label: "linli_pushed_change_sets_total").increment(by: own.count)
        for ((index, _), outcome) in zip(own, outcomes) {
            var result = Linli_V1_PushResult()
            result.hash = outcome.hash
            result.seq = outcome.seq ?? 0
            switch outcome.status {
            case .applied: result.status = "accepted"
            case .duplicate: result.status = "duplicate"
            case .held: result.status = "held"
            case .refused(let error):
                result.status = "refused"
                result.code = error.code.rawValue
                result.message = error.message
                Counter(label: "linli_refusals_total", dimensions: [("reason", error.code.rawValue)]).increment()
            }
            results[index] = result
        }
        var response = Linli_V1_PushResponse()
        response.results = results.compactMap { $0 }
        return try response.serializedBytes()
    }

    /// Change sets in the device's scopes after `after`, one bounded page.
    public func pull(after: Int64, limit: Int, for access: DeviceAccess) throws -> Data {
        let limit = max(1, min(limit, Limits.pullChangeSetsMax))
        let found = try storage.pullEntries(after: after, scopes: access.readableScopes, limit: limit, excluding: access.device)
        var response = Linli_V1_PullResponse()
        var bytes = 0
        var cursor = after
        for entry in found {
            if bytes + entry.envelope.count > Limits.pullPageBytesMax, !response.changeSets.isEmpty { break }
            var pulled = Linli_V1_PulledChangeSet()
            pulled.position = UInt64(entry.position)
            pulled.envelope = entry.envelope
            pulled.scopedPredecessor = entry.scopedPredecessor
            response.changeSets.append(pulled)
            bytes += entry.envelope.count
            cursor = entry.position
        }
        response.cursor = UInt64(cursor)
        response.more = response.changeSets.count < found.count || found.count == limit
        Counter(label: "linli_pulls_total").increment()
        Counter(label: "linli_pulled_change_sets_total").increment(by: response.changeSets.count)
        return try response.serializedBytes()
    }

    /// A signed bootstrap snapshot of the device's scopes.
    func snapshot(for access: DeviceAccess) throws -> Snapshot {
        let snapshot = try snapshots.snapshot(for: access.readableScopes)
        Counter(label: "linli_snapshots_served_total").increment()
        return snapshot
    }
}

/// Runs blocking store work off the cooperative thread pool.
func offload<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global(qos: .userInitiated).async {
            continuation.resume(with: Result { try work() })
        }
    }
}

extension SyncService {
    /// What a device asks after a sync: which of its change sets the server
    /// refused and why, and which fields in its scopes are in conflict.
    /// JSON, so a person can read it too.
    public func status(for access: DeviceAccess) throws -> Data {
        let refused = try storage.refused(by: access.device).map { record -> [String: Any] in
            ["seq": record.seq ?? 0, "hash": Hex.encode(record.hash), "code": record.code.rawValue, "message": record.message,
             "received_at": Int64(record.receivedAt.timeIntervalSince1970 * 1000)]
        }
        let conflicts = try storage.conflicts(in: access.readableScopes).map { conflict -> [String: Any] in
            ["table": conflict.table, "row": conflict.row.hex, "field": conflict.field, "scope": conflict.scope, "kind": conflict.kind.rawValue,
             "values": conflict.values.map { value -> [String: Any] in
                 ["value": value.value.description, "device": value.dot.device.hex, "seq": value.dot.seq, "user": value.user,
                  "hlc": value.hlc.rawValue, "shown": value.shown]
             }]
        }
        return try JSONSerialization.data(withJSONObject: ["device": access.device.hex, "refused": refused, "conflicts": conflicts],
                                          options: [.sortedKeys])
    }
}
