import AsyncHTTPClient
import Dispatch
import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import NIOCore
import NIOHTTP1
import NIOHTTPCompression
import NIOSSL
import SwiftProtobuf
import Synchronization

/// What one sync did.
public struct SyncReport: Sendable, Equatable {
    public var pushed = 0
    public var accepted = 0
    public var refused: [String] = []
    public var pulled = 0
    public var cursor: Int64 = 0
    /// Requests that failed and were tried again.
    public var retries = 0
    /// Whether the replica was first made from the server's snapshot.
    public var bootstrapped = false
    /// Change sets fetched or sent again because the heads comparison
    /// showed a difference (PROTOCOL.md 2.6).
    public var repaired = 0
    /// The comparison with the server's heads at the end of the sync.
    public var step: SyncStep?
    /// Where the time went, in milliseconds: `push` (the pushes, waiting
    /// for the server included), `pull` (waiting for and reading pull
    /// answers) and `apply` (verifying and merging pulled pages here).
    public var milliseconds: [String: Double] = [:]
}

func elapsedMilliseconds(since start: UInt64) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
}

/// Where a sync is, told to the caller after each request (a progress bar,
/// a kiosk's log).
public struct SyncProgress: Sendable, Equatable {
    public enum Phase: String, Sendable { case push, pull, snapshot, retry }
    public var phase: Phase
    /// Change sets pushed so far (push), pulled so far (pull), bytes
    /// downloaded (snapshot), or the attempt number (retry).
    public var done: Int
    /// The server's log position the replica has reached.
    public var cursor: Int64
    public var message: String
    /// For a retry: the attempts allowed in all, and the seconds until the
    /// next one (the person is told when it comes, not only that it will).
    public var attempts: Int?
    public var nextTrySeconds: Double?

    public init(phase: Phase, done: Int, cursor: Int64, message: String, attempts: Int? = nil, nextTrySeconds: Double? = nil) {
        self.phase = phase
        self.done = done
        self.cursor = cursor
        self.message = message
        self.attempts = attempts
        self.nextTrySeconds = nextTrySeconds
    }
}

/// How a client reaches the server.
public struct ServerConnection: Sendable {
    public var url: URL
    /// A PEM file of the certificate authority that signs the server's TLS
    /// certificate (a district's own CA, or the self-signed certificate of
    /// a test). When set, only it is trusted; when nil, the system's roots.
    public var certificateAuthorityFile: String?
    /// Seconds to wait for a connection and for each read.
    public var connectTimeoutSeconds: Int64 = 10
    public var readTimeoutSeconds: Int64 = 60

    public init(url: URL, certificateAuthorityFile: String? = nil) {
        self.url = url
        self.certificateAuthorityFile = certificateAuthorityFile
    }
}

/// Syncs a local replica with a Linli server: pushes the device's own
/// change sets the server has not acknowledged, then pulls pages after the
/// stored cursor until none are left. Each pulled page is stored with its
/// cursor in one transaction, so a sync cut off anywhere resumes where it
/// stopped. Failed requests are retried with exponential backoff and full
/// jitter.
///
/// HTTP is AsyncHTTPClient, not Foundation's URLSession: on Linux,
/// URLSession cannot be told to trust a district's own certificate
/// authority (it takes the system store only), and AsyncHTTPClient gives
/// streamed downloads (snapshots go to disk, not memory), gzip with a size
/// limit, and connection reuse across the requests of one sync.
public final class SyncClient: Sendable {
    public let store: ReplicaStore
    public let identity: DeviceIdentity
    public let connection: ServerConnection
    public var server: URL { connection.url }
    let attemptsMax: Int
    let clock: @Sendable () -> UInt64
    /// Set: every exchange goes through it instead of HTTP (a simulation).
    let transport: (any SyncTransport)?
    /// Waits between attempts (nanoseconds); a simulation waits not at all.
    let pause: @Sendable (UInt64) async throws -> Void
    /// The keys requests may be signed with: the device's key first, then
    /// its earlier ones. The server authenticates a request with the key it
    /// holds as the device's current one; right after a key rotation, until
    /// the server has the change set that carries it, that is the previous
    /// key (an authority's rotation travels in a change set signed by the
    /// old key). A request refused `bad_request_signature` is signed again
    /// with the next key.
    let requestKeys: [SigningKey]
    private let requestKeyIndex = Mutex<Int>(0)

    /// `previousKeys`: the device's earlier keys, newest first, for the
    /// requests of a sync that follows a key rotation.
    public init(store: ReplicaStore, identity: DeviceIdentity, connection: ServerConnection, attemptsMax: Int = 5,
                clock: @escaping @Sendable () -> UInt64 = ReplicaStore.systemClock, previousKeys: [SigningKey] = []) {
        self.store = store
        self.identity = identity
        self.connection = connection
        self.attemptsMax = attemptsMax
        self.clock = clock
        transport = nil
        pause = { try await Task.sleep(nanoseconds: $0) }
        requestKeys = [identity.key] + previousKeys.filter { $0.publicKey != identity.key.publicKey }
    }

    /// A client whose exchanges go through `transport`, pausing with
    /// `pause` between attempts.
    public init(store: ReplicaStore, identity: DeviceIdentity, transport: any SyncTransport, name: URL, attemptsMax: Int = 5,
                clock: @escaping @Sendable () -> UInt64, pause: @escaping @Sendable (UInt64) async throws -> Void) {
        self.store = store
        self.identity = identity
        connection = ServerConnection(url: name)
        self.attemptsMax = attemptsMax
        self.clock = clock
        self.transport = transport
        self.pause = pause
        requestKeys = [identity.key]
    }

    /// Runs `body` with this client's transport: the given one, or HTTP
    /// for the connection, shut down after.
    func withTransport<T: Sendable>(_ body: (any SyncTransport) async throws -> T) async throws -> T {
        if let transport { return try await body(transport) }
        return try await Self.withHTTP(connection) { http in try await body(HTTPTransport(http: http, connection: connection)) }
    }

    public convenience init(store: ReplicaStore, identity: DeviceIdentity, server: URL, attemptsMax: Int = 5,
                            clock: @escaping @Sendable () -> UInt64 = ReplicaStore.systemClock) {
        self.init(store: store, identity: identity, connection: ServerConnection(url: server), attemptsMax: attemptsMax, clock: clock)
    }

    /// The name of this server's cursor and acknowledgements in the replica.
    public var cursorName: String { Self.cursorName(connection.url) }
    public static func cursorName(_ server: URL) -> String { "server:" + server.absoluteString }

    /// Push, then pull.
    @discardableResult
    public func sync(progress: @Sendable (SyncProgress) -> Void = { _ in }) async throws -> SyncReport {
        try await withTransport { http in
            var report = SyncReport()
            let started = DispatchTime.now().uptimeNanoseconds
            // A replica that knows no server's key yet (a new device whose
            // bundle predates the server's certificate) learns the trust
            // records first, so its first push's answer can be verified.
            if try !store.knowsAServerKey() { try await learnTrust(http, &report, progress) }
            try await push(http, &report, progress)
            report.milliseconds["push"] = elapsedMilliseconds(since: started)
            try await pull(http, &report, progress)
            let comparing = DispatchTime.now().uptimeNanoseconds
            try await compareHeads(http, &report, progress)
            report.milliseconds["heads"] = elapsedMilliseconds(since: comparing)
            return report
        }
    }

    func push(_ http: any SyncTransport, _ report: inout SyncReport, _ progress: @Sendable (SyncProgress) -> Void) async throws {
        while true {
            let outbox = try store.outbox(device: identity.device, peer: cursorName, limit: Limits.pushChangeSetsMax)
            if outbox.isEmpty { return }
            var request = Linli_V1_PushRequest()
            request.changeSets = outbox.map(\.envelope)
            let answer = try await send(http, "POST", "/v1/push", body: try request.serializedBytes(), report: &report, progress)
            let answered = try ServerAnswer.push(answer.body, sent: outbox)
            report.pushed += outbox.count
            let acknowledged = try record(answered.through, accepted: answered.accepted, refused: answered.refused, &report)
            progress(SyncProgress(phase: .push, done: report.pushed, cursor: report.cursor, message: "pushed \(report.pushed)"))
            guard acknowledged > 0 else { return }
            try store.acknowledge(device: identity.device, through: acknowledged, peer: cursorName)
            if acknowledged < outbox.last!.header.seq { return }
        }
    }

    /// Records the outcome of the acknowledgement rule (PROTOCOL.md 2.1,
    /// ``ServerAnswer/acknowledgement(of:by:)``): a refusal is recorded
    /// with its reason; returns the seq the device's acknowledgement moves
    /// to (0: none). The rest stays in the outbox and is sent again.
    func record(_ through: UInt64, accepted: Int, refused: [Linli_V1_PushResult], _ report: inout SyncReport) throws -> UInt64 {
        for result in refused {
            // Kept by the server with the reason; `status()` shows it.
            report.refused.append("\(result.seq): \(result.code): \(result.message)")
            try store.recordRefusal(peer: cursorName, seq: result.seq, code: result.code, message: result.message)
        }
        report.accepted += accepted
        return through
    }

    /// The acknowledgement rule alone, without the replica
    /// (``ServerAnswer/acknowledgement(of:by:)``).
    public static func acknowledgement(of sent: [SignedChangeSet], by results: [Linli_V1_PushResult])
        -> (through: UInt64, accepted: Int, refused: [Linli_V1_PushResult]) {
        ServerAnswer.acknowledgement(of: sent, by: results)
    }

    func pull(_ http: any SyncTransport, _ report: inout SyncReport, _ progress: @Sendable (SyncProgress) -> Void) async throws {
        var cursor = try store.cursor(cursorName)
        while true {
            let asked = DispatchTime.now().uptimeNanoseconds
            let answer = try await send(http, "GET", "/v1/pull?after=\(cursor)&limit=\(Limits.pullChangeSetsMax)", body: Data(), report: &report, progress)
            report.milliseconds["pull", default: 0] += elapsedMilliseconds(since: asked)
            let applying = DispatchTime.now().uptimeNanoseconds
            defer { report.milliseconds["apply", default: 0] += elapsedMilliseconds(since: applying) }
            let (page, positions, next) = try ServerAnswer.pull(answer.body, after: cursor)
            var stored = next
            if !page.changeSets.isEmpty || next != cursor {
                let offered = page.changeSets.map {
                    OfferedChangeSet(envelope: $0.envelope, scopedPredecessor: $0.hasScopedPredecessor ? $0.scopedPredecessor : nil)
                }
                stored = try store.applyPulledPage(offered, positions: positions, cursor: SyncCursor(name: cursorName, position: next)).cursor.position
            }
            report.pulled += page.changeSets.count
            cursor = stored
            report.cursor = cursor
            progress(SyncProgress(phase: .pull, done: report.pulled, cursor: cursor, message: "pulled \(report.pulled)"))
            if stored < next {
                // A signed page held a change set that does not verify: the
                // server holds it damaged. The cursor stays before it.
                throw LinliError(.damagedFile, "the server sent a damaged change set at log position \(stored + 1); it is kept here, and nothing after it is skipped",
                                 hint: "nothing is lost; ask the administrator to run linli-admin audit on the server's store")
            }
            if !page.more { return }
        }
    }

    /// The server's view of this device: its refused change sets (with
    /// reasons) and the conflicts in its scopes, as the server's JSON.
    public func status() async throws -> [String: Any] {
        let data = try await withTransport { http in
            var report = SyncReport()
            return try await send(http, "GET", "/v1/status", body: Data(), report: &report, { _ in }).body
        }
        return (try JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    // MARK: Bootstrap

    /// Bootstraps a new device from the server's signed snapshot of its
    /// scopes: downloads it (streamed to disk), verifies it
    /// (``ReplicaStore/adoptSnapshot(file:manifest:signature:authority:schema:at:cursorName:)``),
    /// makes it the replica at `path`, and returns the replica. Pull from
    /// there with a ``SyncClient`` on it.
    public static func bootstrap(
        connection: ServerConnection, identity: DeviceIdentity, authority: PublicKey, schema: Schema, at path: String,
        clock: @escaping @Sendable () -> UInt64 = ReplicaStore.systemClock,
        progress: @Sendable (SyncProgress) -> Void = { _ in }
    ) async throws -> ReplicaStore {
        let download = path + ".snapshot-download"
        defer { try? FileManager.default.removeItem(atPath: download) }
        let (manifest, signature) = try await withHTTP(connection) { http in
            try await downloadSnapshot(http, connection: connection, identity: identity, clock: clock, to: download, progress: progress)
        }
        return try ReplicaStore.adoptSnapshot(file: download, manifest: manifest, signature: signature, authority: authority, schema: schema,
                                              at: path, cursorName: cursorName(connection.url))
    }

    private static func downloadSnapshot(
        _ http: HTTPClient, connection: ServerConnection, identity: DeviceIdentity, clock: @Sendable () -> UInt64, to file: String,
        progress: @Sendable (SyncProgress) -> Void
    ) async throws -> (Data, Data) {
        let path = "/v1/snapshot"
        let response: HTTPClientResponse
        do {
            response = try await http.execute(signedRequest(connection, identity: identity, clock: clock, "GET", path, body: Data()),
                                              timeout: .seconds(connection.readTimeoutSeconds))
        } catch {
            throw unreachable(connection, error)
        }
        guard response.status == .ok else {
            throw try await failure(response)
        }
        guard let manifest = response.headers.first(name: SnapshotWire.manifestHeader).flatMap({ Data(base64Encoded: $0) }),
              let signature = response.headers.first(name: SnapshotWire.signatureHeader).flatMap({ Data(base64Encoded: $0) }) else {
            throw LinliError(.malformed, "the snapshot came without its signed manifest")
        }
        FileManager.default.createFile(atPath: file, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: file) else { throw LinliError(.storage, "cannot write the snapshot to \(file)") }
        defer { try? handle.close() }
        var received: Int64 = 0
        var reported: Int64 = 0
        do {
            for try await chunk in response.body {
                received += Int64(chunk.readableBytes)
                guard received <= Limits.snapshotBytesMax else {
                    throw LinliError(.overLimit, "the snapshot is larger than snapshotBytesMax (\(Limits.snapshotBytesMax) bytes)", hint: "replay from zero")
                }
                try handle.write(contentsOf: Data(chunk.readableBytesView))
                if received - reported >= 1 << 20 {
                    reported = received
                    progress(SyncProgress(phase: .snapshot, done: Int(received), cursor: 0, message: "snapshot \(received >> 20) MiB"))
                }
            }
        } catch let error as LinliError {
            throw error
        } catch {
            throw unreachable(connection, error)
        }
        try handle.synchronize()
        return (manifest, signature)
    }

    // MARK: HTTP

    /// Runs `body` with an HTTP client for `connection`, shut down after.
    static func withHTTP<T: Sendable>(_ connection: ServerConnection, _ body: (HTTPClient) async throws -> T) async throws -> T {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let file = connection.certificateAuthorityFile {
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(file))
            } catch {
                throw LinliError(.invalidInput, "cannot read the certificate authority file \(file): \(error)",
                                 hint: "give the PEM file of the authority that signs the server's certificate")
            }
        }
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: tls,
            timeout: .init(connect: .seconds(connection.connectTimeoutSeconds), read: .seconds(connection.readTimeoutSeconds)),
            // A ratio, not a size: a pull page of gzip zeros must not grow to
            // the snapshot limit (4 GiB) before collect's bound refuses it.
            decompression: .enabled(limit: .ratio(Limits.gzipExpansionRatioMax)))
        configuration.httpVersion = .http1Only
        // A refused or failed connection fails this attempt at once: the
        // client's own retries (attemptsMax, with backoff and a progress
        // line each) decide what happens next, not hidden ones inside the
        // pool that spend the whole connect timeout on a wrong address.
        configuration.connectionPool.retryConnectionEstablishment = false
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let result = try await body(http)
            try? await http.shutdown()
            return result
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    struct Answer {
        var body: Data
    }

    /// Codes after which a request is simply signed anew and sent again:
    /// the network or the server failed, or the answer was damaged, or the
    /// request was (a flipped byte, a copy that arrived first). Pushes are
    /// idempotent, so none of them can fail a good sync.
    public static let retriedCodes: Set<LinliError.Code> = [
        .unreachable, .storage, .unavailable, .badAnswerSignature, .replayedRequest, .badRequestSignature, .staleRequest, .malformed,
    ]

    /// One signed request, retried with exponential backoff and full
    /// jitter on the ``retriedCodes``; the answer is verified before it
    /// is returned (PROTOCOL.md 1.4).
    func send(_ http: any SyncTransport, _ method: String, _ path: String, body: Data, report: inout SyncReport,
              verify: Bool = true, _ progress: @Sendable (SyncProgress) -> Void) async throws -> Answer {
        var attempt = 0
        var learnedTrust = false
        var keysTried = 1
        while true {
            attempt += 1
            do {
                return try await sendOnce(http, method, path, body: body, verify: verify)
            } catch let error as LinliError where error.code == .badRequestSignature && keysTried < requestKeys.count {
                // The server holds another of this device's keys as current.
                keysTried += 1
                requestKeyIndex.withLock { $0 = ($0 + 1) % requestKeys.count }
                attempt -= 1
                continue
            } catch is UnknownServerKey where !learnedTrust {
                // The server's certificate has not reached this replica yet:
                // fetch the trust records (they verify against the root alone).
                learnedTrust = true
                try await learnTrust(http, &report, progress)
                attempt -= 1
                continue
            } catch let error as UnknownServerKey {
                throw error.error
            } catch let waiting as AskedToWait where Self.retriedCodes.contains(waiting.error.code) && attempt < attemptsMax {
                // 503 with Retry-After: a process restarting, a database
                // down. Its wait, and up to half of it again at random, so
                // a district's devices do not all come back at once.
                let seconds = Double(waiting.seconds) * (1 + Double.random(in: 0...0.5))
                try await retry(after: seconds, attempt: attempt, because: "\(waiting.error.message) (the server asks to wait \(waiting.seconds) s)",
                                &report, progress)
            } catch let waiting as AskedToWait {
                throw waiting.error
            } catch let error as LinliError where !Self.retriedCodes.contains(error.code) || attempt >= attemptsMax {
                throw error
            } catch {
                // Up to 0.2 s, 0.4 s, 0.8 s... then a random wait below it.
                let ceiling = min(30, 0.2 * pow(2, Double(attempt - 1)))
                // The message alone: the hint comes once, with the last failure.
                let reason = (error as? LinliError)?.message ?? "\(error)"
                try await retry(after: Double.random(in: 0...ceiling), attempt: attempt, because: reason, &report, progress)
            }
        }
    }

    /// Says that attempt `attempt` failed and when the next comes, then
    /// waits for it.
    private func retry(after seconds: Double, attempt: Int, because reason: String, _ report: inout SyncReport,
                       _ progress: @Sendable (SyncProgress) -> Void) async throws {
        report.retries += 1
        progress(SyncProgress(phase: .retry, done: attempt, cursor: report.cursor,
                              message: "attempt \(attempt) of \(attemptsMax) failed: \(reason); next in \(String(format: "%.1f", seconds)) s",
                              attempts: attemptsMax, nextTrySeconds: seconds))
        try await pause(UInt64(seconds * 1e9))
    }

    /// An answer signed by a key this replica does not know as a server's.
    struct UnknownServerKey: Error {
        let error: LinliError
    }

    /// A 503 answer with a `Retry-After` of `seconds` (at most
    /// ``Limits/retryAfterSecondsMax``).
    struct AskedToWait: Error {
        let error: LinliError
        let seconds: Int
    }

    /// The seconds of a `Retry-After` header, bounded; nil for none or for
    /// an HTTP date, which a server of Linli does not send.
    static func retryAfter(_ header: String?) -> Int? {
        guard let header, let seconds = Int(header.trimmingCharacters(in: .whitespaces)), seconds >= 0 else { return nil }
        return min(seconds, Limits.retryAfterSecondsMax)
    }

    private func sendOnce(_ http: any SyncTransport, _ method: String, _ path: String, body: Data, verify: Bool = true) async throws -> Answer {
        // Signed afresh each attempt: a retried request gets a new nonce.
        let requestKey = requestKeys[requestKeyIndex.withLock { $0 }]
        let signature = RequestSignature.sign(method: method, path: path, body: body, device: identity.device, key: requestKey, time: clock())
        let exchanged = try await http.exchange(method: method, path: path, headers: signature.headers, body: body,
                                                bytesMax: Limits.responseBytesMax)
        do {
            return try check(exchanged, method, path, body: body, signature: signature, verify: verify)
        } catch let error as LinliError {
            if exchanged.status == 503, let seconds = Self.retryAfter(exchanged.header("Retry-After")) {
                throw AskedToWait(error: error, seconds: seconds)
            }
            throw error
        }
    }

    /// Checks an answer: its size, its signature (bound to the request),
    /// and its status.
    private func check(_ exchanged: TransportAnswer, _ method: String, _ path: String, body: Data, signature: RequestSignature,
                       verify: Bool) throws -> Answer {
        let status = exchanged.status
        let answer = exchanged.body
        guard status == 200 || answer.count <= Limits.errorAnswerBytesMax else {
            throw LinliError(.unavailable, "the way to the server answered HTTP \(status) with \(answer.count) bytes, not the server's error",
                             hint: "nothing is lost; sync again later")
        }
        if verify {
            let signed: AnswerSignature
            do {
                signed = try AnswerSignature(header: { exchanged.header($0) })
            } catch {
                // Not signed: a proxy's error page, or the headers were damaged.
                if status >= 500 {
                    throw LinliError(.unavailable, "the server is not answering (HTTP \(status) from the way to it)",
                                     hint: "nothing is lost; sync again later")
                }
                throw error
            }
            let bound = AnswerSignature.Request(method: method, path: path, body: body, signature: signature)
            // One lookup: a key this replica does not know yet is told apart
            // so the caller can learn the trust records and try again.
            let key = try store.serverKey(device: signed.server, keyID: signed.keyID)
            do {
                try signed.verify(status: status, request: bound, body: answer) { _, _ in key }
            } catch let error as LinliError where key == nil {
                throw UnknownServerKey(error: error)
            } catch let first as LinliError where status != 200 && !body.isEmpty {
                // A refusal made before the server read the body (its headers
                // failed, PROTOCOL.md 1.3) is bound to an empty body.
                let unread = AnswerSignature.Request(method: method, path: path, body: Data(), signature: signature)
                do { try signed.verify(status: status, request: unread, body: answer) { _, _ in key } } catch { throw first }
            }
        }
        guard status == 200 else { throw Self.failure(status: status, body: answer) }
        return Answer(body: answer)
    }

    /// Applies the server's trust records (`GET /v1/trust`). Each is a
    /// change set of the authority and verifies against the trust root
    /// alone, so the answer needs no server signature to be safe.
    func learnTrust(_ http: any SyncTransport, _ report: inout SyncReport, _ progress: @Sendable (SyncProgress) -> Void) async throws {
        var after: UInt64 = 0
        for _ in 0..<Limits.trustPagesMax {
            let answer = try await send(http, "GET", "/v1/trust?after=\(after)&limit=\(Limits.pullChangeSetsMax)", body: Data(),
                                        report: &report, verify: false, progress)
            let page = try ServerAnswer.trust(answer.body)
            _ = try store.apply(page.changeSets.map { OfferedChangeSet(decoding: $0.envelope) }.filter {
                $0.signed?.header.scope == .system
            })
            guard page.more, page.cursor > after else { return }
            after = page.cursor
        }
    }

    static func signedRequest(_ connection: ServerConnection, identity: DeviceIdentity, clock: @Sendable () -> UInt64,
                              _ method: String, _ path: String, body: Data) throws -> HTTPClientRequest {
        let signature = RequestSignature.sign(method: method, path: path, body: body, device: identity.device, key: identity.key, time: clock())
        return try request(connection, signature: signature, method, path, body: body)
    }

    static func request(_ connection: ServerConnection, signature: RequestSignature,
                        _ method: String, _ path: String, body: Data) throws -> HTTPClientRequest {
        guard let url = URL(string: path, relativeTo: connection.url) else {
            throw LinliError(.invalidInput, "bad server address \(connection.url)", hint: "give it as http(s)://host:port")
        }
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = HTTPMethod(rawValue: method)
        for (name, value) in signature.headers { request.headers.add(name: name, value: value) }
        request.headers.add(name: "Accept-Encoding", value: "gzip")
        request.headers.add(name: "User-Agent", value: "linli-client/1")
        if !body.isEmpty {
            request.body = .bytes(ByteBuffer(bytes: body))
            request.headers.add(name: "Content-Type", value: "application/x-protobuf")
        }
        return request
    }

    /// The server's JSON error as a `LinliError`.
    static func failure(_ response: HTTPClientResponse) async throws -> LinliError {
        let buffer = (try? await response.body.collect(upTo: Limits.errorAnswerBytesMax)) ?? ByteBuffer()
        return failure(status: Int(response.status.code), body: Data(buffer.readableBytesView))
    }

    static func failure(status: Int, body: Data) -> LinliError {
        ServerAnswer.failure(status: status, body: body)
    }

    static func unreachable(_ connection: ServerConnection, _ error: any Error) -> LinliError {
        LinliError(.unreachable, "the server at \(connection.url.absoluteString) \(whatBroke(error))",
                   hint: "nothing is lost; sync again when the network is back. If \(connection.url.absoluteString) is not the server's address, set the right one (on a field device: `linli server URL`)")
    }

    /// What went wrong on the way, in words, not a library's type name.
    static func whatBroke(_ error: any Error) -> String {
        let text = String(describing: error).lowercased()
        if text.contains("connecttimeout") || text.contains("connect timeout") { return "did not answer the connection in time" }
        if text.contains("readtimeout") || text.contains("deadline") || text.contains("timeout") { return "stopped answering in the middle of an answer" }
        if text.contains("refused") { return "refused the connection (is it running, and is the address right?)" }
        if text.contains("closed") || text.contains("reset") || text.contains("eof") { return "closed the connection before the answer was complete" }
        if text.contains("ssl") || text.contains("tls") || text.contains("certificate") || text.contains("handshake") {
            return "could not be reached securely (TLS: check the certificate authority file and the address)"
        }
        if text.contains("resolve") || text.contains("dns") || text.contains("host") { return "could not be found (check the address)" }
        if text.contains("toolarge") || text.contains("too large") || text.contains("limit") { return "sent an answer larger than this device accepts" }
        return "could not be reached, or the connection broke"
    }
}
