import AsyncHTTPClient
import Foundation
import LinliCore
import NIOCore
import NIOHTTP1

/// What a signed request came back with: the status, a header lookup and
/// the body (after any `Content-Encoding` is undone).
public struct TransportAnswer: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: Data

    public init(status: Int, headers: [(String, String)], body: Data) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }
}

/// How a ``SyncClient`` reaches its server. Over HTTP in the field
/// (``HTTPTransport``); in one process in the deterministic simulation.
/// A transport throws `unreachable` when the exchange broke on the way.
public protocol SyncTransport: Sendable {
    /// Sends one request and returns its answer, reading at most
    /// `bytesMax` bytes of body.
    func exchange(method: String, path: String, headers: [(String, String)], body: Data, bytesMax: Int) async throws -> TransportAnswer
}

/// The field's transport: AsyncHTTPClient with the connection's TLS trust,
/// timeouts and gzip limit.
struct HTTPTransport: SyncTransport {
    let http: HTTPClient
    let connection: ServerConnection

    func exchange(method: String, path: String, headers: [(String, String)], body: Data, bytesMax: Int) async throws -> TransportAnswer {
        guard let url = URL(string: path, relativeTo: connection.url) else {
            throw LinliError(.invalidInput, "bad server address \(connection.url)", hint: "give it as http(s)://host:port")
        }
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = HTTPMethod(rawValue: method)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.headers.add(name: "Accept-Encoding", value: "gzip")
        request.headers.add(name: "User-Agent", value: "linli-client/1")
        if !body.isEmpty {
            request.body = .bytes(ByteBuffer(bytes: body))
            request.headers.add(name: "Content-Type", value: "application/x-protobuf")
        }
        do {
            let response = try await http.execute(request, timeout: .seconds(connection.readTimeoutSeconds))
            let answer = Data(try await response.body.collect(upTo: bytesMax).readableBytesView)
            return TransportAnswer(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) }, body: answer)
        } catch let error as LinliError {
            throw error
        } catch {
            throw SyncClient.unreachable(connection, error)
        }
    }
}
