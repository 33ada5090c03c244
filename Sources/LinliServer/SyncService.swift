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
    /// The server's own key, certified with the role `server`: it signs
    /// every answer (PROTOCOL.md 1.4) and the bootstrap snapshots.
    public let identity: ServerIdentity
    let verifier = RequestVerifier()
    let clock: @Sendable () -> UInt64
    let committer: GroupCommitter
    let snapshots: SnapshotCache
    /// The rules across records the review queue checks.
    public let invariants: [Invariant]
    /// Checks the review queue after merges and logs broken invariants.
    public let reviewWatch: ReviewWatch

    /// `identity` signs answers and bootstrap snapshots; `snapshotFolder`
    /// is where it keeps the snapshots.
    public init(storage: any SyncStorage, identity: ServerIdentity, snapshotFolder: String? = nil,
                invariants: [Invariant] = Invariant.community,
                clock: @escaping @Sendable () -> UInt64 = ReplicaStore.systemClock) {
        self.storage = storage
        self.identity = identity
        self.invariants = invariants
        self.clock = clock
        let watch = ReviewWatch(storage: storage, invariants: invariants)
        reviewWatch = watch
        committer = GroupCommitter(storage: storage, merged: { watch.merged() })
        snapshots = SnapshotCache(storage: storage, identity: identity,
                                  folder: snapshotFolder ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("linli-snapshots-\(UUID().uuidString)"),
                                  clock: clock)
    }

    /// Judges a request before its body is read (a push may announce up to
    /// requestBodyBytesMax): signature headers that parse, a time in the
    /// window, a device with a key that the request names, and an
    /// announced length within the limit. Anyone can send headers; only a
    /// request that passes this makes the server read a body.
    public func precheck(header: (String) -> String?, contentLength: Int?) throws {
        if let contentLength, contentLength > Limits.requestBodyBytesMax {
            throw LinliError(.overLimit, "the request announces \(contentLength) bytes; requestBodyBytesMax is \(Limits.requestBodyBytesMax)",
                             hint: "send fewer change sets per push")
        }
        let signature = try RequestSignature(header: header)
        try verifier.precheck(signature, now: clock()) { device throws(LinliError) -> PublicKey in try deviceAccess(device).key }
    }

    /// What the store says `device` may do, its errors typed.
    private func deviceAccess(_ device: DeviceID) throws(LinliError) -> DeviceAccess {
        do { return try storage.access(device) } catch let error as LinliError { throw error } catch {
            throw LinliError(.storage, "\(error)")
        }
    }

    /// Checks a request's signature headers (PROTOCOL.md 1.3) and returns
    /// what the device may do.
    public func authenticate(method: String, path: String, body: Data, header: (String) -> String?) throws -> DeviceAccess {
        let signature = try RequestSignature(header: header)
        var access: DeviceAccess?
        try verifier.verify(signature, method: method, path: path, body: body, now: clock()) { device throws(LinliError) -> PublicKey in
            let found = try deviceAccess(device)
            access = found
            return found.key
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
            let offered = OfferedChangeSet(decoding: envelope, sender: access.device)
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

    /// Signs an answer to `request` (PROTOCOL.md 1.4).
    public func signAnswer(status: Int, request: AnswerSignature.Request, body: Data) -> AnswerSignature {
        AnswerSignature.sign(status: status, request: request, body: body, server: identity.device, key: identity.key)
    }

    /// Change sets in the device's scopes after `after`, one bounded page.
    public func pull(after: Int64, limit: Int, for access: DeviceAccess) throws -> Data {
        try pull(PullQuery(after: after, limit: limit), for: access)
    }

    /// One bounded page: after a log position, or (for repair) one
    /// device's change sets after a seq, in the device's scopes.
    public func pull(_ query: PullQuery, for access: DeviceAccess) throws -> Data {
        let limit = query.limit
        let found: [ReplicaStore.PullEntry]
        if let device = query.device {
            found = try storage.pullEntries(of: device, afterSeq: query.afterSeq, scopes: access.readableScopes, limit: limit)
        } else {
            found = try storage.pullEntries(after: query.after, scopes: access.readableScopes, limit: limit, excluding: access.device)
        }
        var response = Linli_V1_PullResponse()
        var bytes = 0
        var cursor = query.after
        for entry in found {
            if bytes + entry.envelope.count > Limits.pullPageBytesMax, !response.changeSets.isEmpty { break }
            var pulled = Linli_V1_PulledChangeSet()
            pulled.position = UInt64(entry.position)
            pulled.envelope = entry.envelope
            pulled.scopedPredecessor = entry.scopedPredecessor
            response.changeSets.append(pulled)
            bytes += entry.envelope.count
            if query.device == nil { cursor = entry.position }
        }
        response.cursor = UInt64(cursor)
        response.more = response.changeSets.count < found.count || found.count == limit
        Counter(label: "linli_pulls_total").increment()
        Counter(label: "linli_pulled_change_sets_total").increment(by: response.changeSets.count)
        return try response.serializedBytes()
    }

    /// The newest change set of every device the asker may see, its own
    /// included, and the end of the log (PROTOCOL.md 2.6).
    public func heads(for access: DeviceAccess) throws -> Data {
        var response = Linli_V1_HeadsResponse()
        let heads = try storage.heads(scopes: access.readableScopes, asker: access.device)
        response.heads = heads.sorted { $0.device.data.lexicographicallyPrecedes($1.device.data) }.map { head in
            var entry = Linli_V1_Head()
            entry.device = head.device.data
            entry.seq = head.seq
            entry.hash = head.hash
            return entry
        }
        response.logEnd = UInt64(max(0, try storage.logEnd()))
        response.takenAtMs = clock()
        Counter(label: "linli_heads_total").increment()
        return try response.serializedBytes()
    }

    /// Every trust record: the authority's change sets, which verify
    /// against the trust root alone. A device that does not yet know the
    /// server's key learns it from them.
    public func trust(_ query: PullQuery = PullQuery()) throws -> Data {
        var response = Linli_V1_PullResponse()
        let found = try storage.trustEntries(after: query.after, limit: query.limit)
        response.changeSets = found.map { entry in
            var pulled = Linli_V1_PulledChangeSet()
            pulled.position = UInt64(entry.position)
            pulled.envelope = entry.envelope
            return pulled
        }
        response.cursor = UInt64(found.last?.position ?? query.after)
        response.more = found.count == query.limit
        return try response.serializedBytes()
    }

    /// A signed bootstrap snapshot of the device's scopes.
    func snapshot(for access: DeviceAccess) throws -> Snapshot {
        let snapshot = try snapshots.snapshot(for: access.readableScopes)
        Counter(label: "linli_snapshots_served_total").increment()
        return snapshot
    }
}

/// One answer of the sync protocol, before HTTP: status, content type,
/// the answer signature's headers, and the body (uncompressed).
public struct ServiceAnswer: Sendable {
    public var status: Int
    public var contentType: String
    public var headers: [(String, String)]
    public var body: Data
    /// The refusal or failure, for the server's log (a failure's detail is
    /// logged, never sent).
    public var refusal: LinliError?
    public var failure: String?
}

extension SyncService {
    /// The methods and paths ``handle(method:target:header:body:refusedEarly:)`` answers.
    public static let routes: [(String, String)] = [
        ("POST", "/v1/push"), ("GET", "/v1/pull"), ("GET", "/v1/heads"), ("GET", "/v1/trust"), ("GET", "/v1/status"),
        ("GET", "/v1/desk/queue"), ("GET", "/v1/desk/item/:id"),
    ]

    /// Answers one request of the sync protocol: authenticates it, runs
    /// it, and signs the answer, an error too, bound to the request
    /// (PROTOCOL.md 1.4). A request whose signature headers cannot even be
    /// read gets an unsigned error: there is no nonce to bind it to. The
    /// HTTP layer only moves the bytes; a simulation calls this directly.
    /// `target` is the request target (path and query); `refusedEarly` an
    /// error met before (a body too large, cut off).
    public func handle(method: String, target: String, header: (String) -> String?, body: Data,
                       refusedEarly: LinliError? = nil) async -> ServiceAnswer {
        let signature = try? RequestSignature(header: header)
        var status = 200
        var bytes: Data
        var contentType = "application/json"
        var refusal: LinliError?
        var failure: String?
        do {
            if let refusedEarly { throw refusedEarly }
            let access = try authenticate(method: method, path: target, body: body, header: header)
            (bytes, contentType) = try await route(method: method, target: target, body: body, access: access)
        } catch let error as LinliError {
            refusal = error
            (status, bytes) = Self.errorAnswer(error)
        } catch {
            failure = String(reflecting: error)
            (status, bytes) = Self.errorAnswer(LinliError(.storage, "the server failed to carry out the request", hint: "nothing is lost; try again later"))
        }
        var headers: [(String, String)] = []
        if let signature {
            let bound = AnswerSignature.Request(method: method, path: target, body: body, signature: signature)
            headers = signAnswer(status: status, request: bound, body: bytes).headers
        }
        // A store that failed or a database that is down: the device waits
        // this long and tries again (PROTOCOL.md 3).
        if status == 503 { headers.append(("Retry-After", String(Limits.retryAfterSeconds))) }
        return ServiceAnswer(status: status, contentType: contentType, headers: headers, body: bytes, refusal: refusal, failure: failure)
    }

    func route(method: String, target: String, body: Data, access: DeviceAccess) async throws -> (Data, String) {
        let (path, parameters) = Self.split(target)
        switch (method, path) {
        case ("POST", "/v1/push"):
            return (try await push(body, from: access), "application/x-protobuf")
        case ("GET", "/v1/pull"):
            let query = try PullQuery(parameters)
            return (try await offload { try self.pull(query, for: access) }, "application/x-protobuf")
        case ("GET", "/v1/heads"):
            return (try await offload { try self.heads(for: access) }, "application/x-protobuf")
        case ("GET", "/v1/trust"):
            let query = try PullQuery(parameters)
            return (try await offload { try self.trust(query) }, "application/x-protobuf")
        case ("GET", "/v1/status"):
            return (try await offload { try self.status(for: access) }, "application/json")
        case ("GET", "/v1/desk/queue"):
            var query: [String: String] = [:]
            for (key, value) in parameters { query[key] = value }
            let filter = try ReviewFilter(query: query)
            return (try await offload { try self.deskQueue(filter: filter, for: access) }, "application/json")
        case ("GET", _) where path.hasPrefix("/v1/desk/item/"):
            let id = String(path.dropFirst("/v1/desk/item/".count))
            return (try await offload { try self.deskItem(id, for: access) }, "application/json")
        default:
            throw LinliError(.notFound, "no such request: \(method) \(path.prefix(100))")
        }
    }

    /// The path and the decoded query parameters of a request target.
    static func split(_ target: String) -> (String, [(String, String)]) {
        guard let question = target.firstIndex(of: "?") else { return (target, []) }
        let path = String(target[..<question])
        let query = target[target.index(after: question)...]
        let pairs = query.split(separator: "&").map { pair -> (String, String) in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0]).removingPercentEncoding ?? String(parts[0])
            let value = parts.count > 1 ? (String(parts[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(parts[1])) : ""
            return (name, value)
        }
        return (path, pairs)
    }

    /// The status and JSON body of a `LinliError` (PROTOCOL.md 3).
    public static func errorAnswer(_ error: LinliError) -> (Int, Data) {
        let status = switch error.code {
        case .badRequestSignature, .staleRequest, .replayedRequest, .unknownDevice: 401
        case .revoked, .notPermitted, .outOfScope: 403
        case .overLimit: 413
        case .storage, .unavailable: 503
        case .notFound: 404
        case .conflict: 409
        default: 400
        }
        var object: [String: String] = ["code": error.code.rawValue, "message": error.message]
        if let hint = error.hint { object["hint"] = hint }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return (status, data)
    }
}

/// The parameters of `GET /v1/pull` (PROTOCOL.md 2.2), checked: `after`
/// (default 0) a log position; `limit` (default and at most
/// ``Limits/pullChangeSetsMax``) at least 1; or, for repair, `device` (32
/// hex digits) with `after_seq` (default 0). Other parameters are ignored.
public struct PullQuery: Sendable, Equatable {
    public var after: Int64 = 0
    public var limit: Int = Limits.pullChangeSetsMax
    public var device: DeviceID?
    public var afterSeq: UInt64 = 0

    public init(after: Int64 = 0, limit: Int = Limits.pullChangeSetsMax, device: DeviceID? = nil, afterSeq: UInt64 = 0) {
        self.after = after
        self.limit = max(1, min(limit, Limits.pullChangeSetsMax))
        self.device = device
        self.afterSeq = afterSeq
    }

    public init(_ parameters: [(String, String)]) throws(LinliError) {
        for (name, value) in parameters {
            switch name {
            case "after":
                guard let after = Int64(value), after >= 0 else {
                    throw LinliError(.invalidInput, "after must be a log position: a whole number from 0 to \(Int64.max), not \(value.prefix(40))")
                }
                self.after = after
            case "limit":
                guard let limit = Int(value), limit >= 1 else {
                    throw LinliError(.invalidInput, "limit must be a whole number of change sets, at least 1, not \(value.prefix(40))",
                                     hint: "leave it out for the most a page holds (\(Limits.pullChangeSetsMax))")
                }
                self.limit = min(limit, Limits.pullChangeSetsMax)
            case "device":
                guard value.utf8.count == 32, let device = DeviceID(hex: value), device.hex == value else {
                    throw LinliError(.invalidInput, "device must be a device id: 32 lowercase hex digits")
                }
                self.device = device
            case "after_seq":
                guard let seq = UInt64(value), seq <= Limits.sequenceNumberMax else {
                    throw LinliError(.invalidInput, "after_seq must be a sequence number from 0 to \(Limits.sequenceNumberMax)")
                }
                afterSeq = seq
            default: continue
            }
        }
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

/// Runs `work` as ``offload(_:)`` does, but answers nil when it has not
/// finished within `seconds`: the work goes on, and its result is dropped.
func offload<T: Sendable>(seconds: Int, _ work: @escaping @Sendable () throws -> T) async -> Result<T, any Error>? {
    await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, any Error>?, Never>) in
        let once = ResumeOnce(continuation)
        DispatchQueue.global(qos: .userInitiated).async { once.resume(Result { try work() }) }
        DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(seconds)) { once.resume(nil) }
    }
}

/// A continuation that the first of several callers resumes.
private final class ResumeOnce<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<T, Never>?

    init(_ continuation: CheckedContinuation<T, Never>) { self.continuation = continuation }

    func resume(_ value: T) {
        let waiting = lock.withLock { () -> CheckedContinuation<T, Never>? in
            defer { continuation = nil }
            return continuation
        }
        waiting?.resume(returning: value)
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
