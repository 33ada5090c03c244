import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import SwiftProtobuf

/// What one sync did.
public struct SyncReport: Sendable, Equatable {
    public var pushed = 0
    public var accepted = 0
    public var refused: [String] = []
    public var pulled = 0
    public var cursor: Int64 = 0
}

/// Syncs a local replica with a Linli server: pushes the device's own
/// change sets the server has not acknowledged, then pulls pages after the
/// stored cursor until none are left. Each pulled page is stored with its
/// cursor in one transaction, so a sync cut off anywhere resumes where it
/// stopped. Failed requests are retried with exponential backoff and
/// jitter.
///
/// Foundation's URLSession is used (not AsyncHTTPClient): a client makes a
/// handful of sequential requests, and URLSession needs no event loop of
/// its own on the device.
public final class SyncClient: Sendable {
    public let store: ReplicaStore
    public let identity: DeviceIdentity
    public let server: URL
    let session: URLSession
    let attemptsMax: Int
    let clock: @Sendable () -> UInt64

    public init(store: ReplicaStore, identity: DeviceIdentity, server: URL, attemptsMax: Int = 5,
                clock: @escaping @Sendable () -> UInt64 = ReplicaStore.systemClock) {
        self.store = store
        self.identity = identity
        self.server = server
        self.attemptsMax = attemptsMax
        self.clock = clock
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 30
        session = URLSession(configuration: configuration)
    }

    var cursorName: String { "server:" + server.absoluteString }

    /// Push, then pull. `progress` is told after each request.
    @discardableResult
    public func sync(progress: @Sendable (String) -> Void = { _ in }) async throws -> SyncReport {
        var report = SyncReport()
        // Push, a bounded batch at a time.
        while true {
            let outbox = try store.outbox(device: identity.device, peer: cursorName, limit: Limits.pushChangeSetsMax)
            if outbox.isEmpty { break }
            var request = Linli_V1_PushRequest()
            request.changeSets = outbox.map(\.envelope)
            let response = try Linli_V1_PushResponse(serializedBytes: try await send("POST", "/v1/push", body: try request.serializedBytes()))
            report.pushed += outbox.count
            var acknowledged: UInt64 = 0
            for result in response.results {
                switch result.status {
                case "accepted", "duplicate":
                    report.accepted += 1
                    acknowledged = max(acknowledged, result.seq)
                case "refused":
                    report.refused.append("\(result.seq): \(result.code): \(result.message)")
                    acknowledged = max(acknowledged, result.seq)
                default: break
                }
            }
            progress("pushed \(report.pushed)")
            guard acknowledged > 0 else { break }
            try store.acknowledge(device: identity.device, through: acknowledged, peer: cursorName)
            if acknowledged < outbox.last!.header.seq { break }
        }
        // Pull until the server has no more.
        var cursor = try store.cursor(cursorName)
        while true {
            let data = try await send("GET", "/v1/pull?after=\(cursor)&limit=\(Limits.pullChangeSetsMax)", body: Data())
            let page = try Linli_V1_PullResponse(serializedBytes: data)
            let next = Int64(page.cursor)
            if !page.changeSets.isEmpty || next != cursor {
                _ = try store.applyPage(page.changeSets.map(\.envelope), cursor: SyncCursor(name: cursorName, position: next))
            }
            report.pulled += page.changeSets.count
            cursor = next
            progress("pulled \(report.pulled)")
            if !page.more { break }
        }
        report.cursor = cursor
        return report
    }

    /// The server's view of this device: its refused change sets (with
    /// reasons) and the conflicts in its scopes, as the server's JSON.
    public func status() async throws -> [String: Any] {
        let data = try await send("GET", "/v1/status", body: Data())
        return (try JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    /// One signed request, retried on network failures and 5xx answers.
    func send(_ method: String, _ path: String, body: Data) async throws -> Data {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await sendOnce(method, path, body: body)
            } catch let error as LinliError where error.code != .storage || attempt >= attemptsMax {
                throw error
            } catch let error as LinliError {
                _ = error
            } catch {
                if attempt >= attemptsMax {
                    throw LinliError(.storage, "the server cannot be reached: \(error.localizedDescription)", hint: "sync again when the network is back")
                }
            }
            // Exponential backoff with full jitter: up to 0.2 s, 0.4 s, 0.8 s...
            let ceiling = 0.2 * pow(2, Double(attempt - 1))
            try await Task.sleep(nanoseconds: UInt64(Double.random(in: 0...ceiling) * 1e9))
        }
    }

    func sendOnce(_ method: String, _ path: String, body: Data) async throws -> Data {
        guard let url = URL(string: path, relativeTo: server) else { throw LinliError(.invalidInput, "bad server address \(server)") }
        var request = URLRequest(url: url)
        request.httpMethod = method
        let signature = RequestSignature.sign(method: method, path: path, body: body, device: identity.device, key: identity.key, time: clock())
        for (name, value) in signature.headers { request.setValue(value, forHTTPHeaderField: name) }
        if !body.isEmpty {
            request.httpBody = body
            request.setValue("application/x-protobuf", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await session.data(for: request)
        guard let http = response as? HTTPURLResponse else { throw LinliError(.storage, "no HTTP answer from \(server)") }
        guard http.statusCode == 200 else {
            let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: String] ?? [:]
            let code = object["code"].flatMap(LinliError.Code.init(rawValue:)) ?? (http.statusCode >= 500 ? .storage : .invalidInput)
            throw LinliError(code, object["message"] ?? "the server answered \(http.statusCode)", hint: object["hint"])
        }
        return data
    }
}
