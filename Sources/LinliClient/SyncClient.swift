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

    public init(store: ReplicaStore, identity: DeviceIdentity, connection: ServerConnection, attemptsMax: Int = 5,
                clock: @escaping @Sendable () -> UInt64 = ReplicaStore.systemClock) {
        self.store = store
        self.identity = identity
        self.connection = connection
        self.attemptsMax = attemptsMax
        self.clock = clock
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
        try await Self.withHTTP(connection) { http in
            var report = SyncReport()
            let started = DispatchTime.now().uptimeNanoseconds
            try await push(http, &report, progress)
            report.milliseconds["push"] = elapsedMilliseconds(since: started)
            try await pull(http, &report, progress)
            return report
        }
    }

    func push(_ http: HTTPClient, _ report: inout SyncReport, _ progress: @Sendable (SyncProgress) -> Void) async throws {
        while true {
            let outbox = try store.outbox(device: identity.device, peer: cursorName, limit: Limits.pushChangeSetsMax)
            if outbox.isEmpty { return }
            var request = Linli_V1_PushRequest()
            request.changeSets = outbox.map(\.envelope)
            let answer = try await send(http, "POST", "/v1/push", body: try request.serializedBytes(), report: &report, progress)
            let response = try Linli_V1_PushResponse(serializedBytes: answer.body)
            report.pushed += outbox.count
            var acknowledged: UInt64 = 0
            for result in response.results {
                switch result.status {
                case "accepted", "duplicate":
                    report.accepted += 1
                    acknowledged = max(acknowledged, result.seq)
                case "refused":
                    // Kept by the server with the reason; `status()` shows it.
                    report.refused.append("\(result.seq): \(result.code): \(result.message)")
                    try store.recordRefusal(peer: cursorName, seq: result.seq, code: result.code, message: result.message)
                    acknowledged = max(acknowledged, result.seq)
                default: break
                }
            }
            progress(SyncProgress(phase: .push, done: report.pushed, cursor: report.cursor, message: "pushed \(report.pushed)"))
            guard acknowledged > 0 else { return }
            try store.acknowledge(device: identity.device, through: acknowledged, peer: cursorName)
            if acknowledged < outbox.last!.header.seq { return }
        }
    }

    private func pull(_ http: HTTPClient, _ report: inout SyncReport, _ progress: @Sendable (SyncProgress) -> Void) async throws {
        var cursor = try store.cursor(cursorName)
        while true {
            let asked = DispatchTime.now().uptimeNanoseconds
            let answer = try await send(http, "GET", "/v1/pull?after=\(cursor)&limit=\(Limits.pullChangeSetsMax)", body: Data(), report: &report, progress)
            report.milliseconds["pull", default: 0] += elapsedMilliseconds(since: asked)
            let applying = DispatchTime.now().uptimeNanoseconds
            defer { report.milliseconds["apply", default: 0] += elapsedMilliseconds(since: applying) }
            let page = try Linli_V1_PullResponse(serializedBytes: answer.body)
            let next = Int64(page.cursor)
            guard next >= cursor else {
                throw LinliError(.malformed, "the server answered a pull after \(cursor) with cursor \(next), which goes backwards")
            }
            if !page.changeSets.isEmpty || next != cursor {
                let offered = page.changeSets.map {
                    OfferedChangeSet(envelope: $0.envelope, scopedPredecessor: $0.hasScopedPredecessor ? $0.scopedPredecessor : nil)
                }
                _ = try store.applyPage(offered, cursor: SyncCursor(name: cursorName, position: next))
            }
            report.pulled += page.changeSets.count
            cursor = next
            report.cursor = cursor
            progress(SyncProgress(phase: .pull, done: report.pulled, cursor: cursor, message: "pulled \(report.pulled)"))
            if !page.more { return }
        }
    }

    /// The server's view of this device: its refused change sets (with
    /// reasons) and the conflicts in its scopes, as the server's JSON.
    public func status() async throws -> [String: Any] {
        let data = try await Self.withHTTP(connection) { http in
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
            decompression: .enabled(limit: .size(Int(Limits.snapshotBytesMax))))
        configuration.httpVersion = .http1Only
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

    /// One signed request, retried on network failures, 503 and other 5xx
    /// answers, with exponential backoff and full jitter.
    func send(_ http: HTTPClient, _ method: String, _ path: String, body: Data, report: inout SyncReport,
              _ progress: @Sendable (SyncProgress) -> Void) async throws -> Answer {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await sendOnce(http, method, path, body: body)
            } catch let error as LinliError where ![.unreachable, .storage, .unavailable].contains(error.code) || attempt >= attemptsMax {
                throw error
            } catch {
                report.retries += 1
                progress(SyncProgress(phase: .retry, done: attempt, cursor: report.cursor, message: "\(error); trying again"))
            }
            // Up to 0.2 s, 0.4 s, 0.8 s... then a random wait below it.
            let ceiling = min(30, 0.2 * pow(2, Double(attempt - 1)))
            try await Task.sleep(nanoseconds: UInt64(Double.random(in: 0...ceiling) * 1e9))
        }
    }

    private func sendOnce(_ http: HTTPClient, _ method: String, _ path: String, body: Data) async throws -> Answer {
        // Signed afresh each attempt: a retried request gets a new nonce.
        let request = try Self.signedRequest(connection, identity: identity, clock: clock, method, path, body: body)
        do {
            let response = try await http.execute(request, timeout: .seconds(connection.readTimeoutSeconds))
            guard response.status == .ok else { throw try await Self.failure(response) }
            let buffer = try await response.body.collect(upTo: Limits.responseBytesMax)
            return Answer(body: Data(buffer.readableBytesView))
        } catch let error as LinliError {
            throw error
        } catch {
            throw Self.unreachable(connection, error)
        }
    }

    static func signedRequest(_ connection: ServerConnection, identity: DeviceIdentity, clock: @Sendable () -> UInt64,
                              _ method: String, _ path: String, body: Data) throws -> HTTPClientRequest {
        guard let url = URL(string: path, relativeTo: connection.url) else {
            throw LinliError(.invalidInput, "bad server address \(connection.url)", hint: "give it as http(s)://host:port")
        }
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = HTTPMethod(rawValue: method)
        let signature = RequestSignature.sign(method: method, path: path, body: body, device: identity.device, key: identity.key, time: clock())
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
        let buffer = (try? await response.body.collect(upTo: 1 << 20)) ?? ByteBuffer()
        let object = (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: String] ?? [:]
        let code = object["code"].flatMap(LinliError.Code.init(rawValue:)) ?? (response.status.code >= 500 ? .unavailable : .invalidInput)
        return LinliError(code, object["message"] ?? "the server answered \(response.status.code) \(response.status.reasonPhrase)", hint: object["hint"])
    }

    static func unreachable(_ connection: ServerConnection, _ error: any Error) -> LinliError {
        LinliError(.unreachable, "the server at \(connection.url.absoluteString) cannot be reached or the connection broke: \(error)",
                   hint: "nothing is lost; sync again when the network is back")
    }
}
